"""One episode collector: the same scripted episode through in-process practice (the simulator adapter,
``Practice.run_episode``) and through the real actor_node over DDS stores the same transitions.

The observations are scripted (open loop: the joint states, RL tokens and VLA chunks of each control step
do not depend on the commands), so both paths see identical inputs; the test publishes them over DDS one
control step at a time and advances the actor node's simulated clock (/clock) only after they arrived.
"""

import time

import numpy as np
import pytest
import yaml

pytestmark = [pytest.mark.ros, pytest.mark.slow, pytest.mark.timeout(300)]

STEPS, HANDOVER, DT, EPISODE = 70, 6, 0.02, 1


def _sim_arm():
    from rlt_ros import graph as graph_mod
    from rlt_ros.core.arm import ArmConfig

    doc = yaml.safe_load(open(graph_mod.config_dir() / "arms" / "sim.yaml"))
    return ArmConfig(**doc["/**"]["ros__parameters"]["arm"])


class Script:
    """Joint positions, proprio, z_rl and the VLA's chunk [50, 5] of every control step k."""

    def __init__(self, token_dim: int, proprio_dim: int):
        rng = np.random.default_rng(7)
        q0, v = np.array([0.0, 0.5, 1.2, 0.9, 0.0]), np.array([0.002, -0.001, 0.0015, 0.001, 0.0005])
        self.q = [q0 + k * v for k in range(STEPS + 1)]
        self.proprio = [np.concatenate([q, np.zeros(proprio_dim - 5)]).astype(np.float32) for q in self.q]
        self.token = [rng.normal(size=token_dim).astype(np.float32) for _ in self.q]
        rows = np.arange(1, 51)[:, None]
        # a VLA that plans ahead at 3x the arm's scripted pace, with a small wobble from one query to the next
        self.chunk = [(q + rows * 3 * v + 0.001 * np.sin(k)).astype(np.float32) for k, q in enumerate(self.q)]


class ScriptedEnv:
    """The simulator's interface over the script: critical phase from HANDOVER, success after STEPS."""

    instruction, control_dt = "insert", DT

    def __init__(self, script: Script, arm):
        from rlt_ros.core.sim.env import JointLimits

        self.s, self.k = script, 0
        self.joint_names, self.action_dim, self.proprio_dim = arm.joint_names, 5, len(script.proprio[0])
        self.joint_limits = JointLimits(np.array(arm.position_lower), np.array(arm.position_upper),
                                        np.array(arm.max_velocity))
        self.executed = []

    def _obs(self):
        return {"images": {"base": np.zeros((2, 2, 3), np.uint8)}, "proprio": self.s.proprio[self.k],
                "stamp": self.k * DT}

    def _info(self):
        return {"in_critical_phase": self.k >= HANDOVER, "success": self.k >= STEPS, "time": self.k * DT}

    def reset(self, seed=None, options=None):
        self.k = 0
        return self._obs(), self._info()

    def observe(self, render=True):
        return self._obs()

    def step(self, action, render=True):
        self.executed.append(np.asarray(action))
        self.k += 1
        info = self._info()
        return self._obs(), float(info["success"]), info["success"], False, info


class ScriptedVLA:
    """Prefix embeddings whose pooled mean is the script's z_rl; the chunk of the observation's step."""

    chunk_size, action_dim = 50, 5

    def __init__(self, script: Script):
        self.s, self.embed_dim = script, len(script.token[0])

    def infer(self, obs):
        from rlt_ros.core.types import VLAOutput

        k = int(round(obs.stamp / DT))
        return VLAOutput(prefix_embeddings=self.s.token[k][None], prefix_mask=np.ones(1, bool),
                         reference_chunk=self.s.chunk[k])


def in_process(script: Script, arm, rlt):
    from rlt_ros.core.rlt.configuration_practice import PracticeConfig
    from rlt_fakes import PooledToken
    from rlt_ros.core.rlt.practice import Practice, StateReader

    stored = []
    practice = Practice(ScriptedEnv(script, arm), ScriptedVLA(script), StateReader("token", PooledToken(rlt.token_dim)),
                        rlt, PracticeConfig(critical_timeout_s=60.0), progress=False,
                        on_transition=stored.append)
    result = practice.run_episode(EPISODE, "warmup", seed=0, start="pre_critical")
    assert result.success and result.transitions == len(stored)
    return stored


