"""The checks behind the configs' validation: each raises ValueError naming the field, the value
and what is allowed (`config.py`'s dataclasses call them in ``__post_init__``)."""

from __future__ import annotations

import math
from typing import Any


def _require(ok: bool, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ValueError(f"{name}={value!r} is invalid; allowed: {allowed}")


def _positive_int(name: str, value: Any) -> None:
    _require(
        isinstance(value, int) and not isinstance(value, bool) and value >= 1, name, value, "integer >= 1"
    )


def _positive_float(name: str, value: Any) -> None:
    _require(
        isinstance(value, (int, float)) and math.isfinite(value) and value > 0, name, value, "finite > 0"
    )


def _dims(name: str, dims: Any) -> None:
    _require(
        isinstance(dims, tuple) and len(dims) >= 1 and all(isinstance(d, int) and d >= 1 for d in dims),
        name,
        dims,
        "non-empty tuple of integers >= 1",
    )


def check_n_step(value: Any) -> None:
    """The rule for an n-step TD horizon (`ExpoConfig.n_step`, and RLPD's): an integer in [1, 100]."""
    ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 100
    _require(ok, "n_step", value, "integer in [1, 100]")


def _one_of(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    _require(isinstance(value, str) and value in allowed, name, value, " | ".join(map(repr, allowed)))
