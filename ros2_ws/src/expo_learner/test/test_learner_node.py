"""LearnerNode on an isolated ROS domain: lifecycle, bad parameters, intake into segments and the
buffer (two actors, per-source counts), weights accepted by a real policy node, stats, TensorBoard.

One rclpy context per module on its own domain id (41..50); every test puts its nodes in a fresh
namespace. Waits are for conditions (matching, counts), with timeouts.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import numpy as np
import pytest
import rclpy
import torch
from expo_core.checkpoint import FORMAT
from expo_interfaces.msg import LearnerStats, PolicyWeights, Transition
from expo_learner.learner_node import WEIGHTS_QOS, LearnerNode
from expo_learner.segment_reader import load_segments
from expo_learner.segments import list_segments
from expo_policy.policy_node import PolicyNode
from expo_ros import conversions as cv
from expo_ros.node_harness import NodeHarness, ros_context
from expo_ros.transitions import TransitionData
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter

pytestmark = pytest.mark.ros

TIMEOUT_S = 30.0
DOMAIN_ID = 41 + os.getpid() % 10  # 41..50: this file only (the crash test uses 51..60)
SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


@pytest.fixture(scope="module")
def ros_ctx():
    with ros_context(DOMAIN_ID) as ctx:
        yield ctx


def transition(i: int, obs_dim: int = 19) -> TransitionData:
    """Row ``i``: obs[0] == i, episodes of 10 steps."""
    obs = np.full(obs_dim, 0.1, np.float32)
    obs[0] = i
    act = np.linspace(-0.5, 0.5, 7, dtype=np.float32)
    return TransitionData(
        obs, act, float(i % 10 == 9), obs + 1, i % 10 == 9, False, i // 10, i % 10, 0, i + 1
    )


class Harness(NodeHarness):
    """A LearnerNode and an ``io`` node playing two actors and a monitor, in one fresh namespace."""

    timeout_s = TIMEOUT_S

    def __init__(self, ctx: rclpy.Context, tmp: Path, base: Path, **params: object) -> None:
        self.ns = f"/t_{uuid.uuid4().hex[:8]}"
        self.tmp = tmp
        defaults = {
            "checkpoint": str(base),
            "checkpoint_dir": str(tmp / "ckpt"),
            "bag_dir": str(tmp / "bags"),
            "segment_max_bytes": 4096,
            "warmup_transitions": 5,
            "publish_every_updates": 3,
            "checkpoint_every_updates": 1000,
            "stats_period_s": 0.2,
        }
        overrides = [Parameter(k, value=v) for k, v in {**defaults, **params}.items()]
        self.node = LearnerNode(context=ctx, namespace=self.ns, parameter_overrides=overrides)
        self.io = rclpy.create_node("io", namespace=self.ns, context=ctx)
        self.weights: list[PolicyWeights] = []
        self.stats: list[LearnerStats] = []
        self.io.create_subscription(PolicyWeights, "policy_weights", self.weights.append, WEIGHTS_QOS)
        self.io.create_subscription(LearnerStats, "learner_stats", self.stats.append, 10)
        # Two actors on the learner's one topic: one beside it, one in its own namespace remapped
        # onto it (as a second policy node in the graph would be).
        self.io2 = rclpy.create_node(
            "actor2",
            namespace=f"{self.ns}/robot2",
            context=ctx,
            cli_args=["--ros-args", "-r", f"transitions:={self.ns}/transitions"],
        )
        self.actors = [self.io.create_publisher(Transition, "transitions", 100)]
        self.actors.append(self.io2.create_publisher(Transition, "transitions", 100))
        assert self.actors[1].topic_name == f"{self.ns}/transitions"
        self.attach(ctx, self.node, self.io, self.io2)

    def add(self, node) -> None:
        self.add_node(node)

    def close(self) -> None:
        if self.node.active:
            self.node.trigger_deactivate()
        super().close()

    def start(self) -> None:
        assert self.node.trigger_configure() == SUCCESS
        assert self.node.trigger_activate() == SUCCESS
        self.spin_until(
            lambda: (
                all(p.get_subscription_count() >= 1 for p in self.actors)
                and all(s.get_publisher_count() >= 1 for s in self.io.subscriptions)
            ),
            "topic matching",
        )

    def publish(self, start: int, n: int, actor: int = 0, source: str = "/robot1") -> None:
        for i in range(start, start + n):
            self.actors[actor].publish(cv.transition_msg(transition(i), source))


@pytest.fixture
def harness(ros_ctx, tmp_path: Path, base_checkpoint: Path):
    made: list[Harness] = []

    def make(**params: object) -> Harness:
        made.append(Harness(ros_ctx, tmp_path, base_checkpoint, **params))
        return made[-1]

    yield make
    for h in made:
        h.close()


def test_lifecycle_transitions(harness) -> None:
    h = harness()
    assert h.node.trigger_configure() == SUCCESS and not h.node.active
    assert h.node.trainer is not None and not h.node.trainer.running
    assert h.node.trigger_activate() == SUCCESS and h.node.active and h.node.trainer.running
    h.spin_until(lambda: h.weights, "the weights published on activate")
    assert h.weights[-1].version == 1 and h.weights[-1].format == FORMAT
    h.publish(0, 3)
    h.spin_until(lambda: h.node.trainer.store.seen == 3, "3 transitions stored")
    assert h.node.trigger_deactivate() == SUCCESS and not h.node.active
    assert h.node.trainer is not None and not h.node.trainer.running
    assert [p.name for p in h.node.trainer.checkpoints.list()] == ["learner_000000000"]  # saved on stop
    assert all((s / "metadata.yaml").is_file() for s in list_segments(h.tmp / "bags"))  # closed on stop
    assert h.node.trigger_cleanup() == SUCCESS and h.node.trainer is None
    assert h.node.trigger_configure() == SUCCESS  # reloads: resumes and re-reads the bags
    assert h.node.trainer.store.reloaded == 3 and h.node.reload_report.total_messages == 3
    assert h.node.trainer.version == 1 and h.node.trainer.updates == 0
    assert h.node.trigger_shutdown() == SUCCESS and h.node.trainer is None


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"bag_dir": ""}, "parameter 'bag_dir' is empty"),
        ({"checkpoint_dir": ""}, "parameter 'checkpoint_dir' is empty"),
        ({"utd": -1}, "parameter 'utd' must be an integer >= 0"),
        ({"publish_every_s": 0.0}, "parameter 'publish_every_s' must be > 0.0"),
        ({"device": "tpu"}, "parameter 'device' must be cpu, cuda or cuda:N"),
        ({"training_nice": 20}, r"parameter 'training_nice' must be an integer in \[0, 19\], got 20"),
        ({"training_nice": -1}, "parameter 'training_nice' must be an integer >= 0"),
        (
            {"task": "can"},
            "parameter 'task': .* takes 19 observation values, task 'can' observations have 23",
        ),
        ({"checkpoint": "/nonexistent/base.safetensors"}, "parameter 'checkpoint': /nonexistent"),
        ({"offline_dataset": "/nonexistent.hdf5"}, "parameter 'offline_dataset': /nonexistent.hdf5 does not"),
        ({"offline_bag_dirs": ["/nonexistent_bags"]}, "parameter 'offline_bag_dirs': /nonexistent_bags"),
    ],
)
def test_bad_parameters_fail_configure_with_a_clear_message(harness, monkeypatch, params, expected) -> None:
    import re

    h = harness(**params)
    errors: list[str] = []
    monkeypatch.setattr(h.node.get_logger(), "error", lambda msg, **kw: errors.append(msg))
    assert h.node.trigger_configure() == FAILURE
    assert h.node.trainer is None and h.node.writer is None
    assert len(errors) == 1 and re.search(expected, errors[0]), errors


def test_transitions_from_two_actors_land_in_segments_and_the_buffer(harness) -> None:
    h = harness(tensorboard_dir="")
    h.start()
    h.publish(0, 30, actor=0, source="/robot1")
    h.publish(30, 20, actor=1, source="/robot2")
    bad = transition(99, obs_dim=5)  # another task's observation: rejected, never recorded
    h.actors[0].publish(cv.transition_msg(bad, "/robot3"))
    h.spin_until(lambda: h.node.trainer.store.seen == 50 and h.node.intake.received == 51, "51 received")
    trainer = h.node.trainer
    assert trainer.store.source_counts() == {"/robot1": 30, "/robot2": 20}
    assert sum(h.node.intake.rejected.values()) == 1
    h.spin_until(lambda: trainer.updates >= 45, "45 updates (warm-up 5, then one per transition)")
    h.spin_until(
        lambda: h.stats and cv.learner_stats_to_numpy(h.stats[-1]).training_step >= 90, "stats after training"
    )
    s = cv.learner_stats_to_numpy(h.stats[-1])
    assert s.env_steps_received == 50 and s.buffer_size == 50
    assert s.scalars["transitions//robot1"] == 30 and s.scalars["transitions//robot2"] == 20
    assert s.scalars["transitions_rejected"] == 1 and "critic_loss" in s.scalars
    assert s.achieved_utd == pytest.approx(2.0)  # the tiny preset's utd (2) critic steps per transition
    assert h.node.trigger_deactivate() == SUCCESS
    table, report = load_segments(h.tmp / "bags")
    assert report.segments_read >= 3 and not report.damaged  # 4 kB segments: rotated by size
    assert sorted(table.obs[:, 0].astype(int).tolist()) == list(range(50))
    online = trainer.store.online.arrays()
    assert sorted(online["obs"][:, 0].astype(int).tolist()) == list(range(50))
    assert set(table.source.tolist()) == {"/robot1", "/robot2"}


def test_intervention_flags_reach_the_bags_the_stats_and_diagnostics(harness) -> None:
    """Steps 3-5 of each 10-step episode are an operator's: the bags keep the flag, learner_stats
    and diagnostics report 30 % of steps and one takeover per episode."""
    from dataclasses import replace

    from diagnostic_msgs.msg import DiagnosticArray

    h = harness(tensorboard_dir="", intervention_bc_min_rows=4)
    diagnostics: list[DiagnosticArray] = []
    h.io.create_subscription(DiagnosticArray, "diagnostics", diagnostics.append, 10)
    h.start()
    for i in range(30):
        t = replace(transition(i), intervention=3 <= i % 10 <= 5)
        h.actors[0].publish(cv.transition_msg(t, "/robot1"))
    h.spin_until(lambda: h.node.trainer.store.seen == 30, "30 transitions stored")

    def reported() -> bool:  # stats and diagnostics sent after all three episodes were stored
        stats = bool(h.stats) and cv.learner_stats_to_numpy(h.stats[-1]).scalars
        diag = bool(diagnostics) and cv.diagnostics_values(diagnostics[-1])
        return (
            bool(stats and diag)
            and stats.get("interventions/episodes_total") == 3
            and (diag.get("interventions/episodes_total") == "3")
        )

    h.spin_until(reported, "intervention rates of 3 episodes in learner_stats and diagnostics")
    s = cv.learner_stats_to_numpy(h.stats[-1]).scalars
    assert s["interventions/step_fraction"] == pytest.approx(0.3)
    assert s["interventions/per_episode"] == pytest.approx(1.0) and s["interventions/takeovers_total"] == 3

    def imitated() -> bool:  # some period (while updates ran) reports the imitation steps' loss
        return any("intervention_bc_loss" in cv.learner_stats_to_numpy(m).scalars for m in h.stats)

    h.spin_until(imitated, "intervention_bc_loss in learner_stats")
    values = cv.diagnostics_values(diagnostics[-1])
    assert float(values["interventions/step_fraction"]) == pytest.approx(0.3)
    status = diagnostics[-1].status[0]
    assert status.hardware_id == "expo_learner" and status.name == f"{h.ns}/learner_node: learner"
    assert len(h.node.trainer.store.interventions) == 9
    assert h.node.trigger_deactivate() == SUCCESS
    table, _ = load_segments(h.tmp / "bags")
    order = np.argsort(table.obs[:, 0])
    np.testing.assert_array_equal(table.intervention[order], [3 <= i % 10 <= 5 for i in range(30)])


def test_weights_are_accepted_by_a_policy_node_and_stats_reach_tensorboard(
    harness, base_checkpoint: Path, tmp_path: Path
) -> None:
    # Stats every 0.02 s: on a fast host the whole exchange below can end inside one 0.2 s period.
    h = harness(tensorboard_dir=str(tmp_path / "tb"), publish_every_updates=5, stats_period_s=0.02)
    policy = PolicyNode(
        context=h.node.context,
        namespace=h.ns,
        parameter_overrides=[
            Parameter("checkpoint", value=str(base_checkpoint) + ".safetensors"),
            Parameter("lockstep", value=True),
            Parameter("gc_freeze", value=False),  # no collection of the whole test process
            Parameter("diagnostics_period_s", value=0.05),
            Parameter("publish_markers", value=False),
        ],
    )
    h.add(policy)
    assert policy.trigger_configure() == SUCCESS and policy.trigger_activate() == SUCCESS
    assert policy.weights_version == 0
    h.start()
    h.spin_until(lambda: policy.weights_version >= 1, "the policy to run the learner's v1")
    for k in range(3):  # training between publications: each new version must be swapped in
        h.publish(5 * k, 5 if k else 10)
        want = k + 2
        h.spin_until(lambda w=want: policy.weights_version >= w, f"the policy to run weights v{want}")
    assert policy.weights.accepted >= 3 and policy.weights.rejected == 0
    for m in h.weights:  # what went out is what the policy verified: sha256 of the bytes
        assert hashlib.sha256(bytes(m.data)).hexdigest() == m.sha256 and m.format == FORMAT
    assert [m.version for m in h.weights] == sorted({m.version for m in h.weights})
    h.spin_until(lambda: any(s.training_step > 0 for s in h.stats), "a stats report after training")
    assert h.node.trigger_deactivate() == SUCCESS and policy.trigger_deactivate() == SUCCESS
    events = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert events, "no TensorBoard event file"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"learner/achieved_utd", "learner/critic_loss", "learner/weights_version"} <= set(tags)


def test_offline_data_and_a_damaged_segment_at_configure(harness, tmp_path: Path, make_table) -> None:
    from expo_learner.robomimic_bags import segments_to_hdf5
    from expo_learner.segments import SegmentWriter

    with SegmentWriter(tmp_path / "demos") as w:  # 30 demo rows as bags, and the same as HDF5
        w.write_table(make_table(30, source="hdf5:demo"))
    segments_to_hdf5(
        [tmp_path / "demos"], tmp_path / "demos.hdf5", task="lift", env_args={"env_name": "Lift"}
    )
    with SegmentWriter(tmp_path / "bags") as w:  # an earlier recording: one good segment ...
        w.write_table(make_table(12, start=100, source="/robot1"))
    garbage = tmp_path / "bags" / "seg_000001_20260101T000000Z"  # ... and one a crash mangled
    garbage.mkdir()
    (garbage / f"{garbage.name}.mcap").write_bytes(b"\x89MCAP0\r\n" + bytes(300))
    h = harness(offline_dataset=str(tmp_path / "demos.hdf5"), offline_bag_dirs=[str(tmp_path / "demos")])
    assert h.node.trigger_configure() == SUCCESS  # damage is reported, never fatal
    report, store = h.node.reload_report, h.node.trainer.store
    assert report.total_messages == 12 and [s.name for s in report.damaged] == [garbage.name]
    assert store.sizes() == (12, 60) and store.reloaded == 12 and store.source_counts() == {"/robot1": 12}
    batch = store.sample(1, 16, torch.Generator().manual_seed(0))[0]
    online_ids = set(range(100, 112))
    ids = batch.obs[:, 0].int().tolist()
    assert sum(i in online_ids for i in ids) == 8  # offline_fraction 0.5 of the tiny preset
    # The next segment continues after the damaged one: nothing is overwritten.
    assert h.node.trigger_activate() == SUCCESS
    h.spin_until(lambda: all(p.get_subscription_count() >= 1 for p in h.actors), "matching")
    h.publish(200, 2)
    h.spin_until(lambda: store.seen == 14, "2 new transitions stored")
    assert h.node.writer.current.name.startswith("seg_000002_")


def test_main_puts_the_process_back_to_normal_scheduling_before_the_node_starts(monkeypatch) -> None:
    """A learner launched inside a graph at SCHED_FIFO: its threads go back to normal before
    rclpy (and Fast DDS) starts any of its own, and the node logs what it inherited."""
    from expo_learner import learner_node

    calls: list[str] = []

    def to_normal() -> list[str]:
        calls.append("normal")
        return ["fifo 10"]

    monkeypatch.setattr(learner_node, "_DROPPED_REALTIME", [])  # the module's own list stays empty
    monkeypatch.setattr(learner_node.realtime, "process_to_normal", to_normal)
    monkeypatch.setattr(learner_node, "run_lifecycle_node", lambda cls, args, finalize: calls.append("node"))
    learner_node.main([])
    assert calls == ["normal", "node"] and learner_node._DROPPED_REALTIME == ["fifo 10"]


def test_the_executable_lowers_the_process_before_importing_the_node() -> None:
    """``learner_node`` (expo_learner.start): the process is back to normal scheduling before the
    node's module is imported, and before torch or rclpy is; what it inherited reaches the node's
    main. In a fresh interpreter (this one has torch loaded already), the node's module served
    by a finder that records when it is imported."""
    import json
    import subprocess
    import sys

    code = """
