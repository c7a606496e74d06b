"""Faults and other processes on the domain, over real DDS: restarted nodes and floods of input."""

import time

import pytest

from ros_harness import ROOT, wait_for

pytestmark = [pytest.mark.ros, pytest.mark.timeout(180)]

SIM_ARM = str(ROOT / "config" / "arms" / "sim.yaml")


def test_a_restarted_reward_node_never_reuses_an_episode_id(processes, ros_node):
    """The reward node numbered episodes from 1 at every start: a restart reused the ids of the replay's
    episodes and the followers' (issue 19 #7). Ids now count up from its start time in milliseconds."""
    from rlt_ros.core.interfaces import EventType
    from rlt_ros.msg import EpisodeEvent
    from rlt_ros.ros import qos
    from rlt_ros.ros.conversions import event_from_msg

    starts = []
    ros_node.create_subscription(EpisodeEvent, "/rlt/events",
                                 lambda m: starts.append(event_from_msg(m).episode_id)
                                 if m.type == EventType.START else None, qos.EVENTS)
    args = ["--ros-args", "--params-file", SIM_ARM, "-p", "arm.reset_service:=''", "-p", "reward.reset_delay_s:=0.0"]
    for run in range(2):
        node = processes.start_module(f"reward{run}", "rlt_ros.nodes.reward_node", *args)
        wait_for(lambda: len(starts) > run, 30, ros_node.spin_once, f"a START of reward node run {run}\n"
                 + (processes.log(node) if node.poll() is not None else ""))
        assert processes.stop(node) in (0, -2), processes.log(node)
    assert starts[1] > starts[0] >= int(time.time() * 1000) - 120_000, starts
