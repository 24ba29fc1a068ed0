"""Camera inputs of a pixel policy: frame checks, approximate-time sets, one hold reason per bad case.

No ROS: the Image fields are passed as the node's callback passes them.
"""

from __future__ import annotations

import numpy as np
import pytest
from expo_core.spec import ObsSpec, task_obs_spec
from expo_policy.backends.base import pixel_feeds
from expo_policy.camera_frames import (
    CAMERA_FROZEN,
    CAMERA_LATE,
    CAMERA_MALFORMED,
    CAMERA_MISSING,
    CAMERA_WRONG_ENCODING,
    CAMERA_WRONG_SIZE,
    OBSERVATION_SKEW,
    PROPRIO_UNUSABLE,
    CameraFrame,
    decode_frame,
)
from expo_policy.camera_inputs import EE_POSE_BASE, JOINT_STATES, FreshSetSync, PixelObservationInputs
from expo_policy.obs_builder import ObservationBuilder

SPEC = task_obs_spec("lift", "pixels")  # base-frame pose 7, gripper 2, joints 7; two 84x84 cameras
CAMS = SPEC.cameras
KEYS = {k.camera: k for k in SPEC.rgb}
ARM = [f"panda_joint{i}" for i in range(1, 8)]
FINGERS = ["panda_finger_joint1", "panda_finger_joint2"]
JOINTS = np.array([0.0, 0.1, 0.2, -1.5, 0.0, 1.7, 0.8, 0.04, -0.04])
POS, QUAT = np.array([0.5, 0.0, 0.2]), np.array([1.0, 0.0, 0.0, 0.0])
S = 1_000_000_000  # ns per second


def image(cam: str, value: int = 7, size: int = 84, encoding: str = "rgb8", pad: int = 0) -> dict:
    px = np.full((size, size, 3), value, np.uint8)
    px[..., 0] = value  # R
    px[..., 2] = 200  # B: tells a channel flip apart
    rows = np.concatenate([px.reshape(size, -1), np.zeros((size, pad), np.uint8)], axis=1)
    return {
        "height": size,
        "width": size,
        "encoding": encoding,
        "step": 3 * size + pad,
        "data": rows.tobytes(),
    }


def frame(cam: str, stamp_ns: int, received_s: float | None = None, **kw) -> CameraFrame:
    rec = stamp_ns / S if received_s is None else received_s
    return decode_frame(KEYS[cam], stamp_ns, rec, **image(cam, **kw))


def make_inputs(
    max_age_s: float = 0.25, max_skew_s: float = 0.05, base_frame: str = ""
) -> PixelObservationInputs:
    builder = ObservationBuilder(
        ObsSpec(SPEC.keys), max_age_s, max_skew_s, FINGERS, (1.0, 1.0), arm_joint_names=ARM
    )
    return PixelObservationInputs(SPEC, builder, base_frame=base_frame)


def feed(
    inp: PixelObservationInputs, ns: int, skip: tuple[str, ...] = (), frame_id: str = "robot0_base", **cam_kw
):
    """One step's pieces, all stamped ``ns``; returns the last add's result (the set, if any)."""
    out = None
    if JOINT_STATES not in skip:
        out = inp.add(JOINT_STATES, ns, (ARM + FINGERS, JOINTS))
    if EE_POSE_BASE not in skip:
        out = inp.add(EE_POSE_BASE, ns, (POS, QUAT), frame_id)
    for cam in CAMS:
        if cam not in skip:
            out = inp.add(cam, ns, frame(cam, ns, **cam_kw.get(cam, {})))
    return out


# --- frames -------------------------------------------------------------------------------------
def test_rgb8_frame_decoded_with_row_padding_dropped() -> None:
    f = decode_frame(KEYS["agentview"], 5, 0.0, **image("agentview", value=9, pad=4))
    assert f.ok and f.code == "" and f.pixels.shape == (84, 84, 3) and f.pixels.dtype == np.uint8
    assert f.pixels.flags.c_contiguous and f.pixels.flags.writeable  # a copy, not the message's buffer
    assert (f.pixels[..., 0] == 9).all() and (f.pixels[..., 2] == 200).all()


def test_bgr8_is_flipped_to_rgb() -> None:
    f = decode_frame(KEYS["agentview"], 5, 0.0, **image("agentview", value=9, encoding="bgr8"))
    assert f.ok and (f.pixels[..., 0] == 200).all() and (f.pixels[..., 2] == 9).all()


