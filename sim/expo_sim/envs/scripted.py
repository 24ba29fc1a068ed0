"""Scripted demonstrators: P-control of the gripper through object-relative waypoints.

Experts exist for Lift, Can and Square (none for Stack). Each is a short list of phases
(approach above the object, descend, close, lift, ...). Every step it reads the robomimic
observation dict, computes the waypoint of the current phase from the object pose, and commands
an OSC_POSE delta proportional to the position and orientation error (saturating at the action
bounds). A phase ends when the gripper is within its tolerances or after its step budget; after
the last phase the expert reports ``done``. Constants that observations do not carry (bin and
peg positions, the nut's handle offset) are read once from the robosuite env.

Quality: a :class:`DemoStyle` drawn per episode shapes the demonstration. ``proficient`` gives
clean demos with small Gaussian action noise. ``mixed`` draws, per episode, one of

- ``clean``: as proficient;
- ``hesitant``: random pauses (zero motion for 4-15 steps) and larger noise; usually succeeds;
- ``noisy``: large action noise and occasional gripper twitches; mostly fails;
- ``missed_grasp``: closes the gripper 5-7 cm above the grasp point, then carries on as if holding
  the object; always fails;
- ``early_release``: opens the gripper too early (Lift: right after closing; Can: during transport,
  outside the bin; Square: right after lifting the nut); always fails;

so a mixed set has clearly imperfect and failed demonstrations. All randomness comes from the
``numpy.random.Generator`` passed in, so demos are reproducible from the seed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from robosuite.utils import transform_utils as T

from expo_sim.envs.robosuite_env import RobomimicEnv

log = logging.getLogger(__name__)

QUALITIES: tuple[str, ...] = ("proficient", "mixed")
SCRIPTED_TASKS: tuple[str, ...] = ("lift", "can", "square")

# Gripper pointing straight down, fingers closing along the world y axis (robot0_eef_quat frame).
_R_DOWN = np.diag([1.0, -1.0, -1.0])
_POS_GAIN = 25.0  # action per metre of error: saturates at 4 cm, goal = current + 1.25 * error
_ROT_GAIN = 4.0  # action per radian of error (action 1 = 0.5 rad goal offset)


@dataclass(frozen=True)
class DemoStyle:
    """How one demonstration is performed.

    Attributes:
        name: style label, stored with the demo.
        noise_std: std of Gaussian noise added to the six motion action components.
        pause_prob: per-step probability of starting a pause (zero motion) of 4-15 steps.
        gripper_twitch_prob: per-step probability that the gripper command flips for one step.
        grasp_height_offset: metres above the nominal grasp point where the gripper closes
            (> 0.04 misses the object).
        early_release: open the gripper before the object reaches its goal.
        speed: multiplier on the position gain (operator tempo).
    """

    name: str
    noise_std: float = 0.05
    pause_prob: float = 0.0
    gripper_twitch_prob: float = 0.0
    grasp_height_offset: float = 0.0
    early_release: bool = False
    speed: float = 1.0

    @property
    def intends_failure(self) -> bool:
        return self.early_release or self.grasp_height_offset > 0.04


def sample_style(quality: str, rng: np.random.Generator) -> DemoStyle:
    """Draw one episode's style for ``quality`` ('proficient' or 'mixed')."""
    if quality not in QUALITIES:
        raise ValueError(f"unknown quality '{quality}'; supported: {list(QUALITIES)}")
    speed = float(rng.uniform(0.8, 1.2))
    if quality == "proficient":
        return DemoStyle("clean", noise_std=0.05, speed=speed)
    kind = rng.choice(
        ["clean", "hesitant", "noisy", "missed_grasp", "early_release"], p=[0.2, 0.2, 0.3, 0.15, 0.15]
    )
    if kind == "clean":
        return DemoStyle("clean", noise_std=0.05, speed=speed)
    if kind == "hesitant":
        return DemoStyle("hesitant", noise_std=0.15, pause_prob=0.06, speed=speed * 0.8)
    if kind == "noisy":
        return DemoStyle(
            "noisy", noise_std=float(rng.uniform(0.4, 0.7)), gripper_twitch_prob=0.06, speed=speed
        )
    if kind == "missed_grasp":
        return DemoStyle("missed_grasp", noise_std=0.1, grasp_height_offset=float(rng.uniform(0.05, 0.07)))
    return DemoStyle("early_release", noise_std=0.1, early_release=True, speed=speed)


def _yaw(R: np.ndarray) -> float:
    return float(np.arctan2(R[1, 0], R[0, 0]))


