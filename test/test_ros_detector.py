"""reward_node with the learned success detector over DDS: ``auto`` marks the outcome on /rlt/token (source
DETECTOR: success on a seated plug, failure once the critical phase outlasted its limit), the operator's mark
within the grace period overrules it (a HUMAN outcome of the same episode, before the RESET that closes the
episode for the learner); ``suggest`` only proposes; a detector trained on another RL token leaves the node
in operator mode with a clear error."""

from __future__ import annotations

import time

import pytest

from ros_harness import wait_for
from test_ros_operator import start_node
from test_ros_switch import Graph
from test_rlt_detector import synthetic_episodes

pytestmark = [pytest.mark.ros, pytest.mark.timeout(180)]

SEATED, JAMMED = 1.0, 0.4  # token[0]: the synthetic episodes' plug depth at a success / a failure


def make_detector(path, identity):
    from rlt_ros.core.rlt.configuration_detector import DetectorConfig
    from rlt_ros.core.rlt.detector import train_detector

    train_detector(synthetic_episodes(40), DetectorConfig(hidden=(), steps=300, test_fraction=0.0), identity).save(path)


def start_reward(processes, tmp_path, detector, mode="auto", grace_s=2.0):
    return start_node(processes, tmp_path, "reward", **{
        "arm.reset_service": "", "reward.detector": mode, "reward.detector_path": str(detector),
        "reward.detector_grace_s": grace_s, "reward.detector_failure_after_s": 1.0,
        "episode.timeout_s": 0.0, "episode.critical_timeout_s": 0.0})


def test_auto_marks_and_the_operator_overrules_within_the_grace_period(processes, ros_node, tmp_path):
    from rlt_ros.core.checkpoints import token_identity
    from rlt_ros.core.interfaces import EventSource, EventType

    make_detector(tmp_path / "detector", token_identity())  # trained on the graph's (shipped) RL token
    reward = start_reward(processes, tmp_path, tmp_path / "detector", grace_s=3.0)
    g = Graph(ros_node)
    wait_for(lambda: g.of(EventType.START), 60, ros_node.spin_once, "the first episode\n" + processes.log(reward))
    first = g.of(EventType.START)[0].episode_id
    g.stream(SEATED, 1.0)  # the approach (VLA phase): no verdict, whatever the tokens show
    assert not g.of(EventType.SUCCESS), processes.log(reward)
    assert g.press("start_rl").success
    wait_for(lambda: g.of(EventType.SUCCESS), 10, lambda: g.publish(SEATED), "the detector's success")
    marked = g.of(EventType.SUCCESS)[0]
    assert marked.source == EventSource.DETECTOR and marked.episode_id == first and "p=" in marked.note
    assert g.press("mark_failure").success  # the operator disagrees, within the grace period
    wait_for(lambda: g.of(EventType.RESET, first), 10, ros_node.spin_once, "the reset after the grace period")
    overrule = g.of(EventType.FAILURE, first)
    assert [(e.source, e.episode_id) for e in overrule] == [(EventSource.HUMAN, first)]
    reset = g.of(EventType.RESET, first)[0]
    order = [e.type for e in g.events if e.episode_id == first]
    assert order.index(EventType.FAILURE) < order.index(EventType.RESET)  # before the learner's gate closes
    assert reset.stamp - marked.stamp >= 3.0 - 0.05  # the reset waited for the grace period

    wait_for(lambda: len(g.of(EventType.START)) == 2, 30, ros_node.spin_once, "the next episode")
    second = g.of(EventType.START)[1].episode_id
    assert g.press("start_rl").success
    g.stream(JAMMED, 0.6)  # jammed, but the critical phase is younger than detector_failure_after_s
    assert not g.of(EventType.FAILURE, second)
    wait_for(lambda: g.of(EventType.FAILURE, second), 10, lambda: g.publish(JAMMED), "the detector's failure")
    wait_for(lambda: g.of(EventType.RESET, second), 10, ros_node.spin_once, "the second episode's reset")
    assert [e.source for e in g.of(EventType.FAILURE, second)] == [EventSource.DETECTOR]  # not overruled: it stands
    assert not g.of(EventType.SUCCESS, second)
    assert "detector auto" in processes.log(reward)


