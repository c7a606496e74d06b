"""The RLT actor and critics (stage 2), their normaliser and their losses.

Paper: "RL Token" (Xu et al., 2026), stage 2. State x = (z_rl, proprio); ã_1:C = the first C steps of the
VLA's reference chunk; a_1:C = an action chunk. Everything enters the networks normalised by ``Normalizer``.

- Actor: pi(a | x, ã) = N(mu_theta(x, ã_in), sigma^2 I) over C x A. With ``residual_actor`` (our default)
  mu = ã_in + MLP(x, ã_in), the MLP's last layer initialised near zero, so the untrained actor reproduces
  the VLA when ã is given; ã_in = ã, zeroed for ``ref_dropout`` of the training samples only.
- Critics: Q_j(x, a_1:C), j = 1..num_critics, with Polyak target copies.
- TD target (TD3-style, chunk level):
      y = sum_{t=1..C} gamma^{t-1} r_t + gamma^C (1 - done) min_j Q'_j(x', a'),
  a' = mu_target(x', ã') + clip(sigma eps, -c, c).
- Actor loss: E_{a ~ pi}[ -mean_j Q_j(x, a) + beta || a - ã ||^2 ] (a reparameterised; the norm sums
  over the C x A normalised chunk).

Shapes: B batch, T token dim, P proprio dim, C chunk, A action dim, K = num_critics.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from rlt_ros.core.rlt.configuration_rlt import RLTConfig


def mlp(inp: int, hidden: tuple, out: int, layer_norm: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    last = inp
    for h in hidden:
        layers.append(nn.Linear(last, h))
        if layer_norm:
            layers.append(nn.LayerNorm(h))
        layers.append(nn.ReLU())
        last = h
    layers.append(nn.Linear(last, out))
    return nn.Sequential(*layers)


class Normalizer(nn.Module):
    """Per-dimension mean/std of tokens, proprioception and actions (joint targets), stored as buffers.

    ``fit`` is called once on the warm-up data; until then the identity is used. Stds are floored at
    ``state_min_std`` (token, proprio) and ``action_std_floor`` x the median joint's std (actions: unit-free,
    so a joint the few warm-up episodes barely moved, e.g. the base joint when their sockets happened to lie
    close together, still gets a scale like its neighbours'), and normalised state values are clipped to
    +-``state_clip``: in the VLA's warm-up data some inputs barely move (the base joint's velocity, parts of
    the end-effector quaternion: std ~1e-4), and without a floor and a clip the first actor that moves them
    feeds the networks values in the hundreds, which made the actor's residual explode (the plug driven
    10-30 mm off the socket in the simulated benchmark). ``shared_action_std``: one action std for every
    joint (the RMS of the per-joint stds), so that sigma and beta weigh a radian of each joint alike.
    """

    def __init__(self, token_dim: int, proprio_dim: int, action_dim: int, state_min_std: float = 1e-2,
                 action_std_floor: float = 0.5, state_clip: float = 5.0, shared_action_std: bool = False):
        super().__init__()
        self.min_std = {"token": state_min_std, "proprio": state_min_std, "action": 1e-6}
        self.action_std_floor = action_std_floor  # a joint's action std is at least this x the median joint's
        self.shared_action_std = shared_action_std
        self.state_clip = state_clip
        for name, dim in (("token", token_dim), ("proprio", proprio_dim), ("action", action_dim)):
            self.register_buffer(f"{name}_mean", torch.zeros(dim))
            self.register_buffer(f"{name}_std", torch.ones(dim))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def fit(self, tokens: np.ndarray, proprio: np.ndarray, actions: np.ndarray) -> None:
        """tokens [N, T], proprio [N, P], actions [N', A] (rows of reference/executed chunks)."""
        for name, data in (("token", tokens), ("proprio", proprio), ("action", actions)):
            data = np.asarray(data, np.float64).reshape(-1, getattr(self, f"{name}_mean").shape[0])
            if len(data) == 0:
                raise ValueError(f"Normalizer.fit: no {name} data")
            getattr(self, f"{name}_mean").copy_(torch.from_numpy(data.mean(0)).float())
            std = np.maximum(data.std(0), self.min_std[name])
            if name == "action":  # unit-free floor: a joint the warm-up barely moved keeps a usable scale
                std = np.maximum(std, self.action_std_floor * np.median(std))
            if name == "action" and self.shared_action_std:  # one scale for every joint: the RMS of their stds
                std = np.full_like(std, np.sqrt(np.mean(std ** 2)))
            getattr(self, f"{name}_std").copy_(torch.from_numpy(std).float())
        self.fitted.fill_(True)

    def token(self, t: torch.Tensor) -> torch.Tensor:
        return ((t - self.token_mean) / self.token_std).clamp(-self.state_clip, self.state_clip)

    def proprio(self, p: torch.Tensor) -> torch.Tensor:
        return ((p - self.proprio_mean) / self.proprio_std).clamp(-self.state_clip, self.state_clip)

    def action(self, a: torch.Tensor) -> torch.Tensor:
        """[..., A] absolute -> normalised."""
        return (a - self.action_mean) / self.action_std

    def unaction(self, a: torch.Tensor) -> torch.Tensor:
        """[..., A] normalised -> absolute."""
        return a * self.action_std + self.action_mean


class Actor(nn.Module):
    """mu_theta(x, ã_in): normalised token [B,T], proprio [B,P], reference [B,C*A] -> mu [B,C*A] (normalised)."""

    def __init__(self, cfg: RLTConfig):
        super().__init__()
        self.cfg = cfg
        inp = cfg.token_dim + cfg.proprio_dim + (cfg.chunk_flat if cfg.use_reference else 0)
        self.net = mlp(inp, cfg.actor_hidden, cfg.chunk_flat)
        last = self.net[-1]
        nn.init.uniform_(last.weight, -cfg.residual_init_scale, cfg.residual_init_scale)
        nn.init.zeros_(last.bias)

    def forward(self, token: torch.Tensor, proprio: torch.Tensor, ref_in: torch.Tensor,
                anchor: torch.Tensor | None = None) -> torch.Tensor:
        """``anchor`` (residual actor): what the residual is added to, when it is not ``ref_in`` itself."""
        cfg = self.cfg
        b = token.shape[0]
        assert token.shape == (b, cfg.token_dim) and proprio.shape == (b, cfg.proprio_dim), (token.shape, proprio.shape)
        assert ref_in.shape == (b, cfg.chunk_flat), ref_in.shape
        parts = [token, proprio] + ([ref_in] if cfg.use_reference else [])
        out = self.net(torch.cat(parts, dim=-1))
        if not cfg.residual_actor:
            return out
        return (ref_in if anchor is None else anchor) + out


class Critics(nn.Module):
    """K independent Q networks: normalised token [B,T], proprio [B,P], action [B,C*A] -> Q [K,B]."""

    def __init__(self, cfg: RLTConfig):
        super().__init__()
        self.cfg = cfg
        inp = cfg.token_dim + cfg.proprio_dim + cfg.chunk_flat
        self.qs = nn.ModuleList(mlp(inp, cfg.critic_hidden, 1, cfg.critic_layer_norm) for _ in range(cfg.num_critics))

    def forward(self, token: torch.Tensor, proprio: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        b = token.shape[0]
        assert action.shape == (b, self.cfg.chunk_flat), action.shape
        x = torch.cat([token, proprio, action], dim=-1)
        return torch.stack([q(x).squeeze(-1) for q in self.qs])


def chunk_discounts(gamma: float, chunk_size: int, device=None) -> torch.Tensor:
    """[C]: gamma^{t-1} for t = 1..C."""
    return gamma ** torch.arange(chunk_size, dtype=torch.float32, device=device)


def td_target(rewards: torch.Tensor, done: torch.Tensor, next_q: torch.Tensor, gamma: float) -> torch.Tensor:
    """y = sum_{t=1..C} gamma^{t-1} r_t + gamma^C (1 - done) min_j Q'_j(x', a').

    rewards [B, C], done [B] (1 = terminal), next_q [K, B] target-critic values -> y [B].
    """
    b, c = rewards.shape
    assert done.shape == (b,) and next_q.ndim == 2 and next_q.shape[1] == b, (rewards.shape, done.shape, next_q.shape)
    ret = (rewards * chunk_discounts(gamma, c, rewards.device)).sum(-1)
    return ret + (gamma ** c) * (1.0 - done.float()) * next_q.min(dim=0).values


def reference_dropout_mask(batch: int, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """[B, 1] float: 0 for the samples whose ã is zeroed (probability p), 1 otherwise. Training only."""
    if p <= 0.0:
        return torch.ones(batch, 1)
    return (torch.rand(batch, 1, generator=generator) >= p).float()