def _rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _wrap(angle: float, period: float) -> float:
    """Wrap to [-period/2, period/2)."""
    return float((angle + period / 2) % period - period / 2)


@dataclass(frozen=True)
class Waypoint:
    """Target of the current phase: grip-site position (m, world), gripper command, position
    tolerance (m; None = leave after ``max_steps``), step budget, and orientation tolerance (rad)
    that must also be met before leaving early."""

    pos: np.ndarray
    gripper: float
    tol: float | None
    max_steps: int
    rot_tol: float = np.inf


class WaypointExpert:
    """Shared phase machine and P-controller; subclasses define ``phases`` and ``waypoint``."""

    phases: tuple[str, ...] = ()

    def __init__(self, env: RobomimicEnv, style: DemoStyle, rng: np.random.Generator) -> None:
        self.env = env
        self.style = style
        self.rng = rng
        self.phase_idx = 0
        self.phase_steps = 0
        self.pause_left = 0
        self.anchor: np.ndarray | None = None  # position remembered when a phase starts
        self.R_target = _R_DOWN
        self._last_gripper = -1.0
        self.linger_steps = int(rng.integers(10, 30))  # idle steps before the operator stops

    @property
    def done(self) -> bool:
        """True once the script has run out of phases (the operator stops recording)."""
        return self.phase_idx >= len(self.phases)

    @property
    def phase(self) -> str:
        return self.phases[min(self.phase_idx, len(self.phases) - 1)]

    def waypoint(self, phase: str, obs: dict[str, np.ndarray]) -> Waypoint:
        raise NotImplementedError

    def on_phase_start(self, phase: str, obs: dict[str, np.ndarray]) -> None:
        """Hook: remember positions or orientations when a phase begins."""
        self.anchor = obs["robot0_eef_pos"].copy()

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """One 7-D action in [-1, 1] for the robomimic observation dict ``obs``."""
        if self.phase_steps == 0 and not self.done:
            self.on_phase_start(self.phase, obs)
        wp = self.waypoint(self.phase, obs)
        err = wp.pos - obs["robot0_eef_pos"]
        # Orientation error as a world-frame rotation vector (OSC_POSE applies deltas that way).
        rot_err = T.quat2axisangle(T.mat2quat(self.R_target @ T.quat2mat(obs["robot0_eef_quat"]).T))
        self.phase_steps += 1
        reached = wp.tol is not None and np.linalg.norm(err) < wp.tol and np.linalg.norm(rot_err) < wp.rot_tol
        if reached or self.phase_steps >= wp.max_steps:
            self.phase_idx += 1
            self.phase_steps = 0

        action = np.zeros(7)
        action[:3] = _POS_GAIN * self.style.speed * err
        action[3:6] = _ROT_GAIN * rot_err
        action[:6] = np.clip(action[:6], -1.0, 1.0)
        action[6] = wp.gripper
        return self._perturb(action)

    def _perturb(self, action: np.ndarray) -> np.ndarray:
        s = self.style
        if self.pause_left == 0 and s.pause_prob > 0 and self.rng.random() < s.pause_prob:
            self.pause_left = int(self.rng.integers(4, 16))
        if self.pause_left > 0:
            self.pause_left -= 1
            action[:6] = 0.0
            action[6] = self._last_gripper
        action[:6] += self.rng.normal(0.0, s.noise_std, size=6)
        if s.gripper_twitch_prob > 0 and self.rng.random() < s.gripper_twitch_prob:
            action[6] = -action[6]
        self._last_gripper = float(action[6])
        return np.clip(action, -1.0, 1.0)


