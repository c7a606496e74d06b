"""The switch and the detector retrained during practice, over DDS: learner_node (learner.marks_every) records
/rlt/token and /rlt/events, retrains both after every N marked episodes and exports each version on
/rlt/switch_weights and /rlt/detector_weights with its held-out metrics on /rlt/learner_stats; reward_node with
episode.switch / reward.detector_path "learner" follows them (operator mode until the first arrives, a bad
version refused and the one in use kept)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ros_harness import wait_for
from test_ros_detector import SEATED, make_detector
from test_ros_faults import start_learner
from test_ros_operator import start_node
from test_ros_switch import Graph, make_switch
from test_rlt_marks_training import practice

pytestmark = [pytest.mark.ros, pytest.mark.timeout(240)]


class Publisher:
    """practice()'s writer side as messages on the graph's topics (tokens padded to the arm's sizes)."""

    def __init__(self, ros_node, events, rlt):
        from rlt_ros.msg import RLToken
        from rlt_ros.ros import qos

        self.node, self.events, self.rlt = ros_node, events, rlt
        self.tokens = ros_node.create_publisher(RLToken, "/rlt/token", qos.STREAM)
        self.sent = 0

    def write_token(self, packet):
        from dataclasses import replace

        from rlt_ros.ros.conversions import token_to_msg

        token = np.zeros(self.rlt.token_dim, np.float32)
        token[: len(packet.token)] = packet.token
        proprio = np.zeros(self.rlt.proprio_dim, np.float32)
        self.tokens.publish(token_to_msg(replace(packet, token=token, proprio=proprio)))
        self.sent += 1
        time.sleep(0.001)  # paced (~1 kHz): /rlt/token keeps the last 10 on a slow reader
        if self.sent % 20 == 0:
            self.node.spin_once(0.005)

    def write_event(self, event):
        from rlt_ros.ros.conversions import event_to_msg

        self.events.publish(event_to_msg(event))
        self.node.spin_once(0.005)
        return False


def test_the_learner_retrains_and_exports_both_after_every_marked_episodes(processes, ros_node, tmp_path):
    from rlt_ros.core.checkpoints import token_identity
    from rlt_ros.core.rlt.detector import SuccessDetector
    from rlt_ros.core.rlt.switch import HandoverSwitch
    from rlt_ros.msg import ClassifierWeights
    from rlt_ros.ros import qos

    learner, rlt, out, events, _, stats = start_learner(processes, ros_node, tmp_path, **{"learner.marks_every": 20})
    got = {"switch": [], "detector": []}
    for kind in got:
        ros_node.create_subscription(ClassifierWeights, f"/rlt/{kind}_weights", got[kind].append, qos.LATCHED)
    publisher = Publisher(ros_node, events, rlt)
    wait_for(lambda: publisher.tokens.get_subscription_count() > 0, 60, ros_node.spin_once,
             lambda: "the learner's token subscription\n" + processes.log(learner))  # no token lost to discovery
    practice(publisher, 19)
    ros_node.spin_once(1.0)
    assert not got["switch"] and not got["detector"]  # 19 marks: not yet
    practice(publisher, 1, first=50, seed=1)
    wait_for(lambda: got["switch"] and got["detector"], 120, ros_node.spin_once,
             lambda: "both classifiers' first version\n" + processes.log(learner))
    identity = token_identity()
    switch = HandoverSwitch.from_bytes(got["switch"][0].meta_json, bytes(got["switch"][0].safetensors), identity)
    detector = SuccessDetector.from_bytes(got["detector"][0].meta_json, bytes(got["detector"][0].safetensors), identity)
    assert got["switch"][0].version == got["detector"][0].version == 1
    assert switch.token_dim == rlt.token_dim and detector.report["episodes"]["train"] > 0
    assert (out / "marks" / "detector" / "v0001" / "detector.safetensors").is_file()
    wait_for(lambda: stats and stats[-1].get("marks_version") == 1.0, 30, ros_node.spin_once, "the metrics")
    assert 0.0 <= stats[-1]["detector_accuracy"] <= 1.0 and "switch_on_time" in stats[-1]
    assert "switch and detector version 1" in processes.log(learner)


def test_the_reward_node_follows_the_learners_versions(processes, ros_node, tmp_path):
    from rlt_ros.core.checkpoints import token_identity
    from rlt_ros.core.interfaces import EventSource, EventType
    from rlt_ros.core.rlt.detector import SuccessDetector
    from rlt_ros.core.rlt.switch import HandoverSwitch
    from rlt_ros.msg import ClassifierWeights
    from rlt_ros.ros import qos

    reward = start_node(processes, tmp_path, "reward", **{
        "arm.reset_service": "", "episode.handover": "auto", "episode.switch": "learner", "reward.detector": "auto",
        "reward.detector_path": "learner", "reward.detector_failure_after_s": 1.0, "reward.detector_grace_s": 0.5,
        "episode.timeout_s": 0.0, "episode.critical_timeout_s": 0.0})
    pubs = {kind: ros_node.create_publisher(ClassifierWeights, f"/rlt/{kind}_weights", qos.LATCHED)
            for kind in ("switch", "detector")}
    g = Graph(ros_node)
    wait_for(lambda: g.of(EventType.START), 60, ros_node.spin_once, "the first episode\n" + processes.log(reward))
    first = g.of(EventType.START)[0].episode_id
    g.stream(0.3, 0.5)  # close to the socket: no switch yet, so no handover
    assert not g.of(EventType.HANDOVER) and "until the first arrives" in processes.log(reward)
    pubs["detector"].publish(ClassifierWeights(version=7, meta_json="{}", safetensors=list(b"garbage")))
    wait_for(lambda: "not a valid success detector" in processes.log(reward), 10, ros_node.spin_once,
             "the refusal\n" + processes.log(reward))

    identity = token_identity()
    make_switch(tmp_path / "switch", identity)
    make_detector(tmp_path / "detector", identity)
    for kind, cls in (("switch", HandoverSwitch), ("detector", SuccessDetector)):
        meta, weights = cls.load(tmp_path / kind, identity).to_bytes()
        pubs[kind].publish(ClassifierWeights(version=1, meta_json=meta, safetensors=weights))
    wait_for(lambda: "success detector version 1 from the learner" in processes.log(reward)
             and "handover switch version 1 from the learner" in processes.log(reward), 10, ros_node.spin_once,
             "both versions loaded\n" + processes.log(reward))
    assert g.press("mark_failure").success  # the first episode (operator mode) ends
    wait_for(lambda: len(g.of(EventType.START)) == 2, 30, ros_node.spin_once, "the next episode")
    second = g.of(EventType.START)[1].episode_id
    g.stream(1.0, 0.5)  # far from the socket
    assert not g.of(EventType.HANDOVER, second)
    wait_for(lambda: g.of(EventType.HANDOVER, second), 10, lambda: g.publish(0.3), "the switch's handover")
    wait_for(lambda: g.of(EventType.SUCCESS, second), 10, lambda: g.publish(SEATED), "the detector's success")
    assert [e.source for e in g.of(EventType.HANDOVER, second) + g.of(EventType.SUCCESS, second)] == \
        [EventSource.DETECTOR, EventSource.DETECTOR]
    assert [e.source for e in g.of(EventType.FAILURE, first)] == [EventSource.HUMAN]
