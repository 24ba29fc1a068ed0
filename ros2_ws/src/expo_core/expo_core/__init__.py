"""EXPO algorithm core. Pure Python + torch; never imports rclpy."""
