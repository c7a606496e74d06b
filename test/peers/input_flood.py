"""Drives actor_node as an arm driver, the vla node and an operator would (--joint-states-hz 50 --token-hz 25
--teleop-hz 25 --events), or as an outside process flooding one of its inputs (--token-hz 2000 alone):

    python test/peers/input_flood.py --episode 7 --seconds 12 --token-hz 2000

Publishes (with --events) the episode's START and INTERVENTION_START, and joint states, current RL tokens and
teleop targets at the rates given (valid messages: each one the actor must read, not reject), stamped with the
wall clock; prints the rates achieved. Used by test_ros_faults.py.
"""

import argparse
import time

import numpy as np
import rclpy
import yaml
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory

from rlt_ros import graph as graph_mod
from rlt_ros.core.interfaces import EpisodeEventPacket, EventSource, EventType, Phase, TokenPacket
from rlt_ros.msg import EpisodeEvent, RLToken
from rlt_ros.ros import qos
from rlt_ros.ros.conversions import event_to_msg, to_stamp, token_to_msg, trajectory_to_msg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--episode", type=int, required=True)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--token-hz", type=float, default=0.0)
    ap.add_argument("--teleop-hz", type=float, default=0.0)
    ap.add_argument("--joint-states-hz", type=float, default=0.0)
    ap.add_argument("--events", action="store_true")
    a = ap.parse_args()
    params = yaml.safe_load(open(graph_mod.config_dir() / "arms" / "sim.yaml"))["/**"]["ros__parameters"]
    rlt = {**yaml.safe_load(open(graph_mod.config_dir() / "rlt.yaml"))["/**"]["ros__parameters"]["rlt"], **params["rlt"]}
    joints, dt = params["arm"]["joint_names"], 1.0 / params["arm"]["control_hz"]  # the chunk's step
    home = (np.array(params["arm"]["position_lower"]) + np.array(params["arm"]["position_upper"])) / 2
    rclpy.init()
    node = rclpy.create_node("input_flood")
    events = node.create_publisher(EpisodeEvent, "/rlt/events", qos.EVENTS)
    tokens = node.create_publisher(RLToken, "/rlt/token", qos.STREAM)
    teleop = node.create_publisher(JointTrajectory, "/rlt/teleop", qos.STREAM)
    states = node.create_publisher(JointState, params["arm"]["joint_states_topic"], qos.SENSOR)
    chunk = np.tile(home, (50, 1)).astype(np.float32)
    token = token_to_msg(TokenPacket(0.0, a.episode, Phase.INTERVENTION, np.zeros(rlt["token_dim"], np.float32),
                                     np.zeros(rlt["proprio_dim"], np.float32), tuple(joints), chunk, dt))
    target = trajectory_to_msg(joints, home[None], dt)
    state = JointState(name=list(joints), position=home.tolist())
    for kind in (EventType.START, EventType.INTERVENTION_START) if a.events else ():
        events.publish(event_to_msg(EpisodeEventPacket(time.time(), a.episode, kind, EventSource.HUMAN)))
    period = {name: 1 / hz for name, hz in (("token", a.token_hz), ("teleop", a.teleop_hz),
                                            ("state", a.joint_states_hz)) if hz > 0}
    due = dict.fromkeys(period, 0.0)
    sent = dict.fromkeys(due, 0)
    t0 = time.monotonic()
    while (elapsed := time.monotonic() - t0) < a.seconds:
        for name in due:
            if elapsed >= due[name]:
                stamp = to_stamp(time.time())
                if name == "token":
                    token.header.stamp = stamp
                    tokens.publish(token)
                elif name == "teleop":
                    teleop.publish(target)
                else:
                    state.header.stamp = stamp
                    states.publish(state)
                sent[name] += 1
                due[name] = max(due[name] + period[name], elapsed)
        time.sleep(max(0.0, min(due.values()) - (time.monotonic() - t0)))
    print("SENT_PER_S " + " ".join(f"{k}={v / a.seconds:.0f}" for k, v in sent.items()), flush=True)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
