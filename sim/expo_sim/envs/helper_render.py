"""A second offscreen renderer on its own thread: two cameras rendered at once.

On software EGL (Mesa llvmpipe) one 84x84 frame of a robosuite scene costs ~17 ms of a single
core (the Panda's meshes: ~180k triangles through the vertex pipeline, whatever the image size),
and MuJoCo's ``mjr_render`` releases the GIL. A second GL context of the same simulation, current
in a worker thread, renders one camera while the caller's thread renders another: two frames in
~19 ms instead of ~33 on two cores, bit-identical to the primary context's (tested).

An EGL context is current in one thread at a time, so everything this context does (creation,
each render, freeing it) runs in the worker thread. Creating it calls ``sim.forward()`` (robosuite's
render context does), which moves the kinematics to the current positions: create it before an
episode starts, never between a step and its frames.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np


def configure_offscreen(ctx: Any, side: int) -> None:
    """Cheap offscreen rendering for robosuite render context ``ctx``, measured on software EGL
    (llvmpipe): no multisampling and an offscreen buffer of the image size instead of 640x480 (the
    per-frame MSAA resolve of the full buffer cost ~25 ms of ~55), shadows and reflections off.
    Every context of a simulation gets exactly these settings, so that they render alike."""
    import mujoco

    ctx.model.vis.quality.offsamples = 0  # read when the buffer below is (re)made
    ctx.update_offscreen_size(side, side)
    ctx.scn.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
    ctx.scn.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0


def new_context(sim: Any, side: int) -> Any:
    """A render context of robosuite MjSim ``sim`` of its own (current in the calling thread from
    now on), with :func:`configure_offscreen`'s settings; ``sim``'s primary context is left as it
    was. Call it in the thread that will render with it."""
    from robosuite.utils.binding_utils import MjRenderContextOffscreen

    primary = sim._render_context_offscreen
    ctx = MjRenderContextOffscreen(sim, device_id=-1)  # registers itself as the primary
    sim._render_context_offscreen = primary
    configure_offscreen(ctx, side)  # the primary's settings (RobomimicEnv)
    return ctx


def render_upright(ctx: Any, camera: str, side: int) -> np.ndarray:
    """``camera``'s ``side`` x ``side`` frame of what ``ctx.data`` holds, upright ``(H, W, 3)``
    uint8 (OpenGL's rows are bottom first: flipped, as RobomimicEnv.render_frame does)."""
    ctx.gl_ctx.make_current()
    ctx.render(side, side, ctx.model.camera_name2id(camera))
    return np.ascontiguousarray(ctx.read_pixels(side, side)[::-1])


def free_context(ctx: Any) -> None:
    """Free a context made by :func:`new_context`, in its own thread (GL objects are freed in the
    current context)."""
    ctx.gl_ctx.make_current()
    ctx.con.free()
    ctx.gl_ctx.free()


class HelperRenderer:
    """Offscreen frames of ``sim`` (a robosuite MjSim) at ``side`` x ``side`` from a context of
    its own in one worker thread; :meth:`submit` returns a future of an upright ``(H, W, 3)``
    uint8 frame. The primary render context of ``sim`` is left as it was."""

    def __init__(self, sim: Any, side: int) -> None:
        self.sim = sim
        self.side = side
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="expo-render")
        self._ctx = self._pool.submit(self._create).result()

    def _create(self) -> Any:
        return new_context(self.sim, self.side)

    def _render(self, camera: str) -> np.ndarray:
        return render_upright(self._ctx, camera, self.side)

    def submit(self, camera: str) -> Future[np.ndarray]:
        if self._ctx is None:
            raise RuntimeError("HelperRenderer is closed")
        return self._pool.submit(self._render, camera)

    def close(self) -> None:
        """Free the context in its own thread (GL objects are freed in the current context),
        then stop the thread. Idempotent."""
        if self._ctx is None:
            return

        self._pool.submit(free_context, self._ctx).result()
        self._ctx = None
        self._pool.shutdown()
