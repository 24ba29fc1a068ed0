"""PolicyNode on an isolated ROS domain, acting in real time: decisions with markers and
diagnostics, holds on bad and stale inputs, deadline misses, weight hot-swap, one decision per
synchronized observation, and a backend's plan going out safety-filtered. Lockstep stepping is
in test_policy_node_lockstep.py, the lifecycle, parameters and the executable in
test_policy_node_lifecycle.py; the harness in policy_node_harness.py.

One rclpy context per module on its own domain id; every test puts its nodes in a fresh namespace
so tests never hear each other. Waits are for conditions (matching, messages), with timeouts;
the only fixed windows are the short ones that check that something does *not* happen.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from expo_core.checkpoint import FORMAT, policy_weights_bytes
from expo_policy.plan import safe_plan
from expo_ros import conversions as cv
from policy_node_harness import EE_POS, node_fixtures
from visualization_msgs.msg import MarkerArray

pytestmark = pytest.mark.ros

DOMAIN_ID = 101 + os.getpid() % 100  # 101..200: valid, per process, apart from other test files


ros_ctx, harness = node_fixtures(DOMAIN_ID)


def test_acts_on_inputs_with_decision_markers_and_diagnostics(harness) -> None:
    h = harness()
    h.start()
    h.streaming = {"joint_states", "ee_pose", "object_poses"}
    cmd = h.wait_command(lambda c: not c.hold, "a policy action")
    assert cmd.action.shape == (7,) and np.all(np.abs(cmd.action) <= 1.0)
    assert cmd.policy_version == 0 and cmd.frame_id == "world"
    n = h.node.backend.num_base_samples
    assert n == 8 and 0 <= cmd.candidate_index < 2 * n and cmd.is_edited == (cmd.candidate_index >= n)
    h.spin_until(lambda: h.got["otf_decision"] and h.got["markers"], "otf_decision and markers")
    decisions = [cv.otf_decision_to_numpy(m) for m in h.got["otf_decision"]]
    cand, q, chosen, latency_ms, _ = next(d for d in decisions if d[2] == cmd.candidate_index)
    assert cand.shape == (16, 7) and chosen == int(np.argmax(q)) and latency_ms > 0.0
    if not cmd.safety_modified:
        np.testing.assert_allclose(cmd.action, cand[chosen], atol=1e-6)
    drawn = next(m.markers for m in h.got["markers"] if len(m.markers) == 3)  # holds send one DELETEALL
    assert [m.ns for m in drawn] == ["candidates", "candidates", "sent"]
    assert len(drawn[0].points) == 16 and drawn[0].header.frame_id == "world"
    assert drawn[2].points[0].x == pytest.approx(EE_POS[0])  # the arrow starts at the hand
    h.spin_until(lambda: float(h.diagnostics().get("actions", 0)) >= 3, "diagnostics counting actions")
    d = h.diagnostics()
    assert d["mode"] == "observation" and d["weights_version"] == "0"
    assert float(d["obs_age_count"]) >= 3 and float(d["obs_age_p99_ms"]) >= 0.0
    assert float(d["latency_p99_ms"]) > 0 and float(d["loop_rate_hz"]) > 0
    assert {"deadline_misses", "stale_inputs", "holds", "latency_p50_ms"} <= set(d)
    # The health also shows in RViz: a status text above the hand, at the diagnostics rate.
    texts = lambda: [m.markers[0] for m in h.got["markers"] if m.markers and m.markers[0].ns == "status"]  # noqa: E731
    h.spin_until(texts, "a status text marker")
    status = texts()[-1]
    assert "weights v0" in status.text and "Hz" in status.text and status.header.frame_id == "world"
    assert status.pose.position.z == pytest.approx(EE_POS[2] + 0.15)


def test_nan_and_stale_inputs_hold_with_a_reason(harness) -> None:
    h = harness()
    h.start()
    h.streaming = {"joint_states", "ee_pose", "object_poses"}
    h.wait_command(lambda c: not c.hold, "a policy action")
    h.streaming = set()
    h.publish_obs(nan=True)
    nan_hold = h.wait_command(lambda c: c.hold and "non-finite" in c.hold_reason, "a hold for NaN")
    assert "bad_observation" in nan_hold.hold_reason and "ee_pose" in nan_hold.hold_reason
    assert np.all(nan_hold.action[:6] == 0.0)
    k = len(h.got["action"])
    h.streaming = {"joint_states", "ee_pose", "object_poses"}
    h.spin_until(lambda: any(not c.hold for c in h.commands()[k:]), "acting again after NaN")
    h.streaming = {"joint_states", "ee_pose"}  # object_poses stops
    stale = h.wait_command(
        lambda c: c.hold and "object_poses" in c.hold_reason, "a hold for stale object_poses"
    )
    assert stale.hold_reason.startswith("stale_input: ") and "object_poses" in stale.hold_reason
    assert "s old >" in stale.hold_reason
    h.spin_until(lambda: int(h.diagnostics().get("stale_object_poses", 0)) >= 1, "diagnostics counting it")
    d = h.diagnostics()
    assert int(d["holds"]) >= 2 and "object_poses" in d["last_hold_reason"]


def test_weights_hot_swap_rejects_bad_keeps_old_accepts_new(harness, agent, make_agent) -> None:
    h = harness()
    h.start()
    h.streaming = {"joint_states", "ee_pose", "object_poses"}
    h.wait_command(lambda c: not c.hold, "a policy action")

    def send(bundle: tuple[bytes, str], version: int, sha: str | None = None) -> None:
        w = cv.WeightsPayload(version, bundle[0], sha or bundle[1], FORMAT)
        h.pub["policy_weights"].publish(cv.policy_weights_msg(w))

    def same_state(a) -> bool:
        sa, sb = h.node.backend.policy.state_dict(), a.policy.state_dict()
        return all(np.array_equal(sa[k].numpy(), sb[k].numpy()) for k in sa)

    new = make_agent(seed=11)
    send(policy_weights_bytes(new), 1, sha="0" * 64)  # corrupted in transit
    h.spin_until(lambda: h.node.weights.rejected == 1, "the corrupted weights to be rejected")
    send(policy_weights_bytes(make_agent(seed=1, critic_hidden=(64, 64))), 2)  # other network sizes
    h.spin_until(lambda: h.node.weights.rejected == 2, "the mismatched weights to be rejected")
    assert h.node.weights_version == 0 and same_state(agent)
    assert all(c.policy_version == 0 for c in h.commands())
    send(policy_weights_bytes(new), 3)
    cmd = h.wait_command(lambda c: c.policy_version == 3 and not c.hold, "an action with weights v3")
    assert cmd.policy_version == 3 and h.node.weights_version == 3 and same_state(new)
    send(policy_weights_bytes(agent), 2)  # older than the running version: ignored
    h.spin_until(lambda: h.node.weights.ignored == 1, "the old version to be ignored")
    h.spin_until(lambda: h.diagnostics().get("weights_ignored") == "1", "diagnostics of the swaps")
    d = h.diagnostics()
    assert (d["weights_version"], d["weights_rejected"], d["weights_accepted"]) == ("3", "2", "1")


@pytest.mark.parametrize("lockstep", [False, True], ids=["timer", "lockstep"])
def test_deadline_misses_hold_in_timer_mode_and_are_counted_in_lockstep(harness, lockstep: bool) -> None:
    h = harness(lockstep=lockstep, deadline_ms=1e-6)  # every decision is late
    h.start()
    h.streaming = {"joint_states", "ee_pose", "object_poses"}
    if lockstep:  # the sim waits for the policy, so a late action is still the right one to send
        cmd = h.wait_command(lambda c: not c.hold, "a late but sent action")
        assert cmd.candidate_index >= 0
    else:  # on a robot the observation it answers is too old: hold instead
        cmd = h.wait_command(lambda c: c.hold and "inference_late" in c.hold_reason, "a late hold")
        assert "ms > budget" in cmd.hold_reason
        assert not any(not c.hold for c in h.commands())
    h.spin_until(
        lambda: int(h.diagnostics().get("deadline_misses", 0)) >= 1, "deadline misses in diagnostics"
    )
    assert h.got["diagnostics"][-1].status[0].level == DiagnosticStatus.WARN


def test_real_time_decides_once_per_synchronized_observation_and_the_timer_only_watches(harness) -> None:
    h = harness(**{"observation.max_age_s": 0.25})
    h.start()
    stamps = []
    for _ in range(4):
        stamps.append(h.publish_obs())
        h.wait_command(lambda c, s=stamps[-1]: c.stamp_ns == s, "the answer to a new observation")
    answered = [c for c in h.commands() if c.stamp_ns in stamps]
    assert [c.stamp_ns for c in answered] == stamps, "one decision per observation, in order"
    assert not any(c.hold for c in answered)
    assert [(c.episode, c.step) for c in answered] == [(0, i) for i in range(4)]
    # Pieces keep coming but never share a stamp: no decision; once the newest complete set is
    # older than observation.max_age_s the watchdog holds and says why.
    n = len(h.commands())
    deadline = time.monotonic() + 10.0
    while not any(c.hold and "no_synchronized_observation" in c.hold_reason for c in h.commands()[n:]):
        assert time.monotonic() < deadline, "no watchdog hold"
        ns = h.now_ns()
        for i, piece in enumerate(("joint_states", "ee_pose", "object_poses")):
            h.publish_obs(ns=ns + i, pieces=(piece,))
        h.spin_for(0.05)
    assert all(c.hold for c in h.commands()[n:])
    h.spin_until(lambda: int(h.diagnostics().get("watchdog_holds", 0)) >= 1, "watchdog holds in diagnostics")
    d = h.diagnostics()
    assert d["mode"] == "observation" and int(float(d["obs_age_count"])) >= 4


def test_real_time_skips_a_set_that_came_late_not_one_whose_pieces_lagged(harness) -> None:
    """The skip rule (a set whose first piece came a whole observation interval after its stamp:
    the next one was out, the node is behind) looks at when the set's first piece arrived, not at
    when its last one did: pieces that follow the first late (camera frames, which render after
    the proprioception and carry its stamp) are camera latency, and the set is still the newest."""
    h = harness(**{"observation.max_age_s": 30.0})
    h.start()
    s0 = h.publish_obs()
    h.wait_command(lambda c: c.stamp_ns == s0, "the answer to the first observation")
    h.spin_for(0.2)  # an interval well above the time the node takes to see a piece
    # The last piece lags its set by more than the interval since the previous set: decided on.
    s1 = h.publish_obs(pieces=("joint_states", "ee_pose"))
    h.spin_for(1.5 * (s1 - s0) * 1e-9 + 0.1)  # the old rule (now - stamp >= interval) skipped it
    assert h.now_ns() - s1 > s1 - s0
    h.publish_obs(ns=s1, pieces=("object_poses",))
    h.wait_command(lambda c: c.stamp_ns == s1, "the answer to the set whose last piece lagged")
    assert h.node.counts["observation_sets_skipped"] == 0
    # A set whose every piece comes an interval after its stamp: skipped, counted.
    s2 = s1 + (h.now_ns() - s1) // 4  # its first piece comes 3/4 of the time since s1 late
    h.publish_obs(ns=s2)
    h.spin_until(lambda: h.node.counts["observation_sets_skipped"] == 1, "the late set skipped")
    s3 = h.publish_obs()  # the newest one again: decided on
    h.wait_command(lambda c: c.stamp_ns == s3, "the answer to a fresh observation")
    assert not any(c.stamp_ns == s2 for c in h.commands())


def test_markers_are_built_only_while_something_subscribes(harness, monkeypatch) -> None:
    """With no viewer on ``markers`` the node neither builds nor publishes them (a MarkerArray
    costs the loop CPU); it acts all the same, and draws again once a viewer subscribes."""
    import expo_policy.acting as acting

    built: list[int] = []
    real = acting.decision_markers
    monkeypatch.setattr(acting, "decision_markers", lambda *a, **k: built.append(1) or real(*a, **k))
    h = harness()
    h.start()
    (markers_sub,) = [s for s in h.io.subscriptions if s.topic_name == f"{h.ns}/markers"]
    h.io.destroy_subscription(markers_sub)
    h.spin_until(lambda: h.node._pubs["markers"].get_subscription_count() == 0, "no markers subscriber")
    h.streaming = {"joint_states", "ee_pose", "object_poses"}
    h.spin_until(lambda: h.node.counts["actions"] >= 5, "five actions")
    assert built == []
    h.io.create_subscription(MarkerArray, "markers", h.got["markers"].append, 100)
    h.spin_until(lambda: bool(built) and h.got["markers"], "markers once a viewer subscribes")


def test_a_backend_plan_goes_out_capped_and_safety_filtered_holds_carry_none(harness) -> None:
    """A backend that returns a plan (action chunks): the command carries plan.max_steps rows,
    each filtered as the continuation of the action, spaced one control period; a hold none."""
    h = harness(**{"plan.max_steps": 2})
    h.start()
    real = h.node.backend.decide
    plan = np.array([[1.0] * 6 + [1.0], [-1.0] * 6 + [1.0], [0.2] * 6 + [1.0]], np.float32)
    h.node.backend.decide = lambda obs: real(obs)._replace(plan=plan)
    s = h.publish_obs()
    cmd = h.wait_command(lambda c: c.stamp_ns == s and not c.hold, "an action with a plan")
    assert cmd.plan_rows == 2 and cmd.plan_period_ns == 50_000_000
    np.testing.assert_array_equal(cmd.plan, safe_plan(plan, cmd.action, EE_POS, h.node.cfg.safety, 2))
    steps = np.abs(np.diff(np.vstack([cmd.action, cmd.plan]), axis=0))[:, :6]
    assert np.all(steps <= 0.5 + 1e-6), "each row delta-limited against the one before it"
    s = h.publish_obs(nan=True)
    hold = h.wait_command(lambda c: c.stamp_ns == s and c.hold, "a hold on a bad observation")
    assert hold.plan is None and hold.plan_period_ns == 0
