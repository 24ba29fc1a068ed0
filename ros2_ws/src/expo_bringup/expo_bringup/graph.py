"""The node graph, described once as plain data.

``launch/sim.launch.py`` and ``launch/franka.launch.py`` turn each :class:`NodeSpec` into a
``launch_ros`` ``Node`` (:mod:`expo_bringup.launch_graph`: package, executable, name, namespace,
parameter files then the graph's values, remappings); ``ros2 launch`` is the one way the stack
starts (``make sim`` runs it too). :mod:`expo_bringup.runner` still starts a graph as plain
processes for three older integration tests (see its module doc).

Parameters come from one YAML per node under ``expo_bringup/config`` (keys under
``/**: ros__parameters:``); the graph adds only what a launch argument decides (task, checkpoint,
backend, realtime, sim time). Later ``-p`` values override the files, as in ``ros2 launch``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from expo_core.spec import TASK_OBJECT_DIMS

ParamScalar = bool | int | float | str
ParamValue = ParamScalar | list[bool] | list[int] | list[float] | list[str]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_TOPIC = re.compile(r"^~?/?[A-Za-z_{][A-Za-z0-9_/{}~]*$")


def default_config_dir() -> Path:
    """``expo_bringup/config`` next to this module (installed as package data)."""
    return Path(__file__).resolve().parent / "config"


def _normalize_namespace(ns: str) -> str:
    """'' -> '', 'a' or '/a/' -> '/a'; raises ValueError on invalid ROS names."""
    parts = [p for p in ns.strip("/").split("/") if p]
    for p in parts:
        if not _NAME.match(p):
            raise ValueError(f"namespace '{ns}' has an invalid part '{p}' (letters, digits, _)")
    return "/" + "/".join(parts) if parts else ""


def _check_param(node: str, key: str, value: object) -> None:
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_.]*$", key):
        raise ValueError(f"NodeSpec '{node}': parameter name '{key}' is invalid")
    scalar = (bool, int, float, str)
    if isinstance(value, list):
        kinds = {type(v) for v in value}
        if not value or len(kinds) != 1 or not isinstance(value[0], scalar):
            raise ValueError(
                f"NodeSpec '{node}': parameter '{key}' must be a non-empty list of one scalar type,"
                f" got {value!r}"
            )
    elif not isinstance(value, scalar):
        raise ValueError(f"NodeSpec '{node}': parameter '{key}' must be bool/int/float/str, got {value!r}")


@dataclass(frozen=True)
class NodeSpec:
    """One node of the graph.

    Attributes:
        name: ROS node name (``__node`` remap), letters/digits/underscore.
        package: ROS package that installs ``executable`` (for ``ros2 launch``).
        executable: console script name inside ``package`` (for ``ros2 launch``).
        module: importable Python module whose ``main()`` runs the node (``python -m`` where
            ``package`` is not an ament package, e.g. ``expo_sim``).
        namespace: '' or a ROS namespace; normalized to '/a/b'.
        parameters: name -> value overrides, applied after ``params_files``.
        remappings: ``(from, to)`` topic remaps.
        params_files: absolute paths of parameter YAML files, applied in order.
        env: extra environment variables for the process.
    """

    name: str
    package: str
    executable: str
    module: str
    namespace: str = ""
    parameters: dict[str, ParamValue] = field(default_factory=dict)
    remappings: tuple[tuple[str, str], ...] = ()
    params_files: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for attr in ("name", "package", "executable"):
            if not _NAME.match(getattr(self, attr)):
                raise ValueError(f"NodeSpec.{attr} '{getattr(self, attr)}' must match {_NAME.pattern}")
        if not _MODULE.match(self.module):
            raise ValueError(f"NodeSpec.module '{self.module}' must be a dotted Python module name")
        object.__setattr__(self, "namespace", _normalize_namespace(self.namespace))
        for key, value in self.parameters.items():
            _check_param(self.name, key, value)
        for pair in self.remappings:
            if len(pair) != 2 or not all(isinstance(t, str) and _TOPIC.match(t) for t in pair):
                raise ValueError(f"NodeSpec '{self.name}': remapping {pair!r} must be (from, to) topic names")
        for key, value in self.env.items():
            if not key or "=" in key or not isinstance(value, str):
                raise ValueError(f"NodeSpec '{self.name}': env entry {key!r}={value!r} is invalid")
        # Copies, so a caller's dict changed later cannot change a frozen spec.
        object.__setattr__(self, "parameters", dict(self.parameters))
        object.__setattr__(self, "env", dict(self.env))
        object.__setattr__(self, "remappings", tuple(tuple(p) for p in self.remappings))
        object.__setattr__(self, "params_files", tuple(str(f) for f in self.params_files))

    def adapted(
        self, parameters: dict[str, ParamValue] | None = None, remappings: tuple[tuple[str, str], ...] = ()
    ) -> NodeSpec:
        """A copy with more parameters (winning over its own) and more remappings."""
        return replace(
            self,
            parameters={**self.parameters, **(parameters or {})},
            remappings=(*self.remappings, *remappings),
        )


@dataclass(frozen=True)
class Graph:
    """Nodes started together; names must be unique within a namespace."""

    nodes: tuple[NodeSpec, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", tuple(self.nodes))
        if not self.nodes:
            raise ValueError("Graph.nodes must hold at least one NodeSpec")
        fq = [f"{n.namespace}/{n.name}" for n in self.nodes]
        if len(set(fq)) != len(fq):
            raise ValueError(f"Graph has duplicate node names: {fq}")

    def node(self, name: str) -> NodeSpec:
        """The node called ``name``; KeyError listing the names otherwise."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no node '{name}' in graph; nodes: {[n.name for n in self.nodes]}")

    def with_overrides(self, clock_topic: str | None = None, **per_node: dict[str, ParamValue]) -> Graph:
        """A copy with extra parameters per node name (applied after the YAML files and the
        graph's own values) and, if ``clock_topic`` is given, ``/clock`` remapped to it in every
        node: sim time is one global topic, so two graphs on one ROS domain (tests, several sim
        instances) must each drive their own. Unknown node names raise KeyError."""
        for name in per_node:
            self.node(name)
        remap = (("/clock", clock_topic),) if clock_topic else ()
        return Graph(tuple(n.adapted(per_node.get(n.name), remap) for n in self.nodes))


