"""Shared fixtures: the sim launch file loaded as a module, the way ``ros2 launch`` loads it."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

SIM_LAUNCH = Path(__file__).resolve().parents[1] / "launch" / "sim.launch.py"


@pytest.fixture(scope="session")
def sim_launch() -> ModuleType:
    """``launch/sim.launch.py`` as a module (its name has dots, so it is loaded by path)."""
    spec = importlib.util.spec_from_file_location("expo_bringup_sim_launch", SIM_LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
