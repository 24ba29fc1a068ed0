#!/usr/bin/env bash
# Installs robomimic and NVIDIA MimicGen into .venv from pinned upstream sources (what
# `make setup` runs after the main dependencies; docs/mimicgen.md describes it):
#   robomimic d0b37cf (MIT; the commit MimicGen names, without robomimic 0.3.0's hard mujoco_py import)
#   MimicGen  72bd767 (NVIDIA Source Code License: NON-COMMERCIAL use only, research or evaluation)
# plus what they import that the main requirements lack (pinned in constraints.txt), and an
# import-only torchvision stand-in (scripts/torchvision_standin) unless a working torchvision is
# installed: robomimic imports torchvision at import time and no CPU torchvision matches torch 2.13.0.
#
# Where the sources come from is one variable, EXPO_MIMICGEN_SRC:
#   a folder       the pinned archives (default: ../shared/vendor/mimicgen beside the repo, when
#                  present); each archive's SHA-256 is checked against the table below before it is
#                  unpacked (and against the folder's SHA256SUMS where it has one)
#   an http(s) URL a GitHub host (default when that folder is absent: https://github.com); the same
#                  commits are fetched as <URL>/<owner>/<repo>/archive/<commit>.tar.gz, trimmed as the
#                  archives were (no docs/, .github/; MimicGen's missing MANIFEST.in added) and their
#                  files checked against the tree hashes below
# EXPO_SKIP_MIMICGEN=1 leaves robomimic and MimicGen out (everything else works without them;
# `expo-sim demos --generator mimicgen` and the tasks `stack`/`threading` then say what is missing).
# Idempotent: a stamp keyed on this file, the stand-in's files, the pins and the Python version makes
# a second run return at once.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
WORK="$VENV/.sim_extras"  # downloads, unpacked sources, pip log (inside the ignored venv)
STANDIN="$ROOT/scripts/torchvision_standin"

log() { printf '[setup:mimicgen] %s\n' "$*"; }
die() { printf '[setup:mimicgen] ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/pinned_sources.sh
source "$ROOT/scripts/pinned_sources.sh"

# name | GitHub owner/repo | commit | archive | archive SHA-256 | tree SHA-256 | paths removed from a GitHub tarball
# The archives are `git archive`s of the commits (../shared/vendor/mimicgen/README.md says how they
# were made); the tree hash is tree_hash (scripts/pinned_sources.sh) of the unpacked archive.
SOURCES=(
  "robomimic|ARISE-Initiative/robomimic|d0b37cf214bd24fb590d182edb6384333f67b661|robomimic-d0b37cf.tar.gz|ca24205b509eec945e3cc228893ac360e51be7d48f55ba544f1e84017529e237|f593d3aceb7e232ab02c8bbcaa308a10ec3af8ac5f56d50d7aac09f8de76a0d9|docs"
  "mimicgen|NVlabs/mimicgen|72bd767c255545f462e7ccfb2731f2e5d4c1d9bb|mimicgen-72bd767.tar.gz|0944c932e72ff15e54968718fb94f0fdde769f1a11f61ab1c0ea8f36fec36123|d15f78048ab1ba5f6bd64164d471e8ecc0db553b26306f2f728d128b11568294|docs .github"
)
# Upstream sets include_package_data but ships no MANIFEST.in, so a non-editable install would leave
# out every asset (Coffee_D0: FileNotFoundError coffee_pod.xml); the vendored archive adds this line.
MIMICGEN_MANIFEST='recursive-include mimicgen *.xml *.stl *.obj *.mtl *.png *.jpeg *.json'
# What robomimic and MimicGen import or declare that requirements.txt lacks; versions come from
# constraints.txt. gdown and huggingface_hub: mimicgen.utils.file_utils imports them (for dataset
# downloads we never do); egl_probe: robomimic's robosuite wrapper imports it for offscreen rendering
# (built from its sdist, ~15 s; it finds no GPU here and robosuite renders with EGL on the CPU);
# tensorboardX, imageio-ffmpeg, chardet: declared by them, installed so that `pip check` stays clean.
EXTRA_DEPS=(imageio imageio-ffmpeg gdown huggingface_hub egl_probe tensorboardX chardet termcolor six)

case "${EXPO_SKIP_MIMICGEN:-0}" in
  1)
    log "skipped (EXPO_SKIP_MIMICGEN=1): robomimic and MimicGen are not installed"
    exit 0
    ;;
  0) ;;
  *) die "EXPO_SKIP_MIMICGEN must be 0 or 1, got '$EXPO_SKIP_MIMICGEN'" ;;
esac

[ -x "$VENV/bin/python" ] || die "$VENV is missing: run scripts/setup.sh (make setup)"
PY="$VENV/bin/python"

# --- up to date? -----------------------------------------------------------------------------
pyver=$("$PY" -c 'import sys; print(sys.version.split()[0])')
pins=$(grep -i -E "^($(IFS='|'; echo "${EXTRA_DEPS[*]}" | sed 's/[-_]/[-_]/g'))==" "$ROOT/constraints.txt" || true)
key=$(cat "${BASH_SOURCE[0]}" <(find "$STANDIN" -type f -not -path '*/__pycache__/*' -not -path '*.egg-info*' \
  -not -path '*/build/*' -print0 | LC_ALL=C sort -z | xargs -0 cat) <(echo "$pyver") <(echo "$pins") \
  | sha256sum | cut -c1-16)
stamp="$VENV/.expo-sim-extras-$key"
if [ -f "$stamp" ]; then
  log "up to date (robomimic d0b37cf, MimicGen 72bd767)"
  exit 0
fi

