"""sim_arm_node over real DDS: joint states, images, /clock, trajectories, rejection, reset, success."""

from __future__ import annotations

import sys
import time
from dataclasses import replace

import numpy as np
import pytest

from ros_harness import wait_for

pytestmark = [pytest.mark.ros, pytest.mark.timeout(120)]


def start_sim_arm(processes, tmp_path, **driver):
    from rlt_ros import graph

    spec = next(s for s in graph.graph("train", "sim") if s.name == "sim_arm")
    spec = replace(spec, overrides={f"driver.{k}": v for k, v in driver.items()})
    args = graph.ros_args(spec, graph.write_overrides(spec, tmp_path))
    return processes.start("sim_arm", [sys.executable, "-m", spec.module, *args])


class Listener:
    """Latest messages of the simulated arm's topics, seen from the test's node."""

    def __init__(self, node, arm):
        from geometry_msgs.msg import PoseStamped
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import Image, JointState
        from std_msgs.msg import Bool

        from rlt_ros.ros import qos

        self.joints, self.images, self.success, self.poses, self.clock = [], {}, [], [], []
        node.create_subscription(JointState, arm.joint_states_topic, self.joints.append, qos.SENSOR)
        for cam, topic in zip(arm.camera_names, arm.camera_topics):
            self.images[cam] = []
            node.create_subscription(Image, topic, self.images[cam].append, qos.SENSOR)
        node.create_subscription(Bool, arm.success_topic, self.success.append, qos.STREAM)
        node.create_subscription(PoseStamped, "/sim_arm/ee_pose", self.poses.append, qos.SENSOR)
        node.create_subscription(Clock, "/clock", self.clock.append, qos.SENSOR)

    def position(self, arm):
        from rlt_ros.ros.conversions import joint_state_from_msg

        return joint_state_from_msg(self.joints[-1], arm.joint_names)[0]


def sim_arm_config():
    import yaml

    from rlt_ros import graph
    from rlt_ros.core.arm import ArmConfig

    doc = yaml.safe_load((graph.config_dir() / "arms" / "sim.yaml").read_text())
    return ArmConfig(**doc["/**"]["ros__parameters"]["arm"])


