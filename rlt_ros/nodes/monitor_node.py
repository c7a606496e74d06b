"""monitor_node: RViz markers on /rlt/markers (a thin adapter over core.monitor).

Draws the VLA's reference chunk ã (from /rlt/token) and the chunk actor_node executes (/rlt/action_chunk:
the actor's refined chunk, the VLA's, or a human's targets, each in its colour) as end-effector paths in
``arm.base_frame``, through the arm's kinematic chain (``arm.kinematics_*``), and a status text: episode,
phase, success rate over the stats window, critical-phase time (/rlt/events). Publishes at
``monitor.rate_hz`` from its own process, so drawing never takes time from the actor's control loop.
An arm without a kinematic chain gets the status text only.
"""

from __future__ import annotations

from visualization_msgs.msg import MarkerArray

from rlt_ros.core.arm import ArmConfig
from rlt_ros.core.episode import EpisodeConfig
from rlt_ros.core.monitor import ChunkMonitor, MonitorConfig
from rlt_ros.msg import ActionChunk, EpisodeEvent, RLToken
from rlt_ros.ros import qos
from rlt_ros.ros.conversions import MessageError, chunk_from_msg, event_from_msg, markers_to_msg, token_from_msg
from rlt_ros.ros.node_base import RltNode, run


class MonitorNode(RltNode):
    CONFIGS = {"arm": ArmConfig, "monitor": MonitorConfig, "episode": EpisodeConfig}  # prefix -> configuration

    def __init__(self):
        super().__init__("monitor")
        arm, c = self.arm_config, self.monitor_config
        chain = arm.chain()
        self.monitor = ChunkMonitor(c, chain, arm.base_frame, arm.joint_names, self.episode_config.stats_window)
        self.rejected: dict[str, int] = {"token": 0, "chunk": 0, "event": 0}
        self.markers_pub = self.create_publisher(MarkerArray, "/rlt/markers", qos.STREAM)
        self.create_subscription(RLToken, "/rlt/token", self._on_token, qos.STREAM)
        self.create_subscription(ActionChunk, "/rlt/action_chunk", self._on_chunk, qos.STREAM)
        self.create_subscription(EpisodeEvent, "/rlt/events", self._on_event, qos.EVENTS)
        self.create_timer(1.0 / c.rate_hz, self._publish)
        if chain is None:
            self.get_logger().info(f"{arm.name}: no kinematic chain (arm.kinematics_origins is empty): "
                                   "/rlt/markers shows the status text only, no end-effector paths")
        else:
            self.get_logger().info(f"{arm.name}: paths of the first {chain.n_joints} joints' tool point in frame "
                                   f"{arm.base_frame!r}, status text; /rlt/markers at {c.rate_hz:g} Hz")

    def _reject(self, what: str, err: Exception):
        self.rejected[what] += 1
        self.get_logger().warning(f"rejected {what}: {err}", throttle_duration_sec=5.0)

    def _on_token(self, msg):
        try:
            self.monitor.set_reference(token_from_msg(msg, expected_joints=self.arm_config.joint_names), self.now())
        except (MessageError, ValueError) as err:
            self._reject("token", err)

    def _on_chunk(self, msg):
        try:
            self.monitor.set_chunk(chunk_from_msg(msg, expected_joints=self.arm_config.joint_names), self.now())
        except (MessageError, ValueError) as err:
            self._reject("chunk", err)

    def _on_event(self, msg):
        try:
            self.monitor.on_event(event_from_msg(msg))
        except (MessageError, ValueError) as err:
            self._reject("event", err)

    def _publish(self):
        self.markers_pub.publish(markers_to_msg(self.monitor.build(self.now())))


def main(args=None):
    run(MonitorNode, args)


if __name__ == "__main__":
    main()
