"""Rosbag demonstrations -> training datasets (installed as cosmos_ros.bag_tools; no rclpy)."""
