"""scripts/setup_sim_extras.sh (what `make setup` runs for robomimic and MimicGen) and the
import-only torchvision stand-in: pinned archives checked before anything is installed, the skip
switch, a second run in seconds, and the stand-in importing as robomimic imports it but raising,
with the real fix named, when used."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "setup_sim_extras.sh"
STANDIN = ROOT / "scripts" / "torchvision_standin"
VENDOR = ROOT.parent / "shared" / "vendor" / "mimicgen"


def run_script(script: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(script)], env={**os.environ, **env}, capture_output=True, text=True, timeout=600
    )


@pytest.fixture
def fake_root(tmp_path):
    """A checkout with this script and a venv whose python is ours, but no stamp: the script runs
    its checks for real without touching the real venv."""
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / SCRIPT.name).write_text(SCRIPT.read_text())
    (tmp_path / "scripts" / "pinned_sources.sh").write_text((SCRIPT.parent / "pinned_sources.sh").read_text())
    (tmp_path / "scripts" / "torchvision_standin").symlink_to(STANDIN)
    (tmp_path / "constraints.txt").write_text((ROOT / "constraints.txt").read_text())
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").symlink_to(sys.executable)
    return tmp_path


def test_skip_switch():
    r = run_script(SCRIPT, EXPO_SKIP_MIMICGEN="1")
    assert r.returncode == 0 and "skipped (EXPO_SKIP_MIMICGEN=1)" in r.stdout
    r = run_script(SCRIPT, EXPO_SKIP_MIMICGEN="yes")
    assert r.returncode != 0 and "must be 0 or 1" in r.stderr


@pytest.mark.skipif(not VENDOR.is_dir(), reason=f"no pinned archives at {VENDOR}")
def test_a_tampered_archive_is_refused_before_install(fake_root):
    bad = fake_root / "vendor"
    bad.mkdir()
    for name in ("robomimic-d0b37cf.tar.gz", "mimicgen-72bd767.tar.gz"):
        data = (VENDOR / name).read_bytes()
        (bad / name).write_bytes(data + b"x" if name.startswith("mimicgen") else data)
    r = run_script(fake_root / "scripts" / SCRIPT.name, EXPO_MIMICGEN_SRC=str(bad), EXPO_SKIP_MIMICGEN="0")
    assert r.returncode != 0
    assert "mimicgen-72bd767.tar.gz: SHA-256 mismatch" in r.stderr and "not unpacking it" in r.stderr
    assert "installing" not in r.stdout
    assert "non-commercial" in r.stdout  # the licence is stated before anything is installed


def test_an_unreachable_source_names_the_ways_out(fake_root):
    r = run_script(fake_root / "scripts" / SCRIPT.name, EXPO_MIMICGEN_SRC="http://127.0.0.1:9")
    assert r.returncode != 0 and "EXPO_SKIP_MIMICGEN=1" in r.stderr and "EXPO_MIMICGEN_SRC" in r.stderr


def test_second_run_is_quick():
    stamps = list((ROOT / ".venv").glob(".expo-sim-extras-*"))
    if not stamps:
        pytest.skip("scripts/setup_sim_extras.sh has not run in this checkout (make setup)")
    t0 = time.perf_counter()
    r = run_script(SCRIPT)
    assert r.returncode == 0 and "up to date" in r.stdout, r.stdout + r.stderr
    assert time.perf_counter() - t0 < 5.0


STANDIN_USE = """
import sys
from torchvision import models, transforms
from torchvision.transforms import Lambda, Compose
import torchvision.transforms.functional as TVF
import torchvision
assert torchvision.EXPO_STANDIN and torchvision.__version__.endswith("+expo.standin")
for use in (lambda: models.resnet18(pretrained=False), lambda: Lambda(abs),
            lambda: transforms.Resize(84), lambda: TVF.adjust_hue(None, 0.1)):
    try:
        use()
    except ImportError as e:
        assert "torchvision==0.29.1" in str(e) and "torch==2.14.1" in str(e), e
    else:
        sys.exit("no error")
assert not hasattr(models, "__wrapped__")  # introspection gets AttributeError, not the error
print("ok")
"""


def test_torchvision_standin_imports_as_robomimic_does_and_raises_when_used(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(STANDIN)}
    r = subprocess.run(
        [sys.executable, "-c", STANDIN_USE], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr


def test_robomimic_imports_next_to_cpu_torch():
    """Whatever torchvision is installed (the stand-in or a real one), robomimic's model modules
    import, and robomimic's ResNet encoder either builds or says what to install."""
    pytest.importorskip("robomimic", reason="robomimic is not installed (make setup)")
    import robomimic.models.base_nets as BaseNets
    import robomimic.utils.file_utils  # noqa: F401  (what MimicGen imports)
    import torchvision

    if getattr(torchvision, "EXPO_STANDIN", False):
        with pytest.raises(ImportError, match="torchvision==0.29.1"):
            BaseNets.ResNet18Conv(input_channel=3, pretrained=False)
    else:
        assert BaseNets.ResNet18Conv(input_channel=3, pretrained=False) is not None
