"""RViz showing a running generation node's preview (predicted video and input | prediction).

    ros2 launch cosmos_ros preview.launch.py namespace:=arm

For the workstation: rviz2 (and so Qt) is not a dependency of cosmos_ros, so that the robot
computer running cosmos_ros.launch.py needs neither; install ros-$ROS_DISTRO-rviz2 where this runs.
The RViz config subscribes RELIABLE + TRANSIENT_LOCAL, matching the node's preview publishers,
so the last predicted frame shows even when RViz starts after the prediction.
Arguments (defaults below): namespace, use_sim_time, log_level.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from launch import LaunchDescription

PACKAGE = "cosmos_ros"


def generate_launch_description():
    rviz_config = os.path.join(get_package_share_directory(PACKAGE), "rviz", "preview.rviz")
    use_sim_time = ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)
    return LaunchDescription(
        [
            DeclareLaunchArgument("namespace", default_value="", description="namespace of generation_node"),
            DeclareLaunchArgument(
                "use_sim_time", default_value="false", description="RViz uses /clock time (bag replay)"
            ),
            DeclareLaunchArgument(
                "log_level", default_value="info", description="RViz's log level: debug, info, warn, error"
            ),
            Node(
                package="rviz2",
                executable="rviz2",
                name="cosmos_preview",
                namespace=LaunchConfiguration("namespace"),
                arguments=["-d", rviz_config],
                parameters=[{"use_sim_time": use_sim_time}],
                ros_arguments=["--log-level", LaunchConfiguration("log_level")],
                output="screen",
            ),
        ]
    )