class LiftExpert(WaypointExpert):
    """Lift: above the cube with the fingers square to its faces, down, close, up 15 cm."""

    phases = ("approach", "descend", "close", "fumble", "lift", "linger")

    def on_phase_start(self, phase: str, obs: dict[str, np.ndarray]) -> None:
        super().on_phase_start(phase, obs)
        if phase == "approach":
            # Cube is symmetric under 90 deg yaw: turn the gripper by the smallest such offset.
            R_eef = T.quat2mat(obs["robot0_eef_quat"])
            cube_yaw = _yaw(T.quat2mat(obs["cube_quat"]))
            yaw = _yaw(R_eef) + _wrap(cube_yaw - _yaw(R_eef), np.pi / 2)
            self.R_target = _rot_z(yaw) @ _R_DOWN

    def waypoint(self, phase: str, obs: dict[str, np.ndarray]) -> Waypoint:
        cube = obs["cube_pos"]
        grasp = cube + np.array([0.0, 0.0, -0.005 + self.style.grasp_height_offset])
        if phase == "approach":
            return Waypoint(cube + np.array([0.0, 0.0, 0.08]), -1.0, 0.015, 60, rot_tol=0.1)
        if phase == "descend":
            return Waypoint(grasp, -1.0, 0.008, 40)
        if phase == "close":
            return Waypoint(self.anchor, 1.0, None, 9)
        if phase == "fumble":  # early release: let go before lifting
            steps = 8 if self.style.early_release else 1
            return Waypoint(self.anchor, -1.0 if self.style.early_release else 1.0, None, steps)
        gripper = -1.0 if self.style.early_release else 1.0
        if phase == "lift":
            return Waypoint(self.anchor + np.array([0.0, 0.0, 0.15]), gripper, 0.01, 60)
        return Waypoint(self.anchor, gripper, None, self.linger_steps)  # linger


class CanExpert(WaypointExpert):
    """PickPlaceCan: grasp the can, lift over the bin wall, carry to its bin section, release."""

    phases = ("approach", "descend", "close", "lift", "carry", "lower", "release", "retreat", "linger")
    _CARRY_Z = 1.0  # grip-site height while carrying: the can clears the bin walls

    def __init__(self, env: RobomimicEnv, style: DemoStyle, rng: np.random.Generator) -> None:
        super().__init__(env, style, rng)
        rs = env.robosuite_env
        # The can's bin section is a quarter of bin 2; its centre is at the edge of the Panda's
        # reach with a vertical gripper, so aim at the part of the section nearest the robot.
        section_half = np.asarray(rs.bin_size[:2], dtype=np.float64) / 4.0
        self.goal = np.array(rs.target_bin_placements[rs.object_id], dtype=np.float64)
        self.goal[:2] -= section_half - np.array([0.05, 0.06])
        self.goal[:2] += rng.uniform(-0.015, 0.015, size=2)
        # Early release: let go somewhere along the carry, before reaching the bin.
        self.release_fraction = float(rng.uniform(0.2, 0.6))

    def on_phase_start(self, phase: str, obs: dict[str, np.ndarray]) -> None:
        super().on_phase_start(phase, obs)
        if phase == "approach":  # the can is round: keep the current yaw, point straight down
            self.R_target = _rot_z(_yaw(T.quat2mat(obs["robot0_eef_quat"]))) @ _R_DOWN

    def waypoint(self, phase: str, obs: dict[str, np.ndarray]) -> Waypoint:
        can = obs["Can_pos"]
        grasp = can + np.array([0.0, 0.0, 0.01 + self.style.grasp_height_offset])
        above_goal = np.array([self.goal[0], self.goal[1], self._CARRY_Z])
        if phase == "approach":
            return Waypoint(can + np.array([0.0, 0.0, 0.1]), -1.0, 0.02, 80)
        if phase == "descend":
            return Waypoint(grasp, -1.0, 0.01, 50)
        if phase == "close":
            return Waypoint(self.anchor, 1.0, None, 10)
        if phase == "lift":
            return Waypoint(np.array([self.anchor[0], self.anchor[1], self._CARRY_Z]), 1.0, 0.03, 60)
        if phase == "carry":
            gripper = 1.0
            if self.style.early_release:
                done_frac = 1.0 - np.linalg.norm(above_goal[:2] - obs["robot0_eef_pos"][:2]) / max(
                    np.linalg.norm(above_goal[:2] - self.anchor[:2]), 1e-6
                )
                gripper = -1.0 if done_frac > self.release_fraction else 1.0
            return Waypoint(above_goal, gripper, 0.02, 100)
        gripper = -1.0 if self.style.early_release else 1.0
        if phase == "lower":
            return Waypoint(np.array([self.goal[0], self.goal[1], self.goal[2] + 0.16]), gripper, 0.02, 40)
        if phase == "release":
            return Waypoint(self.anchor, -1.0, None, 8)
        if phase == "retreat":
            return Waypoint(self.anchor + np.array([0.0, 0.0, 0.1]), -1.0, 0.02, 30)
        return Waypoint(self.anchor, -1.0, None, self.linger_steps)  # linger


