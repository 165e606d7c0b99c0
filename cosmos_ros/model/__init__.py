"""Model runtime: the frozen Cosmos Predict 2.5 base, adapters and prediction (no rclpy)."""
