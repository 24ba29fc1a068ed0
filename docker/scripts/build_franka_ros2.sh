#!/usr/bin/env bash
# Build franka_ros2 from source at a pinned tag into $FRANKA_WS (default /opt/franka_ws), the way
# franka_ros2's README does for Jazzy: clone the tag, `vcs import` its dependency.repos (libfranka
# and franka_description at the versions the tag was released with), rosdep, colcon.
# Only what the hardware path needs is built; simulation, mobile-base and MoveIt packages are
# skipped (COLCON_IGNORE, which rosdep honours too). Run as root inside the image build.
set -euo pipefail
: "${ROS_DISTRO:?set ROS_DISTRO}" "${FRANKA_ROS2_VERSION:?set FRANKA_ROS2_VERSION (a franka_ros2 tag)}"
ws="${FRANKA_WS:-/opt/franka_ws}"
packages="${FRANKA_PACKAGES:-franka_bringup franka_example_controllers franka_gripper franka_hardware franka_msgs franka_robot_state_broadcaster}"
skip_repos="${FRANKA_SKIP_REPOS:-gz_ros2_control ros2_robotiq_gripper serial olvx_descriptions_module zed_description}"
skip_packages="${FRANKA_SKIP_PACKAGES:-franka_gazebo franka_fr3_moveit_config franka_mobile franka_mobile_sensors fr3_delivery_sim integration_launch_testing franka_ros2}"

mkdir -p "$ws/src"
cd "$ws"
git clone --depth 1 --branch "$FRANKA_ROS2_VERSION" https://github.com/frankarobotics/franka_ros2.git src/franka_ros2
vcs import --recursive --skip-existing --shallow src < src/franka_ros2/dependency.repos
for repo in $skip_repos; do
  rm -rf "src/${repo:?}"
done
for pkg in $skip_packages; do
  # -mindepth 1: never the repository directory itself (also named franka_ros2)
  find src/franka_ros2 -mindepth 1 -maxdepth 2 -type d -name "$pkg" -exec touch {}/COLCON_IGNORE \;
done

apt-get update
rosdep update --rosdistro "$ROS_DISTRO"
rosdep install --from-paths src --ignore-src --rosdistro "$ROS_DISTRO" -y
# shellcheck disable=SC1090
source "/opt/ros/$ROS_DISTRO/setup.bash"
# shellcheck disable=SC2086  # $packages is a list
colcon build --cmake-args -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF --packages-up-to $packages
rm -rf build log /var/lib/apt/lists/*
find src -name .git -type d -prune -exec rm -rf {} +
