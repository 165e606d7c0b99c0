"""ROS 2 nodes: thin rclpy shells around the model runtime, the registry and the media helpers.

Only this sub-package imports rclpy. Every module here translates ROS messages, parameters,
services and actions into library calls and back; the logic lives in the library.
"""
