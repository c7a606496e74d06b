"""``sim_arm_node``: the simulated arm (PegInsertionEnv), behaving like a ros2_control arm driver.

It offers what joint_state_broadcaster + joint_trajectory_controller offer on a real arm, so swapping
in a real driver is a change of ``config/arms/<arm>.yaml``:

- publishes ``sensor_msgs/JointState`` on ``arm.joint_states_topic`` at ``arm.control_hz``
- follows ``trajectory_msgs/JointTrajectory`` on ``arm.command_topic`` like joint_trajectory_controller:
  positions interpolated linearly in time from the current command to the points at their
  ``time_from_start``; a new trajectory replaces the running one; the last point is held; a zero
  ``header.stamp`` means "start now". Trajectories naming other joints, with NaN or positions outside
  the joint limits, or non-increasing times are rejected with a logged error (the arm keeps its course).
- publishes ``sensor_msgs/Image`` (rgb8) per camera on ``arm.camera_topics`` at ``driver.camera_hz``

and what only a simulator can:

- ``std_srvs/Trigger`` on ``arm.reset_service``: new randomized socket pose, arm back to its start pose
- ``std_msgs/Bool`` ground-truth success on ``arm.success_topic`` (latched, on change and with the cameras)
- ``std_msgs/Bool`` ground-truth critical phase on ``driver.critical_topic`` (with the cameras), for the
  simulated operator's handover
- ``geometry_msgs/PoseStamped`` plug-tip pose on ``driver.ee_pose_topic`` (frame ``driver.frame_id``) at the
  control rate, for RViz and as proprioception (the simulator's proprio = joint pos, vel, this pose)
- ``rosgraph_msgs/Clock`` on /clock: simulated time.

Time. Physics advances ``1 / arm.control_hz`` simulated seconds per step, paced by the wall clock at
``driver.realtime_factor`` simulated seconds per wall second (4 = four times faster than real time;
late timer ticks are caught up, up to ``MAX_CATCH_UP_STEPS``; when the machine cannot keep up, the
simulation slows down instead of bursting). Every stamp this node publishes is simulated time,
which is also published on /clock; the other nodes run with ``use_sim_time: true`` (rlt_ros.graph sets it
for arm=sim), so their timers, staleness checks and trajectory timing all follow the simulation and a
realtime factor above 1 speeds up the whole graph. The node's own pacing uses the steady clock.

After the plug is fully inserted (or the simulator's own time limit, ``sim.episode_time_s``, runs out)
the scene freezes until the next reset: joint states keep coming, success stays true, commands are ignored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from geometry_msgs.msg import Point, Pose, PoseStamped, Quaternion
from rclpy.clock import Clock, ClockType
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from rlt_ros.core.arm import ArmConfig
from rlt_ros.core.trajectory import TrajectoryFollower, check_limits
from rlt_ros.core.sim.configuration_sim import SimConfig
from rlt_ros.ros import qos
from rlt_ros.ros.conversions import (MessageError, header, image_to_msg, joint_state_to_msg, to_seconds,
                                     to_stamp, trajectory_from_msg)
from rlt_ros.ros.node_base import RltNode, run
from rlt_ros.ros.parameters import ParameterError

# /clock as rclpy's TimeSource subscribes to it (depth 1); reliable so that best-effort and reliable
# subscribers both receive it.
CLOCK_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
MAX_CATCH_UP_STEPS = 5  # control steps one late timer tick may run; beyond that the simulation slows down
MAX_START_OFFSET_S = 10.0  # a trajectory stamped further than this from the arm's clock is rejected


@dataclass
class SimArmDriverConfig:
    """The simulated driver's own settings (the task is SimConfig, the arm ArmConfig)."""

    realtime_factor: float = 1.0  # simulated seconds per wall-clock second (> 1: faster than real time)
    camera_hz: float = 20.0  # camera frame rate, Hz of simulated time
    publish_clock: bool = True  # publish simulated time on /clock (for nodes with use_sim_time)
    ee_pose_topic: str = "/sim_arm/ee_pose"  # geometry_msgs/PoseStamped plug-tip pose ('' = off)
    critical_topic: str = "/sim_arm/in_critical_phase"  # std_msgs/Bool ground truth: plug near the socket ('' = off)
    frame_id: str = "world"  # frame of the end-effector pose (the arm's base frame)
    status_period_s: float = 30.0  # wall seconds between log lines with simulated time and achieved realtime factor (0 = off)

    def __post_init__(self):
        if not 0.01 <= self.realtime_factor <= 100.0:
            raise ValueError(f"driver.realtime_factor must be in [0.01, 100], got {self.realtime_factor}")
        if self.camera_hz <= 0:
            raise ValueError(f"driver.camera_hz must be > 0, got {self.camera_hz}")
        if self.status_period_s < 0:
            raise ValueError(f"driver.status_period_s must be >= 0, got {self.status_period_s}")