def test_suggest_proposes_and_the_operator_marks(processes, ros_node, tmp_path):
    from std_msgs.msg import String

    from rlt_ros.core.checkpoints import token_identity
    from rlt_ros.core.interfaces import EventSource, EventType
    from rlt_ros.ros import qos

    make_detector(tmp_path / "detector", token_identity())
    reward = start_reward(processes, tmp_path, tmp_path / "detector", mode="suggest")
    suggestions = []
    ros_node.create_subscription(String, "/rlt/detector_suggestion", lambda m: suggestions.append(m.data), qos.EVENTS)
    g = Graph(ros_node)
    wait_for(lambda: g.of(EventType.START), 60, ros_node.spin_once, "the first episode\n" + processes.log(reward))
    episode = g.of(EventType.START)[0].episode_id
    assert g.press("start_rl").success
    wait_for(lambda: suggestions, 10, lambda: g.publish(SEATED), "the detector's suggestion")
    assert suggestions[0].startswith(f"episode {episode}: SUCCESS") and "/rlt/mark_success" in suggestions[0]
    g.stream(SEATED, 0.5)
    assert not g.of(EventType.SUCCESS) and len(suggestions) == 1  # one proposal, no mark
    assert g.press("mark_success").success
    wait_for(lambda: g.of(EventType.SUCCESS), 10, ros_node.spin_once, "the operator's mark")
    assert g.of(EventType.SUCCESS)[0].source == EventSource.HUMAN


def test_detector_for_another_token_keeps_operator_mode(processes, ros_node, tmp_path):
    from rlt_ros.core.interfaces import EventSource, EventType

    make_detector(tmp_path / "detector", {"token": "/elsewhere/other_token", "token_sha256": "0" * 64})
    reward = start_reward(processes, tmp_path, tmp_path / "detector")
    g = Graph(ros_node)
    wait_for(lambda: g.of(EventType.START), 60, ros_node.spin_once, "the first episode\n" + processes.log(reward))
    assert g.press("start_rl").success
    g.stream(SEATED, 1.5)  # tokens a detector would call a success
    assert not g.of(EventType.SUCCESS) and reward.poll() is None
    log = processes.log(reward)
    assert "trained on the RL token /elsewhere/other_token" in log and "staying in operator mode" in log
    assert "detector off (failed to load)" in log
    assert g.press("mark_success").success
    wait_for(lambda: g.of(EventType.SUCCESS), 10, ros_node.spin_once, "the operator's mark")
    assert g.of(EventType.SUCCESS)[0].source == EventSource.HUMAN


def test_an_overrule_rewrites_the_stored_reward_and_loses_no_transition(processes, ros_node, tmp_path):
    """reward (auto) + learner over DDS: the actor's end rows of a detector-marked episode (claiming its failure,
    sent twice, as an outbox resends) wait in the learner's outcome gate; the operator's success within the grace
    period relabels them: each stored once, with reward 1, and acknowledged. (The operator's failure overruling a
    detector's success is a truncation: test_rlt_outcomes.py.)"""
    import numpy as np

    from rlt_ros.core.checkpoints import token_identity
    from rlt_ros.core.interfaces import EventSource, EventType
    from rlt_ros.core.rlt.replay import ReplayBuffer
    from rlt_ros.msg import TransitionAck
    from rlt_ros.ros import qos
    from test_ros_faults import publish_end_rows, start_learner

    make_detector(tmp_path / "detector", token_identity())
    learner, rlt, out, _, transitions, stats = start_learner(processes, ros_node, tmp_path)
    acks = []
    ros_node.create_subscription(TransitionAck, "/rlt/transitions_ack",
                                 lambda m: acks.extend(zip(m.episode_ids, m.indices)), qos.TRANSITIONS)
    reward = start_reward(processes, tmp_path, tmp_path / "detector", grace_s=3.0)
    g = Graph(ros_node)
    wait_for(lambda: g.of(EventType.START), 60, ros_node.spin_once, "the first episode\n" + processes.log(reward))
    episode = g.of(EventType.START)[0].episode_id
    assert g.press("start_rl").success
    wait_for(lambda: g.of(EventType.FAILURE), 10, lambda: g.publish(JAMMED), "the detector's failure")
    assert g.of(EventType.FAILURE)[0].source == EventSource.DETECTOR
    publish_end_rows(transitions, rlt, episode, claim_success=False)  # the actor closes its windows
    g.stream(JAMMED, 0.5)
    publish_end_rows(transitions, rlt, episode, claim_success=False)  # not acknowledged yet: the outbox resends
    assert not [k for k in acks if k[0] == episode]  # held in the gate, not acknowledged
    assert g.press("mark_success").success
    wait_for(lambda: g.of(EventType.RESET, episode), 10, ros_node.spin_once, "the reset after the grace period")
    keys = {(episode, 2 * i) for i in range(5)}
    wait_for(lambda: keys <= set(acks), 20, ros_node.spin_once, f"the acknowledgements ({acks})\n"
             + processes.log(learner))
    wait_for(lambda: stats and stats[-1]["stored"] >= 5, 10, ros_node.spin_once, "the learner's statistics")
    assert stats[-1].get("end_rows_stored") == 5 and stats[-1].get("end_rows_dropped") == 0, stats[-1]
    assert stats[-1].get("duplicate_transitions") == 5, stats[-1]
    assert processes.stop(learner) in (0, -2), processes.log(learner)
    data = ReplayBuffer(rlt.token_dim, rlt.proprio_dim, rlt.chunk_size, rlt.action_dim,
                        directory=out / "replay").arrays()
    assert sorted(zip(data["episode_id"].tolist(), data["index"].tolist())) == sorted(keys)  # none lost, none twice
    assert np.all(data["done"] == 1) and np.all(data["rewards"].sum(axis=1) == 1.0)  # the operator's success


