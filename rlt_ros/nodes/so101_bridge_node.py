"""``so101_bridge_node``: the LeRobot SO-101 follower arm as a ros2_control-like driver.

LeRobot drives the SO-101 (Feetech STS3215 servos) through ``SO101Follower``; this node puts that
robot behind the same interface as the other arms (config/arms/so101.yaml):

- ``sensor_msgs/JointState`` on ``arm.joint_states_topic`` at ``arm.control_hz``, in radians
- ``trajectory_msgs/JointTrajectory`` on ``arm.command_topic``, followed like joint_trajectory_controller
  (linear interpolation in time, a new trajectory replaces the old one, the last point is held;
  trajectories naming other joints, with NaN or out-of-limit positions are rejected with a logged error).
  Until the first trajectory arrives the node sends nothing: the arm keeps its position.

Units: LeRobot (``use_degrees=True``) reads and writes the five arm joints in degrees around the
calibrated middle and the gripper in percent (0 closed .. 100 open); ROS uses radians. The gripper's
percent maps linearly onto [position_lower, position_upper] of the joint ``gripper``.

lerobot is imported only when the node starts (``pip install lerobot`` with the feetech extra); it is
not needed anywhere else in rlt_ros.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory

from rlt_ros.core.arm import ArmConfig
from rlt_ros.core.trajectory import TrajectoryFollower, check_limits
from rlt_ros.ros import qos
from rlt_ros.ros.conversions import MessageError, joint_state_to_msg, to_seconds, trajectory_from_msg
from rlt_ros.ros.node_base import run
from rlt_ros.ros.parameters import ParameterError, declare_config, reject_unknown_parameters

GRIPPER = "gripper"
GRIPPER_PERCENT = (0.0, 100.0)  # LeRobot's gripper range (MotorNormMode.RANGE_0_100)


@dataclass
class So101BridgeConfig:
    """How to reach the SO-101 follower through LeRobot."""

    port: str = "/dev/ttyACM0"  # serial port of the follower's motor bus
    robot_id: str = "so101_follower"  # LeRobot calibration id of this arm (lerobot-calibrate --robot.id)
    max_relative_target_deg: float = 10.0  # LeRobot's per-command step limit, degrees (0 = LeRobot's default: none)

    def __post_init__(self):
        if not self.port:
            raise ValueError("bridge.port must name the serial port of the arm, e.g. /dev/ttyACM0")
        if self.max_relative_target_deg < 0:
            raise ValueError(f"bridge.max_relative_target_deg must be >= 0, got {self.max_relative_target_deg}")


# ------------------------------------------------------------------------- unit conversion (no ROS)
def _gripper_range(joint_names: Sequence[str], lower: Sequence[float], upper: Sequence[float]):
    if GRIPPER not in joint_names:
        return None
    i = list(joint_names).index(GRIPPER)
    return float(lower[i]), float(upper[i])


def lerobot_to_radians(observation: Mapping[str, float], joint_names: Sequence[str],
                       gripper_range: tuple[float, float] | None) -> np.ndarray:
    """LeRobot observation {"<joint>.pos": degrees | gripper percent} -> joint positions [rad] in ``joint_names`` order."""
    missing = [n for n in joint_names if f"{n}.pos" not in observation]
    if missing:
        raise KeyError(f"LeRobot observation lacks {[f'{n}.pos' for n in missing]}; it has {sorted(observation)}")
    out = np.empty(len(joint_names))
    for i, name in enumerate(joint_names):
        value = float(observation[f"{name}.pos"])
        if name == GRIPPER and gripper_range is not None:
            lo, hi = gripper_range
            out[i] = lo + (value - GRIPPER_PERCENT[0]) / (GRIPPER_PERCENT[1] - GRIPPER_PERCENT[0]) * (hi - lo)
        else:
            out[i] = np.deg2rad(value)
    return out


def radians_to_lerobot(positions: Sequence[float], joint_names: Sequence[str],
                       gripper_range: tuple[float, float] | None) -> dict[str, float]:
    """Joint positions [rad] in ``joint_names`` order -> LeRobot action {"<joint>.pos": degrees | gripper percent}."""
    positions = np.asarray(positions, dtype=np.float64)
    if positions.shape != (len(joint_names),):
        raise ValueError(f"positions: expected {len(joint_names)} values for {list(joint_names)}, got {positions.shape}")
    action = {}
    for name, value in zip(joint_names, positions):
        if name == GRIPPER and gripper_range is not None:
            lo, hi = gripper_range
            percent = GRIPPER_PERCENT[0] + (value - lo) / (hi - lo) * (GRIPPER_PERCENT[1] - GRIPPER_PERCENT[0])
            action[f"{name}.pos"] = float(np.clip(percent, *GRIPPER_PERCENT))
        else:
            action[f"{name}.pos"] = float(np.rad2deg(value))
    return action


def connect_so101(config: So101BridgeConfig):
    """Connect LeRobot's SO101Follower (degrees mode); clear errors when lerobot or a calibration is missing."""
    try:
        from lerobot.robots.so101_follower import SO101Follower, SO101FollowerConfig
    except ImportError as err:
        raise RuntimeError("so101_bridge_node needs LeRobot with the Feetech servo driver: "
                           "pip install 'lerobot[feetech]' (in an environment with a torch LeRobot supports)") from err
    kwargs = dict(port=config.port, id=config.robot_id, use_degrees=True)
    if config.max_relative_target_deg > 0:
        kwargs["max_relative_target"] = config.max_relative_target_deg
    robot = SO101Follower(SO101FollowerConfig(**kwargs))
    robot.connect(calibrate=False)
    if not robot.is_calibrated:
        robot.disconnect()
        raise RuntimeError(f"SO-101 '{config.robot_id}' on {config.port} is not calibrated: run "
                           f"lerobot-calibrate --robot.type=so101_follower --robot.port={config.port} "
                           f"--robot.id={config.robot_id}")
    return robot


