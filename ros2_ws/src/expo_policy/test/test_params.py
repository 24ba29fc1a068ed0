"""Policy node parameters: defaults agree with policy.yaml, bad values name the parameter."""

from __future__ import annotations

import pytest
from expo_bringup.graph import default_config_dir
from expo_policy.params import PARAMETERS, PolicyNodeConfig

DEFAULTS = {p.name: p.default for p in PARAMETERS}


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def test_yaml_sets_exactly_the_declared_parameters_and_validates() -> None:
    yaml = pytest.importorskip("yaml")
    data = yaml.safe_load((default_config_dir() / "policy.yaml").read_text())
    values = _flatten(data["/**"]["ros__parameters"])
    assert set(values) == set(DEFAULTS), set(values) ^ set(DEFAULTS)
    # Code defaults equal the YAML, except autostart (the YAML is for the manager-less runner).
    differ = {k for k in values if values[k] != DEFAULTS[k]}
    assert differ == {"autostart"}
    cfg = PolicyNodeConfig.from_values({**values, "checkpoint": "/ckpt.safetensors"})
    assert cfg.autostart and cfg.lockstep and cfg.safety.action_dim == 7
    assert cfg.watchdog_max_age_s["image_raw"] == 0.5 and cfg.deadline_s == pytest.approx(0.04)


def test_integers_are_accepted_where_numbers_are_meant() -> None:
    cfg = PolicyNodeConfig.from_values(
        {**DEFAULTS, "checkpoint": "x", "control_rate_hz": 20, "safety.action_low": [-1] * 7}
    )
    assert cfg.control_rate_hz == 20.0 and cfg.safety.action_low == (-1.0,) * 7


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        ("checkpoint", "", "parameter 'checkpoint' is empty"),
        ("task", "pour", "parameter 'task' must be one of"),
        ("device", "gpu", "parameter 'device' must be cpu, cuda"),
        ("seed", -1, "parameter 'seed' must be an integer >= 0"),
        ("num_threads", 1.5, "parameter 'num_threads' must be an integer >= 0"),
        ("lockstep", "yes", "parameter 'lockstep' must be true or false"),
        ("control_rate_hz", 0.0, "parameter 'control_rate_hz' must be > 0.0"),
        ("deadline_ms", float("nan"), "parameter 'deadline_ms' must be a finite number"),
        ("num_base_samples", 0, "parameter 'num_base_samples' must be an integer >= 1"),
        ("rt_priority", -1, "parameter 'rt_priority' must be an integer >= 0"),
        ("rt_priority", 100, r"parameter 'rt_priority' must be an integer in \[0, 99\]"),
        ("rt_priority", 50.0, "parameter 'rt_priority' must be an integer >= 0"),
        ("latency_window", 1, "parameter 'latency_window' must be an integer >= 2"),
        ("observation.max_skew_s", -0.1, "parameter 'observation.max_skew_s' must be >= 0.0"),
        ("observation.finger_joint_names", ["a", "a"], "parameter 'observation.finger_joint_names'"),
        ("observation.finger_signs", [1.0, 0.5], "parameter 'observation.finger_signs'"),
        ("observation.best_effort", "yes", "parameter 'observation.best_effort' must be true or false"),
        ("watchdog.ee_pose_max_age_s", 0.0, "parameter 'watchdog.ee_pose_max_age_s' must be > 0.0"),
        ("safety.max_delta", [0.5] * 6 + [3.0], r"parameter 'safety.max_delta': SafetyLimits.max_delta"),
        (
            "safety.action_high",
            [1.0] * 6,
            r"parameter 'safety.action_high': SafetyLimits.action_high must be a scalar or have 7",
        ),
        ("safety.workspace_low", [0.0, 0.0, 2.0], r"parameter 'safety.workspace_low'"),
        ("safety.pos_scale", "0.05", "parameter 'safety.pos_scale' must be a finite number"),
        ("safety.action_low", [], "parameter 'safety.action_low' must be a non-empty list"),
    ],
)
def test_bad_values_name_the_parameter(name: str, value: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PolicyNodeConfig.from_values({**DEFAULTS, "checkpoint": "x", name: value})


def test_backend_names_are_make_backends() -> None:
    from expo_policy.backends import AUTO, BACKENDS
    from expo_policy.params import BACKEND_NAMES

    assert sorted(BACKEND_NAMES) == sorted([*BACKENDS, AUTO])
    for name in BACKEND_NAMES:
        assert PolicyNodeConfig.from_values({**DEFAULTS, "checkpoint": "x", "backend": name}).backend == name
    with pytest.raises(ValueError, match=r"parameter 'backend' must be one of auto \| onnxruntime"):
        PolicyNodeConfig.from_values({**DEFAULTS, "checkpoint": "x", "backend": "jax"})
