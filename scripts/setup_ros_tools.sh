#!/usr/bin/env bash
# Builds the ROS 2 tools the pip wheels lack (launch, launch_ros/ros2launch, launch_pytest,
# launch_testing, launch_xml, launch_yaml, the ros2 CLI, rosidl_runtime_py, composition_interfaces)
# from pinned upstream sources into their own colcon workspace, .ros_tools/ (scripts/env.sh sources
# .ros_tools/install/setup.bash before the ros2_ws overlay). Called by scripts/setup.sh after the
# venv exists; docs/ros_tools.md describes it.
#
# Where the sources come from is one variable, EXPO_ROS_TOOLS_SRC:
#   a folder      the pinned archives (default: ../shared/vendor/ros2 beside the repo, when present);
#                 each archive's SHA-256 is checked against the table below before it is unpacked
#   an http(s) URL a GitHub host (default when that folder is absent: https://github.com); the same
#                 commits are fetched as <URL>/ros2/<repo>/archive/<commit>.tar.gz and the unpacked
#                 package files are checked against the tree hashes below (same files as the archives)
# EXPO_SKIP_ROS_TOOLS=1 skips the build; =0 builds even where a full ROS 2 install is found. Unset, the
# build is skipped when a full ROS 2 install (launch_ros and ros2cli in /opt/ros/* or in a sourced
# AMENT_PREFIX_PATH) is present: that install's own packages are used.
# Idempotent: a stamp keyed on this file (which pins the hashes), the patch and the Python version
# makes a second run return at once.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
WS="$ROOT/.ros_tools"
PATCH="$ROOT/scripts/patches/launch_pytest-pytest-8.4.patch"