# ------------------------------------------------------------------------------------------- node
class So101BridgeNode(Node):
    CONFIGS = {"arm": ArmConfig, "bridge": So101BridgeConfig}  # prefix -> configuration

    def __init__(self):
        super().__init__("so101_bridge")
        self.arm = declare_config(self, ArmConfig, "arm.")
        self.bridge = declare_config(self, So101BridgeConfig, "bridge.")
        reject_unknown_parameters(self)
        if not self.arm.configured:
            raise ParameterError("so101_bridge: arm.joint_names is empty; use config/arms/so101.yaml")
        self.joint_names = self.arm.joint_names
        self.lower, self.upper = np.asarray(self.arm.position_lower), np.asarray(self.arm.position_upper)
        self.gripper = _gripper_range(self.joint_names, self.lower, self.upper)
        self.robot = connect_so101(self.bridge)
        self.active = False  # no command is sent before the first trajectory
        self.follower = TrajectoryFollower(self._read())
        self.joint_pub = self.create_publisher(JointState, self.arm.joint_states_topic, qos.STREAM)
        self.create_subscription(JointTrajectory, self.arm.command_topic, self.on_trajectory, qos.COMMAND)
        self.create_timer(self.arm.dt, self.step)
        self.get_logger().info(f"SO-101 '{self.bridge.robot_id}' on {self.bridge.port}: joints {list(self.joint_names)}, "
                               f"commands on {self.arm.command_topic}")

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _read(self) -> np.ndarray:
        return lerobot_to_radians(self.robot.get_observation(), self.joint_names, self.gripper)

    def on_trajectory(self, msg: JointTrajectory) -> None:
        now = self._now()
        try:
            positions, times = trajectory_from_msg(msg, self.joint_names)
            check_limits(positions, self.lower, self.upper, self.joint_names)
        except MessageError as err:
            self.get_logger().error(f"trajectory rejected: {err}")
            return
        stamp = to_seconds(msg.header.stamp)
        current = self.follower.sample(now) if self.active else self._read()
        self.follower.start(now if stamp == 0.0 else stamp, current, times, positions)
        self.active = True

    def step(self) -> None:
        now = self._now()
        position = self._read()
        self.joint_pub.publish(joint_state_to_msg(self.joint_names, position, np.zeros(len(position)), now))
        if self.active:
            target = np.clip(self.follower.sample(now), self.lower, self.upper)
            self.robot.send_action(radians_to_lerobot(target, self.joint_names, self.gripper))
            if now > self.follower.end_time + self.arm.dt:
                self.active = False  # the last point was sent; the servos hold it

    def destroy_node(self):
        if getattr(self, "robot", None) is not None:
            self.robot.disconnect()
        return super().destroy_node()


def main(args: list[str] | None = None) -> None:
    run(So101BridgeNode, args)


if __name__ == "__main__":
    main()