def test_sim_arm_behaves_like_a_ros2_control_arm(processes, ros_node, tmp_path):
    from std_srvs.srv import Trigger
    from trajectory_msgs.msg import JointTrajectory

    from rlt_ros.ros import qos
    from rlt_ros.ros.conversions import image_from_msg, to_seconds, trajectory_to_msg

    arm = sim_arm_config()
    proc = start_sim_arm(processes, tmp_path, camera_hz=10.0)
    seen = Listener(ros_node, arm)
    wait_for(lambda: seen.joints and all(seen.images.values()) and seen.poses and seen.clock and seen.success, 30,
             ros_node.spin_once, f"joint states, images, pose, clock and success ({processes.log(proc)[-2000:]})")

    # joint states in the arm's names, images rgb8 64x64, stamps are simulated time as on /clock
    assert list(seen.joints[-1].name) == list(arm.joint_names)
    for cam, frames in seen.images.items():
        image = image_from_msg(frames[-1])
        assert image.shape == (64, 64, 3) and image.std() > 1.0, cam  # a rendered scene, not a blank frame
    assert seen.poses[-1].header.frame_id == "world"
    clock = [to_seconds(c.clock) for c in seen.clock]
    assert all(np.diff(clock) > 0)
    assert abs(to_seconds(seen.joints[-1].header.stamp) - clock[-1]) < 1.0  # simulated time, not wall time
    assert seen.success and seen.success[-1].data is False

    # a trajectory: the joints get there, through the interpolated points
    start = seen.position(arm)
    goal = np.clip(start + np.array([0.25, -0.15, 0.2, 0.15, 0.4]), np.array(arm.position_lower) + 0.05,
                   np.array(arm.position_upper) - 0.05)
    path = start + np.linspace(0, 1, 6)[1:, None] * (goal - start)
    pub = ros_node.create_publisher(JointTrajectory, arm.command_topic, qos.COMMAND)
    wait_for(lambda: pub.get_subscription_count() > 0, 20, ros_node.spin_once, "the arm's command subscription")
    pub.publish(trajectory_to_msg(arm.joint_names, path, 0.2))
    wait_for(lambda: np.max(np.abs(seen.position(arm) - goal)) < 0.03, 20, ros_node.spin_once,
             "the joints reaching the trajectory's last point")

    # rejected: an unknown joint, a position beyond the limits; the arm stays where it is
    bad_names = trajectory_to_msg(arm.joint_names, path[::-1], 0.2)
    bad_names.joint_names[0] = "elbow_of_another_robot"
    beyond = path[::-1].copy()
    beyond[-1, 1] = arm.position_upper[1] + 0.5
    for count, msg in enumerate((bad_names, trajectory_to_msg(arm.joint_names, beyond, 0.2)), start=1):
        pub.publish(msg)  # one at a time: the command QoS keeps only the newest
        wait_for(lambda: processes.log(proc).count("trajectory rejected") >= count, 10, ros_node.spin_once,
                 f"rejection {count}")
    log = processes.log(proc)
    assert "unknown ['elbow_of_another_robot']" in log and "outside its limits" in log
    t_end = time.monotonic() + 1.0
    while time.monotonic() < t_end:
        ros_node.spin_once(0.05)
    assert np.max(np.abs(seen.position(arm) - goal)) < 0.03

    # reset: new socket pose, the arm back at its start pose
    client = ros_node.create_client(Trigger, arm.reset_service)
    assert client.wait_for_service(timeout_sec=20)
    future = client.call_async(Trigger.Request())
    wait_for(future.done, 10, ros_node.spin_once, "the reset response")
    assert future.result().success and "socket at x=" in future.result().message
    wait_for(lambda: np.max(np.abs(seen.position(arm) - start)) < 0.1, 10, ros_node.spin_once,
             "the arm back at its start pose")
    # the reset takes a control step: the new scene's joint states never reuse the old scene's last stamp
    stamps = [to_seconds(m.header.stamp) for m in seen.joints]
    assert all(b > a for a, b in zip(stamps, stamps[1:])), "a joint-state stamp repeated or went back"
    assert processes.stop(proc) == 0, processes.log(proc)


def test_sim_arm_runs_faster_than_real_time(processes, ros_node, tmp_path):
    """driver.realtime_factor paces simulated time (/clock) against the wall clock."""
    from rlt_ros.ros.conversions import to_seconds

    arm = sim_arm_config()
    proc = start_sim_arm(processes, tmp_path, realtime_factor=3.0)
    seen = Listener(ros_node, arm)
    wait_for(lambda: len(seen.clock) > 10, 30, ros_node.spin_once, f"/clock ({processes.log(proc)[-2000:]})")
    sim0, wall0 = to_seconds(seen.clock[-1].clock), time.monotonic()
    while time.monotonic() - wall0 < 2.0:
        ros_node.spin_once(0.02)
    factor = (to_seconds(seen.clock[-1].clock) - sim0) / (time.monotonic() - wall0)
    print(f"realtime factor asked 3.0, measured {factor:.2f}")
    assert 1.8 < factor < 3.3
    assert processes.stop(proc) == 0, processes.log(proc)


def test_sim_arm_refuses_a_config_that_is_not_the_simulator(processes, tmp_path):
    from rlt_ros import graph

    spec = next(s for s in graph.graph("train", "sim") if s.name == "sim_arm")
    spec = replace(spec, params=(*spec.params, graph.param_files("ur")[1]))  # the UR's arm.* on the simulator
    proc = processes.start("sim_arm", [sys.executable, "-m", spec.module, *graph.ros_args(spec)])
    assert proc.wait(60) == 1
    assert "arm.name is 'ur'" in processes.log(proc)
