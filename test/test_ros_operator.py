"""sim_operator_node with the real reward node over DDS: it hands over at the critical phase and, when the
insertion takes longer than the cycle time it holds it to, presses failure (a terminal mark, not a timeout)."""

from __future__ import annotations

import sys
from dataclasses import replace

import pytest

from ros_harness import wait_for

pytestmark = [pytest.mark.ros, pytest.mark.timeout(120)]


def start_node(processes, tmp_path, name, **overrides):
    from rlt_ros import graph

    spec = next(s for s in graph.graph("demo", "sim") if s.name == name)
    spec = replace(spec, overrides={**spec.overrides, "use_sim_time": False, **overrides})
    args = graph.ros_args(spec, graph.write_overrides(spec, tmp_path))
    return processes.start(name, [sys.executable, "-m", spec.module, *args])


def test_operator_presses_failure_after_its_cycle_time(processes, ros_node, tmp_path):
    from std_msgs.msg import Bool

    from rlt_ros.core.interfaces import EventSource, EventType
    from rlt_ros.msg import EpisodeEvent
    from rlt_ros.ros import qos
    from rlt_ros.ros.conversions import event_from_msg

    reward = start_node(processes, tmp_path, "reward", **{"arm.reset_service": ""})  # no arm: the scene is reset
    operator = start_node(processes, tmp_path, "sim_operator", **{"operator.critical_timeout_s": 1.0,
                                                                   "operator.reaction_delay_s": 0.05})
    events = []
    ros_node.create_subscription(EpisodeEvent, "/rlt/events", lambda m: events.append(event_from_msg(m)), qos.EVENTS)
    critical = ros_node.create_publisher(Bool, "/sim_arm/in_critical_phase", qos.STREAM)

    def of(kind):
        return [e for e in events if e.type == kind]

    wait_for(lambda: of(EventType.START), 60, ros_node.spin_once, "the first episode")

    def flag_and_spin():
        critical.publish(Bool(data=True))
        ros_node.spin_once()

    wait_for(lambda: of(EventType.HANDOVER), 30, flag_and_spin, "the operator's handover")
    wait_for(lambda: of(EventType.FAILURE) or of(EventType.TIMEOUT), 30, flag_and_spin, "the failure press")
    handover, failure = of(EventType.HANDOVER)[0], of(EventType.FAILURE)[0]
    assert failure.source == EventSource.HUMAN and failure.reward == 0.0  # a press, terminal for the learner
    assert 1.0 <= failure.stamp - handover.stamp < 2.0  # after the cycle time, with the reaction delay
    assert not of(EventType.TIMEOUT) and len(of(EventType.FAILURE)) == 1
