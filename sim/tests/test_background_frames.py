"""Frames rendered in the background (``RobomimicEnv.frames_in_background``,
``expo_sim.envs.background_frames``): what the sim bridge's real time publishes while its physics
runs on. The frames must be the step's own, bit for bit, even while the env steps on during the
render; a capture that waits is replaced by a newer one (counted); callbacks that fail are
counted and rendering goes on."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from expo_sim.envs.robosuite_env import make_env
from expo_sim.envs.substep_physics import SubstepPhysics

SIZE = 48
CAMS = ("agentview", "robot0_eye_in_hand")


@pytest.fixture(scope="module")
def live_env():
    env = make_env("lift", obs="pixels", camera_size=SIZE)
    yield env
    env.close()


class Collector:
    """on_frame / on_done that keep what they get (called from the worker threads)."""

    def __init__(self) -> None:
        self.frames: dict[tuple[object, str], np.ndarray] = {}
        self.done: list[object] = []
        self.order: list[tuple[object, str]] = []
        self.lock = threading.Lock()

    def on_frame(self, tag: object, cam: str, frame: np.ndarray) -> None:
        with self.lock:
            self.frames[(tag, cam)] = frame
            self.order.append((tag, cam))

    def on_done(self, tag: object) -> None:
        with self.lock:
            assert all((tag, c) in self.frames for c in CAMS), "on_done before the capture's frames"
            self.done.append(tag)


@pytest.mark.parametrize("parallel", [False, True], ids=["one-thread", "thread-per-camera"])
def test_frames_are_the_captured_states_while_the_env_steps_on(live_env, parallel: bool) -> None:
    """Each capture's frames are those the live env's step returned for that state, though the
    background env stepped on before they rendered: a held capture keeps the workers busy, the
    state is captured behind it, the env steps, and only then are the workers let go. Across an
    episode's reset."""
    got = Collector()
    gate, holding = threading.Event(), threading.Event()

    def on_frame(tag: object, cam: str, frame: np.ndarray) -> None:
        if tag == "hold":
            holding.set()
            assert gate.wait(30.0)
            return
        got.on_frame(tag, cam, frame)

    def on_done(tag: object) -> None:
        if tag != "hold":
            got.on_done(tag)

    env = make_env("lift", obs="pixels", camera_size=SIZE)
    try:
        frames = env.frames_in_background(on_frame, on_done, parallel=parallel)
        assert env.frames_deferred
        rng = np.random.default_rng(11)
        expected: dict[tuple[object, str], np.ndarray] = {}
        for seed in (3, 4):
            live, _ = live_env.reset(seed=seed)
            obs, _ = env.reset(seed=seed)
            assert set(obs) == {"low_dim"}, "the step renders nothing itself"
            for t in range(4):
                gate.clear()
                holding.clear()
                frames.capture("hold")
                assert holding.wait(30.0)
                frames.capture((seed, t))  # waits behind the held render
                expected.update({((seed, t), c): live[f"{c}_image"] for c in CAMS})
                a = rng.uniform(-1, 1, 7)
                env.step(a)  # the physics moves on before the capture renders
                live, *_ = live_env.step(a)
                assert (seed, t) not in got.done
                gate.set()
                assert frames.wait_idle(30.0)
        assert frames.dropped == 0 and frames.captured == frames.rendered == 16
        assert set(got.frames) == set(expected) and len(got.done) == 8
        for key, frame in expected.items():
            np.testing.assert_array_equal(got.frames[key], frame, err_msg=str(key))
            assert got.frames[key].dtype == np.uint8 and got.frames[key].flags.c_contiguous
        if not parallel:  # one thread: the cameras in their order
            assert [c for _, c in got.order[:2]] == list(CAMS)
        with pytest.raises(ValueError, match="already"):
            env.frames_in_background(got.on_frame)
        with pytest.raises(ValueError, match="frames_in_background"):
            env.load_model(env.model_xml)
    finally:
        gate.set()
        env.close()
    with pytest.raises(RuntimeError, match="closed"):
        frames.capture("late")
    frames.close()  # idempotent


def test_substep_periods_render_as_env_step(live_env) -> None:
    """The realtime path: a period run in chunks (SubstepPhysics), captured at its end, renders
    the frames env.step renders for the same action."""
    got = Collector()
    env = make_env("lift", obs="pixels", camera_size=SIZE)
    try:
        frames = env.frames_in_background(got.on_frame, got.on_done)
        physics = SubstepPhysics(env, 5)
        live_env.reset(seed=8)
        env.reset(seed=8)
        physics.reset()
        rng = np.random.default_rng(12)
        for t in range(4):
            a = rng.uniform(-1, 1, 7)
            live, *_ = live_env.step(a)
            physics.set_action(a)
            while physics.chunk() is None:
                pass
            frames.capture(t)
            assert frames.wait_idle(30.0)
            for cam in CAMS:
                np.testing.assert_array_equal(
                    got.frames[(t, cam)], live[f"{cam}_image"], err_msg=f"{cam} {t}"
                )
    finally:
        env.close()


