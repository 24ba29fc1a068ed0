# Source me: activates .venv and the colcon overlay (expo_interfaces messages).
_EXPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
source "$_EXPO_ROOT/.venv/bin/activate"
export AMENT_PREFIX_PATH="$_EXPO_ROOT/.venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
if [ -f "$_EXPO_ROOT/ros2_ws/install/setup.bash" ]; then
  # shellcheck disable=SC1091
  source "$_EXPO_ROOT/ros2_ws/install/setup.bash"
fi
export MUJOCO_GL="${MUJOCO_GL:-egl}"
