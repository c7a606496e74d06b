"""reward_node with ``episode.handover: auto`` over DDS: the learned switch hands over on /rlt/token (source
DETECTOR) once the tokens show the critical phase, the operator's button hands over when it comes first,
and a switch trained on another RL token leaves the node in operator mode with a clear error."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ros_harness import wait_for
from test_ros_operator import start_node
from test_rlt_switch import synthetic_episodes

pytestmark = [pytest.mark.ros, pytest.mark.timeout(180)]


def make_switch(path, identity):
    from rlt_ros.core.rlt.configuration_switch import SwitchConfig
    from rlt_ros.core.rlt.switch import train_switch

    train_switch(synthetic_episodes(16), SwitchConfig(hidden=(16,), steps=300, test_fraction=0.0), identity).save(path)


class Graph:
    """The test's side: events heard, tokens published (token[0] is the synthetic episodes' distance d)."""

    def __init__(self, ros_node):
        from rlt_ros.msg import EpisodeEvent, RLToken
        from rlt_ros.ros import qos
        from rlt_ros.ros.conversions import event_from_msg

        self.node, self.events = ros_node, []
        ros_node.create_subscription(EpisodeEvent, "/rlt/events", lambda m: self.events.append(event_from_msg(m)),
                                     qos.EVENTS)
        self.tokens = ros_node.create_publisher(RLToken, "/rlt/token", qos.STREAM)

    def of(self, kind, episode=None):
        return [e for e in self.events if e.type == kind and (episode is None or e.episode_id == episode)]

    def publish(self, d: float) -> None:
        from rlt_ros.core.interfaces import Phase, TokenPacket
        from rlt_ros.ros.conversions import token_to_msg

        episode = self.events[-1].episode_id if self.events else 1
        self.tokens.publish(token_to_msg(TokenPacket(
            stamp=self.node.get_clock().now().nanoseconds * 1e-9, episode_id=episode, phase=Phase.VLA,
            token=np.array([d, 0, 0, 0], np.float32), proprio=np.zeros(3, np.float32), joint_names=("a", "b"),
            reference_chunk=np.zeros((2, 2), np.float32), step_dt=0.02)))
        self.node.spin_once(0.04)  # ~25 Hz, the observation rate

    def stream(self, d: float, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.publish(d)

    def press(self, name: str):
        from std_srvs.srv import Trigger

        client = self.node.create_client(Trigger, f"/rlt/{name}")
        assert client.wait_for_service(timeout_sec=30), f"/rlt/{name} not offered"
        future = client.call_async(Trigger.Request())
        wait_for(future.done, 10, self.node.spin_once, f"/rlt/{name} response")
        return future.result()


def start_reward(processes, tmp_path, switch):
    return start_node(processes, tmp_path, "reward", **{
        "arm.reset_service": "", "episode.handover": "auto", "episode.switch": str(switch),
        "episode.timeout_s": 0.0, "episode.critical_timeout_s": 0.0})


def test_switch_hands_over_and_the_operator_wins_when_first(processes, ros_node, tmp_path):
    from rlt_ros.core.checkpoints import token_identity
    from rlt_ros.core.interfaces import EventSource, EventType

    make_switch(tmp_path / "switch", token_identity())  # trained on the graph's (shipped) RL token
    reward = start_reward(processes, tmp_path, tmp_path / "switch")
    g = Graph(ros_node)
    wait_for(lambda: g.of(EventType.START), 60, ros_node.spin_once, "the first episode\n" + processes.log(reward))
    first = g.of(EventType.START)[0].episode_id
    g.stream(1.0, 1.5)  # the approach: far from the socket
    assert not g.of(EventType.HANDOVER), processes.log(reward)
    wait_for(lambda: g.of(EventType.HANDOVER), 10, lambda: g.publish(0.0), "the switch's handover")
    handover = g.of(EventType.HANDOVER)[0]
    assert handover.source == EventSource.DETECTOR and handover.episode_id == first
    assert "handover auto" in processes.log(reward)

    assert g.press("mark_success").success
    wait_for(lambda: len(g.of(EventType.START)) == 2, 30, ros_node.spin_once, "the next episode")
    second = g.of(EventType.START)[1].episode_id
    g.stream(1.0, 0.5)
    assert g.press("start_rl").success  # the operator sees the critical phase first
    g.stream(0.0, 1.5)  # the switch would fire now: the episode is already handed over
    assert [(e.source, e.episode_id) for e in g.of(EventType.HANDOVER)] == [
        (EventSource.DETECTOR, first), (EventSource.HUMAN, second)]
    assert g.of(EventType.HANDOVER)[1].note == "late switch"  # the operator's press while a switch runs: no label


def test_switch_for_another_token_keeps_operator_mode(processes, ros_node, tmp_path):
    from rlt_ros.core.interfaces import EventSource, EventType

    make_switch(tmp_path / "switch", {"token": "/elsewhere/other_token", "token_sha256": "0" * 64})
    reward = start_reward(processes, tmp_path, tmp_path / "switch")
    g = Graph(ros_node)
    wait_for(lambda: g.of(EventType.START), 60, ros_node.spin_once, "the first episode\n" + processes.log(reward))
    g.stream(0.0, 1.5)  # tokens that would fire the switch
    assert not g.of(EventType.HANDOVER) and reward.poll() is None
    log = processes.log(reward)
    assert "trained on the RL token /elsewhere/other_token" in log and "staying in operator mode" in log
    assert "handover operator" in log
    assert g.press("start_rl").success
    wait_for(lambda: g.of(EventType.HANDOVER), 10, ros_node.spin_once, "the operator's handover")
    assert g.of(EventType.HANDOVER)[0].source == EventSource.HUMAN
