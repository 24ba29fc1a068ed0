"""expo-sim evaluate: a checkpoint's success on the harness's evaluation episodes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from expo_core.agent import ExpoAgent
from expo_core.checkpoint import save_checkpoint
from expo_core.presets import preset_config
from expo_sim.cli import main


def _tiny_checkpoint(tmp_path: Path) -> tuple[Path, Path]:
    """(a fresh tiny-preset checkpoint, where its evaluation JSON goes)."""
    ckpt = tmp_path / "tiny"
    save_checkpoint(ckpt, ExpoAgent(preset_config("tiny", 19, 7), seed=0))
    return ckpt, tmp_path / "eval.json"


def test_evaluate_writes_the_result_and_rejects_a_missing_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt, out = _tiny_checkpoint(tmp_path)
    args = ["evaluate", str(ckpt), "--episodes", "2", "--horizon", "5", "--out", str(out)]
    assert main(args) == 0
    result = json.loads(out.read_text())
    assert result["episodes"] == 2 and result["policy"] == "expo" and 0.0 <= result["success_rate"] <= 1.0
    assert result["mean_length"] <= 5 and "success" in capsys.readouterr().out
    base_out = tmp_path / "base.json"
    assert main([*args[:-2], "--base-only", "--out", str(base_out)]) == 0
    assert json.loads(base_out.read_text(), parse_constant=pytest.fail)["eval_q"] is None  # strict JSON
    assert main(["evaluate", str(tmp_path / "missing")]) == 2
    assert "cannot load" in capsys.readouterr().err
    delayed = [*args, "--action-delay-ms", "30", "--action-jitter-ms", "10"]
    assert main(delayed) == 0
    assert json.loads(out.read_text())["action_delay_ms"] == 30.0
    assert "30 +- 10 ms late" in capsys.readouterr().out
    assert json.loads(out.read_text())["anchor_deltas"] is False
    assert main([*delayed, "--anchor-deltas"]) == 0
    assert json.loads(out.read_text())["anchor_deltas"] is True
    assert "(anchored deltas)" in capsys.readouterr().out
    assert main([*args, "--action-delay-ms", "-1"]) == 2
    assert "action_delay_ms" in capsys.readouterr().err


def test_evaluate_stochastic_edits_and_acting_score(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dataclasses import replace

    cfg = preset_config("tiny", 19, 7)  # 2 critics, subset of 2: subset_min acting is their min
    ckpt = tmp_path / "tiny"
    save_checkpoint(ckpt, ExpoAgent(cfg, seed=0))
    out = tmp_path / "eval.json"
    args = ["evaluate", str(ckpt), "--episodes", "1", "--horizon", "3", "--out", str(out)]
    assert main(args) == 0
    first = json.loads(out.read_text())
    assert first["stochastic_edits"] is False and first["act_score"] == "mean"
    capsys.readouterr()
    assert main([*args, "--stochastic-edits", "--act-score", "subset_min"]) == 0
    result = json.loads(out.read_text())
    assert result["stochastic_edits"] is True and result["act_score"] == "subset_min"
    assert "(stochastic edits) (acting by subset_min)" in capsys.readouterr().out
    # a random subset per decision is not an evaluation policy: refused with the reason
    sub = tmp_path / "subset"
    save_checkpoint(sub, ExpoAgent(cfg.replace(critic=replace(cfg.critic, num_min=1)), seed=0))
    assert main(["evaluate", str(sub), "--episodes", "1", "--act-score", "subset_min"]) == 2
    assert "needs critic.num_min = num_critics" in capsys.readouterr().err


def test_evaluate_no_edit_acts_on_base_samples_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt, out = _tiny_checkpoint(tmp_path)
    args = ["evaluate", str(ckpt), "--episodes", "1", "--horizon", "20", "--out", str(out)]
    assert main(args) == 0
    full = json.loads(out.read_text())
    assert full["policy"] == "expo" and full["eval_edited_fraction"] > 0  # this agent picks edits
    capsys.readouterr()
    assert main([*args, "--no-edit"]) == 0
    result = json.loads(out.read_text())
    assert result["policy"] == "expo-no-edit" and result["eval_edited_fraction"] == 0.0
    assert "(no edits: the base samples only)" in capsys.readouterr().out
    for other in ("--base-only", "--stochastic-edits"):
        assert main([*args, "--no-edit", other]) == 2
        assert "exclude each other" in capsys.readouterr().err


def test_evaluate_editor_beta_bounds_the_edits_when_acting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch
    from expo_sim.train.evaluate_cli import with_editor_beta

    agent = ExpoAgent(preset_config("tiny", 19, 7), seed=0)
    assert agent.cfg.editor.beta > 0.05
    obs = torch.randn(4, 19, generator=torch.Generator().manual_seed(1))
    n = agent.cfg.num_samples

    def edit_sizes() -> torch.Tensor:
        res = agent.policy.decide(obs, torch.Generator().manual_seed(2), deterministic=True)
        return (res.candidates[:, n:] - res.candidates[:, :n]).abs()

    wide = edit_sizes()
    assert wide.max() > 0.05  # this editor edits by more than the bound below
    with_editor_beta(agent, 0.05)
    narrow = edit_sizes()
    assert narrow.max() <= 0.05 + 1e-6 and agent.cfg.editor.beta == 0.05
    with pytest.raises(ValueError, match="editor.beta"):
        with_editor_beta(agent, 0.0)

    ckpt, out = _tiny_checkpoint(tmp_path)
    args = ["evaluate", str(ckpt), "--episodes", "1", "--horizon", "3", "--out", str(out)]
    assert main([*args, "--editor-beta", "0.05"]) == 0
    assert json.loads(out.read_text())["editor_beta"] == 0.05
    assert "(edits bounded by 0.05)" in capsys.readouterr().out
    assert main([*args, "--editor-beta", "3"]) == 2
    assert "--editor-beta" in capsys.readouterr().err
    assert main([*args, "--editor-beta", "0.05", "--no-edit"]) == 2
    assert "exclude each other" in capsys.readouterr().err
    no_editor = tmp_path / "no_editor"
    save_checkpoint(no_editor, ExpoAgent(preset_config("tiny", 19, 7).replace(use_editor=False), seed=0))
    assert main(["evaluate", str(no_editor), "--episodes", "1", "--editor-beta", "0.05"]) == 2
    assert "acts without an editor" in capsys.readouterr().err
