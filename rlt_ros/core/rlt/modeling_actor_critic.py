"""The RLT actor and critics (stage 2), their normaliser and their losses.

Paper: "RL Token" (Xu et al., 2026), stage 2. State x = (z_rl, proprio); ã_1:C = the first C steps of the
VLA's reference chunk; a_1:C = an action chunk. Everything enters the networks normalised by ``Normalizer``.

- Actor: pi(a | x, ã) = N(mu_theta(x, ã_in), sigma^2 I) over C x A. With ``residual_actor`` (our default)
  mu = ã + MLP(x, ã_in), the MLP's last layer initialised near zero, so the untrained actor reproduces
  the VLA; ã_in = ã, zeroed for ``ref_dropout`` of the training samples only (dropout hides ã from the
  MLP's input, the residual stays anchored to ã).
- Critics: Q_j(x, a_1:C), j = 1..num_critics, one stacked module (a batched matmul per layer), with a
  Polyak target copy.
- TD target (TD3-style, chunk level):
      y = sum_{t=1..C} gamma^{t-1} r_t + gamma^C (1 - done) min_j Q'_j(x', a'),
  a' = mu_target(x', ã') + clip(sigma eps, -c, c).
- Actor loss: E_{a ~ pi}[ -mean_j Q_j(x, a) + beta || a - ã ||^2 ] (a reparameterised; the norm sums
  over the C x A normalised chunk).

The no-token ablation (``RLTConfig.state_image_size`` > 0; paper: "a ResNet-10 encoder instead of the RL
token"): the state's vector is the cameras' uint8 RGB pixels instead of z_rl, and the actor and the critics
each read it through their own ``ImageEncoder`` (a small ResNet-10-like CNN), trained online by their own
loss: the critics' encoder by the TD loss (as in SERL/DrQ; its Polyak copy in the target critics), the
actor's by the actor loss. Own encoders keep the exported actor self-contained (the acting side needs no
critic); sharing the critics' encoder, detached, would save about 40% of the encoder compute.

Shapes: B batch, T token dim (z_rl, or cameras x S x S x 3 pixels), P proprio dim, C chunk, A action dim,
K = num_critics.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from rlt_ros.core.rlt.action_stats import ActionStats
from rlt_ros.core.rlt.configuration_rlt import RLTConfig


def mlp(inp: int, hidden: tuple, out: int, layer_norm: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    last = inp
    for h in hidden:
        layers.append(nn.Linear(last, h))
        if layer_norm:
            layers.append(nn.LayerNorm(h))
        layers.append(nn.ReLU(inplace=True))  # after Linear/LayerNorm, whose backward does not need their output
        last = h
    layers.append(nn.Linear(last, out))
    return nn.Sequential(*layers)


IMAGE_WIDTHS = (8, 16, 32, 64)  # channels of the ImageEncoder's four residual stages (the stem has the first)
IMAGE_FEATURES = 128  # length of the ImageEncoder's output (the state vector the MLPs read instead of z_rl)


class BasicBlock(nn.Module):
    """ResNet's basic block: two 3x3 convolutions with GroupNorm, a 1x1 projection when the shape changes."""

    def __init__(self, inp: int, out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(inp, out, 3, stride, 1, bias=False)
        self.norm1 = nn.GroupNorm(4, out)
        self.conv2 = nn.Conv2d(out, out, 3, 1, 1, bias=False)
        self.norm2 = nn.GroupNorm(4, out)
        self.skip = None if inp == out and stride == 1 else nn.Conv2d(inp, out, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm2(self.conv2(F.relu(self.norm1(self.conv1(x)))))
        return F.relu(h + (x if self.skip is None else self.skip(x)))


class ImageEncoder(nn.Module):
    """The no-token ablation's encoder (ResNet-10-like, as SERL's): pixels [B, N*S*S*3] (uint8 values as
    floats; N cameras of S x S RGB, ``RLTConfig.state_image_size`` = S) -> features [B, IMAGE_FEATURES].

    A stride-2 3x3 stem, four stages of one basic block (``IMAGE_WIDTHS``, stride 2 from the second), global
    average pooling per camera (the cameras share the weights), then Linear + LayerNorm + tanh over the
    cameras' concatenated features (DrQ's bottleneck)."""

    def __init__(self, cfg: RLTConfig):
        super().__init__()
        self.side = cfg.state_image_size
        self.cameras = cfg.token_dim // (3 * self.side ** 2)
        layers: list[nn.Module] = [nn.Conv2d(3, IMAGE_WIDTHS[0], 3, 2, 1, bias=False),
                                   nn.GroupNorm(4, IMAGE_WIDTHS[0]), nn.ReLU(inplace=True)]
        last = IMAGE_WIDTHS[0]
        for k, width in enumerate(IMAGE_WIDTHS):
            layers.append(BasicBlock(last, width, 1 if k == 0 else 2))
            last = width
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.cnn = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(self.cameras * last, IMAGE_FEATURES), nn.LayerNorm(IMAGE_FEATURES),
                                  nn.Tanh())

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        b, s = pixels.shape[0], self.side
        assert pixels.shape == (b, self.cameras * s * s * 3), pixels.shape
        x = pixels.reshape(b * self.cameras, s, s, 3).permute(0, 3, 1, 2).mul(1.0 / 255.0).sub(0.5)
        return self.head(self.cnn(x).reshape(b, -1))


def state_encoder(cfg: RLTConfig) -> tuple[nn.Module | None, int]:
    """(the network's image encoder or None, the length of the state vector its MLP reads)."""
    if not cfg.state_image_size:
        return None, cfg.token_dim
    return ImageEncoder(cfg), IMAGE_FEATURES


class Normalizer(nn.Module):
    """Per-dimension mean/std of tokens, proprioception and actions (joint targets), stored as buffers.

    ``fit`` is called once on the warm-up data; until then the identity is used. The action mean/std come
    from the demonstrations when the RL token carries them (``ActionStats``, action_stats.py), else from the
    warm-up's reference and executed rows. Stds are floored at
    ``state_min_std`` (token, proprio) and ``action_min_std`` (per joint), and normalised state values are
    clipped to +-``state_clip``: in the VLA's warm-up data some inputs barely move (the base joint's velocity,
    parts of the end-effector quaternion: std ~1e-4), and without a floor and a clip the first actor that moves
    them feeds the networks values in the hundreds, which made the actor's residual explode (the plug driven
    10-30 mm off the socket in the simulated benchmark).
    With ``images`` (the no-token ablation) the token is pixels, passed through unchanged (the ImageEncoder
    scales them).
    """

    def __init__(self, token_dim: int, proprio_dim: int, action_dim: int, state_min_std: float = 1e-2,
                 action_min_std: float = 1e-3, state_clip: float = 5.0, images: bool = False):
        super().__init__()
        self.images = bool(images)
        self.min_std = {"token": state_min_std, "proprio": state_min_std, "action": action_min_std}
        self.state_clip = state_clip
        for name, dim in (("token", token_dim), ("proprio", proprio_dim), ("action", action_dim)):
            self.register_buffer(f"{name}_mean", torch.zeros(dim))
            self.register_buffer(f"{name}_std", torch.ones(dim))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def fit(self, tokens: np.ndarray, proprio: np.ndarray, actions: np.ndarray | ActionStats) -> None:
        """tokens [N, T], proprio [N, P], actions [N', A] (rows of reference/executed chunks) or their
        demonstrations' ActionStats."""
        if isinstance(actions, ActionStats):
            n = self.action_mean.shape[0]
            if len(actions.mean) != n:
                raise ValueError(f"Normalizer.fit: action statistics of {len(actions.mean)} joints for {n}")
            self.action_mean.copy_(torch.tensor(actions.mean, dtype=torch.float32))
            self.action_std.copy_(torch.tensor(actions.std, dtype=torch.float32).clamp_min(self.min_std["action"]))
        for name, data in (("token", tokens), ("proprio", proprio), ("action", actions)):
            if (name == "token" and self.images) or isinstance(data, ActionStats):
                continue
            data = np.asarray(data, np.float64).reshape(-1, getattr(self, f"{name}_mean").shape[0])
            if len(data) == 0:
                raise ValueError(f"Normalizer.fit: no {name} data")
            getattr(self, f"{name}_mean").copy_(torch.from_numpy(data.mean(0)).float())
            std = np.maximum(data.std(0), self.min_std[name])
            getattr(self, f"{name}_std").copy_(torch.from_numpy(std).float())
        self.fitted.fill_(True)

    def token(self, t: torch.Tensor) -> torch.Tensor:
        if self.images:
            return t
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
    """mu_theta(x, ã_in): normalised token [B,T], proprio [B,P], reference [B,C*A] -> mu [B,C*A] (normalised).
    With ``state_image_size`` the token is pixels, read by the actor's own ImageEncoder."""

    def __init__(self, cfg: RLTConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder, state_dim = state_encoder(cfg)
        inp = state_dim + cfg.proprio_dim + (cfg.chunk_flat if cfg.use_reference else 0)
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
        if self.encoder is not None:
            token = self.encoder(token)
        parts = [token, proprio] + ([ref_in] if cfg.use_reference else [])
        out = self.net(torch.cat(parts, dim=-1))
        if not cfg.residual_actor:
            return out
        return (ref_in if anchor is None else anchor) + out


class Critics(nn.Module):
    """K Q networks as one stacked module: normalised token [B,T], proprio [B,P], action [B,C*A] -> Q [K,B].

    Critic j is slice j of every parameter: layer l has ``weight_l`` [K, in, out] (the transpose of an
    nn.Linear weight, so that every matmul and its weight gradient run on contiguous operands) and ``bias_l`` [K, out],
    each hidden layer (with ``critic_layer_norm``) ``norm_weight_l`` / ``norm_bias_l`` [K, out]. The maths
    are those of K separate MLPs (Linear, LayerNorm, ReLU, ..., Linear) and the initialisation draws the
    same numbers as K separate ``mlp``s did, but each layer is one batched matmul for all critics (no Python
    loop over critics). Checkpoints of the separate networks (keys ``qs.<j>.<i>.weight``) convert on load.
    With ``state_image_size`` the K critics read the pixels through one shared ImageEncoder (registered after
    the stacked parameters: ``_trunk`` reads the parameters in order and never reaches it).
    """

    def __init__(self, cfg: RLTConfig):
        super().__init__()
        self.cfg = cfg
        encoder, features = state_encoder(cfg)
        self.state_dim = features + cfg.proprio_dim
        in_dim = self.state_dim + cfg.chunk_flat
        self.num_layers = len(cfg.critic_hidden) + 1
        self.layer_norm = bool(cfg.critic_layer_norm)
        nets = [mlp(in_dim, cfg.critic_hidden, 1, cfg.critic_layer_norm) for _ in range(cfg.num_critics)]
        for name, (index, attr) in self.legacy_names().items():
            self.register_parameter(name, nn.Parameter(self.stack([getattr(n[index], attr).detach() for n in nets])))
        self.encoder = encoder

    @staticmethod
    def stack(slices: list[torch.Tensor]) -> torch.Tensor:
        """K tensors of separate networks (an nn.Linear weight [out, in], or a vector) -> one stacked
        parameter (weights transposed to [K, in, out]). Also converts optimiser moments."""
        out = torch.stack(slices)
        return out.transpose(1, 2).contiguous() if out.ndim == 3 else out

    def legacy_names(self) -> dict[str, tuple[int, str]]:
        """Stacked parameter name -> (index in one separate ``mlp``, 'weight'/'bias'), in parameter order."""
        step = 3 if self.layer_norm else 2  # Linear, [LayerNorm,] ReLU per hidden layer
        out = {}
        for layer in range(self.num_layers):
            out[f"weight_{layer}"] = (layer * step, "weight")
            out[f"bias_{layer}"] = (layer * step, "bias")
            if self.layer_norm and layer < self.num_layers - 1:
                out[f"norm_weight_{layer}"] = (layer * step + 1, "weight")
                out[f"norm_bias_{layer}"] = (layer * step + 1, "bias")
        return out

    def legacy_parameter_map(self) -> list[list[int]]:
        """For each stacked parameter (in order), the positions of its K slices among the parameters of the
        former separate networks (``nn.ModuleList`` of K ``mlp``s: critic 0's parameters first). Used to
        convert an optimiser state saved with those networks."""
        per_critic = len(self.legacy_names())
        return [[j * per_critic + n for j in range(self.cfg.num_critics)] for n in range(per_critic)]

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        old = f"{prefix}qs."
        if any(k.startswith(old) for k in state_dict):  # separate networks: stack them
            for name, (index, attr) in self.legacy_names().items():
                keys = [f"{old}{j}.{index}.{attr}" for j in range(self.cfg.num_critics)]
                if all(k in state_dict for k in keys):
                    state_dict[prefix + name] = self.stack([state_dict.pop(k) for k in keys])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _params(self, detach: bool) -> list[torch.Tensor]:
        return [p.detach() if detach else p for p in self.parameters()]

    def _trunk(self, h: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
        """First-layer pre-activations [K, B, H0] -> Q [K, B] through the remaining layers."""
        it = iter(params[2:])
        for layer in range(self.num_layers - 1):
            if self.layer_norm:  # per critic: the fused LayerNorm with its affine (a broadcast one is slower on CPU)
                g, b = next(it), next(it)
                h = torch.stack([F.layer_norm(hj, h.shape[-1:], gj, bj)
                                 for hj, gj, bj in zip(h.unbind(0), g.unbind(0), b.unbind(0))])
            h = torch.relu_(h)  # in place: one buffer less per layer (~3% of an update on one CPU core)
            w, bias = next(it), next(it)
            h = torch.baddbmm(bias.unsqueeze(1), h, w)
        return h.squeeze(-1)

    @staticmethod
    def _first(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        """x [B, I] times every critic's w [K, I, O] (+ b [K, O]) -> [K, B, O], one batched matmul."""
        xs = x.expand(w.shape[0], *x.shape)
        return torch.bmm(xs, w) if b is None else torch.baddbmm(b.unsqueeze(1), xs, w)

    def forward(self, token: torch.Tensor, proprio: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        b = token.shape[0]
        assert action.shape == (b, self.cfg.chunk_flat), action.shape
        params = self._params(False)
        if self.encoder is not None:
            token = self.encoder(token)
        return self._trunk(self._first(torch.cat([token, proprio, action], dim=-1), params[0], params[1]), params)

    def action_values(self, token: torch.Tensor, proprio: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Q [K, B] differentiable in ``action`` only (the actor loss): no gradient reaches the critics'
        parameters and the state's part of the first layer is computed without autograd."""
        b = token.shape[0]
        assert action.shape == (b, self.cfg.chunk_flat), action.shape
        params = self._params(True)
        w, s = params[0], self.state_dim
        with torch.no_grad():
            if self.encoder is not None:
                token = self.encoder(token)
            state_part = self._first(torch.cat([token, proprio], dim=-1), w[:, :s], params[1])
        return self._trunk(state_part + self._first(action, w[:, s:], None), params)


def chunk_discounts(gamma: float, chunk_size: int, device=None) -> torch.Tensor:
    """[C]: gamma^{t-1} for t = 1..C."""
    return gamma ** torch.arange(chunk_size, dtype=torch.float32, device=device)


def td_target(rewards: torch.Tensor, done: torch.Tensor, next_q: torch.Tensor, gamma: float,
              discounts: torch.Tensor | None = None) -> torch.Tensor:
    """y = sum_{t=1..C} gamma^{t-1} r_t + gamma^C (1 - done) min_j Q'_j(x', a').

    rewards [B, C], done [B] (1 = terminal), next_q [K, B] target-critic values -> y [B]. ``discounts``:
    ``chunk_discounts(gamma, C)`` on the rewards' device, when the caller keeps it (saves two ops a call).
    """
    b, c = rewards.shape
    assert done.shape == (b,) and next_q.ndim == 2 and next_q.shape[1] == b, (rewards.shape, done.shape, next_q.shape)
    discounts = chunk_discounts(gamma, c, rewards.device) if discounts is None else discounts
    bootstrap = (1.0 - done.float()) * next_q.min(dim=0).values
    return torch.addmv(bootstrap, rewards, discounts, beta=gamma ** c)


def reference_dropout_mask(batch: int, p: float, generator: torch.Generator | None = None,
                           device: torch.device | str | None = None) -> torch.Tensor:
    """[B, 1] float: 0 for the samples whose ã is zeroed (probability p), 1 otherwise. Training only.
    ``device`` defaults to the generator's (CPU without one)."""
    device = device if device is not None else (generator.device if generator is not None else None)
    if p <= 0.0:
        return torch.ones(batch, 1, device=device)
    return (torch.rand(batch, 1, generator=generator, device=device) >= p).float()
