"""How to build a task in robosuite: the validated :class:`EnvConfig` and robomimic's settings.

The task definitions themselves (names, robosuite env names, cameras, control rate, horizon)
live in :mod:`expo_core.tasks`. This module holds :class:`EnvConfig` and the robosuite keyword
arguments in the exact shape robomimic stores them in ``data.attrs["env_args"]["env_kwargs"]``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from expo_core.spec import OBS_MODES
from expo_core.tasks import (
    CONTROL_FREQ_HZ,
    DEFAULT_HORIZON,
    SUPPORTED_CAMERAS,
    check_task,
)


@dataclass(frozen=True)
class EnvConfig:
    """How to build one simulated task.

    Attributes:
        task: one of :data:`SUPPORTED_TASKS`.
        horizon: episode length in control steps (20 Hz) after which ``truncated`` is set.
        cameras: camera names from :data:`SUPPORTED_CAMERAS` to render each step; empty (the
            default) means no renderer at all, which is ~7x faster. With ``obs="pixels"`` and no
            cameras given, both supported cameras.
        camera_size: square image side in pixels (robomimic uses 84).
        obs: which observation spec the env's observation follows
            (``expo_core.spec.task_obs_spec(task, obs)``): ``"state"`` (robomimic's world-frame
            low-dim keys with the object vector) or ``"pixels"`` (base-frame proprioception and
            the cameras, no object key).
        model_seed: seed of the randomness robosuite draws while building the model (Lift's cube
            size, fixed for the env's lifetime with soft resets); the same seed gives the same
            model, so demos replay in a freshly built env.
    """

    task: str = "lift"
    horizon: int = DEFAULT_HORIZON
    cameras: tuple[str, ...] = ()
    camera_size: int = 84
    model_seed: int = 0
    obs: str = "state"

    def __post_init__(self) -> None:
        check_task(self.task)
        if self.obs not in OBS_MODES:
            raise ValueError(f"EnvConfig.obs must be one of {list(OBS_MODES)}, got {self.obs!r}")
        if not isinstance(self.horizon, int) or self.horizon < 1:
            raise ValueError(f"EnvConfig.horizon must be an int >= 1, got {self.horizon!r}")
        cams = tuple(self.cameras)
        if self.obs == "pixels" and not cams:
            cams = SUPPORTED_CAMERAS
        object.__setattr__(self, "cameras", cams)
        for cam in cams:
            if cam not in SUPPORTED_CAMERAS:
                raise ValueError(
                    f"EnvConfig.cameras: unknown camera '{cam}'; supported: {list(SUPPORTED_CAMERAS)}"
                )
        if len(set(cams)) != len(cams):
            raise ValueError(f"EnvConfig.cameras has duplicates: {list(cams)}")
        if not 8 <= self.camera_size <= 1024:
            raise ValueError(f"EnvConfig.camera_size must be in [8, 1024], got {self.camera_size}")
        if not isinstance(self.model_seed, int) or not 0 <= self.model_seed < 2**32:
            raise ValueError(f"EnvConfig.model_seed must be an int in [0, 2**32), got {self.model_seed!r}")


def osc_pose_controller_config() -> dict[str, Any]:
    """robosuite's default OSC_POSE controller config (what robomimic's datasets were recorded with)."""
    from robosuite.controllers import load_controller_config

    return load_controller_config(default_controller="OSC_POSE")


def robomimic_env_kwargs(cameras: tuple[str, ...] = (), camera_size: int = 84) -> dict[str, Any]:
    """robosuite keyword arguments in the layout robomimic stores as ``env_args["env_kwargs"]``.

    Runtime-only settings (horizon, hard_reset) are deliberately not part of this dict: robomimic's
    files do not carry them either; :func:`robosuite_make_kwargs` adds them when building.
    """
    return {
        "has_renderer": False,
        "has_offscreen_renderer": bool(cameras),
        "ignore_done": True,
        "use_object_obs": True,
        "use_camera_obs": bool(cameras),
        "control_freq": CONTROL_FREQ_HZ,
        "controller_configs": osc_pose_controller_config(),
        "robots": ["Panda"],
        "camera_names": list(cameras) if cameras else ["agentview"],
        "camera_depths": False,
        "camera_heights": camera_size,
        "camera_widths": camera_size,
        "reward_shaping": False,
    }


def with_cameras(env_kwargs: dict[str, Any], cameras: tuple[str, ...], camera_size: int) -> dict[str, Any]:
    """A copy of stored ``env_kwargs`` whose camera fields say what an image dataset rendered
    (as robomimic's dataset_states_to_obs rewrites them): offscreen renderer and camera
    observations on, ``camera_names``, square ``camera_size`` frames, no depth. Without cameras
    the kwargs are returned unchanged (a low-dim file keeps whatever it stored)."""
    kw = copy.deepcopy(env_kwargs)
    if cameras:
        kw.update(
            has_offscreen_renderer=True,
            use_camera_obs=True,
            camera_names=list(cameras),
            camera_heights=camera_size,
            camera_widths=camera_size,
            camera_depths=False,
        )
    return kw


def robosuite_make_kwargs(env_kwargs: dict[str, Any], config: EnvConfig) -> dict[str, Any]:
    """Combine stored ``env_kwargs`` with this config's runtime settings for ``robosuite.make``.

    Forces what this package relies on whatever the file says: no on-screen renderer,
    ignore_done (we handle the horizon), soft resets (2 ms instead of 0.7 s), sparse reward, and
    the camera settings of ``config``.
    """
    kw = copy.deepcopy(env_kwargs)
    cams = config.cameras
    kw.update(
        has_renderer=False,
        has_offscreen_renderer=bool(cams),
        use_camera_obs=bool(cams),
        use_object_obs=True,
        ignore_done=True,
        hard_reset=False,
        horizon=config.horizon,
        reward_shaping=False,
        camera_names=list(cams) if cams else ["agentview"],
        camera_heights=config.camera_size,
        camera_widths=config.camera_size,
        camera_depths=False,
    )
    kw.setdefault("control_freq", CONTROL_FREQ_HZ)
    kw.setdefault("robots", ["Panda"])
    if "controller_configs" not in kw:
        kw["controller_configs"] = osc_pose_controller_config()
    return kw
