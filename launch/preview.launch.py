"""RViz showing a running generation node's preview (predicted video and input | prediction).

    ros2 launch cosmos_ros preview.launch.py namespace:=arm

The RViz config subscribes RELIABLE + TRANSIENT_LOCAL, matching the node's preview publishers,
so the last predicted frame shows even when RViz starts after the prediction.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription

PACKAGE = "cosmos_ros"


def generate_launch_description():
    rviz_config = os.path.join(get_package_share_directory(PACKAGE), "rviz", "preview.rviz")
    return LaunchDescription(
        [
            DeclareLaunchArgument("namespace", default_value="", description="namespace of generation_node"),
            Node(
                package="rviz2",
                executable="rviz2",
                name="cosmos_preview",
                namespace=LaunchConfiguration("namespace"),
                arguments=["-d", rviz_config],
                output="screen",
            ),
        ]
    )