def format_param(value: ParamValue) -> str:
    """A ``-p`` value as YAML that rcl parses back to the same type (strings JSON-quoted)."""
    return json.dumps(value)


def to_ros_args(node: NodeSpec) -> list[str]:
    """Command-line arguments giving ``node`` its name, namespace, parameters and remaps."""
    args = ["--ros-args", "-r", f"__node:={node.name}"]
    if node.namespace:
        args += ["-r", f"__ns:={node.namespace}"]
    for f in node.params_files:
        args += ["--params-file", f]
    for key, value in node.parameters.items():
        args += ["-p", f"{key}:={format_param(value)}"]
    for src, dst in node.remappings:
        args += ["-r", f"{src}:={dst}"]
    return args


LOCKSTEP_PACING_BACKLOG = 20  # owed learner updates a lockstep bridge lets accumulate


#: ``sim_graph(obs=...)`` values: the policy's observations (docs/pixels.md).
SIM_OBS_KINDS = ("state", "pixels")
#: The frame of the sim bridge's ``ee_pose_base`` (sim_bridge.yaml ``base_frame_id``).
SIM_BASE_FRAME = "robot0_base"
#: The robot base's position in robosuite's world per task (identity rotation; read from the sim,
#: expo_sim.envs.frames): a pixel policy acts on base-frame poses, so its safety box is shifted.
SIM_BASE_POSITION: dict[str, tuple[float, float, float]] = {
    "lift": (-0.56, 0.0, 0.912),
    "square": (-0.56, 0.0, 0.912),
    "can": (-0.5, -0.1, 0.912),
}


def base_frame_workspace(task: str) -> dict[str, list[float]]:
    """``safety.workspace_low/high`` of a pixel policy in ``task``: the default world-frame box
    (SafetyLimits, = policy.yaml) in the robot base frame. ValueError for a task without a known
    base pose."""
    from expo_policy.safety import SafetyLimits

    if task not in SIM_BASE_POSITION:
        raise ValueError(
            f"sim_graph obs 'pixels': no base-frame safety box for task '{task}' (known: "
            f"{sorted(SIM_BASE_POSITION)}); set safety.workspace_low/high for the policy node"
        )
    base, limits = SIM_BASE_POSITION[task], SafetyLimits()
    return {
        "safety.workspace_low": [round(w - b, 4) for w, b in zip(limits.workspace_low, base, strict=True)],
        "safety.workspace_high": [round(w - b, 4) for w, b in zip(limits.workspace_high, base, strict=True)],
    }


