"""ament_python package cosmos_ros (also a plain pip package).

bag_tools/ and training/ sit at the repository root (the design card's layout) but install as
``cosmos_ros.bag_tools`` and ``cosmos_ros.training`` through ``package_dir``, so no generic
top-level module name (``training``) ever lands in a user's site-packages. The mapping serves
``pip install .``, ``pip install -e .`` and a plain ``colcon build``.

``colcon build --symlink-install`` cannot use a nested mapping: it symlinks each top-level package
into its build folder, runs ``setup.py develop`` there and puts that folder on PYTHONPATH, so
``cosmos_ros.bag_tools`` would be looked up inside cosmos_ros/. For that one case (``develop`` run
from a folder other than this one) :func:`_stage_symlink_tree` replaces colcon's ``cosmos_ros``
link with a folder of links: every entry of cosmos_ros/ plus ``bag_tools`` and ``training``.
Edits to existing files show at once; a new module directly in cosmos_ros/ needs a rebuild.
"""

import shutil
import sys
from pathlib import Path

from setuptools import find_packages, setup

package_name = "cosmos_ros"
HERE = Path(__file__).resolve().parent
# Top-level folders that install as subpackages of cosmos_ros: {subpackage name: folder}.
NESTED = {"bag_tools": "bag_tools", "training": "training"}


def _stage_symlink_tree(build_dir: Path) -> None:
    """Make ``build_dir/cosmos_ros`` a folder of links into the source, with the nested folders."""
    staged = build_dir / package_name
    if staged.is_symlink():
        staged.unlink()  # colcon's link to the source folder
    elif staged.is_dir():
        if not all(entry.is_symlink() for entry in staged.iterdir()):
            raise RuntimeError(f"{staged} holds real files: not a colcon build folder, left alone")
        shutil.rmtree(staged)  # a previous staging: links only, rmtree does not follow them
    staged.mkdir()
    for entry in sorted((HERE / package_name).iterdir()):
        if entry.name != "__pycache__" and entry.name not in NESTED:
            (staged / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    for name, folder in NESTED.items():
        (staged / name).symlink_to(HERE / folder, target_is_directory=True)


def _data(pattern: str) -> list[str]:
    """Files matching ``pattern`` below the source folder, relative to it (what setuptools wants)."""
    return sorted(str(p.relative_to(HERE)) for p in HERE.glob(pattern) if p.is_file())


def _colcon_symlink_build_dir() -> Path | None:
    """colcon's build folder while ``colcon build --symlink-install`` runs ``setup.py develop``.

    Recognised by colcon's own layout: the working folder is not this one and holds a symlink
    ``setup.py`` to this file. Anything else (pip, a plain colcon build) gets None.
    """
    cwd = Path.cwd()
    link = cwd / "setup.py"
    if "develop" in sys.argv[1:] and cwd.resolve() != HERE and link.is_symlink():
        if link.resolve() == HERE / "setup.py":
            return cwd
    return None


def _colcon_bin_files() -> list[tuple[str, list[str]]]:
    """``bin/cosmos-ros`` for ``setup.py install``/``develop`` (what colcon runs), else nothing.

    Why: setup.cfg sends those commands' console scripts to lib/cosmos_ros for ``ros2 run``, which
    leaves ``cosmos-ros`` off PATH; the wrapper in bin/ runs that script. pip builds wheels
    (``bdist_wheel``/``editable_wheel``) whose console scripts already land in bin/, so they get
    no wrapper and nothing clashes.
    """
    if {"install", "develop"} & set(sys.argv[1:]):
        return [("bin", [str(HERE / "scripts" / "cosmos-ros")])]  # absolute: colcon builds elsewhere
    return []


colcon_build_dir = _colcon_symlink_build_dir()
if colcon_build_dir is not None:
    _stage_symlink_tree(colcon_build_dir)
    package_dir: dict[str, str] = {}  # the staged tree already has the nested layout
else:
    # No identity entry for cosmos_ros itself: colcon rejects a package_dir value that is a key.
    package_dir = {f"{package_name}.{name}": folder for name, folder in NESTED.items()}

packages = find_packages(str(HERE), include=[package_name, package_name + ".*"])
for name, folder in NESTED.items():
    packages += [f"{package_name}.{name}"]
    packages += [f"{package_name}.{name}.{p}" for p in find_packages(str(HERE / folder))]

setup(
    name=package_name,
    version="0.1.0",
    packages=packages,
    package_dir=package_dir,
    package_data={
        "cosmos_ros.training": ["configs/*.yaml"],
        # cosmos-mini's trained weights, once they ship (cosmos_ros.model.mini.SHIPPED_DIR)
        "cosmos_ros": ["assets/cosmos-mini/*", "assets/cosmos-mini/*/*"],
    },
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", _data("launch/*.py")),
        ("share/" + package_name + "/config", _data("config/*.yaml")),
        ("share/" + package_name + "/config/embodiments", _data("config/embodiments/*.yaml")),
        ("share/" + package_name + "/rviz", _data("rviz/*.rviz")),
        *_colcon_bin_files(),
    ],
    python_requires=">=3.10",
    install_requires=["numpy", "scipy", "pyyaml", "tqdm", "rich", "safetensors"],
    extras_require={
        # The ROS-free parts: bag tools, registry, evaluation metrics.
        "bags": ["rosbags>=0.11", "rosbags-image[opencv-headless]>=0.10", "av>=14"],
        # Model runtime, training and evaluation on a GPU box (no ROS needed).
        "model": [
            "torch>=2.4",
            "torchvision",
            "diffusers>=0.41",  # 0.42 needs Python >= 3.11; 0.41 has the same pipeline
            "transformers>=4.57",
            "peft>=0.17",
            "accelerate>=1.0",
            "tensorboard",
            "opencv-python-headless",
            "av>=14",
        ],
        # Signed adapter bundles ('cosmos-ros adapters export --sign-key'); model-signing imports
        # OpenSSL without declaring it.
        "signing": ["model-signing>=1.1.1", "pyOpenSSL>=25", "cryptography>=46"],
        "test": ["pytest", "ruff"],
    },
    zip_safe=False,
    maintainer="cosmos_ros developers",
    maintainer_email="cosmos-ros-dev@example.com",
    description="Adapt the Cosmos Predict 2.5 video world model to robots and run it beside them.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "cosmos-ros = cosmos_ros.cli:main",
            "generation_node = cosmos_ros.nodes.generation_node:main",
            "capture_node = cosmos_ros.nodes.capture_node:main",
            "bag_player = cosmos_ros.nodes.bag_player:main",
        ],
    },
)