@pytest.mark.parametrize(
    ("kw", "code", "words"),
    [
        ({"encoding": "mono8"}, CAMERA_WRONG_ENCODING, "encoding 'mono8'"),
        ({"encoding": "rgba8"}, CAMERA_WRONG_ENCODING, "rgba8"),
        ({"size": 64}, CAMERA_WRONG_SIZE, "64x64 pixels, the policy was trained on 84x84"),
    ],
)
def test_unusable_frames_carry_a_code(kw: dict, code: str, words: str) -> None:
    f = decode_frame(KEYS["agentview"], 5, 0.0, **image("agentview", **kw))
    assert not f.ok and f.pixels is None and f.code == code
    assert f.reason.startswith(f"{code}: agentview: ") and words in f.reason


def test_inconsistent_step_and_zero_stamp_are_malformed() -> None:
    fields = image("agentview")
    fields["step"] = 3 * 84 - 1
    assert decode_frame(KEYS["agentview"], 5, 0.0, **fields).code == CAMERA_MALFORMED
    fields = image("agentview")
    fields["data"] = fields["data"][:-1]
    assert decode_frame(KEYS["agentview"], 5, 0.0, **fields).code == CAMERA_MALFORMED
    f = decode_frame(KEYS["agentview"], 0, 0.0, **image("agentview"))
    assert f.code == CAMERA_MALFORMED and "stamp is zero" in f.detail


