"""Gymnasium wrapper around a robosuite task built with robomimic's settings.

One :class:`RobomimicEnv` is one robosuite environment (Franka Panda, OSC_POSE at 20 Hz, sparse
reward, no renderer unless cameras are asked for). Its observation follows
``expo_core.spec.task_obs_spec(task, config.obs)``: the low-dim keys flattened through the spec
(the same vector the dataset loader and the ROS observation builder produce, so a policy sees
one layout everywhere), and with cameras the frames next to it.

Observation keys (``info["obs_dict"]``, also what demonstrations record):

- robomimic's world-frame keys ``robot0_eef_pos`` (3), ``robot0_eef_quat`` (4, x y z w),
  ``robot0_gripper_qpos`` (2), ``object`` (task dim), unchanged, so old files and checkpoints
  keep their meaning;
- what a real Franka reports, in the robot base frame (``expo_sim.envs.frames`` documents the
  transform): ``robot0_base_to_eef_pos`` (3), ``robot0_base_to_eef_quat`` (4),
  ``robot0_joint_pos`` (7, rad); and the base pose itself, ``robot0_base_pos`` (3) and
  ``robot0_base_quat`` (4), in the world;
- per camera ``<camera>_image``: ``(H, W, 3)`` uint8 RGB, **upright** (row 0 = the top of the
  picture). robosuite renders with OpenGL's convention (row 0 = bottom) unless its macro
  ``IMAGE_CONVENTION`` is "opencv"; this wrapper flips, exactly as robomimic's env wrapper does
  (``di[k][::-1]``), so frames match robomimic's image datasets. In the upright agentview of
  Lift the robot stands at the top and the cube on the table below it; in the eye-in-hand view
  the fingers are at the bottom.

Rendering is offscreen (``MUJOCO_GL=egl``; software Mesa on a CPU) at the image size, without
multisampling, shadows or reflections (:mod:`expo_sim.envs.env_cameras`, which also renders frames
on demand and in worker threads). A frame is rendered inside robosuite's step from the
simulator's data after the last physics sub-step, so it shows the arm one 2 ms sub-step before
the MuJoCo state saved as ``states`` (positions are computed before integration);
:meth:`RobomimicEnv.observe_state` renders a stored state exactly (robomimic's
dataset_states_to_obs does the same). The two differ by that sub-step: measured on scripted Lift
motion, up to ~1.3 mm of eef position and a mean absolute difference
of ~0.8 (agentview) and ~1.8 (eye in hand) intensity levels per pixel (at most ~2.4 in one
frame; frames one control step apart differ by ~4.5).

Episodes follow gymnasium's semantics with EXPO's sparse reward: success gives reward 1 and ends
the episode (``terminated``); reaching the horizon sets ``truncated`` (a time limit, not a
terminal state). Stepping an ended episode raises: call :meth:`RobomimicEnv.reset`.

Build one with :func:`make_env` (by task name) or :func:`make_env_from_hdf5` (from the env
metadata of a robomimic dataset, so rollouts use the dataset's controller settings).
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import gymnasium as gym
import numpy as np
from expo_core.spec import BASE_FRAME_PROPRIO, FRANKA_ACTION_SPEC, ObsSpec, task_obs_spec
from expo_core.tasks import ROBOSUITE_ENV_TYPE, TASK_TO_ENV_NAME, requires_mimicgen, task_from_env_name

from expo_sim.envs.background_frames import BackgroundFrames
from expo_sim.envs.env_cameras import CamerasMixin
from expo_sim.envs.env_config import EnvConfig, robomimic_env_kwargs, robosuite_make_kwargs, with_cameras
from expo_sim.envs.frames import world_to_base
from expo_sim.envs.helper_render import HelperRenderer

log = logging.getLogger(__name__)
_T = TypeVar("_T")

ACTION_SHAPE = (FRANKA_ACTION_SPEC.dim,)


class RobomimicEnv(CamerasMixin, gym.Env):
    """A robomimic robosuite task as a ``gymnasium.Env``.

    Observation: float32 vector of ``obs_spec.dim``, the spec's low-dim keys (state: robot0_eef_pos
    3, robot0_eef_quat 4 (xyzw), robot0_gripper_qpos 2, object d; pixels: robot0_base_to_eef_pos
    3, robot0_base_to_eef_quat 4, robot0_gripper_qpos 2, robot0_joint_pos 7). With cameras, a
    Dict of that vector under ``"low_dim"`` and one uint8 ``(H, W, 3)`` image per camera under
    ``"<camera>_image"`` (upright, row 0 = top).

    Action: 7 floats in [-1, 1] (OSC_POSE deltas of +-0.05 m / +-0.5 rad, gripper -1 open, +1
    close). Out-of-range values are clipped; a wrong shape or a non-finite value raises ValueError.

    ``info`` of reset/step holds ``"success"`` (bool), ``"obs_dict"`` (robosuite's observation
    dict plus robomimic's ``"object"`` key, the unflattened source of the observation) and ``"t"``
    (steps taken); step's info also holds ``"action"``, the clipped action actually applied.
    """

    metadata = {"render_modes": []}

    def __init__(self, config: EnvConfig, env_kwargs: dict[str, Any] | None = None) -> None:
        import robosuite

        self.config = config
        self.task = config.task
        self.env_name = TASK_TO_ENV_NAME[config.task]
        if requires_mimicgen(config.task):
            from expo_sim.mimicgen.available import register_envs

            # MimicGen's environments register with robosuite on import; absent: one line naming make setup
            register_envs(f"task '{config.task}'")
        if config.obs == "pixels":
            self.obs_spec: ObsSpec = task_obs_spec(
                config.task, "pixels", cameras=config.cameras, image_size=config.camera_size
            )
        else:
            self.obs_spec = task_obs_spec(config.task)
        # The kwargs as robomimic would store them (runtime overrides are added only for make).
        if env_kwargs is None:
            self.env_kwargs = robomimic_env_kwargs(config.cameras, config.camera_size)
        else:
            self.env_kwargs = with_cameras(env_kwargs, config.cameras, config.camera_size)
        make_kwargs = robosuite_make_kwargs(self.env_kwargs, config)
        # robosuite samples object placements, joint noise and some model parameters from numpy's
        # global RNG; we keep our own streams and swap them in, so seeding is per-env and the
        # global state is left alone.
        self._rs_rng = np.random.RandomState(config.model_seed)
        self._env = self._with_env_rng(lambda: robosuite.make(self.env_name, **make_kwargs))
        self._rs_rng = np.random.RandomState()
        self._robosuite_version = robosuite.__version__
        # mj_saveLastXML (behind get_xml) writes the XML most recently parsed by *any* model in
        # the process, so the MJCF is captured now, while it is still ours.
        self._model_xml = self._env.sim.model.get_xml()
        self._model_source_xml: str | None = None

        low_dim = gym.spaces.Box(-np.inf, np.inf, shape=(self.obs_spec.dim,), dtype=np.float32)
        if config.cameras:
            side = config.camera_size
            image = gym.spaces.Box(0, 255, shape=(side, side, 3), dtype=np.uint8)
            self.observation_space = gym.spaces.Dict(
                {"low_dim": low_dim, **{f"{cam}_image": image for cam in config.cameras}}
            )
        else:
            self.observation_space = low_dim
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=ACTION_SHAPE, dtype=np.float32)
        self._t = 0
        self._needs_reset = True
        self._frames_deferred = False
        self._helper: Any = None  # a HelperRenderer (defer_frames(parallel=True))
        self._background: BackgroundFrames | None = None  # frames_in_background
        self._configured_ctx: Any = None
        self._configure_renderer()  # robosuite creates the offscreen context while constructing

    # ------------------------------------------------------------------ properties
    @property
    def robosuite_env(self) -> Any:
        """The wrapped robosuite environment (privileged access for scripted experts and tests)."""
        return self._env

    @property
    def horizon(self) -> int:
        return self.config.horizon

    @property
    def record_keys(self) -> tuple[str, ...]:
        """The observation keys a demonstration of this env records: every low-dim key of the
        task's state and pixel specs (world- and base-frame proprioception, joint positions,
        ``object``), then ``<camera>_image`` per configured camera."""
        low_dim = dict.fromkeys(task_obs_spec(self.task).names + tuple(k.name for k in BASE_FRAME_PROPRIO))
        return tuple(low_dim) + tuple(f"{cam}_image" for cam in self.config.cameras)

    @property
    def env_args(self) -> dict[str, Any]:
        """robomimic's env metadata: what ``data.attrs["env_args"]`` holds (as a dict, not JSON)."""
        return {
            "env_name": self.env_name,
            "env_version": self._robosuite_version,
            "type": ROBOSUITE_ENV_TYPE,
            "env_kwargs": copy.deepcopy(self.env_kwargs),
        }

    def model_xml(self) -> str:
        """MJCF of the loaded model (robomimic's per-demo ``model_file`` attribute)."""
        return self._model_xml

    # ------------------------------------------------------------------ gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray | dict[str, np.ndarray], dict[str, Any]]:
        """Start an episode: new object placement and initial joint noise drawn from this env's RNG."""
        super().reset(seed=seed)
        if seed is not None:
            self._rs_rng = np.random.RandomState(seed)
        raw = self._with_env_rng(self._env.reset)
        return self._begin_episode(raw)

    def step(
        self, action: np.ndarray
    ) -> tuple[np.ndarray | dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Apply one action for one 20 Hz control step.

        Returns ``(obs, reward, terminated, truncated, info)``: reward 1.0 and terminated on
        success, truncated when ``horizon`` steps were taken without success.
        """
        if self._needs_reset:
            raise RuntimeError("step() called on an ended (or never started) episode; call reset() first")
        a = self.check_action(action)
        if self.config.cameras:
            self._configure_renderer()
        raw, _, _, _ = self._env.step(a)
        self._t += 1
        success = bool(self._env._check_success())
        terminated = success
        truncated = not terminated and self._t >= self.config.horizon
        self._needs_reset = terminated or truncated
        reward = 1.0 if success else 0.0
        obs = self._obs_dict(raw)
        info = self._info(obs, success)
        info["action"] = a
        return self._observation(obs), reward, terminated, truncated, info

    def close(self) -> None:
        if self._background is not None:
            self._background.close()
            self._background = None
        if self._helper is not None:
            self._helper.close()
            self._helper = None
        self._release_renderer()
        self._env.close()

    # ------------------------------------------------------------------ state replay
    def get_state(self) -> np.ndarray:
        """Flattened MuJoCo state ``[time, qpos, qvel]`` (float64), robomimic's ``states`` row."""
        return np.asarray(self._env.sim.get_state().flatten(), dtype=np.float64)

    def load_model(self, model_xml: str) -> bool:
        """Rebuild the simulation from an MJCF string (a robomimic ``model_file``) unless it is
        the loaded model already. Returns whether it reloaded (~0.7 s). Start an episode after."""
        if model_xml in (self._model_xml, self._model_source_xml):
            return False
        if self._background is not None:
            raise ValueError("load_model: not with frames_in_background (bound to the loaded simulation)")
        helper = self._helper
        if helper is not None:  # bound to the simulation about to be replaced
            helper.close()
        self._release_renderer()
        self._env.reset_from_xml_string(self._env.edit_model_xml(model_xml))
        self._model_xml = self._env.sim.model.get_xml()
        self._model_source_xml = model_xml
        self._configure_renderer()
        if helper is not None:
            self._helper = HelperRenderer(self._env.sim, self.config.camera_size)
        self._needs_reset = True
        return True

    def reset_to(
        self, state: np.ndarray, model_xml: str | None = None
    ) -> tuple[np.ndarray | dict[str, np.ndarray], dict[str, Any]]:
        """Start an episode from a flattened MuJoCo state (e.g. ``states[0]`` of a demo).

        Args:
            state: (S,) flattened state as returned by :meth:`get_state`.
            model_xml: optional MJCF (a demo's ``model_file``). If it differs from the loaded
                model, the model is rebuilt from it first (~0.7 s), as robomimic does when
                replaying datasets collected with per-episode models.

        Does a normal (soft) reset first, then sets the state and rebuilds the arm controller
        from it, exactly as a reset does, so the gripper's command ramp and the controller's
        cached pose and nullspace posture match a fresh episode. Replaying a demo's actions
        from its first state then reproduces it. The step counter restarts at 0.
        """
        if model_xml is not None:
            self.load_model(model_xml)
        state = np.asarray(state, dtype=np.float64).reshape(-1)
        expected = self.get_state().shape
        if state.shape != expected:
            raise ValueError(f"state has shape {state.shape}, this {self.env_name} env expects {expected}")
        if not np.all(np.isfinite(state)):
            raise ValueError("state contains NaN or inf")
        self._with_env_rng(self._env.reset)
        self._env.sim.set_state_from_flattened(state)
        self._env.sim.forward()
        for robot in self._env.robots:
            # Controllers cache the end-effector pose and the initial joint posture at creation.
            robot._load_controller()
            robot.controller.update_base_pose(robot.base_pos, robot.base_ori)
        # Observables sample on a sub-step clock that every forced update advances; restart it
        # as a reset does, or observations lag the state by one 2 ms sub-step.
        self._env._obs_cache = {}
        for observable in self._env._observables.values():
            observable.reset()
        raw = self._env._get_observations(force_update=True)
        return self._begin_episode(raw)

    def observe_state(self, state: np.ndarray) -> dict[str, np.ndarray]:
        """The observation dict (``info["obs_dict"]`` layout, frames rendered) of a flattened
        MuJoCo state, without stepping: set the state, recompute positions, observe.

        This is how a stored ``states`` row is turned back into observations (robomimic's
        dataset_states_to_obs does the same). It leaves the env mid-nowhere: call :meth:`reset`
        or :meth:`reset_to` before stepping again.
        """
        state = np.asarray(state, dtype=np.float64).reshape(-1)
        expected = self.get_state().shape
        if state.shape != expected:
            raise ValueError(f"state has shape {state.shape}, this {self.env_name} env expects {expected}")
        if not np.all(np.isfinite(state)):
            raise ValueError("state contains NaN or inf")
        self._needs_reset = True
        if self.config.cameras:
            self._configure_renderer()
        self._env.sim.set_state_from_flattened(state)
        self._env.sim.forward()
        self._env._obs_cache = {}
        for observable in self._env._observables.values():
            observable.reset()
        return self._obs_dict(self._env._get_observations(force_update=True))

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def check_action(action: np.ndarray) -> np.ndarray:
        """Validate and clip one action; returns a float64 copy of shape (7,)."""
        a = np.array(action, dtype=np.float64)
        if a.shape != ACTION_SHAPE:
            raise ValueError(f"action has shape {a.shape}, expected shape {ACTION_SHAPE}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"action contains NaN or inf: {a.tolist()}")
        return np.clip(a, FRANKA_ACTION_SPEC.low, FRANKA_ACTION_SPEC.high)

    def _begin_episode(self, raw: dict[str, Any]) -> tuple[np.ndarray | dict[str, np.ndarray], dict]:
        self._t = 0
        self._needs_reset = False
        self._configure_renderer()
        if self._frames_deferred:  # a model reload rebuilds the observables, enabled
            self._disable_camera_observables()
        obs = self._obs_dict(raw)
        return self._observation(obs), self._info(obs, bool(self._env._check_success()))

    def _with_env_rng(self, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` with numpy's legacy global RNG (the one robosuite draws from) set to this
        env's stream, then restore the caller's global state."""
        saved = np.random.get_state()  # noqa: NPY002 (robosuite uses the legacy global RNG)
        np.random.set_state(self._rs_rng.get_state())  # noqa: NPY002
        try:
            return fn()
        finally:
            self._rs_rng.set_state(np.random.get_state())  # noqa: NPY002
            np.random.set_state(saved)  # noqa: NPY002

    def _obs_dict(self, raw: dict[str, Any]) -> dict[str, np.ndarray]:
        from robosuite import macros

        obs = dict(raw)
        obs["object"] = raw["object-state"]
        obs.update(self._base_frame_proprio(raw))
        upside_down = macros.IMAGE_CONVENTION == "opengl"
        for cam in () if self._frames_deferred else self.config.cameras:
            key = f"{cam}_image"
            obs[key] = np.ascontiguousarray(raw[key][::-1]) if upside_down else raw[key]
        return obs

    def _base_frame_proprio(self, raw: dict[str, Any]) -> dict[str, np.ndarray]:
        """What a real Franka reports, from robosuite's world-frame values and the base body's
        pose (``expo_sim.envs.frames``); joint positions read from the MuJoCo state the way
        robosuite's own (inactive by default) ``robot0_joint_pos`` observable reads them."""
        robot = self._env.robots[0]
        data = self._env.sim.data
        root = robot.robot_model.root_body
        base_pos = np.array(data.get_body_xpos(root), dtype=np.float64)
        base_quat = np.array(data.get_body_xquat(root), dtype=np.float64)[[1, 2, 3, 0]]  # wxyz -> xyzw
        pos, quat = world_to_base(raw["robot0_eef_pos"], raw["robot0_eef_quat"], base_pos, base_quat)
        return {
            "robot0_base_pos": base_pos,
            "robot0_base_quat": base_quat,
            "robot0_base_to_eef_pos": pos,
            "robot0_base_to_eef_quat": quat,
            "robot0_joint_pos": np.array(data.qpos[robot._ref_joint_pos_indexes], dtype=np.float64),
        }

    def _observation(self, obs: dict[str, np.ndarray]) -> np.ndarray | dict[str, np.ndarray]:
        flat = self.obs_spec.flatten(obs)
        if not self.config.cameras:
            return flat
        if self._frames_deferred:
            return {"low_dim": flat}
        return {"low_dim": flat, **{f"{c}_image": obs[f"{c}_image"] for c in self.config.cameras}}

    def _info(self, obs: dict[str, np.ndarray], success: bool) -> dict[str, Any]:
        return {"success": success, "obs_dict": obs, "t": self._t}


def make_env(
    task: str,
    *,
    horizon: int = 400,
    cameras: tuple[str, ...] = (),
    camera_size: int = 84,
    model_seed: int = 0,
    obs: str = "state",
) -> RobomimicEnv:
    """Build a task with robomimic's settings. Unknown task -> ValueError listing supported tasks.
    ``obs="pixels"`` observes base-frame proprioception and the cameras (both, if none given)."""
    config = EnvConfig(
        task=task,
        horizon=horizon,
        cameras=tuple(cameras),
        camera_size=camera_size,
        model_seed=model_seed,
        obs=obs,
    )
    return RobomimicEnv(config)


def read_env_args(path: str | Path) -> dict[str, Any]:
    """Parse ``data.attrs["env_args"]`` of a robomimic HDF5 file into a dict."""
    import h5py

    with h5py.File(path, "r") as f:
        if "data" not in f or "env_args" not in f["data"].attrs:
            raise ValueError(f"{path}: no data.attrs['env_args']; not a robomimic dataset")
        raw = f["data"].attrs["env_args"]
    env_args = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    missing = {"env_name", "type", "env_kwargs"} - set(env_args)
    if missing:
        raise ValueError(f"{path}: env_args lacks {sorted(missing)}")
    return env_args


def make_env_from_hdf5(
    path: str | Path,
    *,
    horizon: int = 400,
    cameras: tuple[str, ...] = (),
    camera_size: int = 84,
    obs: str = "state",
) -> RobomimicEnv:
    """Rebuild the environment a robomimic dataset was recorded in: its env_name and env_kwargs
    (including the controller config) and, if the first demo stores a ``model_file``, that model.
    Renderer (cameras, their size), observation spec, horizon and reset mode come from the
    arguments."""
    import h5py
    import robosuite

    env_args = read_env_args(path)
    if env_args["type"] != ROBOSUITE_ENV_TYPE:
        raise ValueError(f"{path}: env_args type {env_args['type']} is not robosuite ({ROBOSUITE_ENV_TYPE})")
    task = task_from_env_name(env_args["env_name"])
    version = str(env_args.get("env_version", "unknown"))
    if version.split(".")[:2] != robosuite.__version__.split(".")[:2]:
        log.warning("%s was recorded with robosuite %s, running %s", path, version, robosuite.__version__)
    config = EnvConfig(task=task, horizon=horizon, cameras=tuple(cameras), camera_size=camera_size, obs=obs)
    env = RobomimicEnv(config, env_kwargs=env_args["env_kwargs"])
    with h5py.File(path, "r") as f:
        demos = [n for n in f["data"] if n.startswith("demo_") and n[5:].isdigit()]
        first = min(demos, key=lambda n: int(n[5:]), default=None)
        model_xml = f["data"][first].attrs.get("model_file") if first is not None else None
    if model_xml is not None and env.load_model(model_xml):
        log.info("%s: loaded the model stored with %s", path, first)
    return env