class SquareExpert(WaypointExpert):
    """NutAssemblySquare: grasp the nut's handle, turn the nut square to the peg with the handle
    towards the robot (the peg is at the edge of the reach), slide it down the peg, release."""

    phases = ("approach", "descend", "close", "lift", "align", "insert", "release", "retreat", "linger")
    _CARRY_Z = 1.0  # nut height while carrying: its bottom clears the 0.95 m peg top

    def __init__(self, env: RobomimicEnv, style: DemoStyle, rng: np.random.Generator) -> None:
        super().__init__(env, style, rng)
        rs = env.robosuite_env
        nut = rs.nuts[0]
        handle = rs.sim.data.site_xpos[rs.sim.model.site_name2id(nut.important_sites["handle"])]
        nut_pos = rs.sim.data.body_xpos[rs.obj_body_id[nut.name]]
        R_nut = rs.sim.data.body_xmat[rs.obj_body_id[nut.name]].reshape(3, 3)
        handle_local = R_nut.T @ (handle - nut_pos)  # handle site in the nut frame (fixed)
        # The site sits 1 cm from the ring; grip 8 mm further out so the fingers miss the ring.
        self.grasp_local = handle_local * (1.0 + 0.008 / np.linalg.norm(handle_local))
        self.peg = np.array(rs.sim.data.body_xpos[rs.peg1_body_id], dtype=np.float64)

    def _nut(self, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return obs["SquareNut_pos"], T.quat2mat(obs["SquareNut_quat"])

    def on_phase_start(self, phase: str, obs: dict[str, np.ndarray]) -> None:
        super().on_phase_start(phase, obs)
        nut_pos, R_nut = self._nut(obs)
        grip_yaw = _yaw(T.quat2mat(obs["robot0_eef_quat"]))
        if phase == "approach":  # fingers across the handle bar (bar along the nut's x axis)
            self.R_target = _rot_z(grip_yaw + _wrap(_yaw(R_nut) - grip_yaw, np.pi)) @ _R_DOWN
        if phase == "align":  # handle pointing to -x, +y or -y: nut yaw pi, pi/2 or -pi/2
            nut_yaw = _yaw(R_nut)
            turns = [_wrap(goal - nut_yaw, 2 * np.pi) for goal in (np.pi, np.pi / 2, -np.pi / 2)]
            self.R_target = _rot_z(grip_yaw + min(turns, key=abs)) @ _R_DOWN

    def _eef_for_nut(self, obs: dict[str, np.ndarray], nut_goal: np.ndarray) -> np.ndarray:
        """Gripper target that moves the held nut's centre to ``nut_goal``."""
        return obs["robot0_eef_pos"] + (nut_goal - obs["SquareNut_pos"])

    def waypoint(self, phase: str, obs: dict[str, np.ndarray]) -> Waypoint:
        nut_pos, R_nut = self._nut(obs)
        handle = nut_pos + R_nut @ self.grasp_local
        grasp = handle + np.array([0.0, 0.0, 0.0 + self.style.grasp_height_offset])
        if phase == "approach":
            return Waypoint(handle + np.array([0.0, 0.0, 0.08]), -1.0, 0.015, 80, rot_tol=0.06)
        if phase == "descend":
            return Waypoint(grasp, -1.0, 0.008, 50)
        if phase == "close":
            return Waypoint(self.anchor, 1.0, None, 10)
        gripper = -1.0 if self.style.early_release else 1.0
        if phase == "lift":
            return Waypoint(np.array([self.anchor[0], self.anchor[1], self._CARRY_Z]), 1.0, 0.03, 60)
        if phase == "align":
            goal = np.array([self.peg[0], self.peg[1], self._CARRY_Z])
            return Waypoint(self._eef_for_nut(obs, goal), gripper, 0.006, 120)
        if phase == "insert":
            goal = np.array([self.peg[0], self.peg[1], 0.83])
            return Waypoint(self._eef_for_nut(obs, goal), gripper, 0.01, 60)
        if phase == "release":
            return Waypoint(self.anchor, -1.0, None, 8)
        if phase == "retreat":
            return Waypoint(self.anchor + np.array([0.0, 0.0, 0.1]), -1.0, 0.02, 30)
        return Waypoint(self.anchor, -1.0, None, self.linger_steps)  # linger


_EXPERTS: dict[str, type[WaypointExpert]] = {"lift": LiftExpert, "can": CanExpert, "square": SquareExpert}


def make_expert(env: RobomimicEnv, style: DemoStyle, rng: np.random.Generator) -> WaypointExpert:
    """The scripted expert for ``env.task``; ValueError for tasks without one."""
    if env.task not in _EXPERTS:
        raise ValueError(f"no scripted demonstrator for task '{env.task}'; available: {list(SCRIPTED_TASKS)}")
    return _EXPERTS[env.task](env, style, rng)
