"""The hardware graph, as data: policy node -> Franka adapter -> franka_ros2 (or its emulation).

::

    franka_ros2 / emulation                   policy_node                 franka_adapter
    joint_states ─────────────────────────────► (timer mode) ─ policy_action ─► (arm safety)
    franka_robot_state_broadcaster/current_pose ─►  (as ee_pose)                │
      ▲                                                                         │
      └── cartesian_impedance_example_controller/equilibrium_pose, gripper ◄────┘

Our nodes use franka_ros2's topic names, relative, so one ``namespace`` puts them next to a
franka_ros2 started in the same namespace. franka_ros2 itself is not part of the graph: on the
robot PC it comes from ``launch/franka.launch.py`` (which includes franka_bringup's launch file),
or is already running (``franka.launch.py franka_bringup:=false`` then starts our nodes only).

With ``emulate=True`` the sim bridge (realtime 20 Hz, franka_ros2's joint names and finger signs,
``ee_pose`` remapped to ``franka_robot_state_broadcaster/current_pose``) and the Franka emulator
(:mod:`expo_sim.ros.franka_emulator_node`: equilibrium pose -> OSC_POSE action) stand in for
franka_ros2, so the whole hardware graph runs in CI. Then every node runs on the bridge's sim
time (``/clock``), as in the sim graph; on hardware they run on wall time.

On hardware the **episode manager** (:mod:`expo_franka.episode_manager_node`) is always part of
the graph: it reads the policy's commands (``policy_action``) and publishes ``env_feedback`` from
the operator's ``start_episode`` / ``label_success`` / ``label_failure`` service calls and the
horizon, so the policy node completes transitions. When emulating it is left out: the sim bridge
already publishes ``env_feedback`` (reward, success and resets from the simulator), and two
publishers of one topic would report every step twice with conflicting ends.

**Pixel policies** (a checkpoint with cameras, docs/pixels.md) need no object poses: on the arm the
policy node reads ``joint_states`` (fingers and the 7 arm joints), ``ee_pose_base`` remapped to
``current_pose`` (franka_ros2 reports it in the base frame) and one ``sensor_msgs/Image`` per camera
on the topic ``camera_topics`` names (e.g. a ``realsense2_camera`` node's
``/camera/color/image_raw``; default ``<camera>/image_raw`` in the namespace). A state checkpoint
ignores these. Emulated, ``obs="pixels"`` puts the sim bridge in pixel mode (it renders the cameras
and publishes ``ee_pose_base``) and gives the policy node the sim's base-frame safety box, as
:func:`~expo_bringup.graph.sim_graph` does; on hardware the checkpoint decides the kind.

``learner=True`` adds the learner node, built exactly as :func:`expo_bringup.graph.sim_graph`
builds it (same namespace: it trains on the policy's ``transitions`` and streams
``policy_weights`` back). A remote learner is not part of this graph: start it on the training
machine with the same ``ROS_DOMAIN_ID`` and namespace (see docs/sim_to_real.md).

``teleop="spacemouse"`` (``"gamepad"``; ``"keyboard"`` emulated only) adds the teleop node
(:mod:`expo_franka.teleop_node`) reading the policy's commands on ``policy_action`` and turns on
the policy node's arbitration (``intervention.enabled``): operator interventions
(docs/interventions.md). The device's driver is not part of the graph.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from expo_core.tasks import SUPPORTED_CAMERAS
from expo_ros.params import as_topic

from expo_bringup.graph import SIM_OBS_KINDS, Graph, NodeSpec, default_config_dir, sim_graph

ROBOT_TYPES = ("fr3", "panda")
#: franka_ros2's controller that takes an equilibrium pose (franka_example_controllers).
CONTROLLER = "cartesian_impedance_example_controller"
CURRENT_POSE = "franka_robot_state_broadcaster/current_pose"
EQUILIBRIUM_POSE = f"{CONTROLLER}/equilibrium_pose"
#: The policy's actions, between the policy node and the adapter (``action`` is the sim bridge's).
POLICY_ACTION = "policy_action"
#: Teleop devices with a shipped ``teleop_<device>.yaml``; the keyboard only emulated (no deadman).
TELEOP_DEVICES = ("spacemouse", "gamepad", "keyboard")
#: franka_ros2 reports both fingers positive; robosuite (what the policy learned on) the second
#: one negative when open. The policy reads them back with these signs; the bridge publishes
#: robosuite's fingers with the same signs when it emulates the Franka.
FRANKA_FINGER_SIGNS = [1.0, -1.0]


def joint_names(robot_type: str) -> tuple[list[str], list[str]]:
    """(7 arm joints, 2 finger joints) as franka_ros2 names them, e.g. ``fr3_joint1``."""
    if robot_type not in ROBOT_TYPES:
        raise ValueError(f"franka_graph robot_type '{robot_type}' unknown; supported: {list(ROBOT_TYPES)}")
    arm = [f"{robot_type}_joint{i}" for i in range(1, 8)]
    return arm, [f"{robot_type}_finger_joint1", f"{robot_type}_finger_joint2"]


def franka_graph(
    task: str = "lift",
    checkpoint: str = "",
    backend: str = "auto",
    robot_type: str = "fr3",
    namespace: str = "",
    dry_run: bool | None = None,
    emulate: bool = False,
    learner: bool = False,
    learner_dir: str = "",
    offline_dataset: str = "",
    config_dir: Path | str | None = None,
    camera_topics: Mapping[str, str] | None = None,
    obs: str = "state",
    teleop: str = "",
) -> Graph:
    """Policy node + Franka adapter + episode manager (emulated: sim bridge + Franka emulator
    instead of the episode manager) (+ learner node) (+ teleop node).

    Args:
        task: robomimic task the policy was trained on (``expo_core.spec.TASK_OBJECT_DIMS``).
        checkpoint: policy checkpoint; '' lets the policy node use its configured one.
        backend: inference backend name handed to the policy node (it validates the choice).
        robot_type: ``fr3`` or ``panda``: franka_ros2's joint name prefix.
        namespace: ROS namespace of every node, franka_ros2's included ('' = root).
        dry_run: the adapter's ``dry_run``. None: True on hardware (nothing reaches the arm
            until asked for explicitly), False when emulating (there is no arm to protect).
        emulate: sim bridge + Franka emulator instead of franka_ros2.
        learner: also start the learner node (local online fine-tuning from ``checkpoint``).
        learner_dir: the learner's directory (bags, checkpoints, tensorboard); required with
            ``learner``, as ``checkpoint``.
        offline_dataset: robomimic HDF5 for the offline half of the learner's batches ('' = none).
        config_dir: where the nodes' YAML files live (default: package data).
        camera_topics: camera name -> sensor_msgs/Image topic for a pixel policy (the policy
            node's ``cameras.<camera>.topic``); cameras not named keep ``<camera>/image_raw``.
        obs: ``"state"`` or ``"pixels"`` (emulated: the bridge's pixel mode; hardware: no change,
            the policy node takes the kind from the checkpoint).
        teleop: '' (none) or a device of ``TELEOP_DEVICES``: the teleop node with that device's
            ``teleop_<device>.yaml``, reading the policy's commands on ``policy_action``, and the
            policy node arbitrating (``intervention.enabled``). The device's driver
            (``spacenav_node``, ``game_controller_node``, ``keyboard_teleop``) runs apart.
    """
    if teleop not in ("", *TELEOP_DEVICES):
        raise ValueError(f"franka_graph teleop '{teleop}' unknown; '' or one of {list(TELEOP_DEVICES)}")
    if teleop == "keyboard" and not emulate:
        raise ValueError(
            "franka_graph teleop 'keyboard' is for the emulated arm only: a terminal has no deadman"
        )
    arm, fingers = joint_names(robot_type)
    cameras: dict[str, str] = {}
    for cam, topic in (camera_topics or {}).items():
        if cam not in SUPPORTED_CAMERAS:
            raise ValueError(f"franka_graph camera '{cam}' unknown; supported: {list(SUPPORTED_CAMERAS)}")
        cameras[f"cameras.{cam}.topic"] = as_topic(f"cameras.{cam}.topic", topic)
    cfg = Path(config_dir) if config_dir is not None else default_config_dir()

    def files(*names: str) -> tuple[str, ...]:
        return tuple(str((cfg / n).resolve()) for n in names)

    # The sim graph's nodes in realtime mode (the policy acts on its timer: a real arm does not
    # wait for it; the bridge keeps 20 Hz wall time), adapted below to franka_ros2's names and
    # topics. sim_graph also checks task, backend and the learner's arguments.
    base = sim_graph(
        task, checkpoint, backend, realtime=True, namespace=namespace, config_dir=cfg,
        learner=learner, learner_dir=learner_dir, offline_dataset=offline_dataset,
        obs=obs if emulate else "state",
    )  # fmt: skip
    if obs not in SIM_OBS_KINDS:
        raise ValueError(f"franka_graph obs '{obs}' unknown; one of {list(SIM_OBS_KINDS)}")
    sim_time = bool(emulate)  # the bridge drives /clock; franka_ros2 runs on wall time
    policy = base.node("policy_node").adapted(
        {
            "use_sim_time": sim_time,
            "observation.finger_joint_names": fingers,
            "observation.finger_signs": FRANKA_FINGER_SIGNS,
            # franka_robot_state_broadcaster publishes current_pose best effort: a reliable
            # subscription would never connect to it on the arm
            "observation.best_effort": True,
            # On the arm joint_states and current_pose never share a stamp: decide on the timer
            # (latest piece of each input); the emulated cell stamps them alike.
            "trigger": "observation" if emulate else "timer",
            # pixel policies: robot0_joint_pos from franka_ros2's arm joints, and the cameras
            "observation.arm_joint_names": arm,
            **cameras,
            **({"intervention.enabled": True} if teleop else {}),
        },
        (
            ("action", POLICY_ACTION),
            ("ee_pose", CURRENT_POSE),
            # a pixel policy's base-frame pose: current_pose is in the base frame on the arm
            # (emulated, the bridge's own ee_pose_base is)
            *(() if emulate else (("ee_pose_base", CURRENT_POSE),)),
        ),
    )
    adapter = NodeSpec(
        name="franka_adapter",
        package="expo_franka",
        executable="franka_adapter_node",
        module="expo_franka.franka_adapter_node",
        namespace=namespace,
        # Its other topics default to franka_ros2's names (franka_adapter.yaml).
        parameters={
            "dry_run": (not emulate) if dry_run is None else bool(dry_run),
            "use_sim_time": sim_time,
            "joints.arm": arm,
            "joints.fingers": fingers,
        },
        remappings=(("action", POLICY_ACTION),),
        params_files=files("franka_adapter.yaml", *(("franka_adapter_emulated.yaml",) if emulate else ())),
    )
    nodes = [policy, adapter]
    if emulate:
        bridge = base.node("sim_bridge").adapted(
            {"arm_joint_names": arm, "finger_joint_names": fingers, "finger_signs": FRANKA_FINGER_SIGNS},
            (("ee_pose", CURRENT_POSE),),
        )
        emulator = NodeSpec(
            name="franka_emulator",
            package="expo_sim",
            executable="franka_emulator_node",
            module="expo_sim.ros.franka_emulator_node",
            namespace=namespace,
            parameters={"use_sim_time": True},
            params_files=files("franka_emulator.yaml"),
        )
        nodes += [bridge, emulator]
    else:
        nodes.append(
            NodeSpec(
                name="episode_manager",
                package="expo_franka",
                executable="episode_manager_node",
                module="expo_franka.episode_manager_node",
                namespace=namespace,
                parameters={"use_sim_time": False},
                remappings=(("action", POLICY_ACTION),),
                params_files=files("episode_manager.yaml"),
            )
        )
    if teleop:
        nodes.append(
            NodeSpec(
                name="teleop_node",
                package="expo_franka",
                executable="teleop_node",
                module="expo_franka.teleop_node",
                namespace=namespace,
                parameters={"use_sim_time": sim_time},
                remappings=(("action", POLICY_ACTION),),  # its topics.action: the gripper at engagement
                params_files=files(f"teleop_{teleop}.yaml"),
            )
        )
    if learner:
        nodes.append(base.node("learner_node"))  # realtime: no lockstep pacing
    return Graph(tuple(nodes))
