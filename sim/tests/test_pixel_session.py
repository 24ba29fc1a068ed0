"""Issue 13's pixel loop over ROS, through ``make sim OBS=pixels``' path (``expo-sim session --obs
pixels --learn``, the graph started by ``ros2 launch expo_bringup sim.launch.py obs:=pixels``):

- the session's checks of ``--obs`` against the checkpoint's kind (fast);
- a short pixel episode (slow): a tiny pixel checkpoint made here, the bridge rendering both
  cameras, the policy node acting on them, the learner training from that checkpoint. An
  independent rclpy subscriber (its own context, plain message fields) sees the camera Images and
  the actions; the learner's rosbag2 mcap segments, read with ``rosbags`` (types from the schemas
  embedded in the bag), hold each transition's frames of obs and next obs.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from bag_transitions import bag_transitions
from expo_core.agent import ExpoAgent
from expo_core.checkpoint import PIXELS_FORMAT, save_checkpoint
from expo_core.pixel_agent import PixelAgent, encoder_preset, pixel_expo_config
from expo_core.presets import preset_config
from expo_core.spec import task_obs_spec
from expo_interfaces.msg import ActionCommand, Transition
from expo_sim.session.run import SessionConfig, launch_arguments, prepare_policy, run_session
from sensor_msgs.msg import Image
from spun_node import SpunNode

DOMAIN_ID = 61 + (os.getpid() + 11) % 15  # test_session's range (61..75), another offset
CAMERAS = ("agentview", "robot0_eye_in_hand")
HORIZON = 25
STARTUP_SLACK = 8  # steps a late-matching subscriber may miss at the start (DDS discovery)


def tiny_pixel_checkpoint(path: Path, size: int = 84) -> Path:
    """A frozen tiny pixel agent for lift (untrained: the loop is under test, not the policy)."""
    spec = task_obs_spec("lift", "pixels", image_size=size)
    enc = encoder_preset("tiny", image_size=size)
    agent = PixelAgent(pixel_expo_config(preset_config("tiny", 1, 7), enc, spec), enc, spec, seed=0)
    agent.freeze_encoder()
    save_checkpoint(path, agent)
    return path.with_suffix(".safetensors")


def test_obs_must_match_the_checkpoint_kind(tmp_path: Path) -> None:
    pix = tiny_pixel_checkpoint(tmp_path / "pix", size=16)
    save_checkpoint(tmp_path / "state", ExpoAgent(preset_config("tiny", 19, 7)))
    state = tmp_path / "state.safetensors"
    with pytest.raises(ValueError, match="SessionConfig.obs"):
        SessionConfig(obs="rgb")
    with pytest.raises(ValueError, match="pass --obs pixels"):
        prepare_policy(SessionConfig(checkpoint=pix, data_dir=tmp_path))
    with pytest.raises(ValueError, match="needs a pixel checkpoint"):
        prepare_policy(SessionConfig(checkpoint=state, data_dir=tmp_path, obs="pixels"))
    cfg = SessionConfig(checkpoint=pix, data_dir=tmp_path, obs="pixels", learn=True)
    ckpt, dataset = prepare_policy(cfg)
    assert ckpt == pix.resolve() and dataset is None
    run = tmp_path / "run"
    run.mkdir()
    assert launch_arguments(cfg, ckpt, dataset, run)["obs"] == "pixels"
    assert launch_arguments(SessionConfig(checkpoint=state), state, None, run)["obs"] == "state"


class Listener(SpunNode):
    """An rclpy node on its own context, spun in a thread: camera frames, actions, transitions."""

    def __init__(self, domain_id: int) -> None:
        super().__init__("independent_listener", domain_id)
        self.frames: dict[str, list[tuple[int, str, int, int, int]]] = {c: [] for c in CAMERAS}
        self.actions: list[tuple[int, bool, int]] = []
        self.transitions: list[tuple[int, int, int, int]] = []
        for cam in CAMERAS:
            self.node.create_subscription(Image, f"/{cam}/image_raw", self._frame(cam), 100)
        self.node.create_subscription(ActionCommand, "/action", self._action, 100)
        self.node.create_subscription(
            Transition,
            "/transitions",
            lambda m: self.transitions.append((m.episode, m.step, len(m.images), len(m.next_images))),
            1000,
        )
        self.start()

    def _frame(self, cam: str):
        def record(m: Image) -> None:
            stamp = m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec
            std = float(np.frombuffer(bytes(m.data), np.uint8).std())
            self.frames[cam].append((stamp, m.encoding, m.height, m.width, int(std > 0)))

        return record

    def _action(self, m: ActionCommand) -> None:
        stamp = m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec
        self.actions.append((stamp, bool(m.hold), len(m.action)))


def bag_frames(bags: Path) -> list[tuple[int, list[tuple[str, int, int, int]], int]]:
    """Per transition in the learner's segments (via rosbags): (step, [(encoding, h, w, bytes)] of
    its obs frames, number of next-obs frames)."""
    out = []
    for m in bag_transitions(bags):
        imgs = [(i.encoding, int(i.height), int(i.width), len(i.data)) for i in m.images]
        out.append((int(m.step), imgs, len(m.next_images)))
    return out


@pytest.mark.ros
@pytest.mark.slow
def test_a_pixel_episode_through_ros_acts_on_cameras_and_bags_the_frames(tmp_path: Path) -> None:
    ckpt = tiny_pixel_checkpoint(tmp_path / "pixbase")
    cfg = SessionConfig(
        task="lift",
        episodes=1,
        checkpoint=ckpt,
        horizon=HORIZON,
        data_dir=tmp_path / "data",
        out=tmp_path / "runs",
        domain_id=DOMAIN_ID,
        timeout_s=150.0,
        learn=True,
        obs="pixels",
        graph_overrides={"learner_node": {"warmup_transitions": 5, "publish_every_updates": 5}},
    )
    listener = Listener(DOMAIN_ID)
    try:
        summary = run_session(cfg, stream=io.StringIO(), progress=False)
    finally:
        listener.close()
    assert summary["exit_code"] == 0 and not summary["error"], summary
    assert summary["node_exit_codes"] == {"sim_bridge": 0, "policy_node": 0, "learner_node": 0}
    assert summary["episodes"] == 1 and summary["env_steps"] == HORIZON

    # The independent subscriber: rgb8 84x84 rendered frames of both cameras, and actions that
    # answer observation stamps the cameras carried.
    for cam in CAMERAS:
        frames = listener.frames[cam]
        assert len(frames) >= HORIZON, (cam, len(frames))
        assert {f[1:4] for f in frames} == {("rgb8", 84, 84)} and all(f[4] for f in frames)
    acted = [a for a in listener.actions if not a[1]]
    # DDS matches each subscription on its own: the first few messages of a topic can go out
    # before a late-matching subscriber (the listener, the learner) hears them; from then on
    # nothing may be missing up to the episode's end
    assert HORIZON - STARTUP_SLACK <= len(acted) <= HORIZON, listener.actions[:5]
    assert {a[2] for a in acted} == {7}, listener.actions[:5]
    stamps = sorted(a[0] for a in acted)
    assert set(np.diff(stamps)) <= {50_000_000}, "an action missing after the first one heard"
    camera_stamps = {f[0] for f in listener.frames["agentview"]}
    assert all(a[0] in camera_stamps for a in acted), "each action answers a published camera set"
    assert listener.transitions and all(t[2:] == (2, 2) for t in listener.transitions)

    # The learner: trained from the pixel checkpoint, streamed pixel bundles, bagged the frames.
    learner = Path(summary["learner_dir"])
    rows = bag_frames(learner / "bags")
    steps = sorted(r[0] for r in rows)
    assert steps and steps == list(range(steps[0], HORIZON)) and steps[0] <= STARTUP_SLACK, steps
    for _step, imgs, n_next in rows:
        assert imgs == [("rgb8", 84, 84, 84 * 84 * 3)] * 2 and n_next == 2
    saved = sorted((learner / "checkpoints").glob("learner_*.json"))
    assert saved and json.loads(saved[-1].read_text())["format"] == PIXELS_FORMAT
    assert int(summary["weights_version"] or 0) >= 1
