"""bench_policy: the analytic FLOP count equals torch's own count of the eager decision, the floor
arithmetic, the goal check, and one short run of the CLI (one (N, T) point, a few decisions)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from expo_core.config import ExpoConfig
from expo_core.policy import ExpoPolicy
from expo_policy.bench_floor import MachineRates, decision_flops, floor_ms, weight_bytes
from expo_policy.bench_policy import BATCHED, GOAL, NAIVE, goal_check, main
from torch.utils.flop_counter import FlopCounterMode


@pytest.mark.parametrize(
    "changes",
    [{}, {"num_samples": 4}, {"use_editor": False}, {"act_sampling_steps": 3}],
    ids=["published", "n4", "no_editor", "ddim3"],
)
def test_decision_flops_equal_torchs_count(changes: dict) -> None:
    """Matmul FLOPs of one eager decision (published sizes), counted by torch, = the formula."""
    cfg = ExpoConfig(obs_dim=19, act_dim=7, **changes)
    policy = ExpoPolicy(cfg).eval()
    with FlopCounterMode(display=False) as counter:
        policy.decide(torch.zeros(1, 19), torch.Generator().manual_seed(0))
    flops = decision_flops(cfg)
    assert flops["total"] == counter.get_total_flops()
    assert flops["denoiser"] > 0.6 * flops["total"]  # the residual blocks dominate
    if not changes:
        assert weight_bytes(policy) == 4 * sum(t.numel() for t in policy.state_dict().values())


def test_floor_is_the_larger_of_compute_and_memory() -> None:
    rates = MachineRates(peak_gflops=100.0, decision_gflops=50.0, bandwidth_gbs=10.0)
    f = floor_ms(int(3e8), 10**7, rates)
    assert f["compute_ms"] == pytest.approx(3.0) and f["memory_ms"] == pytest.approx(1.0)
    assert f["floor_ms"] == pytest.approx(3.0) and f["compute_at_decision_rate_ms"] == pytest.approx(6.0)


def _r(p99: float) -> dict[str, float]:
    return {"n": 10, "p50_ms": p99 / 2, "p99_ms": p99, "mean_ms": p99 / 2, "min_ms": 0.1, "max_ms": p99}


def test_goal_check() -> None:
    ok = {(*GOAL, BATCHED): _r(10.0), (*GOAL, "onnxruntime (cpu, 1 thread)"): _r(4.0), (4, 5, "x"): _r(0.1)}
    g = goal_check(ok, gpu=False)
    assert g["met"] and g["best"] == "onnxruntime (cpu, 1 thread)" and g["speedup_vs_batched_eager"] == 2.5
    slow = {**ok, (*GOAL, "onnxruntime (cpu, 1 thread)"): _r(6.0)}
    assert not goal_check(slow, gpu=False)["met"]  # under 2x and over 5 ms
    assert not goal_check({**ok, (*GOAL, BATCHED): _r(7.0)}, gpu=False)["met"]  # under 2x
    assert not goal_check(ok, gpu=True)["met"]  # a GPU must be under 1 ms
    assert goal_check({(4, 5, BATCHED): _r(1.0)}, gpu=False) == {"measured": False}
    assert goal_check({(*GOAL, BATCHED): _r(10.0), (*GOAL, NAIVE): _r(1.0)}, gpu=False) == {"measured": False}


def test_cli_short_run_writes_table_and_json(tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench.json"
    argv = ["--decisions", "3", "--warmup", "1", "--samples", "4", "--steps", "5", "--swaps", "0"]
    assert main([*argv, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| 4 | 5 | torch eager batched (cpu) | 3 |" in text and "| 4 | 5 | compute floor:" in text
    report = json.loads(out.read_text())
    rows = {r["row"] for r in report["results"]}
    assert BATCHED in rows
    assert [(f["N"], f["T"]) for f in report["floors"]] == [(4, 5)]
    floor = report["floors"][0]
    cfg = ExpoConfig(obs_dim=19, act_dim=7, num_samples=4)
    cfg = cfg.replace(diffusion=dataclasses.replace(cfg.diffusion, num_steps=5))
    assert floor["flops"]["total"] == decision_flops(cfg)["total"]
    assert floor["floor_ms"] > 0 and floor["peak_gflops"] > 0 and floor["bandwidth_gbs"] > 0
    assert report["goal_n8_t10"] == {"measured": False}
    assert len(report["machine"]["loadavg_before"]) == 3
    assert report["machine"]["decision_thread_scheduling"] == "normal"
    assert all(r["n"] == 3 for r in report["results"])
    with pytest.raises(SystemExit):
        main([*argv, "--rt-priority", "100"])


def test_cli_rt_priority_times_on_a_fifo_thread_then_restores_it(tmp_path: Path, capsys) -> None:
    from expo_ros import realtime

    try:
        realtime.set_fifo(1)
    except realtime.RealtimeError as e:
        pytest.skip(f"SCHED_FIFO refused here: {e}")
    realtime.set_normal()
    out = tmp_path / "bench.json"
    argv = ["--decisions", "2", "--warmup", "1", "--samples", "4", "--steps", "5", "--swaps", "0"]
    try:
        assert main([*argv, "--rt-priority", "3", "--out", str(out)]) == 0
        assert realtime.describe() == "normal"  # given back after the timing
    finally:
        realtime.set_normal()
    assert json.loads(out.read_text())["machine"]["decision_thread_scheduling"] == "fifo 3"
    assert "decision thread scheduling fifo 3" in capsys.readouterr().out


def test_cli_pixel_rows_next_to_the_state_rows(tmp_path: Path, capsys) -> None:
    """--pixels: the same (N, T) decision from two 84x84 cameras + proprio with the encoder, by
    torch eager and onnxruntime, plus the encoder alone; no floor, not in the goal check."""
    out = tmp_path / "bench.json"
    argv = ["--decisions", "2", "--warmup", "1", "--samples", "4", "--steps", "5", "--swaps", "0"]
    assert main([*argv, "--pixels", "cpu", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    report = json.loads(out.read_text())
    rows = {r["row"] for r in report["results"]}
    assert BATCHED in rows
    assert f"pixels (cpu encoder): {BATCHED}" in rows
    assert "pixels (cpu encoder): encoder alone (torch, cpu)" in rows
    assert any(r.startswith("pixels (cpu encoder): onnxruntime") for r in rows)
    line = next(x for x in text.splitlines() if f"pixels (cpu encoder): {BATCHED}" in x)
    assert line.rstrip().endswith("|  |")  # no floor for the pixel rows
    assert report["sizes"]["pixel_encoders"]["cpu"]["num_filters"] == 16
    with pytest.raises(SystemExit):
        main([*argv, "--pixels", "huge"])
