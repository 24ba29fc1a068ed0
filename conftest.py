"""Session-wide test environment: rclpy logs and ROS discovery stay inside the test run."""

import os
import tempfile

# rclpy writes logs under ~/.ros/log unless told otherwise; keep them in a temp dir.
os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="expo-test-roslog-"))
# Different test sessions on one machine must not see each other's nodes.
os.environ.setdefault("ROS_DOMAIN_ID", str(20 + os.getpid() % 80))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("MUJOCO_GL", "egl")
