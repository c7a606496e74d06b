"""The arm a graph drives: joints, limits, driver topics (config/arms/<arm>.yaml), and the safety clamp.

Every command that leaves rlt_ros for an arm passes through ``clamp_chunk``: positions within the
joint limits, and steps between consecutive targets (starting from the measured position) within
``max_velocity * dt``. Nothing unvalidated reaches an arm.

The arm's kinematic chain (``kinematics_*``, ``tool_offset``; see ``rlt_ros.core.kinematics``) covers the
first len(kinematics_origins) / 6 joints, so a gripper joint at the end can stay out of it. It only draws
chunks as end-effector paths (monitor_node, /rlt/markers); no command depends on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlt_ros.core.kinematics import SerialChain

ARMS = ("sim", "ur", "franka", "so101")


@dataclass
class ArmConfig:
    name: str = "sim"  # arm name, one of sim|ur|franka|so101 (selects config/arms/<name>.yaml)
    joint_names: tuple[str, ...] = ()  # commanded joints, in the VLA's action order
    position_lower: tuple[float, ...] = ()  # lower joint position limits [rad], per joint
    position_upper: tuple[float, ...] = ()  # upper joint position limits [rad], per joint
    max_velocity: tuple[float, ...] = ()  # joint velocity limits [rad/s], per joint
    joint_states_topic: str = "/joint_states"  # sensor_msgs/JointState from the driver
    command_topic: str = "/joint_trajectory_controller/joint_trajectory"  # trajectory_msgs/JointTrajectory to the driver
    camera_names: tuple[str, ...] = ("base", "wrist")  # camera roles, in the VLA's order
    camera_topics: tuple[str, ...] = ("/camera/base/image_raw", "/camera/wrist/image_raw")  # sensor_msgs/Image per role
    control_hz: float = 50.0  # control rate of the action chunks [Hz]
    reset_service: str = ""  # std_srvs/Trigger that resets arm and scene between episodes ('' = operator resets by hand)
    success_topic: str = ""  # std_msgs/Bool ground-truth success (simulation only; '' = none)
    base_frame: str = "world"  # TF frame of the arm's base, in which the end-effector paths are drawn
    kinematics_origins: tuple[float, ...] = ()  # x y z [m] roll pitch yaw [rad] per chain joint, as URDF origins ([] = no paths)
    kinematics_axes: tuple[float, ...] = ()  # x y z rotation axis per chain joint in its own frame, as URDF axes
    tool_offset: tuple[float, ...] = (0.0, 0.0, 0.0)  # tool point x y z in the last chain joint's frame [m]

    def __post_init__(self):
        if self.name not in ARMS:
            raise ValueError(f"arm.name: unknown arm {self.name!r}; valid arms: {', '.join(ARMS)}")
        self.joint_names = tuple(self.joint_names)
        n = len(self.joint_names)
        for field in ("position_lower", "position_upper", "max_velocity"):
            values = tuple(float(x) for x in getattr(self, field))
            setattr(self, field, values)
            if n and len(values) != n:
                raise ValueError(f"arm.{field}: {len(values)} values for {n} joints {list(self.joint_names)}")
        if n and any(lo >= hi for lo, hi in zip(self.position_lower, self.position_upper)):
            raise ValueError("arm.position_lower must be below arm.position_upper for every joint")
        if n and any(v <= 0 for v in self.max_velocity):
            raise ValueError("arm.max_velocity must be > 0 for every joint")
        self.camera_names, self.camera_topics = tuple(self.camera_names), tuple(self.camera_topics)
        if len(self.camera_names) != len(self.camera_topics):
            raise ValueError(f"arm.camera_topics: {len(self.camera_topics)} topics for cameras {list(self.camera_names)}")
        if self.control_hz <= 0:
            raise ValueError(f"arm.control_hz must be > 0, got {self.control_hz}")
        self._check_kinematics()

    def _check_kinematics(self):
        for field in ("kinematics_origins", "kinematics_axes", "tool_offset"):
            setattr(self, field, tuple(float(x) for x in getattr(self, field)))
        if len(self.tool_offset) != 3:
            raise ValueError(f"arm.tool_offset: need 3 values (x y z) [m], got {list(self.tool_offset)}")
        if not self.kinematics_origins and not self.kinematics_axes:
            return
        try:
            chain = self.chain()
        except ValueError as err:
            raise ValueError(f"arm.kinematics_origins / kinematics_axes / tool_offset: {err}") from err
        if self.joint_names and chain.n_joints > len(self.joint_names):
            raise ValueError(f"arm.kinematics_origins: {chain.n_joints} chain joints but only "
                             f"{len(self.joint_names)} joints {list(self.joint_names)}")

    @property
    def configured(self) -> bool:
        return bool(self.joint_names)

    @property
    def dt(self) -> float:
        return 1.0 / self.control_hz

    def chain(self) -> SerialChain | None:
        """The kinematic chain of the first K joints (K = len(kinematics_origins) / 6); None when not given."""
        if not self.kinematics_origins and not self.kinematics_axes:
            return None
        return SerialChain.from_flat(self.kinematics_origins, self.kinematics_axes, self.tool_offset)


@dataclass
class ClampReport:
    """How much ``clamp_chunk`` had to change a chunk (0 when it was within limits)."""

    position_clamped: int  # number of (row, joint) values moved into the position limits
    velocity_clamped: int  # number of (row, joint) steps shortened to the velocity limit


def clamp_chunk(chunk: np.ndarray, current: np.ndarray, arm: ArmConfig) -> tuple[np.ndarray, ClampReport]:
    """Clamp absolute joint targets [N, A] to the position limits and to max_velocity * dt per step.

    The first row is limited relative to ``current`` (the measured joint positions), each later row
    relative to the previous clamped row, so the whole commanded path respects the limits.
    """
    chunk = np.asarray(chunk, dtype=np.float64)
    n_joints = len(arm.joint_names)
    if chunk.ndim != 2 or chunk.shape[1] != n_joints:
        raise ValueError(f"chunk: expected [N, {n_joints}] joint targets, got shape {chunk.shape}")
    if not np.all(np.isfinite(chunk)) or not np.all(np.isfinite(current)):
        raise ValueError("chunk: non-finite joint target or current position")
    lower, upper = np.asarray(arm.position_lower), np.asarray(arm.position_upper)
    max_step = np.asarray(arm.max_velocity) * arm.dt
    out = np.empty_like(chunk)
    pos_clamped = vel_clamped = 0
    previous = np.clip(np.asarray(current, dtype=np.float64), lower, upper)
    for i, row in enumerate(chunk):
        target = np.clip(row, lower, upper)
        pos_clamped += int(np.count_nonzero(target != row))
        step = np.clip(target - previous, -max_step, max_step)
        vel_clamped += int(np.count_nonzero(step != target - previous))
        out[i] = previous = previous + step
    return out, ClampReport(pos_clamped, vel_clamped)