log() { printf '[setup:ros-tools] %s\n' "$*"; }
die() { printf '[setup:ros-tools] ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/pinned_sources.sh
source "$ROOT/scripts/pinned_sources.sh"

# name (github.com/ros2/<name>) | tag | commit | archive SHA-256 | tree SHA-256 | paths (packages)
# The archive is <name>-<tag>-<commit:0:8>.tar.gz, a `git archive` of the listed paths without
# test/, doc/, docs/ (and .github/); see ../shared/vendor/ros2/README.md for how it was made.
# The tree hash is tree_hash (scripts/pinned_sources.sh) of the unpacked archive: the same files fetched from GitHub
# must give it.
SOURCES=(
  "launch|3.7.1|02595bafc7891d4d287667b6aa9161edf738e9f3|12b00a925c33770a1f91559af968b52289bd6d8b6645c93954b79927d90c19ba|1acffacd37b1533d059465dab3146dca20b8e275a6809f61014a02062665b8c5|LICENSE launch launch_xml launch_yaml launch_testing launch_pytest"
  "launch_ros|0.28.0|2ddcc227358e393507d09b56e19f27f8bd1e1a14|8e902576b5583b08a2298ea9a6eab99b90ebad9e1865f6ee7578ff5ed21146d1|e8f0b469b9ff1ebe6a7870a62946d0acf3ad1adbe451a3cfe5b96393a971e98c|LICENSE launch_ros ros2launch"
  "ros2cli|0.36.1|e20d2c664fc2981b0b80ebed534e5becc6fdbf34|f3ede296db4915cc3f1e3896e5db38868494d31a335b61f5a2d5fb37be715c09|ac28690ffa008c43b5c422e2e2e0e252502372a47d878e9152d7e2dae345f008|LICENSE ros2cli ros2node ros2topic ros2param ros2lifecycle ros2service ros2pkg ros2run ros2interface ros2action"
  "rcl_interfaces|2.2.0|f6b3741d921ef5414125091b2ccc74b863be3c24|5e2fcfbd647985f4a3e8883d5aaa4c6f58dd611e03815ed14b66bf6d7b663dbb|743d45dbae24044e58a5abccfc9e9728910ff2ea64a1fda6ab58b31dc324d7af|LICENSE composition_interfaces"
  "rosidl_runtime_py|0.14.0|3327b1dc488af514017c5446ffff12d102bbe94a|4708ac79d6a54f4f4a3724460dec39923e7987613ebc7ab3e6285c73f868db38|277376b4b78a40de20064838779a0e240fce847c18130deeb10a64bbe361a557|."
)
# launch_pytest 3.7.1 fails at collection on pytest >= 8.4 without it (same file as
# ../shared/vendor/ros2/patches/).
PATCH_SHA256=c81ea8c406d78ffb1bedba0bb764d853dde739fb300e7cd2fcabaa7c82266fb9

# --- skip? -----------------------------------------------------------------------------------
# Prints the prefix of a full ROS 2 install that has launch_ros and the ros2 CLI, if any. Our own
# prefixes (the venv, this repo's workspaces) do not count.
find_ros_install() {
  local p found_launch="" found_cli="" prefixes=()
  IFS=: read -ra prefixes <<<"${AMENT_PREFIX_PATH:-}"
  for p in /opt/ros/*; do [ -d "$p" ] && prefixes+=("$p"); done
  for p in "${prefixes[@]}"; do
    case "$p" in "$VENV" | "$VENV"/* | "$ROOT"/*) continue ;; esac
    [ -f "$p/share/launch_ros/package.xml" ] && found_launch="$p"
    [ -f "$p/share/ros2cli/package.xml" ] && [ -x "$p/bin/ros2" ] && found_cli="$p"
  done
  [ -n "$found_launch" ] && [ -n "$found_cli" ] && { echo "$found_launch"; return 0; }
  return 1
}

case "${EXPO_SKIP_ROS_TOOLS:-}" in
  1)
    log "skipped (EXPO_SKIP_ROS_TOOLS=1)"
    exit 0
    ;;
  0 | "")
    if [ -z "${EXPO_SKIP_ROS_TOOLS:-}" ] && ros=$(find_ros_install); then
      log "skipped: full ROS 2 install at $ros (source its setup.bash; EXPO_SKIP_ROS_TOOLS=0 builds anyway)"
      [ -d "$WS/install" ] && log "note: scripts/env.sh still sources $WS/install from an earlier build; remove $WS to stop that"
      exit 0
    fi
    ;;
  *) die "EXPO_SKIP_ROS_TOOLS must be 0 or 1, got '$EXPO_SKIP_ROS_TOOLS'" ;;
esac

[ -x "$VENV/bin/python" ] || die "$VENV is missing: run scripts/setup.sh (make setup)"

# --- up to date? -----------------------------------------------------------------------------
pyver=$("$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])')
key=$(cat "${BASH_SOURCE[0]}" "$PATCH" <(echo "$pyver") | sha256sum | cut -c1-16)
stamp="$WS/install/.expo-ros-tools-$key"
if [ -f "$stamp" ] && [ -f "$WS/install/setup.bash" ]; then
  log "up to date ($WS)"
  exit 0
fi

# --- sources ---------------------------------------------------------------------------------
SRC=$(pick_source "${EXPO_ROS_TOOLS_SRC:-}" "$ROOT/../shared/vendor/ros2")

[ "$(sha256_of "$PATCH")" = "$PATCH_SHA256" ] || die "$PATCH: SHA-256 mismatch (expected $PATCH_SHA256)"

announce_source "$SRC" EXPO_ROS_TOOLS_SRC
# Sources are unpacked and checked first; an earlier install stays until they pass.
rm -rf "$WS/src" "$WS/staging"
mkdir -p "$WS/src" "$WS/downloads"
for entry in "${SOURCES[@]}"; do
  IFS='|' read -r name tag commit archive_sha tree_sha paths <<<"$entry"
  prefix="$name-$tag-${commit:0:8}"
  tarball=""
  case "$SRC" in
    http://* | https://*)
      tarball="$WS/downloads/$name-$commit.tar.gz"
      download_once "${SRC%/}/ros2/$name/archive/$commit.tar.gz" "$tarball" \
        "offline? point EXPO_ROS_TOOLS_SRC at a folder of the pinned archives, or EXPO_SKIP_ROS_TOOLS=1"
      stage="$WS/staging/$name"
      mkdir -p "$stage" "$WS/src/$prefix"
      tar -xzf "$tarball" -C "$stage" --strip-components=1 || die "cannot unpack $tarball"
      # the archives' selection: the listed paths, without test/, doc/, docs/ and .github/
      for p in $paths; do
        [ -e "$stage/$p" ] || die "$tarball has no $p"
        cp -a "$stage/$p" "$WS/src/$prefix/"
      done
      find "$WS/src/$prefix" -depth -type d \( -name test -o -name doc -o -name docs -o -name .github \) \
        -exec rm -rf {} +
      ;;
    *)
      archive="$SRC/$prefix.tar.gz"
      check_archive "$archive" "$archive_sha" "EXPO_ROS_TOOLS_SRC=$SRC"
      tar -xzf "$archive" -C "$WS/src" || die "cannot unpack $archive"
      ;;
  esac
  check_tree "$WS/src/$prefix" "$tree_sha" "$prefix" "$tarball"
done
rm -rf "$WS/staging"
patch -s -p1 -d "$WS/src/launch-3.7.1-02595baf" <"$PATCH" || die "patch $PATCH did not apply"

# --- build -----------------------------------------------------------------------------------
rm -rf "$WS/build" "$WS/install" "$WS/log"
# Same environment as scripts/setup.sh's build of ros2_ws: the venv is the only underlay (rclpy,
# the rosidl generators, the fixed-up CMake files).
# No colcon prefix chain: from a shell with scripts/env.sh sourced, install/setup.bash would
# otherwise chain ros2_ws/install.
export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
unset COLCON_PREFIX_PATH
export PATH="$VENV/bin:$PATH"
export COLCON_EXTENSION_BLOCKLIST="colcon_core.prefix_path.ament${COLCON_EXTENSION_BLOCKLIST:+:$COLCON_EXTENSION_BLOCKLIST}"
mkdir -p "$WS/log"
colcon_log="$WS/log/setup-colcon.log"
log "colcon build of $(find "$WS/src" -name package.xml | wc -l) packages into $WS/install"
start=$SECONDS
# BUILD_TESTING=OFF: composition_interfaces would ask for ament_cppcheck/ament_cpplint, which the
# wheels do not ship.
(cd "$WS" && colcon --log-base log build --base-paths src --build-base build --install-base install \
  --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$VENV/bin/python" \
  --event-handlers console_cohesion- summary- >"$colcon_log" 2>&1) \
  || { tail -60 "$colcon_log"; die "colcon build failed (full log: $colcon_log)"; }
touch "$stamp"
log "built in $((SECONDS - start)) s"
