"""colcon builds cosmos_ros (plain and ``--symlink-install``) into a working ROS 2 install space.

A scratch workspace gets copies of both packages; ``colcon build`` (the plain one builds
cosmos_ros_interfaces too) and an overlay ``colcon build --symlink-install`` of cosmos_ros on
top of it must each leave what ``ros2 run`` / ``ros2 launch`` need: the ament index entry,
share/cosmos_ros (package.xml, launch, config, rviz), the executables in lib/cosmos_ros, and
``cosmos_ros.bag_tools`` / ``cosmos_ros.training`` importable from the install space. Before the
fix the symlink build failed ("The package_dir contains a mapping from 'cosmos_ros' to
'cosmos_ros' which is also a key").

colcon-core, colcon-ros and the Kilted ament wheels come from PyPI (requirements/ros-wheels.txt);
an apt ROS install brings its own. The launch descriptions load from the install space only
where ``launch_ros`` is importable (apt installs; it has no PyPI wheel).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ros_helpers import REPO_ROOT

# What colcon needs of the repository for cosmos_ros (everything setup.py reads).
PACKAGE_ITEMS = [
    "setup.py",
    "setup.cfg",
    "package.xml",
    "resource",
    "launch",
    "config",
    "rviz",
    "cosmos_ros",
    "bag_tools",
    "training",
    "scripts",
]
EXECUTABLES = ["generation_node", "capture_node", "bag_player", "cosmos-ros"]
BUILD_TIMEOUT = 600  # seconds; the interfaces (rosidl, C/C++) take about a minute on 2 cores

PROBE = """
import json, sys
import cosmos_ros, cosmos_ros.bag_tools, cosmos_ros.training
import cosmos_ros_interfaces
from ament_index_python.packages import get_package_prefix, get_package_share_directory
print(json.dumps({
    "cosmos_ros": cosmos_ros.__file__,
    "bag_tools": cosmos_ros.bag_tools.__file__,
    "training": cosmos_ros.training.__file__,
    "interfaces": cosmos_ros_interfaces.__file__,
    "prefix": get_package_prefix("cosmos_ros"),
    "share": get_package_share_directory("cosmos_ros"),
}))
"""


def _copy_package(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    dest.mkdir(parents=True)
    for item in PACKAGE_ITEMS:
        src = REPO_ROOT / item
        if src.is_dir():
            shutil.copytree(src, dest / item, ignore=ignore)
        else:
            shutil.copy2(src, dest / item)


def _bash(workspace: Path, command: str, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in bash after sourcing the workspace's install/setup.bash (if built)."""
    setup = workspace / "install" / "setup.bash"
    source = f"set +u; source {shlex.quote(str(setup))}; " if setup.is_file() else ""
    return subprocess.run(
        ["bash", "-c", f"{source}{command}"],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


def _colcon_build(workspace: Path, *args: str, underlay: Path | None = None) -> float:
    """``python -m colcon build ...`` in ``workspace`` (over ``underlay``); returns its seconds."""
    cmake_args = ["-DBUILD_TESTING=OFF", f"-DPython3_EXECUTABLE={sys.executable}"]
    env_prefix = ""
    if (Path(sys.prefix) / "share" / "ament_cmake").is_dir():  # the PyPI wheels live in the venv
        cmake_args.append("-DPython3_FIND_STRATEGY=LOCATION")
        env_prefix = (
            f"export CMAKE_PREFIX_PATH={shlex.quote(sys.prefix)}${{CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}}; "
        )
    colcon = [sys.executable, "-m", "colcon", "build", "--event-handlers", "console_direct-"]
    command = shlex.join([*colcon, *args, "--cmake-args", *cmake_args])
    started = time.monotonic()
    result = _bash(underlay or workspace, env_prefix + command, workspace, BUILD_TIMEOUT)
    seconds = time.monotonic() - started
    assert result.returncode == 0, (
        f"colcon build {' '.join(args)} failed:\n{result.stdout[-4000:]}{result.stderr[-4000:]}"
    )
    print(f"colcon build {' '.join(args)}: {seconds:.1f} s")
    return seconds


def _check_install_space(workspace: Path, tmp: Path) -> dict[str, str]:
    """The files ``ros2 run``/``ros2 launch`` look up, and the imports, from the install space."""
    prefix = workspace / "install" / "cosmos_ros"
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "cosmos_ros").is_file()
    share = prefix / "share" / "cosmos_ros"
    assert (share / "package.xml").is_file()
    for rel in ["launch/cosmos_ros.launch.py", "launch/preview.launch.py", "rviz/preview.rviz"]:
        assert (share / rel).is_file(), rel
    for config in (REPO_ROOT / "config").rglob("*.yaml"):
        rel = config.relative_to(REPO_ROOT)
        assert (share / rel).is_file(), rel
    for name in EXECUTABLES:
        script = prefix / "lib" / "cosmos_ros" / name
        assert script.is_file() and os.access(script, os.X_OK), f"{name} is not in lib/cosmos_ros"

    probe = _bash(workspace, shlex.join([sys.executable, "-c", PROBE]), tmp, 120)
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout.strip().splitlines()[-1])
    assert Path(found["prefix"]) == prefix and Path(found["share"]) == share
    for module in ("cosmos_ros", "bag_tools", "training"):
        assert Path(found[module]).is_relative_to(workspace), f"{module} imported from {found[module]}"

    # What `ros2 run cosmos_ros generation_node --help` executes.
    helped = _bash(
        workspace, shlex.join([str(prefix / "lib" / "cosmos_ros" / "generation_node"), "--help"]), tmp, 120
    )
    assert helped.returncode == 0 and helped.stdout.startswith("usage: generation_node"), helped.stderr

    # `cosmos-ros` on PATH once setup.bash is sourced: the wrapper in bin/ runs lib/cosmos_ros's script.
    on_path = _bash(workspace, "command -v cosmos-ros && cosmos-ros --help", tmp, 120)
    assert on_path.returncode == 0, on_path.stderr
    where, _, usage = on_path.stdout.partition("\n")
    assert Path(where) == prefix / "bin" / "cosmos-ros", f"cosmos-ros resolves to {where}"
    assert usage.startswith("usage: cosmos-ros"), usage[:200]
    return found


