"""Fault injection over real DDS: kill -9 of every node of the practising graph in turn, and a restart.

The demo graph (simulated arm, simulated operator) practises RL; the test kills each node with SIGKILL
(the learner twice more: once again while it starts up) and starts it again. It asserts what issue 19
asks of the graph: no command outside the joint limits, beyond the velocity limit within a chunk, or far
from the measured arm; the actor holds when the RL tokens stop; practice resumes after every restart; and
every transition the actor published reaches the learner's on-disk replay exactly once (the actor's
durable outbox sends again what the learner did not acknowledge; the replay drops repeats).
"""

import io
import os
import re
import signal
import time

import numpy as np
import pytest

from ros_harness import wait_for

pytestmark = [pytest.mark.ros, pytest.mark.slow, pytest.mark.timeout(900)]

UNSEEN_AT_KILL = 10  # stored transitions the test may not have received: those in flight when the actor died
FAR_STEPS = 10  # a command's first point is at most this many steps of velocity from the arm (forged: 45)
# the order of the kills: the actor first (its restart sends its whole outbox again, which would hide a learner
# that lost transitions), the learner also while it starts up, the arm's driver last (its clock restarts at 0)
KILLS = ("actor", "learner", "learner_starting", "vla", "observation", "reward", "sim_operator", "monitor", "sim_arm")


def _diagnose(procs, clock) -> str:
    """What the graph is doing: the simulated clock, each node's process, and (where py-spy is installed) every
    thread's Python and native stack."""
    import shutil
    import subprocess

    lines = [f"simulated clock {clock['sim']} s, last moved {time.monotonic() - clock['changed']:.0f} s ago"]
    spy = shutil.which("py-spy")
    for child in procs._children:
        alive = child.proc.poll() is None
        lines.append(f"--- {child.name} (pid {child.proc.pid}): {'alive' if alive else f'exited {child.proc.returncode}'}")
        if alive and spy:
            dump = subprocess.run([spy, "dump", "--native", "--pid", str(child.proc.pid)], capture_output=True,
                                  text=True, timeout=60)
            lines.append((dump.stdout + dump.stderr)[-4000:])
    return "\n".join(lines)


