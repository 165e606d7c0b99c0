"""Video files, frame fitting and ROS Image <-> numpy conversion (no rclpy needed)."""