@pytest.fixture(scope="module")
def workspaces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A plain workspace with both packages, built once; and an empty overlay beside it."""
    pytest.importorskip("colcon_core", reason="colcon is not installed (requirements/ros-wheels.txt has it)")
    pytest.importorskip("colcon_ros", reason="colcon-ros (ament_python/ament_cmake builds) is not installed")
    root = tmp_path_factory.mktemp("colcon")
    plain, overlay = root / "plain_ws", root / "overlay_ws"
    _copy_package(plain / "src" / "cosmos_ros")
    shutil.copytree(
        REPO_ROOT / "interfaces" / "cosmos_ros_interfaces", plain / "src" / "cosmos_ros_interfaces"
    )
    _copy_package(overlay / "src" / "cosmos_ros")
    _colcon_build(plain)
    return {"plain": plain, "overlay": overlay, "tmp": root}


def test_plain_build_installs_both_packages(workspaces: dict[str, Path]) -> None:
    plain = workspaces["plain"]
    found = _check_install_space(plain, workspaces["tmp"])
    site = next((plain / "install" / "cosmos_ros" / "lib").glob("python3*/site-packages"))
    assert Path(found["training"]) == site / "cosmos_ros" / "training" / "__init__.py"
    assert (site / "cosmos_ros" / "training" / "configs" / "lora_recipe.yaml").is_file()  # package_data
    assert not (site / "training").exists() and not (site / "bag_tools").exists()
    assert Path(found["interfaces"]).is_relative_to(plain / "install" / "cosmos_ros_interfaces")


def test_symlink_install_links_back_to_the_sources(workspaces: dict[str, Path]) -> None:
    overlay = workspaces["overlay"]
    src = overlay / "src" / "cosmos_ros"
    _colcon_build(overlay, "--symlink-install", underlay=workspaces["plain"])
    found = _check_install_space(overlay, workspaces["tmp"])
    # Symlinked: the modules and the share files are the sources themselves, so edits show at once.
    assert Path(found["training"]).resolve() == src / "training" / "__init__.py"
    assert Path(found["bag_tools"]).resolve() == src / "bag_tools" / "__init__.py"
    assert Path(found["cosmos_ros"]).resolve() == src / "cosmos_ros" / "__init__.py"
    share = overlay / "install" / "cosmos_ros" / "share" / "cosmos_ros"
    assert (share / "launch" / "cosmos_ros.launch.py").resolve() == src / "launch" / "cosmos_ros.launch.py"
    # The interfaces come from the underlay, as in a user's overlay workspace.
    assert Path(found["interfaces"]).is_relative_to(workspaces["plain"] / "install")

    # A second symlink build (colcon replaces its links, setup.py stages again) still works.
    _colcon_build(overlay, "--symlink-install", underlay=workspaces["plain"])
    _check_install_space(overlay, workspaces["tmp"])


LOAD_LAUNCH = """
import sys
from launch import LaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
for path in sys.argv[1:]:
    description = PythonLaunchDescriptionSource(path).get_launch_description(None)
    assert isinstance(description, LaunchDescription), path
