"""Running a VLA backend as a closed-loop policy on the simulated arm (what `rlt eval-vla` runs).

The VLA is queried every K control steps; the first K actions of its chunk ã [H, A] are executed open
loop (receding horizon). Cameras are rendered only on the steps where the VLA looks.

K matters a lot for the shipped built-in base VLA (100 episodes, seeds 100000..100099): K=10 6%,
K=25 39%, K=30 53%, K=35 67%, K=50 64% success. Re-planning often makes the behaviour-cloned policy
dither where the demonstrator hesitated (pauses, hovering) instead of committing to a motion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rlt_ros.core.types import Observation
from rlt_ros.core.vla.base import VLABackend


def observation_from_sim(obs: dict, instruction: str) -> Observation:
    """The simulator's observation dict -> Observation.

    proprio = concat(joint_pos, joint_vel) [2 n_joints], as on the ROS side (/rlt/observation) and in
    the demo bags; the simulator's extra ee_pose entries are not given to the VLA.
    """
    proprio = np.concatenate([obs["joint_pos"], obs["joint_vel"]]).astype(np.float32)
    return Observation(images=obs["images"], proprio=proprio, instruction=instruction, stamp=float(obs.get("stamp", 0.0)))


class VLAChunkPolicy:
    """``reset(obs)`` / ``act(obs)`` policy that executes the first ``execute_steps`` actions of each chunk."""

    def __init__(self, backend: VLABackend, instruction: str, execute_steps: int = 30):
        if not 1 <= execute_steps <= backend.chunk_size:
            raise ValueError(f"execute_steps must be in [1, chunk_size={backend.chunk_size}], got {execute_steps}")
        self.backend = backend
        self.instruction = instruction
        self.k = int(execute_steps)
        self._chunk: np.ndarray | None = None
        self._i = 0
        self.queries = 0

    def reset(self, obs: dict) -> None:
        self._chunk, self._i = None, 0

    def needs_images(self, steps_taken: int) -> bool:
        """True when the observation after ``steps_taken`` steps will be shown to the VLA."""
        return steps_taken % self.k == 0

    def act(self, obs: dict) -> np.ndarray:
        if self._chunk is None or self._i >= self.k:
            if not obs.get("images"):
                raise RuntimeError("VLAChunkPolicy needs rendered images at each query step (render=policy.needs_images)")
            self._chunk = self.backend.infer(observation_from_sim(obs, self.instruction)).reference_chunk
            self._i = 0
            self.queries += 1
        a = self._chunk[self._i]
        self._i += 1
        return a


@dataclass
class EvalResult:
    episodes: int
    successes: int
    success_rate: float
    success_ci95: tuple[float, float]  # Wilson score interval
    median_critical_phase_s: float | None  # over successful episodes
    median_critical_phase_all_s: float | None  # over all episodes that reached the critical phase
    median_episode_s: float | None
    reached_critical: int

    def summary(self) -> str:
        crit = "n/a" if self.median_critical_phase_s is None else f"{self.median_critical_phase_s:.2f} s"
        return (f"success {self.successes}/{self.episodes} = {100 * self.success_rate:.1f}% "
                f"(95% CI {100 * self.success_ci95[0]:.1f}-{100 * self.success_ci95[1]:.1f}%), "
                f"median critical phase (successes) {crit}, reached critical phase {self.reached_critical}/{self.episodes}")


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    den = 1 + z * z / n
    c = (p + z * z / (2 * n)) / den
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, c - h), min(1.0, c + h))


def evaluate_backend(backend: VLABackend, episodes: int, execute_steps: int = 30, seed: int = 100_000,
                     sim_config=None, progress: bool = True, start: str | None = None) -> EvalResult:
    """Run ``episodes`` randomized episodes (seeds seed..seed+episodes-1) of the VLA on PegInsertionEnv."""
    from tqdm import tqdm

    from rlt_ros.core.sim.configuration_sim import SimConfig
    from rlt_ros.core.sim.env import PegInsertionEnv
    from rlt_ros.core.sim.expert import run_episode

    env = PegInsertionEnv(sim_config if sim_config is not None else SimConfig())
    try:
        backend.check_compatible(list(env.joint_names), env.action_dim)
        policy = VLAChunkPolicy(backend, env.instruction, execute_steps)
        stats = []
        opts = {"start": start} if start else None
        with tqdm(total=episodes, desc="eval-vla", unit="ep", disable=not progress) as bar:
            for i in range(episodes):
                stats.append(run_episode(env, policy, seed + i, render=policy.needs_images, reset_options=opts))
                bar.update(1)
                bar.set_postfix(success=f"{np.mean([s.success for s in stats]):.2f}")
    finally:
        env.close()
    succ = [s for s in stats if s.success]
    crit_s = [s.critical_phase_s for s in succ if s.critical_phase_s is not None]
    crit_all = [s.critical_phase_s for s in stats if s.critical_phase_s is not None]
    return EvalResult(
        episodes=len(stats), successes=len(succ), success_rate=len(succ) / max(1, len(stats)),
        success_ci95=wilson(len(succ), len(stats)),
        median_critical_phase_s=float(np.median(crit_s)) if crit_s else None,
        median_critical_phase_all_s=float(np.median(crit_all)) if crit_all else None,
        median_episode_s=float(np.median([s.episode_time_s for s in stats])) if stats else None,
        reached_critical=len(crit_all),
    )
