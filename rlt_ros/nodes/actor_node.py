"""actor_node: executes action chunks on the arm at the control rate (a thin adapter over core.control).

VLA phase: executes the VLA's reference chunk ã. RL phase (after the handover): executes the RL
actor's refined chunk a_1:C (with the fixed-sigma exploration noise while training; ã passed through
until the learner's first weights arrive = the VLA warm-up). A human intervention (JointTrajectory on
/rlt/teleop) overrides both. Every command is clamped to the arm's position and velocity limits
(config/arms/<arm>.yaml) and sent as trajectory_msgs/JointTrajectory to the arm driver. The node does
nothing until activated (/rlt/actor/activate, or actor.autostart) and holds position when the RL
token or the joint states go stale. Commands are clamped from the commanded path, not from /joint_states;
measured positions far from it stop new commands and, when that lasts, deactivate the node (core.control). Tokens, joint
states and teleop are read latest-only in the control tick (a flood of any of them does not slow the loop);
the periodic report gives each input's rate and warns of a flood. Each chunk starts at the row of the present moment (rows older than
the token's observation age are dropped). Counters (chunks, holds, clamps, dropped rows) are logged.
Critical-phase transitions go to the learner on /rlt/transitions through a durable outbox (core.rlt.outbox):
each stays there, and is sent again, until the learner acknowledges it on /rlt/transitions_ack. New actor weights from
/rlt/actor_weights are swapped in between chunks, and the last weights stay in use if the learner
disappears. ``actor.explore`` and ``actor.record`` may be changed with ``ros2 param set`` while it runs.
"""

from __future__ import annotations

import threading
import time

from rclpy.serialization import serialize_message
from sensor_msgs.msg import JointState
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory

from rlt_ros.core.control import ActorConfig, ChunkController, Command
from rlt_ros.core.interfaces import ChunkPacket
from rlt_ros.core.rlt.configuration_rlt import RLTConfig
from rlt_ros.core.rlt.outbox import Outbox
from rlt_ros.msg import ActionChunk, ActorWeights, EpisodeEvent, RLToken, Transition, TransitionAck
from rlt_ros.ros import qos
from rlt_ros.ros.conversions import (MessageError, chunk_to_msg, event_from_msg, joint_state_from_msg, to_seconds,
                                     token_from_msg, trajectory_from_msg, trajectory_to_msg, transition_to_msg)
from rlt_ros.ros.node_base import RltNode, run
from rlt_ros.core.arm import ArmConfig


FLOOD_FACTOR = 10  # an input arriving faster than this many times the control rate is reported as a flood
RESEND_PER_S = 200  # most transitions the outbox sends again per second (a long learner outage drains gradually)


