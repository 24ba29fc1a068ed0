"""The end of a session: its summary table (printed by ``expo-sim session``) and its learning
curve (success per episode against env steps, ``learning_curve.png`` in the run directory)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def plot_episode_curve(log: list[tuple[int, bool, str]], out: Path, window: int = 10) -> Path:
    """Success per episode (dots) and its running mean over ``window`` episodes against env
    steps, with the policy weights version on a second axis: the session's learning curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [e[0] for e in log]
    success = [float(e[1]) for e in log]
    mean = [sum(success[max(0, i + 1 - window) : i + 1]) / min(i + 1, window) for i in range(len(success))]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, success, "o", alpha=0.3, label="episode success")
    ax.plot(steps, mean, "-", label=f"success, last {window} episodes")
    ax.set_xlabel("env steps")
    ax.set_ylabel("success")
    ax.set_ylim(-0.05, 1.05)
    versions = [float(e[2]) if str(e[2]).replace(".", "", 1).isdigit() else math.nan for e in log]
    if any(v > 0 for v in versions if not math.isnan(v)):
        ax2 = ax.twinx()
        ax2.step(steps, versions, where="post", color="gray", alpha=0.6, label="weights version")
        ax2.set_ylabel("policy weights version")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def format_summary(s: dict[str, Any]) -> str:
    """The end-of-session table printed by ``expo-sim session``."""

    def f(key: str, unit: str = "", digits: int = 1) -> str:
        v = s.get(key)
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}{unit}"

    def pair(a: str, b: str, unit: str = " ms", digits: int = 2) -> str:
        return f"{f(a, unit, digits)} / {f(b, unit, digits)}"

    rows = [
        ("episodes", f"{s['episodes']} ({s['successes']} successful, rate {f('success_rate', '', 2)})"),
        ("env steps", f"{s['env_steps']} at {f('env_steps_per_s', ' steps/s')} (wall)"),
        ("mean episode length", f("mean_episode_length", " steps")),
        ("policy latency p50 / p99", pair("policy_latency_p50_ms", "policy_latency_p99_ms")),
        ("inference p50 / p99", pair("inference_p50_ms", "inference_p99_ms")),
        ("obs -> action p50 / p99", pair("obs_to_action_p50_ms", "obs_to_action_p99_ms")),
        ("deadline misses / holds", pair("policy_deadline_misses", "policy_holds", "", 0)),
        ("bridge holds / plan periods", pair("bridge_holds", "plan_periods", "", 0)),
        ("weights version", str(s.get("weights_version") or "n/a")),
        *(
            [
                (
                    "interventions",
                    f"{s['intervention_takeovers']} takeovers, "
                    f"{f('intervention_step_fraction', '', 3)} of the steps",
                )
            ]
            if "intervention_takeovers" in s
            else []
        ),
        *(
            [
                (
                    "transitions recorded",
                    f"{s['learner_transitions_recorded']} by the learner for {s['env_steps']} env steps"
                    + (
                        f" ({s['learner_segments_unclosed']} segments not closed)"
                        if s.get("learner_segments_unclosed")
                        else ""
                    ),
                )
            ]
            if "learner_transitions_recorded" in s
            else []
        ),
        ("wall time", f"{s['wall_s_total']:.0f} s ({s['wall_s_episodes']:.0f} s of episodes)"),
        ("run directory", s["run_dir"]),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"  {k.ljust(width)}  {v}" for k, v in rows]
    head = "session summary" + (f" -- FAILED: {s['error']}" if s["error"] else "")
    return "\n".join([head, *lines])
