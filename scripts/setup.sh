#!/usr/bin/env bash
# One-command workspace setup (what `make setup` runs). Idempotent: a second run only checks.
#  1. .venv with every Python dependency pinned by constraints.txt (CPU torch 2.13.0, never CUDA)
#  2. our Python packages installed editable (console scripts on the venv's PATH)
#  3. the documented fix-up of the ROS wheels' exported CMake paths
#  4. the ROS 2 tools the wheels lack (launch, launch_pytest, the ros2 CLI) built from pinned
#     sources into .ros_tools (scripts/setup_ros_tools.sh, docs/ros_tools.md)
#  5. robomimic and NVIDIA MimicGen (non-commercial licence) from pinned sources, with an import-only
#     torchvision stand-in (scripts/setup_sim_extras.sh, docs/mimicgen.md; EXPO_SKIP_MIMICGEN=1 skips)
#  6. colcon build of ros2_ws (expo_interfaces messages + the ament_python packages)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
cd "$ROOT"

log() { printf '[setup] %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV with $($PY --version)"
  "$PY" -m venv "$VENV"
fi

PIP_ARGS=(-q --disable-pip-version-check)
# The CPU torch wheel is a local file on our machines; point pip at it when present.
[ -d /opt/wheels ] && PIP_ARGS+=(--find-links /opt/wheels)

# Missing folders are skipped (here and in the install loop below).
PY_PKGS=(ros2_ws/src/expo_core ros2_ws/src/expo_ros ros2_ws/src/expo_policy ros2_ws/src/expo_franka
  ros2_ws/src/expo_learner ros2_ws/src/expo_bringup sim)
# Hash only the files that exist: under `set -o pipefail` a missing one (sim has no setup.py)
# would make `cat` fail and abort the script.
deps_files=(requirements.txt constraints.txt)
for f in "${PY_PKGS[@]/%//setup.py}" "${PY_PKGS[@]/%//pyproject.toml}"; do
  [ -f "$f" ] && deps_files+=("$f")
done
deps_hash=$(cat "${deps_files[@]}" | sha256sum | cut -c1-16)
stamp="$VENV/.expo-deps-$deps_hash"
if [ ! -f "$stamp" ]; then
  log "installing Python dependencies (pinned by constraints.txt)"
  pip_log="$VENV/pip-install.log"
  if ! "$VENV/bin/pip" install "${PIP_ARGS[@]}" -c constraints.txt -r requirements.txt >"$pip_log" 2>&1; then
    grep -v "is ignored: it is neither" "$pip_log" | tail -40
    log "pip install failed (full log: $pip_log)"
    exit 1
  fi
  "$VENV/bin/python" -c "import torch, rclpy; assert not torch.version.cuda, 'CUDA torch installed: expected the CPU wheel'" \
    || { log "dependency install failed"; exit 1; }
  for p in "${PY_PKGS[@]}"; do
    [ -f "$p/setup.py" ] || [ -f "$p/pyproject.toml" ] || continue
    "$VENV/bin/pip" install "${PIP_ARGS[@]}" --no-deps --no-build-isolation -e "$p" >/dev/null
  done
  rm -f "$VENV"/.expo-deps-*
  touch "$stamp"
else
  log "Python dependencies up to date"
fi

"$VENV/bin/python" scripts/fix_ros_cmake_paths.py "$VENV"

bash scripts/setup_ros_tools.sh

bash scripts/setup_sim_extras.sh

# colcon build of the workspace (incremental; the interface package rebuilds only on change).
export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
export PATH="$VENV/bin:$PATH"
# The venv is a plain prefix, not a colcon underlay (no local_setup.*): colcon-ros' ament
# prefix-path extension would only warn about it and chain nothing, so it is switched off.
export COLCON_EXTENSION_BLOCKLIST="colcon_core.prefix_path.ament${COLCON_EXTENSION_BLOCKLIST:+:$COLCON_EXTENSION_BLOCKLIST}"
cd ros2_ws
mkdir -p log
colcon_log="$ROOT/ros2_ws/log/setup-colcon.log"  # per checkout, not a shared /tmp file
log "colcon build"
colcon --log-base log build --symlink-install --base-paths src \
  --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$VENV/bin/python" \
  --event-handlers console_cohesion- summary- >"$colcon_log" 2>&1 \
  || { cat "$colcon_log"; log "colcon build failed"; exit 1; }
log "done: source scripts/env.sh to use the workspace"