def test_a_waiting_capture_is_replaced_by_a_newer_one() -> None:
    """While the worker renders capture 1, captures 2 and 3 arrive: 2 waits, 3 replaces it (one
    drop); 1 and 3 are rendered, in that order. A failing callback is counted, not fatal, and
    its capture gets no on_done."""
    release = threading.Event()
    started = threading.Event()
    got = Collector()

    def on_frame(tag: object, cam: str, frame: np.ndarray) -> None:
        if tag == 1 and cam == CAMS[0]:
            started.set()
            assert release.wait(30.0)
        if tag == 3 and cam == CAMS[0]:
            raise RuntimeError("publisher gone")
        got.on_frame(tag, cam, frame)

    env = make_env("lift", obs="pixels", camera_size=SIZE)
    try:
        frames = env.frames_in_background(on_frame, got.done.append)
        env.reset(seed=1)
        frames.capture(1)
        assert started.wait(30.0)
        frames.capture(2)
        frames.capture(3)
        assert frames.dropped == 1 and not frames.wait_idle(0.05)
        release.set()
        assert frames.wait_idle(30.0)
        # 3's first frame was not handed over: no on_done for it
        assert got.done == [1] and frames.rendered == 2 and frames.captured == 3
        assert (3, CAMS[1]) in got.frames and (3, CAMS[0]) not in got.frames
        assert frames.callback_errors == 1 and "publisher gone" in str(frames.last_error)
    finally:
        release.set()
        env.close()


def test_bad_cameras_are_refused(live_env) -> None:
    from expo_sim.envs.background_frames import BackgroundFrames

    sim = live_env.robosuite_env.sim
    with pytest.raises(ValueError, match="at least one camera"):
        BackgroundFrames(sim, SIZE, (), lambda *a: None)
    with pytest.raises(ValueError, match="'nocam' is not in the model"):
        BackgroundFrames(sim, SIZE, ("nocam",), lambda *a: None)
    state_env = make_env("lift")
    try:
        with pytest.raises(ValueError, match="no camera"):
            state_env.frames_in_background(lambda *a: None)
    finally:
        state_env.close()


def test_a_render_failure_stops_the_workers_and_capture_says_so(monkeypatch) -> None:
    """A GL error in a worker: the workers stop, the waiting capture is dropped, and the next
    capture raises with the cause (the caller logs it) instead of queueing in silence."""
    import expo_sim.envs.background_frames as bf

    real = bf.render_upright

    def flaky(ctx, camera, side):
        if camera == CAMS[1]:
            raise RuntimeError("EGL context lost")
        return real(ctx, camera, side)

    monkeypatch.setattr(bf, "render_upright", flaky)
    got = Collector()
    env = make_env("lift", obs="pixels", camera_size=SIZE)
    try:
        frames = env.frames_in_background(got.on_frame, got.on_done, parallel=True)
        env.reset(seed=2)
        frames.capture(1)
        assert frames.wait_idle(30.0)
        assert got.done == [] and frames.rendered == 0
        with pytest.raises(RuntimeError, match="rendering failed: EGL context lost"):
            frames.capture(2)
    finally:
        env.close()


@pytest.mark.parametrize("parallel", [False, True], ids=["one-thread", "thread-per-camera"])
def test_close_during_a_render_finishes_it_and_drops_the_waiting_capture(parallel: bool) -> None:
    """close() while a capture renders and another waits: the render in progress is finished and
    handed over, the waiting one is dropped (counted), the threads stop; with one thread per
    camera as with one."""
    gate, holding = threading.Event(), threading.Event()
    got = Collector()

    def on_frame(tag: object, cam: str, frame: np.ndarray) -> None:
        holding.set()
        assert gate.wait(30.0)
        got.on_frame(tag, cam, frame)

    env = make_env("lift", obs="pixels", camera_size=SIZE)
    try:
        frames = env.frames_in_background(on_frame, got.on_done, parallel=parallel)
        env.reset(seed=5)
        frames.capture(1)
        assert holding.wait(30.0)
        frames.capture(2)
        frames.capture(3)  # replaces 2
        closer = threading.Thread(target=frames.close)
        closer.start()
        closer.join(0.2)
        assert closer.is_alive(), "close waits for the render in progress"
        gate.set()
        closer.join(30.0)
        assert not closer.is_alive()
        assert got.done == [1] and {t for t, _ in got.frames} == {1}
        assert frames.dropped == 2 and frames.rendered == 1 and frames.captured == 3
        with pytest.raises(RuntimeError, match="closed"):
            frames.capture(4)
    finally:
        gate.set()
        env.close()
