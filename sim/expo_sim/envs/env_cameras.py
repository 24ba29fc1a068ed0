"""The camera half of :class:`~expo_sim.envs.robosuite_env.RobomimicEnv`: frames rendered on
demand instead of inside robosuite's step (:meth:`CamerasMixin.defer_frames`,
:meth:`CamerasMixin.render_frame`, :meth:`CamerasMixin.render_frames`), in worker threads from copies
of the state (:meth:`CamerasMixin.frames_in_background`), and the offscreen render context's
settings and release.

A mixin, not a class of its own: it renders the env's robosuite simulation (``self._env``) with the
env's cameras and size (``self.config``) and keeps its state in attributes the env's constructor
sets (``_frames_deferred``, ``_helper``, ``_background``, ``_configured_ctx``); it sets
``_needs_reset`` where a new render context recomputed the kinematics.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from expo_sim.envs.background_frames import BackgroundFrames, OnDone, OnFrame
from expo_sim.envs.helper_render import HelperRenderer, configure_offscreen


class CamerasMixin:
    """Frames on demand and in the background; mixed into :class:`RobomimicEnv`."""

    def defer_frames(self, parallel: bool = False) -> None:
        """From now on, render no camera inside :meth:`step` and :meth:`reset`: their observation
        and ``info["obs_dict"]`` carry no ``<camera>_image``; :meth:`render_frame` renders one
        camera's frame of the current state when the caller wants it.

        The frames are the ones the step would have returned, bit for bit (tested): robosuite
        renders its cameras after the step's last physics sub-step and nothing moves the scene
        between that and the step's return. What this is for: the sim bridge publishes the
        proprioception at once and each frame as soon as it is rendered (a render costs ~17 ms on
        software EGL at 84x84), so a policy encodes one camera while the next one renders, as it
        would with real cameras that stream on their own.

        ``parallel``: a second render context in a worker thread
        (:class:`~expo_sim.envs.helper_render.HelperRenderer`), so that :meth:`render_frames`
        renders the last camera there while this thread renders the others (two frames in ~19 ms
        instead of ~33 on two cores). Call it before an episode starts (creating the context
        recomputes the kinematics)."""
        if not self.config.cameras:
            raise ValueError("defer_frames: this env renders no camera")
        self._frames_deferred = True
        self._disable_camera_observables()
        if parallel and self._helper is None and len(self.config.cameras) > 1:
            self._helper = HelperRenderer(self._env.sim, self.config.camera_size)
            self._needs_reset = True

    def frames_in_background(
        self, on_frame: OnFrame, on_done: OnDone | None = None, parallel: bool = False
    ) -> BackgroundFrames:
        """Defer the frames (:meth:`defer_frames`) and render them in worker threads of their own:
        ``frames.capture(tag)`` on the returned
        :class:`~expo_sim.envs.background_frames.BackgroundFrames` copies the current state
        (~20 us); its frames reach ``on_frame(tag, camera, frame)`` in a worker thread as each is
        rendered, then ``on_done(tag)``, while this thread steps on (``parallel``: one thread per
        camera). What the sim bridge's real time uses: physics runs on while the cameras render,
        as a real arm's cameras stream on their own. The frames are the ones the step would have
        returned, bit for bit (tested). Call it before an episode starts; :meth:`close` stops it."""
        if self._background is not None:
            raise ValueError("frames_in_background: this env renders in the background already")
        self.defer_frames()
        self._background = BackgroundFrames(
            self._env.sim, self.config.camera_size, self.config.cameras, on_frame, on_done, parallel
        )
        self._needs_reset = True
        return self._background

    @property
    def frames_deferred(self) -> bool:
        return self._frames_deferred

    def render_frame(self, camera: str) -> np.ndarray:
        """``camera``'s frame of the current state, ``(H, W, 3)`` uint8 RGB, upright (the layout
        of ``<camera>_image``)."""
        self._check_camera(camera)
        self._configure_renderer()
        side = self.config.camera_size
        raw = self._env.sim.render(camera_name=camera, width=side, height=side, depth=False)
        # MjSim.render reads OpenGL's rows (row 0 = bottom) whatever robosuite's IMAGE_CONVENTION;
        # the observable flips them for "opencv" and _obs_dict for "opengl": upright either way.
        return np.ascontiguousarray(raw[::-1])

    def render_frames(self, cameras: tuple[str, ...]) -> Iterator[tuple[str, np.ndarray]]:
        """``(camera, frame)`` of each of ``cameras`` for the current state, each as soon as it
        is rendered: with ``defer_frames(parallel=True)`` the last camera renders in the worker
        thread while this one renders the others (it comes last); otherwise one after another."""
        for cam in cameras:
            self._check_camera(cam)
        if self._helper is None or len(cameras) < 2:
            for cam in cameras:
                yield cam, self.render_frame(cam)
            return
        last = self._helper.submit(cameras[-1])
        try:
            for cam in cameras[:-1]:
                yield cam, self.render_frame(cam)
        finally:
            frame = last.result()  # never leave a render running on a state about to change
        yield cameras[-1], frame

    def _check_camera(self, camera: str) -> None:
        if camera not in self.config.cameras:
            raise ValueError(f"camera '{camera}' is not rendered by this env; cameras: {self.config.cameras}")

    def _disable_camera_observables(self) -> None:
        for cam in self.config.cameras:
            self._env.modify_observable(f"{cam}_image", "enabled", False)

    def _configure_renderer(self) -> None:
        """Cheap offscreen rendering (:func:`~expo_sim.envs.helper_render.configure_offscreen`),
        done once per context; the context is made current so that several camera envs in one
        process do not draw into each other's GL context."""
        ctx = getattr(self._env.sim, "_render_context_offscreen", None)
        if ctx is None:
            return
        ctx.gl_ctx.make_current()
        if ctx is self._configured_ctx:
            return
        configure_offscreen(ctx, self.config.camera_size)
        self._configured_ctx = ctx

    def _release_renderer(self) -> None:
        """Before robosuite frees the offscreen context: make it current and drop our reference.

        robosuite frees a context's GL objects in whatever GL context is current; freed later
        (by garbage collection, while another env's context is current) it deletes that other
        env's framebuffers and textures, which then renders garbage."""
        ctx = getattr(self._env.sim, "_render_context_offscreen", None) if self._env.sim else None
        if ctx is not None:
            ctx.gl_ctx.make_current()
        self._configured_ctx = None