import importlib.abc, importlib.machinery, json, sys
from expo_ros import realtime
seen = {"order": []}
def to_normal():
    seen["order"].append("lowered")
    seen["loaded_when_lowered"] = sorted(m for m in ("torch", "rclpy", "expo_core") if m in sys.modules)
    return ["fifo 10"]
realtime.process_to_normal = to_normal
class StandIn(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        return importlib.machinery.ModuleSpec(name, self) if name == "expo_learner.learner_node" else None
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        seen["order"].append("node imported")
        module.main = lambda args, inherited: seen.update(args=args, inherited=list(inherited))
sys.meta_path.insert(0, StandIn())
from expo_learner import start
start.main(["--ros-args"])
print(json.dumps(seen))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {
        "order": ["lowered", "node imported"],
        "loaded_when_lowered": [],
        "args": ["--ros-args"],
        "inherited": ["fifo 10"],
    }


def test_main_keeps_what_the_executable_lowered(monkeypatch) -> None:
    from expo_learner import learner_node

    monkeypatch.setattr(learner_node, "_DROPPED_REALTIME", [])
    monkeypatch.setattr(learner_node.realtime, "process_to_normal", lambda: [])
    monkeypatch.setattr(learner_node, "run_lifecycle_node", lambda cls, args, finalize: None)
    learner_node.main([], inherited=["fifo 10", "fifo 10"])
    assert learner_node._DROPPED_REALTIME == ["fifo 10", "fifo 10"]