@pytest.mark.stress  # outside `make test`: in ~1 run of 10 the simulated arm's /clock stopped after a node's
# SIGKILL (docs/experiments.md 3.5); run it with `make test PYTEST_ARGS="-m stress"`
def test_kill_each_node_during_practice(ros_domain, ros_node, tmp_path):
    import yaml
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import JointState
    from trajectory_msgs.msg import JointTrajectory

    from rlt_ros import graph as graph_mod
    from rlt_ros.commands.launch import GraphProcesses
    from rlt_ros.core.arm import ArmConfig
    from rlt_ros.core.interfaces import ChunkSource
    from rlt_ros.core.rlt.configuration_rlt import RLTConfig
    from rlt_ros.core.rlt.replay import ReplayBuffer
    from rlt_ros.msg import ActionChunk, ActorWeights, LearnerStats, RLToken, Transition
    from rlt_ros.ros import qos
    from rlt_ros.ros.conversions import to_seconds

    sim = yaml.safe_load(open(graph_mod.config_dir() / "arms" / "sim.yaml"))["/**"]["ros__parameters"]
    arm = ArmConfig(**sim["arm"])
    rlt = RLTConfig(**{**yaml.safe_load(open(graph_mod.config_dir() / "rlt.yaml"))["/**"]["ros__parameters"]["rlt"],
                       **sim["rlt"]})
    token_age = yaml.safe_load(open(graph_mod.config_dir() / "rlt.yaml"))["actor"]["ros__parameters"]["actor"][
        "max_token_age_s"]
    fast = {"rlt.warmup_transitions": 30, "rlt.batch_size": 16, "rlt.export_every": 10, "rlt.utd": 1}
    outbox = tmp_path / "outbox"
    overrides = {"learner": {"learner.output_dir": str(tmp_path / "learner"), **fast},
                 "actor": {"actor.outbox_dir": str(outbox)}}
    specs = graph_mod.graph("demo", "sim", overrides)

    produced, chunks, commands, weights, tokens, episodes = set(), [], [], [], [], []
    joints = {"q": None}
    ros_node.create_subscription(Transition, "/rlt/transitions",
                                 lambda m: produced.add((m.episode_id, m.index)), qos.TRANSITIONS)
    ros_node.create_subscription(ActionChunk, "/rlt/action_chunk",
                                 lambda m: chunks.append((to_seconds(m.header.stamp), m.source)), qos.STREAM)
    ros_node.create_subscription(ActorWeights, "/rlt/actor_weights", weights.append, qos.LATCHED)
    ros_node.create_subscription(RLToken, "/rlt/token", lambda m: tokens.append(to_seconds(m.header.stamp)),
                                 qos.LATEST)
    ros_node.create_subscription(LearnerStats, "/rlt/learner_stats", lambda m: episodes.append(m.episodes),
                                 qos.STREAM)
    clock = {"sim": None, "changed": time.monotonic()}  # the simulated clock and when it last moved

    def on_clock(m):
        if to_seconds(m.clock) != clock["sim"]:
            clock.update(sim=to_seconds(m.clock), changed=time.monotonic())

    ros_node.create_subscription(Clock, "/clock", on_clock, qos.SENSOR)
    ros_node.create_subscription(JointState, arm.joint_states_topic,
                                 lambda m: joints.update(q=np.array(m.position)), qos.SENSOR)
    ros_node.create_subscription(JointTrajectory, arm.command_topic,
                                 lambda m: commands.append((joints["q"], m)), qos.COMMAND)

    def spin_for(seconds):
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            ros_node.spin_once(0.05)

    log = io.StringIO()
    procs = GraphProcesses(specs, env=dict(ros_domain), out=log, log_dir=tmp_path / "logs", stop_timeout=20)
    procs.start()
    try:
        wait_for(lambda: weights and weights[-1].version > 0 and len(produced) >= 60, 240, ros_node.spin_once,
                 "RL practice (actor weights and transitions)\n" + log.getvalue()[-5000:])
        for name in KILLS:
            node = "learner" if name == "learner_starting" else name
            if name == "learner_starting":  # killed again while it loads its replay and checkpoints
                os.kill(procs.process(node).pid, signal.SIGKILL)
                procs.process(node).wait(10)
                procs.restart(node)
                spin_for(2.0)
            os.kill(procs.process(node).pid, signal.SIGKILL)
            procs.process(node).wait(10)
            killed_at, at_kill = time.monotonic(), len(produced)
            spin_for(3.0)
            if node == "learner":  # the actor publishes while nobody takes its transitions: only its outbox keeps them
                wait_for(lambda: len(produced) >= at_kill + 20, 60, ros_node.spin_once,
                         "transitions while the learner is down")
            if node == "vla":  # no RL token for 3 s: the actor holds, and starts no chunk from a stale token
                # (simulated time: the observation's stamp, and when each chunk starts; a chunk under way runs to
                # its end, at most a VLA plan of 30 rows)
                last = max(tokens)
                fresh_until, hold_by = last + token_age + arm.dt + 1e-6, last + token_age + 32 * arm.dt
                # the actor's last chunk by then is a hold: a new one, or the hold it was in already (the vla
                # may die while the actor holds between episodes; a hold is sent once, not repeated)
                started = [src for t, src in chunks if t <= hold_by]
                assert started and started[-1] == ChunkSource.HOLD.value, \
                    f"not holding {hold_by - last:.2f} s after the last token's observation: {chunks[-5:]}"
                assert not [t for t, src in chunks if t > fresh_until and src != ChunkSource.HOLD.value], \
                    "a chunk started from a stale token"
            seen, counted = len(produced), len(episodes)
            procs.restart(node)
            try:
                wait_for(lambda: len(produced) >= seen + 20, 180, ros_node.spin_once,
                         f"practice to resume after {name} was killed at {killed_at:.0f}\n" + log.getvalue()[-5000:])
            except AssertionError as err:  # the rare freeze (docs/experiments.md 3.5): say what stopped
                raise AssertionError(f"{err}\n{_diagnose(procs, clock)}") from None
            if node == "learner":  # its episode statistics survive it (the run folder's episodes.jsonl)
                wait_for(lambda: len(episodes) > counted, 120, ros_node.spin_once, "learner statistics")
                assert episodes[-1] >= max(episodes[:counted], default=0), episodes

        # stop recording, let the outbox drain (each transition acknowledged), then stop the graph
        client = ros_node.create_client(SetParameters, "/actor/set_parameters")
        assert client.wait_for_service(timeout_sec=30)
        future = client.call_async(SetParameters.Request(
            parameters=[Parameter("actor.record", value=False).to_parameter_msg()]))
        wait_for(future.done, 10, ros_node.spin_once, "actor.record false")
        assert future.result().results[0].successful
        wait_for(lambda: not list(outbox.glob("*.bin")), 120, ros_node.spin_once,
                 f"the outbox to drain: {len(list(outbox.glob('*.bin')))} left\n" + log.getvalue()[-3000:])
    finally:
        procs.stop()
    codes = dict(procs.exited())
    assert all(code in (0, -signal.SIGINT, 128 + signal.SIGINT) for code in codes.values()), \
        f"{codes}\n{log.getvalue()[-5000:]}"

    # every transition the actor published is in the replay, once
    replay = ReplayBuffer(rlt.token_dim, rlt.proprio_dim, rlt.chunk_size, rlt.action_dim,
                          directory=tmp_path / "learner" / "replay", read_only=True)
    data = replay.arrays()
    stored = list(zip(data["episode_id"].tolist(), data["index"].tolist()))
    assert len(stored) == len(set(stored)), f"{len(stored) - len(set(stored))} duplicated transitions"
    lost, unseen = produced - set(stored), set(stored) - produced
    assert not lost, f"{len(lost)} of {len(produced)} transitions lost"
    # a transition sent just before the actor's SIGKILL can reach the learner and not this test's subscriber (the
    # writer dies while delivering); more than a few would mean the test itself missed what was sent
    assert len(unseen) <= UNSEEN_AT_KILL, f"{len(unseen)} stored transitions this test never received"
    print(f"{len(KILLS) + 1} kills: {len(produced)} transitions published, {len(stored)} stored, 0 lost, 0 duplicated"
          f"{f', {len(unseen)} sent as the actor died' if unseen else ''}")

    # no command outside the limits, beyond the velocity limit within a chunk, or far from the measured arm
    lower, upper = np.array(arm.position_lower), np.array(arm.position_upper)
    max_step = np.array(arm.max_velocity) / arm.control_hz
    far = []
    for q, traj in commands:
        pos = np.array([p.positions for p in traj.points])
        assert np.all(pos >= lower - 1e-9) and np.all(pos <= upper + 1e-9)
        assert np.all(np.abs(np.diff(pos, axis=0)) <= max_step + 1e-6)
        if q is not None:
            far.append(float(np.max(np.abs(pos[0] - q) / max_step)))
    print(f"first command points: at most {max(far):.1f} control steps of velocity from the measured arm "
          f"({len(commands)} commands)")
    assert max(far) <= FAR_STEPS



