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


def start_learner(processes, ros_node, tmp_path, **extra):
    """A learner node of the train graph writing to tmp_path/learner (no training: warm-up never ends; ``extra``
    parameters besides), and the test's publishers of /rlt/events and /rlt/transitions once it hears them:
    (process, RLTConfig, output folder, events publisher, transitions publisher, stats list)."""
    import yaml

    from rlt_ros import graph as graph_mod
    from rlt_ros.core.rlt.configuration_rlt import RLTConfig
    from rlt_ros.msg import EpisodeEvent, LearnerStats, Transition as TransitionMsg
    from rlt_ros.ros import qos

    out = tmp_path / "learner"
    overrides = {"use_sim_time": False, "learner.output_dir": str(out), "rlt.warmup_transitions": 100_000, **extra}
    spec = next(s for s in graph_mod.graph("train", "sim", {"learner": overrides}) if s.name == "learner")
    learner = processes.start_module("learner", spec.module,
                                     *graph_mod.ros_args(spec, graph_mod.write_overrides(spec, tmp_path)))
    params = {**yaml.safe_load(open(graph_mod.config_dir() / "rlt.yaml"))["/**"]["ros__parameters"]["rlt"],
              **yaml.safe_load(open(graph_mod.config_dir() / "arms" / "sim.yaml"))["/**"]["ros__parameters"]["rlt"]}
    events = ros_node.create_publisher(EpisodeEvent, "/rlt/events", qos.EVENTS)
    transitions = ros_node.create_publisher(TransitionMsg, "/rlt/transitions", qos.TRANSITIONS)
    stats = []
    ros_node.create_subscription(LearnerStats, "/rlt/learner_stats",
                                 lambda m: stats.append({**dict(zip(m.names, m.values)), "stored": m.transitions}),
                                 qos.STREAM)
    wait_for(lambda: transitions.get_subscription_count() > 0 and events.get_subscription_count() > 0, 60,
             ros_node.spin_once, "the learner's subscriptions\n" + processes.log(learner))
    wait_for(lambda: stats, 60, ros_node.spin_once, "the learner's first statistics\n" + processes.log(learner))
    return learner, RLTConfig(**params), out, events, transitions, stats


def publish_end_rows(transitions, rlt, episode, claim_success, n=5):
    """n terminal rows of ``episode`` (indices 0, 2, ...) claiming reward 1 or 0, as an actor (or a forger) sends them."""
    import numpy as np

    from rlt_ros.core.rlt.replay import Transition
    from rlt_ros.ros.conversions import transition_to_msg

    z = lambda *s: np.zeros(s, np.float32)  # noqa: E731
    for i in range(n):
        rewards = z(rlt.chunk_size)
        rewards[-1] = 1.0 if claim_success else 0.0
        t = Transition(episode, 2 * i, z(rlt.token_dim), z(rlt.proprio_dim), z(rlt.chunk_size, rlt.action_dim),
                       z(rlt.chunk_size, rlt.action_dim), rewards, True, z(rlt.token_dim),
                       z(rlt.proprio_dim), z(rlt.chunk_size, rlt.action_dim))
        transitions.publish(transition_to_msg(t, time.time()))


@pytest.mark.slow
def test_the_learner_stores_terminal_rewards_only_as_the_reward_node_outcome_says(processes, ros_node, tmp_path):
    """A forged SUCCESS event and forged terminal transitions claiming reward 1 for an episode the reward
    node timed out made reward-1 rows in the replay (issue 19 #8). Over DDS: they are dropped; a real success
    still stores its terminal rows with reward 1."""
    import numpy as np

    from rlt_ros.core.interfaces import EpisodeEventPacket, EventSource, EventType
    from rlt_ros.core.rlt.replay import ReplayBuffer
    from rlt_ros.ros.conversions import event_to_msg

    learner, rlt, out, events, transitions, stats = start_learner(processes, ros_node, tmp_path)

    def event(episode, kind, source=EventSource.SYSTEM):
        events.publish(event_to_msg(EpisodeEventPacket(time.time(), episode, kind, source,
                                                       1.0 if kind == EventType.SUCCESS else 0.0)))

    def rows(episode, claim_success):
        publish_end_rows(transitions, rlt, episode, claim_success)

    timed_out, succeeded = 11, 12
    event(timed_out, EventType.START)
    event(timed_out, EventType.SUCCESS, EventSource.HUMAN)  # forged, before the reward node's timeout
    rows(timed_out, claim_success=True)  # forged terminal rows
    event(timed_out, EventType.TIMEOUT, EventSource.TIMEOUT)
    event(timed_out, EventType.RESET)
    event(succeeded, EventType.START)
    rows(succeeded, claim_success=True)
    event(succeeded, EventType.SUCCESS, EventSource.HUMAN)
    event(succeeded, EventType.RESET)
    try:
        wait_for(lambda: stats and stats[-1]["stored"] >= 5, 30, ros_node.spin_once, "5 stored transitions")
    except AssertionError as err:  # what the learner says by then
        raise AssertionError(f"{err}: {stats[-1:]}\n{processes.log(learner)}") from None
    t0 = time.monotonic()
    wait_for(lambda: time.monotonic() - t0 > 1.0, 5, ros_node.spin_once, "a second more")
    assert stats[-1].get("end_rows_stored") == 5 and stats[-1].get("end_rows_dropped") == 5, stats[-1]
    assert processes.stop(learner) in (0, -2), processes.log(learner)
    data = ReplayBuffer(rlt.token_dim, rlt.proprio_dim, rlt.chunk_size, rlt.action_dim,
                        directory=out / "replay").arrays()
    assert sorted(set(data["episode_id"].tolist())) == [succeeded]
    assert np.all(data["done"] == 1) and np.all(data["rewards"].sum(axis=1) == 1.0)
    assert "conflicting outcomes" in processes.log(learner)