# --- sources ---------------------------------------------------------------------------------
SRC=$(pick_source "${EXPO_MIMICGEN_SRC:-}" "$ROOT/../shared/vendor/mimicgen")
announce_source "$SRC" EXPO_MIMICGEN_SRC
log "MimicGen is under the NVIDIA Source Code License: non-commercial use only (research or evaluation);" \
  "EXPO_SKIP_MIMICGEN=1 leaves it out"
rm -rf "$WORK/src" "$WORK/staging"
mkdir -p "$WORK/src" "$WORK/downloads"
for entry in "${SOURCES[@]}"; do
  IFS='|' read -r name repo commit archive archive_sha tree_sha trim <<<"$entry"
  dest="$WORK/src/$name"
  case "$SRC" in
    http://* | https://*)
      tarball="$WORK/downloads/$name-$commit.tar.gz"
      download_once "${SRC%/}/$repo/archive/$commit.tar.gz" "$tarball" \
        "offline? point EXPO_MIMICGEN_SRC at a folder of the pinned archives, or EXPO_SKIP_MIMICGEN=1"
      mkdir -p "$dest"
      tar -xzf "$tarball" -C "$dest" --strip-components=1 || die "cannot unpack $tarball"
      for p in $trim; do rm -rf "${dest:?}/$p"; done
      [ "$name" = mimicgen ] && printf '%s\n' "$MIMICGEN_MANIFEST" >"$dest/MANIFEST.in"
      ;;
    *)
      tarball="$SRC/$archive"
      check_archive "$tarball" "$archive_sha" "EXPO_MIMICGEN_SRC=$SRC"
      if [ -f "$SRC/SHA256SUMS" ]; then
        listed=$(awk -v f="$archive" '$2 == f || $2 == "*"f {print $1}' "$SRC/SHA256SUMS")
        [ -z "$listed" ] || [ "$listed" = "$archive_sha" ] || die "$tarball: SHA256SUMS lists $listed, the pin is $archive_sha"
      fi
      mkdir -p "$dest"
      tar -xzf "$tarball" -C "$dest" --strip-components=1 || die "cannot unpack $tarball"
      ;;
  esac
  downloaded=""
  is_url "$SRC" && downloaded="$tarball"
  check_tree "$dest" "$tree_sha" "$name" "$downloaded"
done

# --- install ---------------------------------------------------------------------------------
PIP_ARGS=(-q --disable-pip-version-check)
[ -d /opt/wheels ] && PIP_ARGS+=(--find-links /opt/wheels)
pip_log="$WORK/pip-install.log"
start=$SECONDS
log "installing ${EXTRA_DEPS[*]} (pinned by constraints.txt)"
"$VENV/bin/pip" install "${PIP_ARGS[@]}" -c "$ROOT/constraints.txt" "${EXTRA_DEPS[@]}" >"$pip_log" 2>&1 \
  || { grep -v "is ignored: it is neither" "$pip_log" | tail -30; die "pip install failed (full log: $pip_log)"; }
# --no-deps: their install_requires name torchvision (handled below) and an unpinned torch.
log "installing robomimic d0b37cf and MimicGen 72bd767"
"$VENV/bin/pip" install "${PIP_ARGS[@]}" --no-deps --no-build-isolation --force-reinstall \
  "$WORK/src/robomimic" "$WORK/src/mimicgen" >>"$pip_log" 2>&1 \
  || { grep -v "is ignored: it is neither" "$pip_log" | tail -30; die "pip install failed (full log: $pip_log)"; }

# torchvision: keep a real one that imports (e.g. torch 2.14.1 + torchvision 0.29.1); otherwise
# (absent, or PyPI's CUDA build failing next to CPU torch) the import-only stand-in.
tv=$("$PY" -c 'import torchvision; print(getattr(torchvision, "EXPO_STANDIN", False) and "standin" or "real")' 2>/dev/null || echo none)
if [ "$tv" = real ]; then
  log "torchvision: a working one is installed, kept"
else
  [ "$tv" = none ] && "$VENV/bin/pip" show -q torchvision >/dev/null 2>&1 \
    && log "torchvision: the installed one does not import next to this torch; replacing it with the stand-in"
  log "torchvision: import-only stand-in (robomimic's ResNet encoders need: pip install torch==2.14.1 torchvision==0.29.1)"
  rm -rf "$STANDIN/build" "$STANDIN"/*.egg-info
  "$VENV/bin/pip" install "${PIP_ARGS[@]}" --no-deps --no-build-isolation --force-reinstall "$STANDIN" >>"$pip_log" 2>&1 \
    || { tail -30 "$pip_log"; die "installing the torchvision stand-in failed (full log: $pip_log)"; }
  rm -rf "$STANDIN/build" "$STANDIN"/*.egg-info
fi

# Import check in a clean directory (not the unpacked sources), quiet about MimicGen's optional
# robosuite_task_zoo tasks.
check_log="$WORK/import-check.log"
(cd "$WORK" && "$PY" - >"$check_log" 2>&1 <<'EOF') || { tail -20 "$check_log"; die "robomimic/MimicGen installed but do not import (log: $check_log)"; }
import contextlib, io
import robomimic.utils.file_utils, robomimic.utils.env_utils  # noqa: E401 (imports torchvision)
with contextlib.redirect_stdout(io.StringIO()):
    import mimicgen
import robosuite
missing = [e for e in ("Stack_D0", "Threading_D0") if e not in robosuite.ALL_ENVIRONMENTS]
assert not missing, f"MimicGen environments not registered: {missing}"
EOF
rm -f "$VENV"/.expo-sim-extras-*
touch "$stamp"
log "installed in $((SECONDS - start)) s"