def over_dds(script: Script, arm, ros_domain, ros_node, tmp_path):
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import JointState
    from trajectory_msgs.msg import JointTrajectory

    from rlt_ros import graph as graph_mod
    from rlt_ros.commands.launch import GraphProcesses
    from rlt_ros.core.interfaces import EpisodeEventPacket, EventSource, EventType, Phase, TokenPacket
    from rlt_ros.msg import EpisodeEvent, RLToken, Transition
    from rlt_ros.ros import qos
    from rlt_ros.ros.conversions import (event_to_msg, joint_state_to_msg, to_stamp, token_to_msg,
                                         transition_from_msg)
    from ros_harness import wait_for

    specs = [s for s in graph_mod.graph("train", "sim", {"actor": {"actor.autostart": True, "actor.lead_rows": 0}})
             if s.name == "actor"]
    received, commands = [], []
    ros_node.create_subscription(Transition, "/rlt/transitions", lambda m: received.append(transition_from_msg(m)),
                                 qos.TRANSITIONS)
    ros_node.create_subscription(JointTrajectory, arm.command_topic, commands.append, qos.COMMAND)
    clock = ros_node.create_publisher(Clock, "/clock", 10)
    joints = ros_node.create_publisher(JointState, arm.joint_states_topic, qos.SENSOR)
    tokens = ros_node.create_publisher(RLToken, "/rlt/token", qos.STREAM)
    events = ros_node.create_publisher(EpisodeEvent, "/rlt/events", qos.EVENTS)

    def settle(seconds=0.06):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ros_node.spin_once(0.005)

    def event(kind, k, reward=0.0):
        events.publish(event_to_msg(EpisodeEventPacket(k * DT, EPISODE, kind, EventSource.HUMAN, reward)))

    with GraphProcesses(specs, env=dict(ros_domain), log_dir=tmp_path, stop_timeout=10) as procs:
        procs.start()
        wait_for(lambda: all(p.get_subscription_count() > 0 for p in (clock, joints, tokens, events)), 60,
                 ros_node.spin_once, "actor_node's subscriptions")
        clock.publish(Clock(clock=to_stamp(0.0)))
        settle(0.5)
        event(EventType.START, 0)
        for k in range(STEPS):
            if k == HANDOVER:
                event(EventType.HANDOVER, k)
            phase = Phase.RL if k >= HANDOVER else Phase.VLA
            joints.publish(joint_state_to_msg(arm.joint_names, script.q[k], np.zeros(5), k * DT))
            tokens.publish(token_to_msg(TokenPacket(stamp=k * DT, episode_id=EPISODE, phase=phase,
                                                    token=script.token[k], proprio=script.proprio[k],
                                                    joint_names=arm.joint_names, reference_chunk=script.chunk[k],
                                                    step_dt=DT)))
            settle()  # the inputs of step k reach the actor before its clock does
            clock.publish(Clock(clock=to_stamp(k * DT)))
            settle()  # its tick at k * DT runs
        event(EventType.SUCCESS, STEPS, reward=1.0)
        wait_for(lambda: received and received[-1].done, 20, ros_node.spin_once, "the terminal transitions")
        settle(0.5)
        assert commands, "actor_node sent no command"
    return received


def test_simulator_adapter_and_actor_node_store_the_same_windows(ros_domain, ros_node, tmp_path):
    from rlt_ros.core.rlt.configuration_rlt import RLTConfig

    arm = _sim_arm()
    rlt = RLTConfig(action_dim=5, proprio_dim=17, token_dim=64, warmup_transitions=10**6)
    script = Script(rlt.token_dim, rlt.proprio_dim)
    local = sorted(in_process(script, arm, rlt), key=lambda t: t.index)
    remote = sorted(over_dds(script, arm, ros_domain, ros_node, tmp_path), key=lambda t: t.index)
    assert [t.index for t in remote] == [t.index for t in local]
    assert len(local) >= (STEPS - HANDOVER) // rlt.stride - 1 and local[-1].done
    for a, b in zip(local, remote):
        for name in ("token", "proprio", "reference", "action", "rewards", "next_token", "next_proprio",
                     "next_reference"):
            np.testing.assert_allclose(getattr(b, name), getattr(a, name), atol=1e-6,
                                       err_msg=f"window at step {a.index}: {name}")
        assert (b.done, b.steps, b.source, b.intervention) == (a.done, a.steps, a.source, a.intervention), a.index
