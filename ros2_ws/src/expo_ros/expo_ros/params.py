"""Node parameters, the shared part: one declaration table per node, validators with clear errors.

Every node declares its parameters in one ``PARAMETERS`` table of :class:`ParamSpec` (name,
default, description) and converts the values once, in ``on_configure``, into a frozen dataclass
with ``from_values``. The validators below check one value each and raise ValueError naming the
parameter and what it must be; the node turns that into a failed configure transition.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_TOPIC = re.compile(r"^~?/?[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter: its name (dots for groups), default value and description."""

    name: str
    default: Any
    description: str


def bad_value(name: str, value: Any, want: str) -> ValueError:
    return ValueError(f"parameter '{name}' must be {want}, got {value!r}")


def as_float(name: str, v: Any, lo: float = -math.inf, lo_open: bool = True) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise bad_value(name, v, "a finite number")
    if (lo_open and not v > lo) or (not lo_open and not v >= lo):
        raise bad_value(name, v, f"{'>' if lo_open else '>='} {lo}")
    return float(v)


def as_int(name: str, v: Any, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise bad_value(name, v, f"an integer >= {lo}")
    return int(v)


def as_bool(name: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise bad_value(name, v, "true or false")
    return v


def as_str(name: str, v: Any) -> str:
    if not isinstance(v, str):
        raise bad_value(name, v, "a string")
    return v


def as_floats(name: str, v: Any) -> tuple[float, ...]:
    if isinstance(v, str) or not isinstance(v, Sequence) or not len(v):
        raise bad_value(name, v, "a non-empty list of numbers")
    return tuple(as_float(f"{name}[{i}]", x) for i, x in enumerate(v))


def as_topic(name: str, v: Any) -> str:
    s = as_str(name, v)
    if not _TOPIC.match(s):
        raise bad_value(name, s, "a ROS topic/action name (letters, digits, _, separated by /)")
    return s


def as_names(name: str, v: Any, count: int | None = None) -> tuple[str, ...]:
    if (
        isinstance(v, str)
        or not isinstance(v, Sequence)
        or not v
        or not all(isinstance(x, str) and x for x in v)
    ):
        raise bad_value(name, v, "a non-empty list of names")
    if len(set(v)) != len(v) or (count is not None and len(v) != count):
        raise bad_value(name, list(v), f"{count if count else 'distinct'} distinct names")
    return tuple(v)
