"""Small fakes of the simulator and the VLA for the RLT tests (same interfaces, no MuJoCo, no model).

FakeReachEnv: 2 joints must reach a per-episode target within 0.05 rad ("insertion"); the critical phase
starts within 0.6 rad of it. FakeVLA: prefix embeddings that encode (target - q) and q; its reference
chunk moves slowly towards the target (a slow, imprecise base policy that RL can speed up). PooledToken: a
stand-in for a trained RL-token encoder (z_rl = the mean of the valid prefix embeddings).
"""

from __future__ import annotations

import numpy as np

from rlt_ros.core.rlt.modeling_token import pooled_prefix
from rlt_ros.core.sim.env import JointLimits
from rlt_ros.core.types import VLAOutput


class FakeReachEnv:
    action_dim = 2
    proprio_dim = 4
    joint_names = ("j0", "j1")
    instruction = "reach"
    control_dt = 0.02

    def __init__(self, max_steps: int = 300, max_step_rad: float = 0.05, image_size: int = 4):
        self.max_steps, self.max_step, self.image_size = max_steps, max_step_rad, image_size
        self.joint_limits = JointLimits(np.full(2, -3.0), np.full(2, 3.0), np.full(2, max_step_rad / self.control_dt))
        self.rng = np.random.default_rng(0)

    def reset(self, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        start = (options or {}).get("start", "pre_critical")
        self.target = self.rng.uniform(-1, 1, 2)
        ang = self.rng.uniform(0, 2 * np.pi)
        dist = 0.5 if start == "pre_critical" else 1.5
        self.q = self.target + dist * np.array([np.cos(ang), np.sin(ang)])
        self.qd = np.zeros(2)
        self.steps, self.critical = 0, False
        return self.observe(True), self._info()

    def _info(self):
        err = float(np.linalg.norm(self.q - self.target))
        self.critical = self.critical or err < 0.6
        return {"success": err < 0.05, "in_critical_phase": self.critical, "time": self.steps * self.control_dt,
                "step": self.steps}

    def observe(self, render=True):
        images = {}
        if render:
            img = np.zeros((self.image_size, self.image_size, 3), np.uint8)
            img[0, 0, :2] = np.round((self.target + 2.0) * 50).astype(np.uint8)
            img[1:, 1:, 2] = np.uint8(100 + 40 * np.tanh(self.q[0]))  # the arm in view (the image state's input)
            images = {"base": img}
        return {"images": images, "proprio": np.concatenate([self.q, self.qd]).astype(np.float32),
                "stamp": self.steps * self.control_dt}

    def step(self, action, render=True):
        action = np.asarray(action, np.float64)
        if action.shape != (2,) or not np.all(np.isfinite(action)):
            raise ValueError(f"bad action {action}")
        new = self.q + np.clip(action - self.q, -self.max_step, self.max_step)
        self.qd, self.q = (new - self.q) / self.control_dt, new
        self.steps += 1
        info = self._info()
        terminated = info["success"]
        truncated = not terminated and self.steps >= self.max_steps
        return self.observe(render), float(terminated), terminated, truncated, info


class FakeVLA:
    embed_dim = 8
    chunk_size = 10
    action_dim = 2

    def __init__(self, speed: float = 0.25):
        self.speed = speed  # fraction of the max joint speed the base policy uses
        self.proj = np.random.default_rng(1).normal(size=(4, 4, 8)).astype(np.float32)

    def infer(self, obs):
        img = obs.images["base"]
        target = img[0, 0, :2].astype(np.float64) / 50.0 - 2.0
        q = np.asarray(obs.proprio[:2], np.float64)
        feats = np.concatenate([target - q, q]).astype(np.float32)
        emb = np.einsum("f,mfd->md", feats, self.proj).astype(np.float32)
        step = np.clip(target - q, -0.05 * self.speed, 0.05 * self.speed)
        chunk = np.stack([q + step * (k + 1) for k in range(self.chunk_size)]).astype(np.float32)
        # the base policy overshoots a little: it cannot finish precisely
        chunk += 0.03 * np.sign(target - q)
        return VLAOutput(prefix_embeddings=emb, prefix_mask=np.ones(4, bool), reference_chunk=chunk)


class PooledToken:
    """A TokenEncoder stand-in for StateReader("token", ...): the pooled prefix as z_rl."""

    def __init__(self, token_dim: int):
        self.token_dim = token_dim

    def encode(self, prefix_embeddings, prefix_mask=None):
        mask = np.ones(len(prefix_embeddings), bool) if prefix_mask is None else prefix_mask
        return pooled_prefix(prefix_embeddings, mask)
