#!/usr/bin/env bash
# Build the EXPO workspace in /opt/expo on top of ROS 2 and franka_ros2 (/opt/franka_ws): rosdep
# for the ROS dependencies of our packages, the expo_sim pip package, then colcon. The Python
# dependencies (torch, docker/requirements.txt) are installed by the Dockerfile in a layer of
# their own, so a source change does not download them again. Run as root inside the image build.
set -euo pipefail
: "${ROS_DISTRO:?set ROS_DISTRO}"
cd /opt/expo

apt-get update
rosdep install --from-paths ros2_ws/src --ignore-src --rosdistro "$ROS_DISTRO" -y
rm -rf /var/lib/apt/lists/*
python3 -m pip install --no-cache-dir --no-deps ./sim

# shellcheck disable=SC1090,SC1091
source "/opt/ros/$ROS_DISTRO/setup.bash"
# shellcheck disable=SC1091
[ -f /opt/franka_ws/install/setup.bash ] && source /opt/franka_ws/install/setup.bash
cd ros2_ws
colcon build --cmake-args -DBUILD_TESTING=OFF
rm -rf build log
