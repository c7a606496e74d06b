"""The full train graph over real DDS on the simulated arm; the test is the operator.

One run checks, in order: an episode starts; the test hands over (/rlt/start_rl) and, once the actor
has produced critical-phase transitions, presses success (/rlt/mark_success) -- a double mark is
refused; the success reaches the learner's on-disk replay as a terminal transition with reward 1;
actor weights reach the actor (chunks with source ACTOR); no command ever leaves the joint limits;
exploration can be turned off at run time while start-up parameters are refused; killing the learner
does not stop the actor; the rest of the graph shuts down cleanly.
"""

import io
import os
import signal
import time

import numpy as np
import pytest

from ros_harness import wait_for

pytestmark = [pytest.mark.ros, pytest.mark.slow, pytest.mark.timeout(420)]


def test_train_graph_on_sim(ros_domain, ros_node, tmp_path):
    from trajectory_msgs.msg import JointTrajectory

    from rlt_ros import graph as graph_mod
    from rlt_ros.commands.launch import GraphProcesses
    from rlt_ros.core.arm import ArmConfig
    from rlt_ros.core.interfaces import ChunkSource, EventType
    from rlt_ros.core.rlt.replay import ReplayBuffer
    from rlt_ros.msg import ActionChunk, ActorWeights, EpisodeEvent, LearnerStats
    from rlt_ros.ros import qos
    from rlt_ros.ros.conversions import event_from_msg

    import yaml
    arm = ArmConfig(**yaml.safe_load(open(graph_mod.config_dir() / "arms" / "sim.yaml"))
                    ["/**"]["ros__parameters"]["arm"])
    fast = {"rlt.warmup_transitions": 30, "rlt.batch_size": 16, "rlt.export_every": 10, "rlt.utd": 1}
    overrides = {"learner": {"learner.output_dir": str(tmp_path / "learner"), **fast},
                 "actor": {"actor.autostart": True},
                 "reward": {"episode.critical_timeout_s": 0.0, "episode.timeout_s": 0.0}}
    specs = graph_mod.graph("train", "sim", overrides)

    events, chunks, weights, stats, commands = [], [], [], [], []
    ros_node.create_subscription(EpisodeEvent, "/rlt/events", lambda m: events.append(event_from_msg(m)), qos.EVENTS)
    ros_node.create_subscription(ActionChunk, "/rlt/action_chunk", chunks.append, qos.STREAM)
    ros_node.create_subscription(ActorWeights, "/rlt/actor_weights", weights.append, qos.LATCHED)
    ros_node.create_subscription(LearnerStats, "/rlt/learner_stats", stats.append, qos.STREAM)
    ros_node.create_subscription(JointTrajectory, arm.command_topic, commands.append, qos.COMMAND)

    from std_srvs.srv import Trigger
    buttons = {name: ros_node.create_client(Trigger, f"/rlt/{name}") for name in ("start_rl", "mark_success")}

    def press(name):
        assert buttons[name].wait_for_service(timeout_sec=60), f"/rlt/{name} not offered"
        future = buttons[name].call_async(Trigger.Request())
        wait_for(future.done, 10, ros_node.spin_once, f"/rlt/{name} response")
        return future.result()

    log = io.StringIO()
    procs = GraphProcesses(specs, env=dict(ros_domain), out=log, stop_timeout=20)
    procs.start()
    try:
        def ended(kind):
            return [e for e in events if e.type == kind]
        wait_for(lambda: ended(EventType.START), 120, ros_node.spin_once, "the first episode to start\n" + log.getvalue())
        press("start_rl")
        wait_for(lambda: stats and stats[-1].transitions >= 40, 120, ros_node.spin_once,
                 "critical-phase transitions in the learner\n" + log.getvalue()[-5000:])
        assert press("mark_success").success
        second = press("mark_success")
        assert not second.success and "already marked" in second.message
        wait_for(lambda: ended(EventType.SUCCESS), 10, ros_node.spin_once, "the SUCCESS event")
        wait_for(lambda: len(ended(EventType.START)) >= 2, 60, ros_node.spin_once, "the next episode after the reset")
        press("start_rl")
        wait_for(lambda: weights and any(c.source == ChunkSource.ACTOR.value for c in chunks), 150,
                 ros_node.spin_once, "actor chunks with the learner's weights\n" + log.getvalue()[-5000:])
        assert weights[-1].version > 0
        # the learner's action scale is the demonstrations' (stored with the RL token the graph runs)
        from rlt_ros.core.checkpoints import token_checkpoint
        from rlt_ros.core.rlt.action_stats import load_action_stats
        from rlt_ros.core.rlt.policy import ActorPolicy
        policy = ActorPolicy.from_export(bytes(weights[-1].safetensors), weights[-1].config_json)
        np.testing.assert_allclose(policy.normalizer.action_std.numpy(), load_action_stats(token_checkpoint()).std,
                                   rtol=1e-6)
        named = dict(zip(stats[-1].names, stats[-1].values))  # how the learner keeps up with the data
        assert 0 < named["utd_achieved"] <= 1.0 + 1e-6 and named["pending_updates"] >= 0

        # `ros2 param set /actor ...`: exploration may change at run time, start-up settings are refused
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter
        set_params = ros_node.create_client(SetParameters, "/actor/set_parameters")
        assert set_params.wait_for_service(timeout_sec=30)

        def set_param(name, value, client=set_params):
            future = client.call_async(SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()]))
            wait_for(future.done, 10, ros_node.spin_once, f"set_parameters {name}")
            return future.result().results[0]
        assert set_param("actor.explore", False).successful
        refused = set_param("actor.max_token_age_s", 5.0)
        assert not refused.successful and "read at start-up" in refused.reason and "actor.explore" in refused.reason
        assert not set_param("use_sim_time", False).successful  # the actor would stop on the wall clock
        sim_params = ros_node.create_client(SetParameters, "/sim_arm/set_parameters")
        assert sim_params.wait_for_service(timeout_sec=30)
        assert not set_param("driver.realtime_factor", 5.0, sim_params).successful  # the driver's too

        learner = procs.process("learner")
        os.kill(learner.pid, signal.SIGKILL)
        learner.wait(10)
        n_before = len(commands)
        t0 = time.monotonic()
        wait_for(lambda: time.monotonic() - t0 > 3.0, 10, ros_node.spin_once, "3 s without the learner")
        assert len(commands) > n_before, "the actor stopped commanding the arm when the learner died"
    finally:
        procs.stop()
        codes = dict(procs.exited())
    assert all(code in (0, -signal.SIGINT, 128 + signal.SIGINT) for name, code in codes.items() if name != "learner"), \
        f"{codes}\n{log.getvalue()[-5000:]}"
    assert "[sim_arm]: episode 1 ended: insertion depth" in log.getvalue()  # where each episode ended, logged at the reset

    # no command ever left the limits
    lower, upper = np.array(arm.position_lower), np.array(arm.position_upper)
    max_step = np.array(arm.max_velocity) / arm.control_hz
    for traj in commands:
        pos = np.array([p.positions for p in traj.points])
        assert np.all(pos >= lower - 1e-9) and np.all(pos <= upper + 1e-9)
        assert np.all(np.abs(np.diff(pos, axis=0)) <= max_step + 1e-6)

    # the success mark became a terminal reward in the learner's on-disk replay
    success_ids = {e.episode_id for e in events if e.type == EventType.SUCCESS}
    from rlt_ros.core.rlt.configuration_rlt import RLTConfig
    params = {**yaml.safe_load(open(graph_mod.config_dir() / "rlt.yaml"))["/**"]["ros__parameters"]["rlt"],
              **yaml.safe_load(open(graph_mod.config_dir() / "arms" / "sim.yaml"))["/**"]["ros__parameters"]["rlt"]}
    rlt = RLTConfig(**params)
    replay = ReplayBuffer(rlt.token_dim, rlt.proprio_dim, rlt.chunk_size, rlt.action_dim,
                          directory=tmp_path / "learner" / "replay")
    data = replay.arrays()
    terminal = data[data["done"] == 1]
    assert any(int(t["episode_id"]) in success_ids and t["rewards"].sum() == 1.0 for t in terminal)
