"""A scripted, human-like demonstrator for :class:`PegInsertionEnv`, and an episode runner.

The expert behaves like a cautious teleoperator: a quick, coarse approach to a point above the
socket; then, in the critical phase, a slow descent, a pause to look closely and re-aim, a careful
push, and — when the plug jams on the rim — lifting and probing nearby points on a small spiral.
It succeeds almost always but slowly (several seconds in the critical phase), which is the
behaviour a VLA trained on its demonstrations inherits and RLT is meant to speed up.

It reads the ground-truth socket pose (``env.socket_pose``) blurred by noise: coarse during the
approach, finer after the close look.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from rlt_ros.core.sim.configuration_expert import ExpertConfig
from rlt_ros.core.sim.env import PegInsertionEnv, wrap_half_pi

ENGAGED_DEPTH_MM = 1.6  # deeper than the chamfer: the plug is inside the cavity


def yaw_from_quat(quat) -> float:
    """Yaw (rad) of the frame's x axis for a quaternion (w, x, y, z)."""
    w, x, y, z = (float(v) for v in quat)
    return float(np.arctan2(2 * (x * y + w * z), 1 - 2 * (y * y + z * z)))


@dataclass
class _ExpertState:
    phase: str = "approach"
    next_phase: str = ""  # phase after a pause
    phase_time: float = 0.0  # s spent in the current phase
    pause_left: float = 0.0  # s
    cmd: np.ndarray = field(default_factory=lambda: np.zeros(3))  # commanded tip position, m
    yaw_cmd: float = 0.0  # commanded plug yaw, rad
    start: np.ndarray = field(default_factory=lambda: np.zeros(3))  # approach start, m
    start_yaw: float = 0.0
    goal: np.ndarray = field(default_factory=lambda: np.zeros(3))  # approach goal, m
    approach_time: float = 1.0  # s
    est_xy: np.ndarray = field(default_factory=lambda: np.zeros(2))  # current socket-position estimate, m
    est_yaw: float = 0.0
    aim_xy: np.ndarray = field(default_factory=lambda: np.zeros(2))  # where the expert is trying to insert, m
    speed: float = 1.0  # per-episode speed scale
    best_depth: float = -1e9  # mm
    stall_time: float = 0.0  # s without insertion progress while touching
    search_k: int = 0  # probing spiral index
    hesitated: bool = False  # one mid-insertion hesitation per episode
    rng: np.random.Generator = field(default_factory=np.random.default_rng)


