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


def test_latest_input_is_read_by_its_owner_only_newest_first(ros_domain):
    """Flood-prone inputs (RL tokens, teleop, joint states) are never run by the executor: the control tick
    takes what arrived, counts it and gets the newest (actor_node; issue 19 #9, measured: bench/input_flood.py)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import Int32

    from rlt_ros.ros import qos
    from rlt_ros.ros.latest import LatestInput

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        sender = rclpy.create_node("flood_sender", context=context)
        owner = rclpy.create_node("latest_owner", context=context)
        executor = SingleThreadedExecutor(context=context)
        for n in (sender, owner):
            executor.add_node(n)
        got = []
        latest = LatestInput(owner, Int32, "/flood", got.append, qos.LATEST)
        pub = sender.create_publisher(Int32, "/flood", qos.STREAM)
        wait_for(lambda: pub.get_subscription_count() > 0, 20, lambda: executor.spin_once(0.05), "the subscription")
        for i in range(200):
            pub.publish(Int32(data=i))
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.01)  # the executor never runs it (its callback would raise)
        assert latest.take() and [m.data for m in got] == [199]
        assert 10 <= latest.count <= 64 and latest.count_since() == latest.count  # at most LATEST's depth
        assert not latest.take() and latest.count_since() == 0 and len(got) == 1
        executor.shutdown()
    finally:
        rclpy.shutdown(context=context)
