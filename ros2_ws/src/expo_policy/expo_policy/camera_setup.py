"""What the policy node sets up for a pixel policy: inputs, watched inputs, the camera callback.

No ROS message types are imported here (the callback reads the Image's fields), so this is
testable without DDS. The node calls :func:`pixel_inputs` in configure once the backend has
loaded weights with cameras (``backend.obs_spec``), :func:`watched_inputs` when it creates its
watchdog, and :func:`frame_from_image` in each camera's subscription callback.
"""

from __future__ import annotations

from typing import Any

from expo_core.spec import ObsSpec, RgbKey, task_obs_spec
from expo_ros.conversions import stamp_ns

from .camera_frames import CameraFrame, decode_frame
from .camera_inputs import PixelObservationInputs
from .obs_builder import ObservationBuilder
from .params import PIXEL_WATCHED_INPUTS, PolicyNodeConfig


def pixel_inputs(cfg: PolicyNodeConfig, spec: ObsSpec) -> PixelObservationInputs:
    """The pixel inputs for the checkpoint's ``spec``; ValueError naming the parameter when the
    checkpoint's spec is not one this node can observe for ``cfg.task``."""
    want = task_obs_spec(cfg.task, "pixels").keys
    if spec.keys != want:
        have = [(k.name, k.dim) for k in spec.keys]
        raise ValueError(
            f"parameter 'checkpoint': the pixel policy's proprio is {have}; the node fills "
            f"task '{cfg.task}''s pixel spec {[(k.name, k.dim) for k in want]}"
        )
    unknown = [c for c in spec.cameras if c not in cfg.camera_topics]
    if unknown:
        raise ValueError(
            f"parameter 'checkpoint': cameras {unknown} have no cameras.<name>.topic parameter; "
            f"known cameras: {sorted(cfg.camera_topics)}"
        )
    builder = ObservationBuilder(
        ObsSpec(spec.keys),
        cfg.obs_max_age_s,
        cfg.obs_max_skew_s,
        cfg.finger_joint_names,
        cfg.finger_signs,
        arm_joint_names=cfg.arm_joint_names,
    )
    return PixelObservationInputs(spec, builder, base_frame=cfg.base_frame)


def watched_inputs(cfg: PolicyNodeConfig, spec: ObsSpec) -> dict[str, tuple[float, bool]]:
    """Watchdog inputs of a pixel policy: name -> (receive-age limit [s], required)."""
    out = {name: (cfg.watchdog_max_age_s[name], req) for name, req in PIXEL_WATCHED_INPUTS.items()}
    for cam in spec.cameras:  # optional: a missing camera holds through camera_inputs' own check
        out[cam] = (cfg.obs_max_age_s, False)
    return out


def frame_from_image(key: RgbKey, msg: Any, now_s: float) -> CameraFrame:
    """A sensor_msgs/Image -> the checked frame (never raises; see camera_frames)."""
    return decode_frame(
        key,
        stamp_ns(msg.header.stamp),
        now_s,
        height=msg.height,
        width=msg.width,
        encoding=msg.encoding,
        step=msg.step,
        data=msg.data,
        msg=msg,
    )