def test_the_simulated_operator_only_corrects_the_learned_marks(processes, ros_node, tmp_path):
    """sim_operator with operator.learned_marks beside the reward node's detector in auto: a right verdict
    costs no press; a success verdict on a plug that is not in is overruled (failure, HUMAN); a seated plug the
    detector stays silent on gets the operator's success after its grace; with no switch it hands over itself,
    operator.late_s into the critical phase."""
    from std_msgs.msg import Bool

    from rlt_ros.core.checkpoints import token_identity
    from rlt_ros.core.interfaces import EventSource, EventType
    from rlt_ros.ros import qos

    make_detector(tmp_path / "detector", token_identity())
    reward = start_reward(processes, tmp_path, tmp_path / "detector", grace_s=1.5)
    operator = start_node(processes, tmp_path, "sim_operator", **{
        "operator.learned_marks": True, "operator.critical_timeout_s": 0.0, "operator.late_s": 0.3,
        "operator.grace_s": 1.0, "operator.reaction_delay_s": 0.05})
    g = Graph(ros_node)
    critical = ros_node.create_publisher(Bool, "/sim_arm/in_critical_phase", qos.STREAM)
    seated = ros_node.create_publisher(Bool, "/sim_arm/success", qos.LATCHED)
    logs = lambda: processes.log(reward) + processes.log(operator)  # noqa: E731

    def episode(plug_in: bool, depth: float, number: int):
        wait_for(lambda: len(g.of(EventType.START)) >= number, 60, ros_node.spin_once, f"episode {number}\n" + logs())
        eid = g.of(EventType.START)[number - 1].episode_id
        seated.publish(Bool(data=False))
        flagged = time.monotonic()
        wait_for(lambda: g.of(EventType.HANDOVER, eid), 10,
                 lambda: (critical.publish(Bool(data=True)), g.publish(0.0)), "the operator's handover\n" + logs())
        assert time.monotonic() - flagged >= 0.3 - 0.05  # it waited operator.late_s for a switch
        seated.publish(Bool(data=plug_in))
        wait_for(lambda: g.of(EventType.RESET, eid), 20, lambda: g.publish(depth), f"episode {number}'s end\n" + logs())
        return [(e.type, e.source) for e in g.events
                if e.episode_id == eid and (e.type.terminal or e.type == EventType.HANDOVER)]

    human, detector = EventSource.HUMAN, EventSource.DETECTOR
    assert episode(True, SEATED, 1) == [(EventType.HANDOVER, human), (EventType.SUCCESS, detector)]
    assert episode(False, SEATED, 2) == [(EventType.HANDOVER, human), (EventType.SUCCESS, detector),
                                         (EventType.FAILURE, human)]  # the overrule
    no_verdict = 0.82  # p(success) ~0.4
    assert episode(True, no_verdict, 3) == [(EventType.HANDOVER, human), (EventType.SUCCESS, human)]