print("loaded", len(sys.argv) - 1)
"""


def test_launch_files_load_from_the_install_space(workspaces: dict[str, Path]) -> None:
    plain = workspaces["plain"]
    has_launch = _bash(plain, shlex.join([sys.executable, "-c", "import launch_ros"]), workspaces["tmp"], 60)
    if has_launch.returncode != 0:
        pytest.skip("launch_ros is not importable (no PyPI wheel); apt ROS installs have it")
    launch_dir = plain / "install" / "cosmos_ros" / "share" / "cosmos_ros" / "launch"
    files = sorted(str(p) for p in launch_dir.glob("*.launch.py"))
    loaded = _bash(plain, shlex.join([sys.executable, "-c", LOAD_LAUNCH, *files]), workspaces["tmp"], 120)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == f"loaded {len(files)}"


EDITABLE_PROBE = """
import site, sys, sysconfig
site.addsitedir(sys.argv[1])  # the editable wheel's .pth and finder, and nothing else of the venv's
sys.path.append(sysconfig.get_paths()["purelib"])  # the venv's dependencies, without its .pth files
import cosmos_ros, cosmos_ros.bag_tools, cosmos_ros.training
print(cosmos_ros.__file__, cosmos_ros.bag_tools.__file__, cosmos_ros.training.__file__)
"""


def test_pip_editable_install_still_maps_the_top_level_folders(tmp_path: Path) -> None:
    """The setup.py that colcon's symlink build needs keeps ``pip install -e .`` (PEP 660) working.

    The editable wheel is built with setuptools' PEP 660 hook, as pip does, and unpacked into a
    scratch site folder, so the shared venv's own editable install is left alone.
    """
    src = tmp_path / "src"
    _copy_package(src)
    hook = "import sys; from setuptools import build_meta as b; print(b.build_editable(sys.argv[1]))"
    build = subprocess.run(
        [sys.executable, "-c", hook, str(tmp_path / "wheels")],
        cwd=src, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-4000:]
    wheel = tmp_path / "wheels" / build.stdout.strip().splitlines()[-1]
    site_dir = tmp_path / "site"
    shutil.unpack_archive(wheel, site_dir, format="zip")
    # pip puts the console scripts in bin/: the colcon-only wrapper must not ship (it would clash).
    assert not list(site_dir.glob("*.data/data/bin/*")), "the bin/cosmos-ros wrapper is in the wheel"
    probe = subprocess.run(
        [sys.executable, "-S", "-c", EDITABLE_PROBE, str(site_dir)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    package, bag_tools, training = (Path(p) for p in probe.stdout.split())
    assert package == src / "cosmos_ros" / "__init__.py"
    assert bag_tools == src / "bag_tools" / "__init__.py"
    assert training == src / "training" / "__init__.py"
