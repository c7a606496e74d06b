"""``PegInsertionEnv``: a simulated 5-joint arm inserting a rectangular plug into a tight socket.

Gymnasium-style API without depending on gymnasium::

    env = PegInsertionEnv(SimConfig())
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(joint_targets)           # renders cameras
    obs, reward, terminated, truncated, info = env.step(joint_targets, render=False)  # physics only
    obs = env.observe(render=True)                                                 # images on demand

Actions are ABSOLUTE joint-position targets, float32 [n_joints], one per control step (50 Hz by
default), tracked by position servos (MuJoCo ``position`` actuators with finite gains, so the arm is
compliant in contact). The reward is sparse: 1.0 on the step the plug is fully inserted, else 0.

Observation dict (shapes for the default 5 joints):
  images:    {camera: uint8 [S, S, 3]} for ``config.camera_names`` (empty dict when not rendered)
  joint_pos: float32 [5] rad;  joint_vel: float32 [5] rad/s
  ee_pose:   float32 [7] plug-tip position (m, arm base frame) + orientation quaternion (w, x, y, z)
  proprio:   float32 [17] = concat(joint_pos, joint_vel, ee_pose)
  stamp:     float simulated time, s
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # offscreen rendering on CPU (Mesa); osmesa is the alternative

from dataclasses import dataclass  # noqa: E402
from typing import Any, NamedTuple  # noqa: E402

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from rlt_ros.core.sim import scene  # noqa: E402
from rlt_ros.core.sim.configuration_sim import SimConfig  # noqa: E402

HOME_TIP_POSITION = np.array([0.30, 0.0, 0.20])  # plug tip at the home pose, m
HOME_YAW = 0.0  # plug yaw at the home pose, rad


class JointLimits(NamedTuple):
    lower: np.ndarray  # float64 [n] rad
    upper: np.ndarray  # float64 [n] rad
    max_velocity: np.ndarray  # float64 [n] rad/s


@dataclass(frozen=True)
class SocketPose:
    """Ground-truth socket pose (for the scripted expert / simulated operator only)."""

    position: np.ndarray  # float64 [3] centre of the socket mouth, m (arm base frame)
    yaw: float  # rotation of the cavity's long side about z, rad


def wrap_half_pi(angle: float) -> float:
    """Wrap an angle to [-pi/2, pi/2): the plug and socket are symmetric under a half turn."""
    return float((angle + np.pi / 2) % np.pi - np.pi / 2)


class PegInsertionEnv:
    """Simulated precision insertion; see the module docstring for the interface."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config if config is not None else SimConfig()
        self.model = mujoco.MjModel.from_xml_string(scene.build_mjcf(self.config))
        self.data = mujoco.MjData(self.model)
        self._scratch = mujoco.MjData(self.model)  # for forward kinematics without touching the episode
        self._renderer: mujoco.Renderer | None = None
        self.joint_names: tuple[str, ...] = scene.JOINT_NAMES
        self.joint_limits = JointLimits(scene.JOINT_LOWER.copy(), scene.JOINT_UPPER.copy(), scene.JOINT_MAX_VELOCITY.copy())
        self.n_joints = len(self.joint_names)
        self.action_dim = self.n_joints
        self.proprio_dim = 2 * self.n_joints + 7
        self.control_dt = self.config.control_dt
        self.camera_names = tuple(self.config.camera_names)
        self.instruction = self.config.instruction
        self._tcp = self.model.site("tcp").id  # true plug tip (moves with the plug's play in the fingers)
        self._ee = self.model.site("ee").id  # nominal tip from the arm's kinematics (what a robot reports)
        self._mocap = self.model.body("socket").mocapid[0]
        self._plug_geom = self.model.geom("plug").id
        self._socket_body = self.model.body("socket").id
        self._qadr = np.array([self.model.joint(n).qposadr[0] for n in self.joint_names])
        self._vadr = np.array([self.model.joint(n).dofadr[0] for n in self.joint_names])
        self._tool_length = scene.tool_length(self.config)
        self._rng = np.random.default_rng(self.config.seed)
        self._target = np.zeros(self.n_joints)
        self._socket = SocketPose(np.array([*self.config.socket_nominal_xy_m, scene.SOCKET_TOP_Z]), 0.0)
        self._steps = 0
        self._critical_started_at: float | None = None
        self._success = False
        self._needs_reset = True

    # ------------------------------------------------------------------ episode
    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        """Start an episode: randomise the socket pose and the arm's initial state.

        seed: reseeds the environment's generator (same seed -> same episode).
        options: {"start": "home" | "pre_critical"} overrides ``config.start`` for this episode;
                 {"socket_xy_yaw": (x m, y m, yaw rad)} places the socket exactly (tests, replays).
        """
        options = dict(options or {})
        unknown = set(options) - {"start", "socket_xy_yaw"}
        if unknown:
            raise ValueError(f"reset(): unknown option(s) {sorted(unknown)}; valid: 'start', 'socket_xy_yaw'")
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        start = options.get("start", self.config.start)
        if start not in ("home", "pre_critical"):
            raise ValueError(f"reset(): start must be 'home' or 'pre_critical', got {start!r}")
        cfg = self.config
        mujoco.mj_resetData(self.model, self.data)
        if "socket_xy_yaw" in options:
            sx, sy, syaw = (float(v) for v in options["socket_xy_yaw"])
        else:
            r = cfg.socket_xy_range_mm / 1000.0
            sx = cfg.socket_nominal_xy_m[0] + self._rng.uniform(-r, r)
            sy = cfg.socket_nominal_xy_m[1] + self._rng.uniform(-r, r)
            syaw = np.deg2rad(self._rng.uniform(-cfg.socket_yaw_range_deg, cfg.socket_yaw_range_deg))
        self._socket = SocketPose(np.array([sx, sy, scene.SOCKET_TOP_Z]), float(syaw))
        self.data.mocap_pos[self._mocap] = (sx, sy, 0.0)
        self.data.mocap_quat[self._mocap] = (np.cos(syaw / 2), 0.0, 0.0, np.sin(syaw / 2))

        if start == "home":
            q = self.inverse_kinematics(HOME_TIP_POSITION, HOME_YAW)
            q = q + self._rng.uniform(-1, 1, self.n_joints) * cfg.initial_joint_noise_rad
        else:
            noise = cfg.pre_critical_xy_noise_mm / 1000.0
            tip = self._socket.position + np.array(
                [self._rng.uniform(-noise, noise), self._rng.uniform(-noise, noise), cfg.pre_critical_height_mm / 1000.0]
            )
            q = self.inverse_kinematics(tip, syaw + np.deg2rad(self._rng.uniform(-2.0, 2.0)))
        q = np.clip(q, self.joint_limits.lower, self.joint_limits.upper)
        self.data.qpos[:] = 0.0
        self.data.qpos[self._qadr] = q
        self.data.qvel[:] = 0.0
        self.data.ctrl[:] = q
        self._target = q.copy()
        mujoco.mj_forward(self.model, self.data)
        self._steps = 0
        self._critical_started_at = None
        self._success = False
        self._needs_reset = False
        info = self._info()
        return self.observe(render=True), info

    def step(self, action, render: bool = True) -> tuple[dict, float, bool, bool, dict]:
        """Apply one control step of absolute joint-position targets ``action`` (float [n_joints]).

        Targets are clipped to the joint limits (and, with ``config.rate_limit_targets``, to the
        previous target +- max velocity * dt). ``render=False`` skips the cameras (obs["images"] = {}).
        """
        if self._needs_reset:
            raise RuntimeError("PegInsertionEnv.step() called before reset() or after the episode ended; call reset()")
        target = self._validate_action(action)
        target = np.clip(target, self.joint_limits.lower, self.joint_limits.upper)
        if self.config.rate_limit_targets:
            dq = self.joint_limits.max_velocity * self.control_dt
            target = np.clip(target, self._target - dq, self._target + dq)
        self._target = target
        self.data.ctrl[:] = target
        mujoco.mj_step(self.model, self.data, nstep=self.config.substeps)
        self._steps += 1
        info = self._info()
        reward = 0.0
        if info["success"] and not self._success:
            reward = 1.0
        self._success = self._success or info["success"]
        terminated = bool(info["success"])
        truncated = (not terminated) and self._steps >= self.config.max_episode_steps
        if terminated or truncated:
            self._needs_reset = True
        return self.observe(render=render), reward, terminated, truncated, info

    def _validate_action(self, action) -> np.ndarray:
        try:
            arr = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"action must be a float array of shape ({self.n_joints},) joint targets in rad") from err
        if arr.shape != (self.n_joints,):
            raise ValueError(
                f"action must have shape ({self.n_joints},) = absolute joint-position targets for "
                f"{self.joint_names}, got shape {arr.shape}"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"action contains NaN or inf: {arr}")
        return arr

    # ------------------------------------------------------------------ observation
    def observe(self, render: bool = True) -> dict:
        """The current observation; ``render=False`` leaves obs["images"] empty."""
        q = self.data.qpos[self._qadr].astype(np.float32)
        qd = self.data.qvel[self._vadr].astype(np.float32)
        ee = self._site_pose(self.data, self._ee).astype(np.float32)
        return {
            "images": self.render_images() if render else {},
            "joint_pos": q,
            "joint_vel": qd,
            "ee_pose": ee,
            "proprio": np.concatenate([q, qd, ee]).astype(np.float32),
            "stamp": float(self.data.time),
        }

    def render_images(self) -> dict[str, np.ndarray]:
        """RGB images of ``config.camera_names``: uint8 [S, S, 3] each."""
        if self._renderer is None:
            size = int(self.config.image_size)
            try:
                self._renderer = mujoco.Renderer(self.model, size, size)
            except Exception as err:  # noqa: BLE001 - MuJoCo raises FatalError/RuntimeError by backend
                raise RuntimeError(
                    f"offscreen rendering failed with MUJOCO_GL={os.environ.get('MUJOCO_GL')!r} ({err}). "
                    "Set MUJOCO_GL=egl (or osmesa) before anything imports mujoco, e.g. import "
                    "rlt_ros.core.sim.env first or export MUJOCO_GL=egl"
                ) from err
            self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
            self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        images = {}
        for cam in self.camera_names:
            self._renderer.update_scene(self.data, camera=cam)
            images[cam] = self._renderer.render().copy()
        return images

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    # ------------------------------------------------------------------ ground truth
    @property
    def socket_pose(self) -> SocketPose:
        """Ground-truth socket pose (expert / simulated operator only; policies must use images)."""
        return SocketPose(self._socket.position.copy(), self._socket.yaw)

    @property
    def time(self) -> float:
        return float(self.data.time)

    @property
    def current_target(self) -> np.ndarray:
        """The joint-position target currently commanded (after clipping), rad [n]."""
        return self._target.copy()

    def task_state(self) -> dict:
        """Plug tip relative to the socket mouth, in the socket frame (mm, degrees)."""
        tip = self.data.site_xpos[self._tcp]
        rel = tip - self._socket.position
        c, s = np.cos(-self._socket.yaw), np.sin(-self._socket.yaw)
        local = np.array([c * rel[0] - s * rel[1], s * rel[0] + c * rel[1], rel[2]])
        plug_yaw = self._yaw_of(self.data.site_xmat[self._tcp])
        return {
            "tip_in_socket_mm": local * 1000.0,
            "insertion_depth_mm": float(-local[2] * 1000.0),
            "lateral_error_mm": float(np.hypot(local[0], local[1]) * 1000.0),
            "yaw_error_deg": float(np.rad2deg(wrap_half_pi(plug_yaw - self._socket.yaw))),
            "distance_to_mouth_mm": float(np.linalg.norm(rel) * 1000.0),
        }

    def _contact(self) -> bool:
        for i in range(self.data.ncon):
            con = self.data.contact[i]
            g1, g2 = con.geom1, con.geom2
            if self._plug_geom in (g1, g2):
                other = g2 if g1 == self._plug_geom else g1
                if self.model.geom_bodyid[other] == self._socket_body:
                    return True
        return False

    def _info(self) -> dict:
        st = self.task_state()
        contact = self._contact()
        near = st["distance_to_mouth_mm"] <= self.config.critical_distance_mm
        if self._critical_started_at is None and (near or contact):
            self._critical_started_at = float(self.data.time)
        inside = st["lateral_error_mm"] <= self.config.clearance_mm + 1.0
        success = bool(inside and st["insertion_depth_mm"] >= self.config.success_depth_mm)
        return {
            "success": success,
            "in_critical_phase": self._critical_started_at is not None,
            "critical_phase_started_at": self._critical_started_at,
            "insertion_depth_mm": st["insertion_depth_mm"],
            "lateral_error_mm": st["lateral_error_mm"],
            "yaw_error_deg": st["yaw_error_deg"],
            "contact": contact,
            "time": float(self.data.time),
            "step": self._steps,
        }

    # ------------------------------------------------------------------ kinematics
    @staticmethod
    def _yaw_of(xmat) -> float:
        m = np.asarray(xmat).reshape(3, 3)
        return float(np.arctan2(m[1, 0], m[0, 0]))

    @staticmethod
    def _site_pose(data: mujoco.MjData, site: int) -> np.ndarray:
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, data.site_xmat[site])
        return np.concatenate([data.site_xpos[site], quat])

    def ee_pose_for_q(self, q) -> np.ndarray:
        """Forward kinematics: nominal plug-tip pose float64 [7] (xyz m, quaternion w,x,y,z) for joint
        positions q (the plug centred in the fingers), as in obs["ee_pose"]."""
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (self.n_joints,):
            raise ValueError(f"q must have shape ({self.n_joints},), got {q.shape}")
        self._scratch.qpos[:] = 0.0
        self._scratch.qpos[self._qadr] = q
        mujoco.mj_kinematics(self.model, self._scratch)
        return self._site_pose(self._scratch, self._ee)

    def ee_yaw_for_q(self, q) -> float:
        """Yaw of the plug's long side for joint positions q, rad (wrapped to [-pi/2, pi/2))."""
        self.ee_pose_for_q(q)
        return wrap_half_pi(self._yaw_of(self._scratch.site_xmat[self._ee]))

    def inverse_kinematics(self, tip_position, yaw: float) -> np.ndarray:
        """Closed-form IK: joint positions putting the plug tip at ``tip_position`` (m), tool pointing
        straight down, plug long side at ``yaw`` (rad). Elbow-up solution; not clipped to the limits.
        Raises ValueError when the point is out of reach."""
        x, y, z = (float(v) for v in tip_position)
        q0 = np.arctan2(y, x)
        r = np.hypot(x, y)
        dr, dz = r, z + self._tool_length - scene.SHOULDER_HEIGHT
        l1, l2 = scene.UPPER_ARM, scene.FOREARM
        d2 = dr * dr + dz * dz
        c2 = (d2 - l1 * l1 - l2 * l2) / (2 * l1 * l2)
        if not -1.0 <= c2 <= 1.0:
            raise ValueError(f"inverse_kinematics: tip position {tip_position} is out of the arm's reach")
        q2 = np.arccos(c2)
        q1 = np.arctan2(dr, dz) - np.arctan2(l2 * np.sin(q2), l1 + l2 * np.cos(q2))
        q3 = np.pi - q1 - q2
        # tool points down: plug long side is at yaw q0 + pi - q4 (roll axis points down)
        q4 = wrap_half_pi(q0 + np.pi - yaw)
        return np.array([q0, q1, q2, q3, q4])

    def jacobian(self, q) -> np.ndarray:
        """Plug-tip Jacobian float64 [6, n] (linear rows, then angular rows) at joint positions q."""
        self.ee_pose_for_q(q)
        mujoco.mj_comPos(self.model, self._scratch)
        jacp = np.zeros((3, self.model.nv))
        jacr = np.zeros((3, self.model.nv))
        mujoco.mj_jacSite(self.model, self._scratch, jacp, jacr, self._ee)
        return np.vstack([jacp[:, self._vadr], jacr[:, self._vadr]])

    def ik_dls(self, tip_position, yaw: float, q_init=None, iters: int = 50, damping: float = 1e-3) -> np.ndarray:
        """Damped-least-squares IK on (tip position, yaw, tool-down tilt) using MuJoCo's Jacobians.
        A general fallback / refinement of :meth:`inverse_kinematics`."""
        q = np.asarray(q_init if q_init is not None else self.inverse_kinematics(tip_position, yaw), dtype=np.float64).copy()
        target = np.asarray(tip_position, dtype=np.float64)
        for _ in range(iters):
            pose = self.ee_pose_for_q(q)
            xmat = self._scratch.site_xmat[self._ee].reshape(3, 3)
            err_p = target - pose[:3]
            z_axis = xmat[:, 2]  # should point down (0, 0, -1)
            err_tilt = np.cross(z_axis, np.array([0.0, 0.0, -1.0]))
            err_yaw = wrap_half_pi(yaw - self._yaw_of(xmat))
            err = np.concatenate([err_p, err_tilt[:2], [err_yaw]])
            if np.linalg.norm(err) < 1e-9:
                break
            jac = self.jacobian(q)
            j = np.vstack([jac[:3], jac[3:5], jac[5:6]])
            q = q + j.T @ np.linalg.solve(j @ j.T + damping * np.eye(6), err)
        return q
