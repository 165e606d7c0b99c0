"""ament_python package cosmos_ros (also a plain pip package).

bag_tools/ and training/ sit at the repository root (the design card's layout) but install as
``cosmos_ros.bag_tools`` and ``cosmos_ros.training`` through ``package_dir``, so no generic
top-level module name (``training``) ever lands in a user's site-packages. The mapping works the
same for ``pip install .``, ``pip install -e .`` and ``colcon build``.
"""

from glob import glob

from setuptools import find_packages, setup

package_name = "cosmos_ros"

packages = find_packages(include=["cosmos_ros", "cosmos_ros.*"])
packages += ["cosmos_ros.bag_tools"] + ["cosmos_ros.bag_tools." + p for p in find_packages("bag_tools")]
packages += ["cosmos_ros.training"] + ["cosmos_ros.training." + p for p in find_packages("training")]

setup(
    name=package_name,
    version="0.1.0",
    packages=packages,
    package_dir={
        "cosmos_ros": "cosmos_ros",
        "cosmos_ros.bag_tools": "bag_tools",
        "cosmos_ros.training": "training",
    },
    package_data={
        "cosmos_ros.training": ["configs/*.yaml"],
        # cosmos-mini's trained weights, once they ship (cosmos_ros.model.mini.SHIPPED_DIR)
        "cosmos_ros": ["assets/cosmos-mini/*", "assets/cosmos-mini/*/*"],
    },
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml")),
        ("share/" + package_name + "/config/embodiments", glob("config/embodiments/*.yaml")),
        ("share/" + package_name + "/rviz", glob("rviz/*.rviz")),
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
