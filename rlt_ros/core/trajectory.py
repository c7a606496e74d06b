"""joint_trajectory_controller's behaviour without ROS: interpolation and the limit check of a trajectory.

Used by the drivers rlt_ros ships (sim_arm_node, so101_bridge_node), so that they follow
trajectory_msgs/JointTrajectory the way a ros2_control arm does.
"""

from __future__ import annotations

import numpy as np

from rlt_ros.core.validation import MessageError

LIMIT_TOLERANCE = 1e-6  # rad: trajectory points this far outside the limits still count as inside


class TrajectoryFollower:
    """joint_trajectory_controller's position interpolation, without ROS.

    ``start(t0, current, times, positions)``: from ``current`` at ``t0`` to ``positions[i]`` at
    ``t0 + times[i]``, linearly; after the last point, hold it. ``sample(t)`` gives the target at time t.
    """

    def __init__(self, hold: np.ndarray):
        self.hold(hold)

    def hold(self, position: np.ndarray) -> None:
        self._t = np.zeros(1)
        self._q = np.asarray(position, dtype=np.float64)[None].copy()
        self._t0 = 0.0

    def start(self, t0: float, current: np.ndarray, times: np.ndarray, positions: np.ndarray) -> None:
        times = np.asarray(times, dtype=np.float64)
        positions = np.asarray(positions, dtype=np.float64)
        if times[0] > 0:
            times = np.concatenate([[0.0], times])
            positions = np.concatenate([np.asarray(current, dtype=np.float64)[None], positions])
        self._t0, self._t, self._q = float(t0), times, positions

    def sample(self, t: float) -> np.ndarray:
        elapsed = t - self._t0
        if elapsed <= self._t[0]:
            return self._q[0].copy()
        if elapsed >= self._t[-1]:
            return self._q[-1].copy()
        return np.array([np.interp(elapsed, self._t, self._q[:, j]) for j in range(self._q.shape[1])])

    @property
    def end_time(self) -> float:
        return self._t0 + float(self._t[-1])


def check_limits(positions: np.ndarray, lower: np.ndarray, upper: np.ndarray, joint_names) -> None:
    """Raise MessageError naming the first point and joint outside [lower, upper]."""
    outside = (positions < lower - LIMIT_TOLERANCE) | (positions > upper + LIMIT_TOLERANCE)
    if np.any(outside):
        i, j = (int(k) for k in np.argwhere(outside)[0])
        raise MessageError(f"joint_trajectory.points[{i}]: {joint_names[j]} = {positions[i, j]:.4f} rad is outside "
                           f"its limits [{lower[j]:.4f}, {upper[j]:.4f}]")
