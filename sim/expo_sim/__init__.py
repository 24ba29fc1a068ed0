"""Simulation side of the EXPO stack (no ROS in the env code)."""
