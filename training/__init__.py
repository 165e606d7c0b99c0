"""Single-GPU LoRA/DoRA trainer for the frozen Cosmos base (installed as cosmos_ros.training; no rclpy)."""
