"""data part of the pure core (no rclpy)."""
