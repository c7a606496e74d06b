"""Forward kinematics of a serial arm, described like a URDF: a fixed origin and an axis per revolute joint.

The chain of an arm lives in ``config/arms/<arm>.yaml`` (``arm.kinematics_origins``, ``arm.kinematics_axes``,
``arm.tool_offset``; see :class:`rlt_ros.core.arm.ArmConfig`). Joint i's frame is its parent's frame moved
by ``origin_i`` (xyz in metres, then roll-pitch-yaw in radians, as ``<joint><origin xyz rpy>``) and then
rotated by q_i about ``axis_i`` (a unit vector in the joint's frame, as ``<axis xyz>``). The tool point is
``tool_offset`` in the last joint's frame. Only revolute joints: the arms rlt_ros drives have no others.

    chain = SerialChain.from_flat(origins, axes, tool_offset)
    points = chain.fk(chunk)   # [N, 3] tool positions in the chain's base frame for joint rows [N, >= K]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def rpy_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """URDF's fixed-axis roll-pitch-yaw as a rotation matrix: Rz(yaw) @ Ry(pitch) @ Rx(roll)."""
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    return np.array([[cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
                     [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
                     [-sp, cp * sr, cp * cr]])


def axis_rotations(axis: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Rotations [N, 3, 3] by ``angles`` [N] rad about the unit ``axis`` [3] (Rodrigues' formula)."""
    x, y, z = axis
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    s, c = np.sin(angles)[:, None, None], np.cos(angles)[:, None, None]
    return np.eye(3) + s * k + (1.0 - c) * (k @ k)


@dataclass(frozen=True)
class SerialChain:
    """A chain of K revolute joints from the arm's base frame to its tool point."""

    origins: np.ndarray  # float64 [K, 4, 4] parent frame -> joint frame at q = 0 (the URDF joint origin)
    axes: np.ndarray  # float64 [K, 3] unit rotation axes, each in its joint's frame
    tool: np.ndarray  # float64 [3] tool point in the last joint's frame, m

    @classmethod
    def from_flat(cls, origins: Sequence[float], axes: Sequence[float],
                  tool_offset: Sequence[float] = (0.0, 0.0, 0.0)) -> SerialChain:
        """From the flat parameter lists: 6 values (x y z roll pitch yaw) and 3 values (axis) per joint."""
        origins = np.asarray(origins, dtype=np.float64).ravel()
        axes = np.asarray(axes, dtype=np.float64).ravel()
        tool = np.asarray(tool_offset, dtype=np.float64).ravel()
        if origins.size == 0 or origins.size % 6:
            raise ValueError(f"kinematics origins: need 6 values (x y z roll pitch yaw) per joint, got {origins.size}")
        k = origins.size // 6
        if axes.size != 3 * k:
            raise ValueError(f"kinematics axes: need 3 values per joint for {k} joints, got {axes.size}")
        if tool.size != 3:
            raise ValueError(f"tool offset: need 3 values (x y z), got {tool.size}")
        if not (np.all(np.isfinite(origins)) and np.all(np.isfinite(axes)) and np.all(np.isfinite(tool))):
            raise ValueError("kinematics: non-finite value in origins, axes or tool offset")
        axes = axes.reshape(k, 3)
        norms = np.linalg.norm(axes, axis=1)
        if np.any(norms < 1e-9):
            raise ValueError(f"kinematics axes: joint(s) {np.flatnonzero(norms < 1e-9).tolist()} have a zero axis")
        frames = np.tile(np.eye(4), (k, 1, 1))
        for i, (x, y, z, roll, pitch, yaw) in enumerate(origins.reshape(k, 6)):
            frames[i, :3, :3] = rpy_matrix(roll, pitch, yaw)
            frames[i, :3, 3] = (x, y, z)
        return cls(frames, axes / norms[:, None], tool)

    @property
    def n_joints(self) -> int:
        return len(self.axes)

    def fk(self, q: np.ndarray) -> np.ndarray:
        """Tool positions [N, 3] (m, base frame) for joint positions q [N, A] (rad), A >= K.

        Only the first K columns move the tool (further joints, e.g. a gripper, are ignored); a single
        joint vector [A] gives [1, 3].
        """
        q = np.atleast_2d(np.asarray(q, dtype=np.float64))
        if q.ndim != 2 or q.shape[1] < self.n_joints:
            raise ValueError(f"fk: expected joint rows [N, >= {self.n_joints}], got shape {q.shape}")
        rotation = np.tile(np.eye(3), (len(q), 1, 1))
        position = np.zeros((len(q), 3))
        for i in range(self.n_joints):
            origin = self.origins[i]
            position = position + rotation @ origin[:3, 3]
            rotation = rotation @ origin[:3, :3] @ axis_rotations(self.axes[i], q[:, i])
        return position + rotation @ self.tool