def test_malformed_inputs_are_rejected_and_no_node_exits(ros_domain, ros_node, tmp_path):
    """Another process on the domain sends every kind of bad input of issue 19 to the practising graph: each
    is refused with a log line (the actor's report counts them), no node exits, nothing forged or non-finite
    reaches the replay or the arm, and practice goes on (new transitions after the attack)."""
    import yaml
    from sensor_msgs.msg import Image, JointState
    from trajectory_msgs.msg import JointTrajectory

    from rlt_ros import graph as graph_mod
    from rlt_ros.commands.launch import GraphProcesses
    from rlt_ros.core.arm import ArmConfig
    from rlt_ros.core.rlt.configuration_rlt import RLTConfig
    from rlt_ros.core.rlt.replay import ReplayBuffer
    from rlt_ros.msg import ActorWeights, EpisodeEvent, RLToken, Transition
    from rlt_ros.ros import qos
    from rlt_ros.ros.conversions import header, to_seconds

    sim = yaml.safe_load(open(graph_mod.config_dir() / "arms" / "sim.yaml"))["/**"]["ros__parameters"]
    arm = ArmConfig(**sim["arm"])
    rlt = RLTConfig(**{**yaml.safe_load(open(graph_mod.config_dir() / "rlt.yaml"))["/**"]["ros__parameters"]["rlt"],
                       **sim["rlt"]})
    overrides = {"learner": {"learner.output_dir": str(tmp_path / "learner"), "rlt.warmup_transitions": 30,
                             "rlt.batch_size": 16, "rlt.export_every": 10, "rlt.utd": 1},
                 "actor": {"actor.outbox_dir": str(tmp_path / "outbox"), "actor.report_every_s": 1.0},
                 "observation": {"observation.report_every_s": 1.0}}
    produced, commands, now = set(), [], {"t": 0.0}
    ros_node.create_subscription(Transition, "/rlt/transitions",
                                 lambda m: produced.add((m.episode_id, m.index)), qos.TRANSITIONS)
    ros_node.create_subscription(JointTrajectory, arm.command_topic, commands.append, qos.COMMAND)
    ros_node.create_subscription(JointState, arm.joint_states_topic,
                                 lambda m: now.update(t=to_seconds(m.header.stamp)), qos.SENSOR)
    pubs = {name: ros_node.create_publisher(kind, topic, profile) for name, kind, topic, profile in (
        ("token", RLToken, "/rlt/token", qos.LATEST), ("joints", JointState, arm.joint_states_topic, qos.SENSOR),
        ("teleop", JointTrajectory, "/rlt/teleop", qos.LATEST), ("weights", ActorWeights, "/rlt/actor_weights",
                                                                  qos.LATCHED),
        ("transition", Transition, "/rlt/transitions", qos.TRANSITIONS), ("event", EpisodeEvent, "/rlt/events",
                                                                         qos.EVENTS),
        ("image", Image, arm.camera_topics[0], qos.SENSOR))}
    names, n, c, a, t, p = list(arm.joint_names), len(arm.joint_names), rlt.chunk_size, rlt.action_dim, \
        rlt.token_dim, rlt.proprio_dim
    forged_episode = 4242

    def token(**kw):
        base = dict(header=header(now["t"]), episode_id=1, phase=2, token=[0.0] * t, proprio=[0.0] * p,
                    joint_names=names, reference_chunk=[0.0] * (c * a), chunk_rows=c, chunk_cols=a, step_dt=arm.dt)
        return RLToken(**{**base, **kw})

    def transition(**kw):
        base = dict(header=header(now["t"]), episode_id=forged_episode, index=0, steps=c, token=[0.0] * t,
                    proprio=[0.0] * p, reference=[0.0] * (c * a), action=[0.0] * (c * a), rows=c, cols=a,
                    rewards=[0.0] * c, done=False, next_token=[0.0] * t, next_proprio=[0.0] * p,
                    next_reference=[0.0] * (c * a))
        return Transition(**{**base, **kw})

    def bad_inputs():
        nan, huge = float("nan"), 3e38
        return [
            ("token", token(token=[nan] * t)), ("token", token(token=[huge] * t)), ("token", token(token=[0.0] * 3)),
            ("token", token(joint_names=names[::-1])), ("token", token(header=header(now["t"] + 15.0))),
            ("joints", JointState(header=header(now["t"]), name=names[::-1], position=[0.0] * n)),
            ("joints", JointState(header=header(now["t"]), name=names, position=[nan] * n)),
            ("joints", JointState(header=header(now["t"] + 30.0), name=names, position=[0.0] * n)),
            ("teleop", JointTrajectory(joint_names=names[:-1])),
            ("weights", ActorWeights(version=10**9, config_json="{}", safetensors=list(b"garbage" * 10))),
            ("transition", transition(token=[1e30] * t)), ("transition", transition(action=[nan] * (c * a))),
            ("transition", transition(token=[0.0] * 3)), ("transition", transition(episode_id=2**64 - 1, index=2**32 - 1)),
            ("transition", transition(done=True, rewards=[0.0] * (c - 1) + [1.0])),  # a forged success
            ("event", EpisodeEvent(header=header(now["t"]), episode_id=1, type=99)),
            ("event", EpisodeEvent(header=header(now["t"]), episode_id=1, type=4, note="x" * 5_000_000)),
            ("image", Image(header=header(now["t"]), height=64, width=64, encoding="rgb8", step=192, data=b"\x00" * 10)),
        ]

    log = io.StringIO()
    procs = GraphProcesses(graph_mod.graph("demo", "sim", overrides), env=dict(ros_domain), out=log,
                           log_dir=tmp_path / "logs", stop_timeout=20)
    procs.start()
    try:
        wait_for(lambda: len(produced) >= 40, 240, ros_node.spin_once, "practice\n" + log.getvalue()[-5000:])
        for _ in range(3):
            for name, msg in bad_inputs():
                pubs[name].publish(msg)
            t0 = time.monotonic()
            while time.monotonic() - t0 < 1.0:
                ros_node.spin_once(0.05)
        seen = {k for k in produced if k[0] != forged_episode}
        wait_for(lambda: len({k for k in produced if k[0] != forged_episode} - seen) >= 40, 180, ros_node.spin_once,
                 "practice to go on after the bad inputs\n" + log.getvalue()[-5000:])
        assert not procs.exited(), f"{procs.exited()}\n{log.getvalue()[-5000:]}"
    finally:
        procs.stop()

    logs = {f.stem: f.read_text() for f in (tmp_path / "logs").glob("*.log")}
    # (the actor reads joint states latest-only: a bad one is mostly replaced by the driver's next before a tick)
    for what in ("token", "teleop", "weights", "event"):
        assert re.search(rf"rejected_{what}=[1-9]", logs["actor"]), f"the actor counted no bad {what}"
    assert "rejected transition" in logs["learner"] and "rejected event" in logs["learner"]
    for counter in ("joint_states.rejected", "joint_states.future", "base.rejected"):  # its diagnostics report
        assert re.search(rf"{re.escape(counter)}=[1-9]", logs["observation"]), f"observation: no {counter}"
    replay = ReplayBuffer(rlt.token_dim, rlt.proprio_dim, rlt.chunk_size, rlt.action_dim,
                          directory=tmp_path / "learner" / "replay", read_only=True)
    data = replay.arrays()
    assert len(data) and forged_episode not in set(data["episode_id"].tolist())
    for field in ("token", "action", "rewards", "next_token"):
        assert np.all(np.isfinite(data[field])) and np.all(np.abs(data[field]) <= 1e6)
    lower, upper = np.array(arm.position_lower), np.array(arm.position_upper)
    for traj in commands:
        pos = np.array([q.positions for q in traj.points])
        assert np.all(np.isfinite(pos)) and np.all(pos >= lower - 1e-9) and np.all(pos <= upper + 1e-9)
