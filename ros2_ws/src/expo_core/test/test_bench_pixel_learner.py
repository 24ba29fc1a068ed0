"""bench.pixel_learner: every part timed, the per-step sums follow from them, JSON written."""

import json

import pytest
from expo_core.bench.pixel_learner import main


def test_pixel_learner_bench_tiny(tmp_path, capsys) -> None:
    out = tmp_path / "b.json"
    assert main(["--preset", "tiny", "--encoders", "tiny", "--rounds", "1", "--out", str(out)]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    med, utd = row["median_s"], row["utd"]
    assert set(med) == {
        "update on cached z",
        "encode the new frame",
        "encoder fwd+bwd",
        "encoder fwd, no grad",
    }
    assert all(v > 0 for v in med.values())
    assert row["cached_s_per_env_step"] == pytest.approx(
        med["update on cached z"] + med["encode the new frame"]
    )
    assert row["trained_s_per_env_step"] == pytest.approx(
        med["update on cached z"]
        + utd * (med["encoder fwd+bwd"] + med["encoder fwd, no grad"])
        + med["encoder fwd, no grad"]
    )
    assert "| tiny | 32 |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--encoders", "huge"])
