"""Generation + capture nodes beside a robot (optionally RViz showing the prediction).

    ros2 launch cosmos_ros cosmos_ros.launch.py model_path:=~/models/cosmos-predict2.5-2b \
        embodiment:=example_arm camera_topic:=/wrist_camera/image_raw namespace:=arm

Arguments (defaults in generate_launch_description): params_file (a ROS 2 params YAML applied
over config/generation_node.yaml and config/capture_node.yaml), embodiment (file or name in
config/embodiments/), camera_topic (wins over the embodiment's), model_path, registry (the adapter
registry folder), namespace, use_sim_time (every node follows /clock, e.g. ``ros2 bag play
--clock``), log_level (every node's ``--log-level``), use_rviz (includes preview.launch.py; needs
rviz2, which is installed on a workstation, not on the robot computer).
Without ``launch`` installed: ``cosmos-ros bringup``.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch_ros.actions import Node

from launch import LaunchDescription

PACKAGE = "cosmos_ros"
TRUE = ("true", "1", "yes", "on")


def _nodes(context, *args, **kwargs):
    share = get_package_share_directory(PACKAGE)
    value = lambda name: context.launch_configurations[name]  # noqa: E731
    gen_params = [os.path.join(share, "config", "generation_node.yaml")]
    cap_params = [os.path.join(share, "config", "capture_node.yaml")]
    if value("params_file"):
        gen_params.append(value("params_file"))
        cap_params.append(value("params_file"))
    # Last in each node's list, so neither the defaults nor params_file can undo it.
    common = {"use_sim_time": value("use_sim_time").lower() in TRUE}
    gen_overrides, cap_overrides = dict(common), dict(common)
    if value("model_path"):
        gen_overrides["model_path"] = os.path.expanduser(value("model_path"))
    if value("registry"):
        gen_overrides["registry_path"] = os.path.expanduser(value("registry"))
    if value("camera_topic"):
        cap_overrides["camera_topic"] = value("camera_topic")
    embodiment = value("embodiment")
    if embodiment:
        if not os.path.isfile(embodiment):
            embodiment = os.path.join(share, "config", "embodiments", embodiment + ".yaml")
        cap_overrides["embodiment_file"] = embodiment
    namespace = value("namespace")
    log_level = ["--log-level", value("log_level")]
    actions = [
        Node(
            package=PACKAGE,
            executable="generation_node",
            name="generation_node",
            namespace=namespace,
            parameters=[*gen_params, gen_overrides],
            ros_arguments=log_level,
            output="screen",
        ),
        Node(
            package=PACKAGE,
            executable="capture_node",
            name="capture_node",
            namespace=namespace,
            parameters=[*cap_params, cap_overrides],
            ros_arguments=log_level,
            output="screen",
        ),
    ]
    if value("use_rviz").lower() in TRUE:
        actions.append(
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(os.path.join(share, "launch", "preview.launch.py")),
                launch_arguments={
                    "namespace": namespace,
                    "use_sim_time": value("use_sim_time"),
                    "log_level": value("log_level"),
                }.items(),
            )
        )
    return actions


def generate_launch_description():
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "params_file", default_value="", description="params YAML over the defaults"
            ),
            DeclareLaunchArgument("embodiment", default_value="", description="embodiment file or name"),
            DeclareLaunchArgument("camera_topic", default_value="", description="camera topic to capture"),
            DeclareLaunchArgument(
                "model_path", default_value="", description="Cosmos-Predict2.5 diffusers folder"
            ),
            DeclareLaunchArgument(
                "registry", default_value="", description="adapter registry folder (registry_path)"
            ),
            DeclareLaunchArgument("namespace", default_value="", description="namespace of the nodes"),
            DeclareLaunchArgument(
                "use_sim_time",
                default_value="false",
                description="every node uses /clock time (bag replay with --clock)",
            ),
            DeclareLaunchArgument(
                "log_level",
                default_value="info",
                description="log level of every node: debug, info, warn, error, fatal",
            ),
            DeclareLaunchArgument(
                "use_rviz",
                default_value="false",
                description="also run preview.launch.py (RViz; needs rviz2, a workstation package)",
            ),
            OpaqueFunction(function=_nodes),
        ]
    )