class ScriptedExpert:
    """Human-like scripted policy: ``reset(obs)`` then ``act(obs) -> float32 [n_joints]`` joint targets."""

    def __init__(self, env: PegInsertionEnv, config: ExpertConfig | None = None) -> None:
        self.env = env
        self.config = config if config is not None else ExpertConfig()
        self._rng = np.random.default_rng(self.config.seed)
        self._s = _ExpertState(rng=self._rng)
        self._dt = env.control_dt

    # ------------------------------------------------------------------ public API
    def reset(self, obs: dict, seed: int | None = None) -> None:
        """Start a new episode from observation ``obs`` (call right after ``env.reset``)."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        cfg, rng = self.config, self._rng
        sock = self.env.socket_pose
        tip = np.asarray(obs["ee_pose"][:3], dtype=np.float64)
        s = _ExpertState(rng=rng)
        s.speed = float(rng.uniform(1 - cfg.speed_variation, 1 + cfg.speed_variation))
        s.est_xy = sock.position[:2] + rng.normal(0, cfg.coarse_noise_mm / 1000.0, 2)
        s.est_yaw = sock.yaw + np.deg2rad(rng.normal(0, cfg.yaw_noise_deg))
        s.aim_xy = s.est_xy.copy()
        s.cmd = tip.copy()
        s.yaw_cmd = yaw_from_quat(obs["ee_pose"][3:7])
        s.start, s.start_yaw = tip.copy(), s.yaw_cmd
        mouth_z = sock.position[2]
        height = min(cfg.hover_height_mm / 1000.0, max(tip[2] - mouth_z, cfg.align_height_mm / 1000.0 + 0.004))
        s.goal = np.array([s.est_xy[0], s.est_xy[1], mouth_z + height])
        dist = float(np.linalg.norm(s.goal - s.start))
        s.approach_time = max(0.8, 1.875 * dist / (cfg.approach_speed_mps * s.speed))
        s.phase = "approach"
        self._s = s

    def act(self, obs: dict) -> np.ndarray:
        """Joint-position targets float32 [n_joints] for this control step."""
        self._advance(self._s, obs)
        return self._targets(self._s)

    def act_chunk(self, obs: dict, horizon: int = 50) -> np.ndarray:
        """The expert's next ``horizon`` actions float32 [H, n_joints] planned open loop from ``obs``
        (the measurement is frozen; the expert's own state is not changed)."""
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        state = copy.deepcopy(self._s)
        out = np.empty((horizon, self.env.n_joints), dtype=np.float32)
        for i in range(horizon):
            self._advance(state, obs)
            out[i] = self._targets(state)
        return out

    @property
    def phase(self) -> str:
        """Current behaviour phase (approach, pause, descend_hover, reaim, descend, insert, lift, done)."""
        return self._s.phase

    # ------------------------------------------------------------------ behaviour
    def _targets(self, s: _ExpertState) -> np.ndarray:
        q = self.env.inverse_kinematics(s.cmd, s.yaw_cmd)
        lim = self.env.joint_limits
        return np.clip(q, lim.lower, lim.upper).astype(np.float32)

    def _pause(self, s: _ExpertState, then: str) -> None:
        s.phase, s.next_phase, s.phase_time = "pause", then, 0.0
        s.pause_left = float(s.rng.uniform(self.config.pause_min_s, self.config.pause_max_s))

    def _goto(self, s: _ExpertState, phase: str) -> None:
        s.phase, s.phase_time = phase, 0.0

    @staticmethod
    def _move_towards(current: np.ndarray, goal: np.ndarray, max_step: float) -> tuple[np.ndarray, bool]:
        delta = goal - current
        dist = float(np.linalg.norm(delta))
        if dist <= max_step:
            return goal.copy(), True
        return current + delta * (max_step / dist), False

    def _turn_towards(self, s: _ExpertState, yaw_goal: float, max_step: float) -> bool:
        err = wrap_half_pi(yaw_goal - s.yaw_cmd)
        s.yaw_cmd += float(np.clip(err, -max_step, max_step))
        return abs(err) <= max_step

    def _advance(self, s: _ExpertState, obs: dict) -> None:
        cfg, dt = self.config, self._dt
        mouth_z = self.env.socket_pose.position[2]
        depth_mm = self.env.task_state()["insertion_depth_mm"]
        tip = np.asarray(obs["ee_pose"][:3], dtype=np.float64)
        s.phase_time += dt
        if s.phase == "approach":
            u = min(1.0, s.phase_time / s.approach_time)
            blend = 10 * u**3 - 15 * u**4 + 6 * u**5  # minimum-jerk profile
            s.cmd = s.start + blend * (s.goal - s.start)
            s.yaw_cmd = s.start_yaw + blend * wrap_half_pi(s.est_yaw - s.start_yaw)
            if u >= 1.0:
                self._pause(s, "descend_hover")
        elif s.phase == "pause":
            s.pause_left -= dt
            if s.pause_left <= 0:
                self._goto(s, s.next_phase)
        elif s.phase == "descend_hover":
            goal = np.array([s.aim_xy[0], s.aim_xy[1], mouth_z + cfg.align_height_mm / 1000.0])
            s.cmd, arrived = self._move_towards(s.cmd, goal, cfg.hover_descent_speed_mps * s.speed * dt)
            if arrived:
                # a close look: a better estimate of where the socket is
                sock = self.env.socket_pose
                s.est_xy = sock.position[:2] + s.rng.normal(0, cfg.fine_noise_mm / 1000.0, 2)
                s.est_yaw = sock.yaw + np.deg2rad(s.rng.normal(0, cfg.yaw_noise_deg * 0.5))
                s.aim_xy = s.est_xy.copy()
                self._pause(s, "reaim")
        elif s.phase == "reaim":
            goal = np.array([s.aim_xy[0], s.aim_xy[1], s.cmd[2]])
            s.cmd, arrived = self._move_towards(s.cmd, goal, cfg.descend_speed_mps * s.speed * dt)
            turned = self._turn_towards(s, s.est_yaw, np.deg2rad(5.0) * dt)
            if arrived and turned:
                self._goto(s, "descend")
        elif s.phase == "descend":
            goal = np.array([s.aim_xy[0], s.aim_xy[1], mouth_z - 0.002])
            s.cmd, _ = self._move_towards(s.cmd, goal, cfg.descend_speed_mps * s.speed * dt)
            if tip[2] <= mouth_z + 0.0005 or s.cmd[2] < tip[2] - 0.0008:
                s.best_depth, s.stall_time = depth_mm, 0.0
                self._goto(s, "insert")
        elif s.phase == "insert":
            self._insert(s, tip, yaw_from_quat(obs["ee_pose"][3:7]), depth_mm)
        elif s.phase == "lift":
            goal = np.array([s.cmd[0], s.cmd[1], mouth_z + 0.002])
            s.cmd, arrived = self._move_towards(s.cmd, goal, 0.01 * dt)
            if arrived:
                # look again (a fresh estimate) and probe a little around it, widening with each retry
                s.search_k += 1
                sock = self.env.socket_pose
                s.est_xy = sock.position[:2] + s.rng.normal(0, cfg.fine_noise_mm / 1000.0, 2)
                angle = 2.39996 * s.search_k  # golden angle: evenly spread probe directions
                radius = cfg.search_step_mm / 1000.0 * (s.search_k - 1) / 2.0
                s.aim_xy = s.est_xy + radius * np.array([np.cos(angle), np.sin(angle)])
                self._pause(s, "reaim")
        elif s.phase == "done":
            pass
        else:  # pragma: no cover - programming error
            raise RuntimeError(f"unknown expert phase {s.phase!r}")

    def _insert(self, s: _ExpertState, tip: np.ndarray, tip_yaw: float, depth_mm: float) -> None:
        cfg, dt = self.config, self._dt
        success_mm = self.env.config.success_depth_mm
        if depth_mm >= success_mm + 0.5:
            self._goto(s, "done")
            return
        engaged = depth_mm >= ENGAGED_DEPTH_MM
        # descend steadily, but never command more than push_mm below the measured tip (bounded force);
        # lean in harder the longer the plug does not move
        push = cfg.push_mm / 1000.0 * (1.0 + s.stall_time / cfg.jam_time_s)
        s.cmd[2] = max(s.cmd[2] - cfg.insert_speed_mps * s.speed * dt, tip[2] - push)
        if depth_mm > 0.3:
            # on the chamfer or inside: let the socket guide the plug, follow the measured tip laterally
            s.cmd[:2] += 0.2 * (tip[:2] - s.cmd[:2])
            s.yaw_cmd += 0.2 * wrap_half_pi(tip_yaw - s.yaw_cmd)
        if engaged:
            if not s.hesitated and depth_mm > 4.0:
                s.hesitated = True
                if s.rng.random() < 0.5:
                    self._pause(s, "insert")
                    return
        if depth_mm > s.best_depth + 0.2:
            s.best_depth, s.stall_time = depth_mm, 0.0
        else:
            s.stall_time += dt
        if s.stall_time >= cfg.jam_time_s and not engaged:
            self._goto(s, "lift")
        elif s.stall_time >= 3 * cfg.jam_time_s:  # stuck even inside: back out a little and retry
            s.cmd[2] = tip[2] + 0.001
            s.stall_time = 0.0


# ---------------------------------------------------------------------- evaluation
class Policy(Protocol):
    def reset(self, obs: dict) -> None: ...

    def act(self, obs: dict) -> np.ndarray: ...


@dataclass
class EpisodeStats:
    """Outcome of one episode."""

    seed: int | None
    success: bool
    steps: int  # control steps taken
    episode_time_s: float  # simulated time at the end, s
    critical_phase_s: float | None  # from the critical-phase start to success (or to the end), s; None if never reached
    critical_phase_started_at: float | None  # s


def run_episode(
    env: PegInsertionEnv,
    policy: Policy,
    seed: int | None = None,
    *,
    render: bool | Callable[[int], bool] = False,
    max_steps: int | None = None,
    reset_options: dict | None = None,
    on_step: Callable[[dict, np.ndarray, float, dict], None] | None = None,
) -> EpisodeStats:
    """Run one episode of ``policy`` (anything with ``reset(obs)`` and ``act(obs)``) in ``env``.

    render: render cameras every step (True), never (False), or when ``render(step_index)`` is True.
    on_step(obs, action, reward, info): called after each step with the observation the action was
        computed from (use it to record demonstrations).
    """
    obs, info = env.reset(seed=seed, options=reset_options)
    if isinstance(policy, ScriptedExpert):
        policy.reset(obs, seed=None if seed is None else seed + 7919)
    else:
        policy.reset(obs)
    limit = max_steps if max_steps is not None else env.config.max_episode_steps
    steps, terminated, truncated = 0, False, False
    while not (terminated or truncated) and steps < limit:
        action = np.asarray(policy.act(obs))
        want = render(steps + 1) if callable(render) else bool(render)
        next_obs, reward, terminated, truncated, info = env.step(action, render=want)
        if on_step is not None:
            on_step(obs, action, reward, info)
        obs = next_obs
        steps += 1
    started = info["critical_phase_started_at"]
    critical = None if started is None else info["time"] - started
    return EpisodeStats(seed, bool(info["success"]), steps, float(info["time"]), critical, started)


def evaluate(env: PegInsertionEnv, policy: Policy, seeds, **kwargs) -> dict:
    """Run ``policy`` on each seed; success rate, median critical-phase time (successes), median length."""
    stats = [run_episode(env, policy, int(seed), **kwargs) for seed in seeds]
    crit = [s.critical_phase_s for s in stats if s.success and s.critical_phase_s is not None]
    return {
        "episodes": len(stats),
        "success_rate": float(np.mean([s.success for s in stats])) if stats else 0.0,
        "median_critical_phase_s": float(np.median(crit)) if crit else None,
        "median_episode_steps": float(np.median([s.steps for s in stats])) if stats else None,
        "stats": stats,
    }