# --- sets ---------------------------------------------------------------------------------------
def test_lockstep_stamps_give_one_set_per_step_each_piece_used_once() -> None:
    inp = make_inputs()
    sets = []
    for k in range(3):
        ns = (10 + k) * S // 20
        for name in inp.names[:-1]:  # all but the last camera: no set yet
            payload = (
                frame(name, ns)
                if name in CAMS
                else ((ARM + FINGERS, JOINTS) if name == JOINT_STATES else (POS, QUAT))
            )
            assert inp.add(name, ns, payload, "robot0_base") is None
        sets.append(inp.add(CAMS[-1], ns, frame(CAMS[-1], ns)))
    assert all(
        s is not None and {p[0] for p in s.values()} == {(10 + k) * S // 20} for k, s in enumerate(sets)
    )
    assert inp.sync.dropped == 0 and inp.sync.late == 0 and inp.sync.last_stamp_ns == 12 * S // 20


def test_fresh_set_sync_takes_the_newest_and_counts_superseded_pieces() -> None:
    sync = FreshSetSync(("a", "b"))
    assert sync.add("a", 1, "a1") is None
    assert sync.add("a", 2, "a2") is None  # a1 never used
    assert sync.add("b", 3, "b3") == {"a": "a2", "b": "b3"}
    assert sync.dropped == 1
    assert sync.add("b", 3, "b3 again") is None and sync.late == 1
    with pytest.raises(KeyError, match="not synchronized"):
        sync.add("c", 4, None)


def test_fresh_set_sync_keeps_a_newer_unused_piece_for_the_next_set() -> None:
    """Frames that come after the next step's proprioception (the sim bridge's real time: frames
    render ~50 ms after their stamp): the set of step 0 uses the proprio of step 0; the proprio
    of step 1, already there, stays new, so step 1's frame completes step 1's set at once instead
    of waiting for step 2's proprio (which would decide every step a period late from then on)."""
    sync = FreshSetSync(("proprio", "cam"))
    assert sync.add("proprio", 0, "p0") is None
    assert sync.add("proprio", 50, "p1") is None
    assert sync.add("cam", 0, "c0") == {"proprio": "p0", "cam": "c0"}
    assert sync.add("cam", 50, "c1") == {"proprio": "p1", "cam": "c1"}, "step 1 decided on its frame"
    assert sync.add("proprio", 100, "p2") is None and sync.add("cam", 100, "c2") == {
        "proprio": "p2",
        "cam": "c2",
    }
    assert sync.dropped == 0


# --- building ------------------------------------------------------------------------------------
def test_good_set_builds_the_packed_observation_in_spec_order() -> None:
    inp = make_inputs()
    pieces = feed(inp, 2 * S)
    res = inp.build(pieces, 2.01)
    assert res.ok and res.reason == "" and res.stamp == 2.0
    obs = res.obs
    assert sorted(obs) == ["agentview_image", "low_dim", "robot0_eye_in_hand_image"]
    want = ObsSpec(SPEC.keys).flatten(
        {
            "robot0_base_to_eef_pos": POS,
            "robot0_base_to_eef_quat": QUAT,
            "robot0_gripper_qpos": JOINTS[7:],
            "robot0_joint_pos": JOINTS[:7],
        }
    )
    np.testing.assert_array_equal(obs["low_dim"], want)
    feeds = pixel_feeds(SPEC, obs)  # what the backends take
    assert feeds["agentview_image"].shape == (1, 84, 84, 3) and feeds["proprio"].shape == (1, 16)


def test_joint_state_without_the_arm_joints_is_unusable() -> None:
    inp = make_inputs()
    feed(inp, 2 * S, skip=(JOINT_STATES,))
    pieces = inp.add(JOINT_STATES, 2 * S, (FINGERS, JOINTS[7:]))
    res = inp.build(pieces, 2.0)
    assert not res.ok and res.reason.startswith(PROPRIO_UNUSABLE) and "lacks arm joints" in res.reason


def reason_of(inp: PixelObservationInputs, pieces, now_s: float) -> str:
    res = inp.build(pieces, now_s)
    assert not res.ok and res.obs is None
    return res.reason


def test_missing_camera_never_received() -> None:
    inp = make_inputs()
    feed(inp, 2 * S, skip=("robot0_eye_in_hand",))
    reason = reason_of(inp, inp.latest, 2.0)
    assert reason == f"{CAMERA_MISSING}: robot0_eye_in_hand: no frame received"


def test_missing_camera_that_stopped() -> None:
    inp = make_inputs()
    feed(inp, 2 * S)
    for k in range(1, 6):  # eye in hand stops; the rest keeps coming at 20 Hz
        feed(inp, 2 * S + k * S // 20, skip=("robot0_eye_in_hand",))
    reason = reason_of(inp, inp.latest, 2.25 + 0.01)
    assert reason.startswith(f"{CAMERA_MISSING}: robot0_eye_in_hand: no frame for 0.260 s")


def test_frozen_stream_repeats_a_stamp() -> None:
    inp = make_inputs()
    feed(inp, 2 * S)
    inp.add(JOINT_STATES, 2 * S + S // 20, (ARM + FINGERS, JOINTS))
    inp.add(EE_POSE_BASE, 2 * S + S // 20, (POS, QUAT))
    inp.add("agentview", 2 * S + S // 20, frame("agentview", 2 * S + S // 20))
    pieces = inp.add("robot0_eye_in_hand", 2 * S, frame("robot0_eye_in_hand", 2 * S, received_s=2.05))
    assert pieces is not None  # every piece arrived again: the set is decided on, and holds
    reason = reason_of(inp, pieces, 2.06)
    assert reason.startswith(f"{CAMERA_FROZEN}: robot0_eye_in_hand: header stamp 2.000 s repeats")
    assert inp.sync.late == 1
    # the next frame with a newer stamp is usable again
    pieces = feed(inp, 2 * S + 2 * S // 20)
    assert inp.build(pieces, 2.11).ok


def test_wrong_size_and_wrong_encoding_hold() -> None:
    inp = make_inputs()
    pieces = feed(inp, 2 * S, agentview={"size": 96}, robot0_eye_in_hand={"encoding": "mono8"})
    reason = reason_of(inp, pieces, 2.0)
    parts = reason.split("; ")
    assert parts[0].startswith(f"{CAMERA_WRONG_SIZE}: agentview: 96x96")
    assert parts[1].startswith(f"{CAMERA_WRONG_ENCODING}: robot0_eye_in_hand: encoding 'mono8'")


def test_late_frame_holds() -> None:
    inp = make_inputs(max_age_s=0.25)
    inp.add(JOINT_STATES, 5 * S, (ARM + FINGERS, JOINTS))
    inp.add(EE_POSE_BASE, 5 * S, (POS, QUAT))
    inp.add("agentview", 5 * S, frame("agentview", 5 * S))
    old = 4 * S  # stamped a second ago, received now
    pieces = inp.add("robot0_eye_in_hand", old, frame("robot0_eye_in_hand", old, received_s=5.0))
    reason = reason_of(inp, pieces, 5.0)
    assert reason == f"{CAMERA_LATE}: robot0_eye_in_hand: frame 1.000 s old (> 0.25 s)"


def test_skew_over_the_window_holds() -> None:
    inp = make_inputs(max_age_s=0.25, max_skew_s=0.05)
    inp.add(JOINT_STATES, 5 * S, (ARM + FINGERS, JOINTS))
    inp.add(EE_POSE_BASE, 5 * S, (POS, QUAT))
    inp.add("agentview", 5 * S, frame("agentview", 5 * S))
    ns = 5 * S - S // 10  # 0.1 s older: young enough, but out of sync
    pieces = inp.add("robot0_eye_in_hand", ns, frame("robot0_eye_in_hand", ns, received_s=5.0))
    reason = reason_of(inp, pieces, 5.0)
    assert reason.startswith(f"{OBSERVATION_SKEW}: stamps spread 0.100 s > 0.05 s")
    # within the window it acts
    ns = 5 * S + S // 50
    inp2 = make_inputs(max_skew_s=0.05)
    feed(inp2, 5 * S)
    inp2.add("robot0_eye_in_hand", ns, frame("robot0_eye_in_hand", ns))
    assert inp2.build(inp2.latest, 5.03).ok


def test_proprio_missing_and_wrong_frame_hold() -> None:
    inp = make_inputs(base_frame="fr3_link0")
    feed(inp, 2 * S, skip=(EE_POSE_BASE,))
    reason = reason_of(inp, inp.latest, 2.0)
    assert reason == f"{PROPRIO_UNUSABLE}: ee_pose_base missing"
    pieces = inp.add(EE_POSE_BASE, 2 * S, (POS, QUAT), "world")
    reason = reason_of(inp, pieces, 2.0)
    assert reason == (
        f"{PROPRIO_UNUSABLE}: ee_pose_base in frame 'world', "
        "the pixel policy needs the robot base frame 'fr3_link0'"
    )


def test_bad_construction_is_refused() -> None:
    builder = ObservationBuilder(ObsSpec(SPEC.keys), 0.25, 0.05, FINGERS, (1.0, 1.0), arm_joint_names=ARM)
    with pytest.raises(ValueError, match="needs a spec with cameras"):
        PixelObservationInputs(ObsSpec(SPEC.keys), builder)
    with pytest.raises(ValueError, match="arm_joint_names must be 7 distinct names"):
        ObservationBuilder(ObsSpec(SPEC.keys), 0.25, 0.05, FINGERS, (1.0, 1.0), arm_joint_names=ARM[:6])
    inp = make_inputs()
    with pytest.raises(TypeError, match="must be a CameraFrame"):
        inp.add("agentview", 1, np.zeros((84, 84, 3), np.uint8))
    with pytest.raises(KeyError, match="unknown observation piece"):
        inp.add("object_poses", 1, None)


def test_backed_up_queues_still_pair_pieces_of_one_moment() -> None:
    """Cameras keep fewer queued messages than the proprio topics: under load the node takes four
    camera frames (ticks 1-4) before the proprio of tick 1; the set pairs tick 1 with tick 1."""
    inp = make_inputs()
    ticks = [2 * S + k * S // 20 for k in range(1, 5)]
    for ns in ticks:
        for cam in CAMS:
            assert inp.add(cam, ns, frame(cam, ns)) is None
    inp.add(JOINT_STATES, ticks[0], (ARM + FINGERS, JOINTS))
    pieces = inp.add(EE_POSE_BASE, ticks[0], (POS, QUAT), "robot0_base")
    assert pieces is not None and {p[0] for p in pieces.values()} == {ticks[0]}
    assert inp.build(pieces, ticks[-1] / S).ok
    assert inp.sync.dropped == 0  # the newer frames are still to be used
    # The proprio catches up to tick 4: that set takes each camera's tick 4; ticks 2-3 went unused.
    inp.add(JOINT_STATES, ticks[-1], (ARM + FINGERS, JOINTS))
    pieces = inp.add(EE_POSE_BASE, ticks[-1], (POS, QUAT), "robot0_base")
    assert pieces is not None and {p[0] for p in pieces.values()} == {ticks[-1]}
    assert inp.sync.dropped == 2 * 2


def test_constant_camera_latency_is_matched_not_skewed() -> None:
    """A camera 100 ms behind: its frames pair with the proprio of their own moment."""
    inp = make_inputs(max_skew_s=0.01)
    sets = []
    for k in range(10):
        ns = 2 * S + k * S // 20
        inp.add(JOINT_STATES, ns, (ARM + FINGERS, JOINTS))
        inp.add(EE_POSE_BASE, ns, (POS, QUAT), "robot0_base")
        inp.add("agentview", ns, frame("agentview", ns))
        old = ns - S // 10
        sets.append(inp.add("robot0_eye_in_hand", old, frame("robot0_eye_in_hand", old, received_s=ns / S)))
    last = sets[-1]
    assert last is not None and len({p[0] for p in last.values()}) == 1  # all from one moment
    assert inp.build(last, (2 * S + 9 * S // 20) / S).ok
