# Source me: activates .venv, the ROS 2 tools (.ros_tools) and the colcon overlay (expo_interfaces messages).
_EXPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
source "$_EXPO_ROOT/.venv/bin/activate"
export AMENT_PREFIX_PATH="$_EXPO_ROOT/.venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
# launch, launch_pytest and the ros2 CLI built by scripts/setup_ros_tools.sh (absent where it was
# skipped for a full ROS 2 install)
if [ -f "$_EXPO_ROOT/.ros_tools/install/setup.bash" ]; then
  # shellcheck disable=SC1091
  source "$_EXPO_ROOT/.ros_tools/install/setup.bash"
fi
if [ -f "$_EXPO_ROOT/ros2_ws/install/setup.bash" ]; then
  # shellcheck disable=SC1091
  source "$_EXPO_ROOT/ros2_ws/install/setup.bash"
fi
export MUJOCO_GL="${MUJOCO_GL:-egl}"