class ActorNode(RltNode):
    CONFIGS = {"arm": ArmConfig, "actor": ActorConfig, "rlt": RLTConfig}  # prefix -> configuration
    RUNTIME = ("actor.explore", "actor.record")  # e.g. `ros2 param set /actor actor.explore false` to evaluate

    def __init__(self):
        super().__init__("actor")
        self.control = ChunkController(self.actor_config, self.rlt_config, self.arm_config)
        self.rejected: dict[str, int] = {"token": 0, "joint_states": 0, "teleop": 0, "weights": 0, "event": 0, "ack": 0}
        arm = self.arm_config
        self.command_pub = self.create_publisher(JointTrajectory, arm.command_topic, qos.COMMAND)
        self.chunk_pub = self.create_publisher(ActionChunk, "/rlt/action_chunk", qos.STREAM)
        self.transition_pub = self.create_publisher(Transition, "/rlt/transitions", qos.TRANSITIONS)
        c = self.actor_config
        self.outbox = Outbox(c.outbox_dir or None, c.outbox_capacity, c.resend_after_s)
        if len(self.outbox):
            self.get_logger().info(f"outbox {c.outbox_dir}: {len(self.outbox)} transitions not yet acknowledged "
                                   "by the learner, sent again")
        self.create_subscription(TransitionAck, "/rlt/transitions_ack", self._on_ack, qos.TRANSITIONS)
        self.create_timer(1.0, self._resend)
        # tokens, joint states and teleop are read latest-only by the control tick (ros.latest): a flood of
        # any of them costs the middleware, not the control rate
        self.inputs = {
            "token": self.create_latest_input(RLToken, "/rlt/token", self._on_token, qos.LATEST),
            "joint_states": self.create_latest_input(JointState, arm.joint_states_topic, self._on_joints, qos.SENSOR),
            "teleop": self.create_latest_input(JointTrajectory, "/rlt/teleop", self._on_teleop, qos.LATEST)}
        self.create_subscription(EpisodeEvent, "/rlt/events", self._on_event, qos.EVENTS)
        self._counted_at, self._flooded = self.now(), set()
        # weights are deserialized off the control thread: the callback keeps the newest message, a worker stages it
        self.create_subscription(ActorWeights, "/rlt/actor_weights", self._on_weights, qos.LATCHED)
        self._weights_slot: ActorWeights | None = None
        self._weights_ready = threading.Event()
        self._closing = threading.Event()
        self._stager = threading.Thread(target=self._stage_weights, name="actor-weights", daemon=True)
        self._stager.start()
        self.create_service(SetBool, "/rlt/actor/activate", self._on_activate)
        self.create_timer(arm.dt, self._tick)
        self.create_timer(self.actor_config.report_every_s, self._report)
        self.get_logger().info(f"{arm.name}: {len(arm.joint_names)} joints at {arm.control_hz} Hz, chunk C = "
                               f"{self.rlt_config.chunk_size}, {'active' if self.control.active else 'inactive'}")

    # --- inputs (validated; bad input is logged, counted and never reaches the arm) ------------------
    def _reject(self, what: str, err: Exception):
        self.rejected[what] += 1
        self.get_logger().warning(f"rejected {what}: {err}", throttle_duration_sec=2.0)

    def _on_token(self, msg):
        c = self.rlt_config
        try:
            packet = token_from_msg(msg, token_dim=c.token_dim, proprio_dim=c.proprio_dim,
                                    expected_joints=self.arm_config.joint_names)
            self.control.set_token(packet, self.now())
        except (MessageError, ValueError) as err:
            self._reject("token", err)

    def _on_joints(self, msg):
        try:
            position, _ = joint_state_from_msg(msg, self.arm_config.joint_names)
            self.control.set_joint_state(position, to_seconds(msg.header.stamp), self.now())
        except (MessageError, ValueError) as err:
            self._reject("joint_states", err)

    def _on_teleop(self, msg):
        try:
            positions, _ = trajectory_from_msg(msg, self.arm_config.joint_names)
            self.control.set_teleop(positions[0], self.now())
        except (MessageError, ValueError) as err:
            self._reject("teleop", err)

    def _on_event(self, msg):
        try:
            finished = self.control.on_event(event_from_msg(msg))
        except (MessageError, ValueError) as err:
            return self._reject("event", err)
        self._publish_transitions(finished)

    def _on_ack(self, msg):
        if len(msg.episode_ids) != len(msg.indices):
            return self._reject("ack", MessageError(f"{len(msg.episode_ids)} episode ids for {len(msg.indices)} indices"))
        self.outbox.ack(zip(msg.episode_ids, msg.indices))

    def _resend(self):
        if self.count_publishers("/rlt/transitions_ack") == 0:
            return  # no learner: they wait
        for _, payload in self.outbox.due(time.monotonic(), RESEND_PER_S):
            self.transition_pub.publish(payload)

    def _on_weights(self, msg):
        self._weights_slot = msg  # newest wins: a slower stager skips versions, never queues them
        self._weights_ready.set()

    def _stage_weights(self):
        while not self._closing.is_set():
            if not self._weights_ready.wait(0.5):
                continue
            self._weights_ready.clear()
            msg = self._weights_slot
            try:
                self.control.stage_weights(bytes(msg.safetensors), msg.config_json)
                self.get_logger().info(f"actor weights v{msg.version} staged", throttle_duration_sec=10.0)
            except ValueError as err:
                self._reject("weights", err)

    def close(self):
        self._closing.set()
        self._stager.join(timeout=2.0)

    def on_config_changed(self, prefix, config):
        self.control.config = config  # read at every decision: the next chunk uses the new setting

    def _on_activate(self, request, response):
        step = self.control.set_active(bool(request.data), self.now())  # deactivating holds at the commanded point
        if step.command is not None:
            self._send(step.command)
        response.success, response.message = True, "active" if request.data else "inactive (holding)"
        self.get_logger().info(response.message)
        return response

    # --- control loop -------------------------------------------------------------------------------
    def _tick(self):
        for latest in self.inputs.values():
            latest.take()
        step = self.control.tick(self.now())
        if step.command is not None:
            self._send(step.command)
        self._publish_transitions(step.transitions)
        if step.warning and not self.control.active:  # deactivated by a divergence: said once, as an error
            self.get_logger().error(step.warning)
        elif step.warning:
            self.get_logger().warning(step.warning, throttle_duration_sec=2.0)

    def _report(self):
        now = self.now()
        rates = {name: latest.count_since() / max(now - self._counted_at, 1e-9)
                 for name, latest in self.inputs.items()}
        self._counted_at = now
        counts = {**self.control.counters, "outbox": len(self.outbox), **self.outbox.counters,
                  **{f"rejected_{k}": v for k, v in self.rejected.items() if v},
                  **{f"{name}_per_s": round(rate, 1) for name, rate in rates.items()}}
        self.get_logger().info(" ".join(f"{k}={v}" for k, v in counts.items()))
        flooded = {name for name, rate in rates.items() if rate > FLOOD_FACTOR * self.arm_config.control_hz}
        for name in flooded - self._flooded:
            self.get_logger().warning(f"{name}: {rates[name]:.0f} messages/s, more than {FLOOD_FACTOR} x the control "
                                      "rate (a flood from another process?); only the newest is read each tick")
        self._flooded = flooded

    def _send(self, command: Command):
        arm = self.arm_config
        self.command_pub.publish(trajectory_to_msg(arm.joint_names, command.positions, arm.dt))
        self.chunk_pub.publish(chunk_to_msg(ChunkPacket(self.now(), command.episode_id, command.source,
                                                        tuple(arm.joint_names), command.positions, arm.dt)))

    def _publish_transitions(self, transitions):
        now = self.now()
        for t in transitions:
            payload = serialize_message(transition_to_msg(t, now))
            warning = self.outbox.put((t.episode_id, t.index), payload, time.monotonic())  # kept before it is sent
            if warning:
                self.get_logger().warning(warning, throttle_duration_sec=10.0)
            self.transition_pub.publish(payload)


def main(args=None):
    run(ActorNode, args)


if __name__ == "__main__":
    main()