def sim_graph(
    task: str = "lift",
    checkpoint: str = "",
    backend: str = "auto",
    realtime: bool = False,
    namespace: str = "",
    config_dir: Path | str | None = None,
    learner: bool = False,
    learner_dir: str = "",
    offline_dataset: str = "",
    intervene: bool = False,
    obs: str = "state",
) -> Graph:
    """Sim bridge + policy node (+ learner) (+ scripted intervener) for one robomimic task.

    Args:
        task: robomimic task (``expo_core.spec.TASK_OBJECT_DIMS``).
        checkpoint: policy checkpoint directory; '' lets the policy node use its configured one.
        backend: inference backend name handed to the policy node (it validates the choice).
        realtime: True runs the bridge at 20 Hz wall time and the policy on its timer; False
            runs lockstep (the bridge waits for each action, sim time as fast as possible).
        namespace: ROS namespace for both nodes ('' = root).
        config_dir: where ``sim_bridge.yaml``, ``policy.yaml`` and ``learner.yaml`` live
            (default: package data).
        learner: add the learner node: it trains on the policy's ``transitions`` starting from
            ``checkpoint`` and streams ``policy_weights`` back (online fine-tuning).
        learner_dir: the learner's directory (``bags/`` segments, ``checkpoints/``, ``tensorboard/``);
            required with ``learner``. A restart with the same directory resumes.
        offline_dataset: robomimic HDF5 for the offline half of the learner's batches ('' = none).
        intervene: add the scripted intervener (``expo_sim.ros.intervener_node``, the task's
            expert takes over when the policy strays; ``intervener.yaml``; tasks with a scripted
            expert) and turn on the policy node's ``intervention.enabled`` (docs/interventions.md).
        obs: ``"state"`` (object poses) or ``"pixels"``: the bridge also renders and publishes
            the cameras (``<camera>/image_raw``) and the base-frame pose (``ee_pose_base``), and
            the policy node checks that pose's frame and gets its safety box in the base frame
            (:func:`base_frame_workspace`: lift, can, square); ``checkpoint`` must then be a
            pixel one (the policy node and the learner take their inputs from it; docs/pixels.md).
    """
    if obs not in SIM_OBS_KINDS:
        raise ValueError(f"sim_graph obs '{obs}' unknown; one of {list(SIM_OBS_KINDS)}")
    if task not in TASK_OBJECT_DIMS:
        raise ValueError(f"sim_graph task '{task}' unknown; supported: {sorted(TASK_OBJECT_DIMS)}")
    pixel_policy = (
        {"observation.base_frame": SIM_BASE_FRAME, **base_frame_workspace(task)} if obs == "pixels" else {}
    )
    if not _NAME.match(backend):
        raise ValueError(f"sim_graph backend '{backend}' must be a plain name such as 'torch'")
    cfg = Path(config_dir) if config_dir is not None else default_config_dir()
    bridge = NodeSpec(
        name="sim_bridge",
        package="expo_sim",
        executable="bridge_node",
        module="expo_sim.ros.bridge_node",
        namespace=namespace,
        parameters={
            "task": task,
            "realtime": bool(realtime),
            **({"observation.kind": "pixels"} if obs == "pixels" else {}),
        },
        params_files=(str((cfg / "sim_bridge.yaml").resolve()),),
    )
    policy = NodeSpec(
        name="policy_node",
        package="expo_policy",
        executable="policy_node",
        module="expo_policy.policy_node",
        namespace=namespace,
        # The bridge drives /clock in both modes, so the policy always runs on sim time.
        parameters={
            "task": task,
            **({"checkpoint": checkpoint} if checkpoint else {}),
            "backend": backend,
            "lockstep": not realtime,
            "use_sim_time": True,
            **({"intervention.enabled": True} if intervene else {}),
            **pixel_policy,
        },
        params_files=(str((cfg / "policy.yaml").resolve()),),
    )
    extra: tuple[NodeSpec, ...] = ()
    if intervene:
        extra = (
            NodeSpec(
                name="intervener",
                package="expo_sim",
                executable="intervener_node",
                module="expo_sim.ros.intervener_node",
                namespace=namespace,
                parameters={"task": task, "use_sim_time": True},
                params_files=(str((cfg / "intervener.yaml").resolve()),),
            ),
        )
    if not learner:
        return Graph((bridge, policy, *extra))
    if not checkpoint or not learner_dir:
        raise ValueError("sim_graph with learner=True needs a checkpoint (the base) and a learner_dir")
    root = Path(learner_dir).resolve()
    # Episode 0 waits for the learner's first report: nothing is sent before it listens.
    bridge = bridge.adapted({"wait_for_learner": True})
    if not realtime:
        # Lockstep runs as fast as the policy answers, far faster than the learner trains: the
        # bridge holds a step while the learner owes more than LOCKSTEP_PACING_BACKLOG updates,
        # judged from learner_stats, which the learner then sends often.
        bridge = bridge.adapted({"learner_pacing_backlog": LOCKSTEP_PACING_BACKLOG})
    learner_node = NodeSpec(
        name="learner_node",
        package="expo_learner",
        executable="learner_node",
        module="expo_learner.start",
        namespace=namespace,
        parameters={
            "task": task,
            "checkpoint": checkpoint,
            "offline_dataset": offline_dataset,
            "bag_dir": str(root / "bags"),
            "checkpoint_dir": str(root / "checkpoints"),
            "tensorboard_dir": str(root / "tensorboard"),
            **({} if realtime else {"stats_period_s": 0.2}),
        },
        params_files=(str((cfg / "learner.yaml").resolve()),),
    )
    return Graph((bridge, policy, learner_node, *extra))
