#!/usr/bin/env bash
# Entry point of the EXPO images: ROS 2, then franka_ros2, then our workspace, then the command.
set -e
# shellcheck disable=SC1090
source "/opt/ros/${ROS_DISTRO:?}/setup.bash"
# shellcheck disable=SC1091
[ -f /opt/franka_ws/install/setup.bash ] && source /opt/franka_ws/install/setup.bash
# shellcheck disable=SC1091
source /opt/expo/ros2_ws/install/setup.bash
exec "$@"