class SimArmNode(RltNode):
    CONFIGS = {"arm": ArmConfig, "sim": SimConfig, "driver": SimArmDriverConfig}  # prefix -> configuration

    def __init__(self):
        super().__init__("sim_arm")  # declares arm.*, sim.*, driver.*; refuses run-time changes of them
        from rlt_ros.core.sim.env import PegInsertionEnv

        self.arm, self.driver = self.arm_config, self.driver_config
        self._check_consistency()

        self.env = PegInsertionEnv(self.sim_config)
        self.joint_names = tuple(self.env.joint_names)
        self.lower, self.upper = self.env.joint_limits.lower, self.env.joint_limits.upper
        self._check_arm_matches_simulator()

        self._steps = 0  # control steps since start; never reset (so /clock is monotonic)
        self._camera_frame = -1  # index of the last camera frame published
        self._frozen = False
        self._success = False
        self._episode = 0
        self._rejected = 0
        self._starved = 0  # critical-phase control steps past the running trajectory's end (waiting for the next)
        self.env.reset(seed=self.sim_config.seed)
        self.follower = TrajectoryFollower(self.env.current_target)

        self.joint_pub = self.create_publisher(JointState, self.arm.joint_states_topic, qos.STREAM)
        self.image_pubs = {cam: self.create_publisher(Image, topic, qos.STREAM)
                           for cam, topic in zip(self.arm.camera_names, self.arm.camera_topics)}
        self.success_pub = (self.create_publisher(Bool, self.arm.success_topic, qos.LATCHED)
                            if self.arm.success_topic else None)
        self.pose_pub = (self.create_publisher(PoseStamped, self.driver.ee_pose_topic, qos.STREAM)
                         if self.driver.ee_pose_topic else None)
        self.clock_pub = self.create_publisher(ClockMsg, "/clock", CLOCK_QOS) if self.driver.publish_clock else None
        self.critical_pub = (self.create_publisher(Bool, self.driver.critical_topic, qos.STREAM)
                             if self.driver.critical_topic else None)
        self._critical = False
        self.create_subscription(JointTrajectory, self.arm.command_topic, self.on_trajectory, qos.COMMAND)
        if self.arm.reset_service:
            self.create_service(Trigger, self.arm.reset_service, self.on_reset)

        period = self.arm.dt / self.driver.realtime_factor
        self._pace_wall, self._pace_sim = time.monotonic(), self.sim_time  # pacing reference
        self.create_timer(period, self.tick, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._status_wall, self._status_sim = time.monotonic(), 0.0
        if self.driver.status_period_s > 0:
            self.create_timer(self.driver.status_period_s, self.log_status, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._publish_state(images=True)
        self.get_logger().info(
            f"simulated arm ready: joints {list(self.joint_names)}, {self.arm.control_hz:g} Hz, cameras "
            f"{dict(zip(self.arm.camera_names, self.arm.camera_topics))} at {self.driver.camera_hz:g} Hz, "
            f"commands on {self.arm.command_topic}, realtime factor {self.driver.realtime_factor:g}")

    # ------------------------------------------------------------------ configuration
    def _check_consistency(self) -> None:
        if self.arm.name != "sim":
            raise ParameterError(f"sim_arm: arm.name is {self.arm.name!r}; the simulated arm needs the parameters "
                                 "of config/arms/sim.yaml (arm.name: sim)")
        if abs(self.arm.control_hz - self.sim_config.control_hz) > 1e-9:
            raise ParameterError(f"sim_arm: arm.control_hz ({self.arm.control_hz:g}) differs from sim.control_hz "
                                 f"({self.sim_config.control_hz:g}); set both to the same rate")
        missing = sorted(set(self.arm.camera_names) - set(self.sim_config.camera_names))
        if missing:
            raise ParameterError(f"sim_arm: arm.camera_names {missing} are not rendered by the simulator; "
                                 f"sim.camera_names is {list(self.sim_config.camera_names)} (valid: base, wrist)")

    def _check_arm_matches_simulator(self) -> None:
        if self.arm.configured and sorted(self.arm.joint_names) != sorted(self.joint_names):
            raise ParameterError(f"sim_arm: arm.joint_names {list(self.arm.joint_names)} are not the simulator's "
                                 f"joints {list(self.joint_names)}")
        if self.arm.configured:
            order = [self.arm.joint_names.index(n) for n in self.joint_names]
            for field, sim_values in (("position_lower", self.lower), ("position_upper", self.upper)):
                values = np.asarray(getattr(self.arm, field))[order]
                if not np.allclose(values, sim_values, atol=1e-6):
                    self.get_logger().warning(f"arm.{field} {values.tolist()} differs from the simulator's "
                                              f"{sim_values.tolist()}; the simulator's limits apply here")

    # ------------------------------------------------------------------ callbacks
    def on_trajectory(self, msg: JointTrajectory) -> None:
        try:
            positions, times = trajectory_from_msg(msg, self.joint_names)
            check_limits(positions, self.lower, self.upper, self.joint_names)
            stamp = to_seconds(msg.header.stamp)
            start = self.sim_time if stamp == 0.0 else stamp
            if abs(start - self.sim_time) > MAX_START_OFFSET_S:
                raise MessageError(f"header.stamp: {stamp:.3f} s is {start - self.sim_time:+.1f} s away from the arm's "
                                   f"clock ({self.sim_time:.3f} s simulated time); stamp with the node clock under "
                                   "use_sim_time, or 0 for 'start now'")
        except MessageError as err:
            self._rejected += 1
            self.get_logger().error(f"trajectory rejected: {err}")
            return
        if self._frozen:
            self.get_logger().warning("trajectory ignored: the episode has ended; call the reset service",
                                      throttle_duration_sec=5.0)
            return
        current = self.follower.sample(self.sim_time)
        self.follower.start(start, current, times, positions)

    def on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        del request
        if self._episode:  # where the last episode ended, in the socket frame: tells a jam from a miss
            st = self.env.task_state()
            self.get_logger().info(f"episode {self._episode} ended: insertion depth {st['insertion_depth_mm']:.1f} mm, "
                                   f"lateral error {st['lateral_error_mm']:.2f} mm, yaw error "
                                   f"{st['yaw_error_deg']:.2f} deg")
        self.env.reset()
        self.follower.hold(self.env.current_target)
        self._frozen = False
        self._episode += 1
        self._set_success(False)
        # the reset takes one control step: the new scene's messages get a stamp newer than the old scene's,
        # so no subscriber drops them as out of order or pairs the new joint states with an old image
        self._steps += 1
        self._publish_state(images=True)
        socket = self.env.socket_pose
        response.success = True
        response.message = (f"reset {self._episode}: socket at x={socket.position[0]:.4f} m, "
                            f"y={socket.position[1]:.4f} m, yaw={np.rad2deg(socket.yaw):.2f} deg")
        self.get_logger().info(response.message)
        return response

    def tick(self) -> None:
        """Run the control steps that are due by the wall clock (timer ticks can be late or skipped)."""
        due = self._pace_sim + (time.monotonic() - self._pace_wall) * self.driver.realtime_factor
        steps = int((due - self.sim_time) / self.arm.dt + 1e-6)
        if steps > MAX_CATCH_UP_STEPS:  # too slow for the asked factor: drop the backlog, do not burst
            steps = MAX_CATCH_UP_STEPS
            self._pace_wall, self._pace_sim = time.monotonic(), self.sim_time + steps * self.arm.dt
        for _ in range(steps):
            self.step()

    def step(self) -> None:
        """One control step: follow the trajectory, step physics, publish."""
        if not self._frozen:
            self._starved += self._critical and self.sim_time + self.arm.dt > self.follower.end_time + 1e-9
            target = np.clip(self.follower.sample(self.sim_time + self.arm.dt), self.lower, self.upper)
            _, _, terminated, truncated, info = self.env.step(target, render=False)
            if terminated or truncated:
                self._frozen = True
                self.get_logger().info("plug fully inserted: scene frozen until reset" if terminated else
                                       f"sim.episode_time_s ({self.sim_config.episode_time_s:g} s) elapsed: "
                                       "scene frozen until reset")
            self._set_success(bool(info["success"]))
            self._critical = bool(info["in_critical_phase"])
        self._steps += 1
        frame = int(self._steps * self.driver.camera_hz / self.arm.control_hz + 1e-9)
        self._publish_state(images=frame != self._camera_frame)

    def log_status(self) -> None:
        wall, sim = time.monotonic(), self.sim_time
        factor = (sim - self._status_sim) / max(wall - self._status_wall, 1e-9)
        self._status_wall, self._status_sim = wall, sim
        self.get_logger().info(f"simulated time {sim:.1f} s, realtime factor {factor:.2f} "
                               f"(asked {self.driver.realtime_factor:g}), resets {self._episode}, "
                               f"rejected trajectories {self._rejected}, critical-phase steps past the end of the "
                               f"trajectory {self._starved}")

    # ------------------------------------------------------------------ publishing
    def _set_success(self, success: bool) -> None:
        if success != self._success and self.success_pub is not None:
            self.success_pub.publish(Bool(data=success))
        self._success = success

    @property
    def sim_time(self) -> float:
        """Simulated seconds since the node started (the time on /clock and in every stamp)."""
        return self._steps * self.arm.dt

    def _publish_state(self, images: bool) -> None:
        stamp = self.sim_time
        if self.clock_pub is not None:
            self.clock_pub.publish(ClockMsg(clock=to_stamp(stamp)))
        if images:  # images first: when the joint states of this stamp arrive, its images are already there
            self._camera_frame = int(self._steps * self.driver.camera_hz / self.arm.control_hz + 1e-9)
            for cam, frame in self.env.render_images().items():
                if cam in self.image_pubs:
                    self.image_pubs[cam].publish(image_to_msg(frame, stamp, f"{cam}_camera"))
        obs = self.env.observe(render=False)
        velocity = np.zeros(len(self.joint_names)) if self._frozen else obs["joint_vel"]
        self.joint_pub.publish(joint_state_to_msg(self.joint_names, obs["joint_pos"], velocity, stamp))
        if self.pose_pub is not None:  # at the control rate: the observation node may use it as proprio
            x, y, z, qw, qx, qy, qz = (float(v) for v in obs["ee_pose"])
            self.pose_pub.publish(PoseStamped(
                header=header(stamp, self.driver.frame_id),
                pose=Pose(position=Point(x=x, y=y, z=z), orientation=Quaternion(x=qx, y=qy, z=qz, w=qw))))
        if not images:
            return
        if self.success_pub is not None:
            self.success_pub.publish(Bool(data=self._success))
        if self.critical_pub is not None:
            self.critical_pub.publish(Bool(data=self._critical))

    def destroy_node(self):
        self.env.close()
        return super().destroy_node()


def main(args: list[str] | None = None) -> None:
    run(SimArmNode, args)


if __name__ == "__main__":
    main()
