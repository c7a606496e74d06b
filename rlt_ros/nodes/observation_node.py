"""observation_node: camera + proprioception ingestion (a thin adapter over core.sync and core.preprocess).

Subscribes the arm's camera topics (sensor_msgs/Image) and joint states (sensor_msgs/JointState),
optionally an end-effector pose (geometry_msgs/PoseStamped), synchronizes them (approximate time
with a max age), resizes the images to the VLA's input size and publishes rlt_ros/Observation on
/rlt/observation at the VLA rate. Malformed inputs are rejected and counted; counts of dropped and
stale inputs are published on /diagnostics and logged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import Image, JointState

from rlt_ros.core.preprocess import proprio_vector, resize_image
from rlt_ros.core.sync import ApproxTimeSync, StaleInput, SyncConfig
from rlt_ros.msg import Observation
from rlt_ros.ros import qos
from rlt_ros.ros.conversions import (MessageError, header, image_from_msg, image_to_msg, joint_state_from_msg,
                                     to_seconds)
from rlt_ros.ros.node_base import RltNode, run
from rlt_ros.core.arm import ArmConfig


@dataclass
class ObservationConfig:
    rate_hz: float = 25.0  # observations published per second (the VLA / RL-token rate)
    image_width: int = 64  # width the images are resized to (the VLA's input) [px]
    image_height: int = 64  # height the images are resized to [px]
    ee_pose_topic: str = ""  # geometry_msgs/PoseStamped appended to proprio as xyz + quaternion wxyz ('' = none)
    report_every_s: float = 10.0  # period of the dropped/stale input report [s]

    def __post_init__(self):
        if self.rate_hz <= 0 or self.image_width <= 0 or self.image_height <= 0:
            raise ValueError("observation: rate_hz, image_width and image_height must be > 0")


class ObservationNode(RltNode):
    CONFIGS = {"arm": ArmConfig, "observation": ObservationConfig, "sync": SyncConfig}  # prefix -> configuration

    def __init__(self):
        super().__init__("observation")
        arm, cfg = self.arm_config, self.observation_config
        streams = ["joint_states", *arm.camera_names] + (["ee_pose"] if cfg.ee_pose_topic else [])
        self.sync = ApproxTimeSync(streams, self.sync_config)
        self.rejected: dict[str, int] = {name: 0 for name in streams}
        self.published = self.not_ready = 0
        self.create_subscription(JointState, arm.joint_states_topic, self._on_joints, qos.SENSOR)
        for name, topic in zip(arm.camera_names, arm.camera_topics):
            self.create_subscription(Image, topic, lambda msg, n=name: self._on_image(n, msg), qos.SENSOR)
        if cfg.ee_pose_topic:
            self.create_subscription(PoseStamped, cfg.ee_pose_topic, self._on_pose, qos.SENSOR)
        self.pub = self.create_publisher(Observation, "/rlt/observation", qos.STREAM)
        self.diag = self.create_publisher(DiagnosticArray, "/diagnostics", qos.STREAM)
        self.create_timer(1.0 / cfg.rate_hz, self._publish)
        self.create_timer(cfg.report_every_s, self._report)
        self._last_error = ""
        self.get_logger().info(f"synchronizing {streams} at {cfg.rate_hz} Hz")

    def _reject(self, stream: str, err: Exception):
        self.rejected[stream] += 1
        self.get_logger().warning(f"rejected {stream}: {err}", throttle_duration_sec=2.0)

    def _on_joints(self, msg: JointState):
        try:
            pos, vel = joint_state_from_msg(msg, self.arm_config.joint_names)
        except MessageError as err:
            return self._reject("joint_states", err)
        self.sync.add("joint_states", to_seconds(msg.header.stamp), (pos, vel), self.now())

    def _on_image(self, name: str, msg: Image):
        try:
            image = resize_image(image_from_msg(msg, name), self.observation_config.image_height,
                                 self.observation_config.image_width)
        except MessageError as err:
            return self._reject(name, err)
        self.sync.add(name, to_seconds(msg.header.stamp), image, self.now())

    def _on_pose(self, msg: PoseStamped):
        p, q = msg.pose.position, msg.pose.orientation
        pose = np.array([p.x, p.y, p.z, q.w, q.x, q.y, q.z])
        if not np.all(np.isfinite(pose)):
            return self._reject("ee_pose", MessageError("ee_pose: non-finite value"))
        self.sync.add("ee_pose", to_seconds(msg.header.stamp), pose, self.now())

    def _publish(self):
        try:
            stamp, values = self.sync.latest_set(self.now())
        except StaleInput as err:
            self.not_ready += 1
            self._last_error = str(err)
            return
        arm = self.arm_config
        pos, vel = values["joint_states"]
        out = Observation(header=header(stamp), camera_names=list(arm.camera_names),
                          images=[image_to_msg(values[n], stamp, n) for n in arm.camera_names],
                          joint_names=list(arm.joint_names), position=pos.tolist(), velocity=vel.tolist(),
                          proprio=proprio_vector(pos, vel, values.get("ee_pose")).tolist())
        self.pub.publish(out)
        self.published += 1

    def _report(self):
        stats = self.sync.stats()
        values = {"published": self.published, "not_ready": self.not_ready}
        for name, s in stats.items():
            values.update({f"{name}.received": s.received, f"{name}.rejected": self.rejected[name],
                           f"{name}.stale": s.stale, f"{name}.unmatched": s.unmatched,
                           f"{name}.out_of_order": s.out_of_order, f"{name}.future": s.future})
        level = DiagnosticStatus.OK if self.published else DiagnosticStatus.WARN
        status = DiagnosticStatus(level=level, name="rlt_ros/observation", hardware_id=self.arm_config.name,
                                  message=self._last_error or "ok",
                                  values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        self.diag.publish(DiagnosticArray(header=header(self.now()), status=[status]))
        self.get_logger().info(" ".join(f"{k}={v}" for k, v in values.items() if v))


def main(args=None):
    run(ObservationNode, args)


if __name__ == "__main__":
    main()
