"""Camera frames of captured simulator states, rendered in a worker thread while the caller's
thread steps the physics on: the sim's cameras as a real arm's, which stream on their own.

The sim bridge in real time runs physics on wall time, one 10 ms chunk after another; two 84x84
frames cost ~34 ms of software EGL. Rendered inside the period's step they stall the physics and
every command waiting to take effect. :class:`BackgroundFrames` takes a copy of what rendering
reads at the period's end (:meth:`~BackgroundFrames.capture`, ~20 us) and renders it in a GL
context of its own on a worker thread (``mjr_render`` releases the GIL); each frame is handed to
``on_frame(tag, camera, frame)`` in that thread as soon as it is rendered.

A camera that cannot keep up drops frames rather than falling behind: the worker renders one
state at a time and keeps at most one waiting; a capture that arrives while one waits replaces
it (counted in ``dropped``), so the frames that go out are always of the newest state it could
render.

What a capture copies (``RENDER_FIELDS``) is what ``mjv_updateScene`` reads of ``mjData`` for a
scene with robosuite's visual flags: the kinematics as the step left them (positions, frames of
bodies, geoms, sites, cameras and lights, tendon paths), not the state recomputed with
``mj_forward`` (robosuite renders after the step's last MuJoCo step, whose kinematics are those
before its integration). A full ``mjData`` copy would take ~0.9 s (robosuite's models reserve a
1.3 GB stack). The frames are the ones the env's own step renders, bit for bit (tested).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np

from expo_sim.envs.helper_render import free_context, new_context, render_upright

#: mjData arrays a render reads (every one present in the installed MuJoCo is copied).
RENDER_FIELDS = (
    "qpos",
    "qvel",
    "act",
    "mocap_pos",
    "mocap_quat",
    "xpos",
    "xquat",
    "xmat",
    "xipos",
    "ximat",
    "xanchor",
    "xaxis",
    "geom_xpos",
    "geom_xmat",
    "site_xpos",
    "site_xmat",
    "cam_xpos",
    "cam_xmat",
    "light_xpos",
    "light_xdir",
    "subtree_com",
    "ten_wrapadr",
    "ten_wrapnum",
    "ten_length",
    "wrap_obj",
    "wrap_xpos",
    "actuator_length",
)

OnFrame = Callable[[Hashable, str, np.ndarray], None]
OnDone = Callable[[Hashable], None]


class BackgroundFrames:
    """Frames of ``cameras`` (``side`` x ``side``, upright rgb ``(H, W, 3)`` uint8) of the states
    of robosuite MjSim ``sim`` captured with :meth:`capture`, rendered in worker threads and given
    to ``on_frame(tag, camera, frame)`` there as each is rendered; ``on_done(tag)`` follows the
    capture's last frame (not when an ``on_frame`` of the capture raised).

    ``parallel``: one worker thread (and GL context) per camera, all rendering the same captured
    state at once (lower latency where cores are free); otherwise one thread renders the cameras
    in the given order.

    Create it before an episode starts (creating a render context recomputes the kinematics) and
    :meth:`close` it before the simulation is freed. The callbacks run in the worker threads;
    what they raise is counted in ``callback_errors`` (the first kept in ``last_error``) and
    rendering goes on."""

    def __init__(
        self,
        sim: Any,
        side: int,
        cameras: Sequence[str],
        on_frame: OnFrame,
        on_done: OnDone | None = None,
        parallel: bool = False,
    ) -> None:
        import mujoco

        if not cameras:
            raise ValueError("BackgroundFrames needs at least one camera")
        self.sim, self.side, self.cameras = sim, int(side), tuple(cameras)
        self._on_frame, self._on_done = on_frame, on_done
        model = sim.model._model
        for cam in self.cameras:
            if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, cam) < 0:
                raise ValueError(f"camera '{cam}' is not in the model")
        self._fields = tuple(f for f in RENDER_FIELDS if hasattr(sim.data._data, f))
        self._copies = [mujoco.MjData(model) for _ in range(2)]  # one rendered, one waiting
        self._cv = threading.Condition()
        self._job: tuple[int, int, Hashable] | None = None  # (number, copy index, tag) rendering
        self._remaining = 0  # workers still rendering the job
        self._waiting: tuple[int, Hashable] | None = None  # (copy index, tag) captured, not started
        self._jobs = 0
        self._job_ok = True
        self._closed = False
        self.captured = self.rendered = self.dropped = self.callback_errors = 0
        self.last_error: BaseException | None = None  # the first error of a callback
        self._failed: BaseException | None = None  # a render error: the workers stopped
        groups = [(cam,) for cam in self.cameras] if parallel else [self.cameras]
        self._threads = []
        for i, group in enumerate(groups):
            started = threading.Event()
            errors: list[BaseException] = []
            t = threading.Thread(
                target=self._run, args=(group, started, errors), name=f"expo-frames-{i}", daemon=True
            )
            t.start()
            started.wait()
            self._threads.append(t)
            if errors:
                self.close()
                raise RuntimeError(f"BackgroundFrames: no render context: {errors[0]}") from errors[0]

    def capture(self, tag: Hashable) -> None:
        """Copy the simulation's current state to be rendered (the caller's thread, ~20 us); its
        frames will be passed to ``on_frame`` with ``tag``. Replaces a capture still waiting."""
        with self._cv:
            if self._failed is not None:
                raise RuntimeError(f"BackgroundFrames: rendering failed: {self._failed}") from self._failed
            if self._closed:
                raise RuntimeError("BackgroundFrames is closed")
            index = 1 if self._job is not None and self._job[1] == 0 else 0
            if self._waiting is not None:
                self.dropped += 1  # its copy (never the one rendered) is overwritten
            src, dst = self.sim.data._data, self._copies[index]
            dst.time = src.time
            for name in self._fields:
                getattr(dst, name)[...] = getattr(src, name)
            self.captured += 1
            if self._job is None:
                self._start(index, tag)
            else:
                self._waiting = (index, tag)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every capture so far is rendered (or dropped) and handed over; False on
        timeout."""
        with self._cv:
            return self._cv.wait_for(lambda: self._job is None and self._waiting is None, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Finish the render in progress, drop a waiting capture, free the contexts in their
        threads and stop them. Idempotent."""
        with self._cv:
            if not self._closed and self._waiting is not None:
                self.dropped += 1
            self._closed, self._waiting = True, None
            self._cv.notify_all()
        for t in self._threads:
            t.join(timeout)

    def _start(self, index: int, tag: Hashable) -> None:  # with self._cv held
        self._jobs += 1
        self._job, self._remaining = (self._jobs, index, tag), len(self._threads)
        self._job_ok = True  # no on_frame of the job raised: on_done follows its last frame
        self._cv.notify_all()

    def _run(self, cameras: tuple[str, ...], started: threading.Event, errors: list) -> None:
        try:
            ctx = new_context(self.sim, self.side)
        except Exception as e:  # noqa: BLE001 (reported to the constructor's caller)
            errors.append(e)
            started.set()
            return
        started.set()
        ctx.data = SimpleNamespace(_data=None)  # what the context reads as sim.data: a copy
        done = 0  # number of the last job this worker rendered
        try:
            while True:
                with self._cv:
                    self._cv.wait_for(
                        lambda d=done: self._closed or (self._job is not None and self._job[0] != d)
                    )
                    if self._job is None or self._job[0] == done:
                        return  # closed, nothing left to render
                    done, index, tag = self._job
                ctx.data._data = self._copies[index]
                try:
                    for cam in cameras:
                        if not self._call(self._on_frame, tag, cam, render_upright(ctx, cam, self.side)):
                            self._job_ok = False
                except BaseException as e:  # noqa: BLE001 (a GL failure: capture() raises it from now on)
                    with self._cv:
                        self.dropped += self._waiting is not None
                        self._failed, self._closed, self._waiting = e, True, None
                self._finished(tag)
        finally:
            free_context(ctx)

    def _finished(self, tag: Hashable) -> None:
        """One worker is done with the current job; the last one hands it over (``on_done``),
        then starts the waiting capture."""
        with self._cv:
            self._remaining -= 1
            if self._remaining:
                return
        if self._on_done is not None and self._failed is None and self._job_ok:
            self._call(self._on_done, tag)
        with self._cv:
            self.rendered += self._failed is None
            self._job = None
            if self._waiting is not None:
                self._start(*self._waiting)
                self._waiting = None
            self._cv.notify_all()

    def _call(self, fn: Callable[..., None], *args: Any) -> bool:
        """``fn(*args)``; False (counted, the first error kept) if it raised."""
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 (the caller's callback: counted, rendering goes on)
            with self._cv:
                self.callback_errors += 1
                self.last_error = self.last_error or e
            return False
        return True
