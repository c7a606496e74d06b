"""``ActorPolicy``: the RLT actor at inference, in-process or in the ROS actor node.

(z_rl [T], proprio [P], ã [H >= C, A]) -> refined chunk a_1:C [C, A] (absolute joint targets).
ã is always given at inference (reference dropout is a training-time thing only). With ``explore`` the
fixed-sigma Gaussian noise of the paper's actor is added (in normalised units), plus, with ``chunk_sigma``, one
offset per joint held for the whole chunk.

Weights travel as (safetensors bytes, config JSON): ``export_actor`` writes them, ``ActorPolicy.from_export``
reads them and checks the configuration against what the receiver expects.
"""

from __future__ import annotations

import json

import numpy as np
import torch

from rlt_ros.core.rlt.configuration_rlt import RLTConfig
from rlt_ros.core.rlt.modeling_actor_critic import Actor, Normalizer

EXPORT_FORMAT = 1


class PolicyInputError(ValueError):
    """An input of the actor (token, proprio, reference chunk) has the wrong shape or is not finite."""


def export_actor(cfg: RLTConfig, actor: Actor, normalizer: Normalizer, version: int = 0) -> tuple[bytes, str]:
    """(safetensors bytes of the actor + normaliser, config JSON) for another process."""
    from safetensors.torch import save

    tensors = {f"actor.{k}": v.detach().cpu().contiguous().clone() for k, v in actor.state_dict().items()}
    tensors.update({f"normalizer.{k}": v.detach().cpu().contiguous().clone()
                    for k, v in normalizer.state_dict().items()})
    meta = {"format": EXPORT_FORMAT, "version": int(version), "rlt_config": cfg.to_dict()}
    return save(tensors), json.dumps(meta, sort_keys=True)


MAX_WEIGHT = 1e4  # no trained actor's parameter or normaliser statistic comes near this


class ActorPolicy:
    """Inference wrapper around the actor mu_theta and the normaliser."""

    def __init__(self, cfg: RLTConfig, actor: Actor | None = None, normalizer: Normalizer | None = None,
                 version: int = 0):
        self.cfg = cfg
        self.actor = (actor or Actor(cfg)).eval()
        self.normalizer = normalizer or Normalizer(cfg.token_dim, cfg.proprio_dim, cfg.action_dim,
                                                   images=bool(cfg.state_image_size))
        self.version = version

    @classmethod
    def from_export(cls, weights: bytes, config_json: str, expect: RLTConfig | None = None) -> "ActorPolicy":
        """Rebuild from ``export_actor`` output; ``expect`` (the receiver's config) must agree on dimensions."""
        from safetensors.torch import load

        try:
            meta = json.loads(config_json)
            cfg = RLTConfig.from_dict(meta["rlt_config"])
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"actor weights: config JSON is not an RLT actor export ({err})") from err
        if meta.get("format") != EXPORT_FORMAT:
            raise ValueError(f"actor weights: export format {meta.get('format')} is not {EXPORT_FORMAT}")
        if expect is not None and expect.network_dims() != cfg.network_dims():
            diff = {k: (v, expect.network_dims()[k]) for k, v in cfg.network_dims().items()
                    if expect.network_dims()[k] != v}
            raise ValueError(f"actor weights do not match this actor's configuration: "
                             f"{ {k: f'received {a}, expected {b}' for k, (a, b) in diff.items()} }")
        from safetensors import SafetensorError

        try:
            tensors = load(bytes(weights))
            policy = cls(cfg, version=int(meta.get("version", 0)))
            policy.actor.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("actor.")})
            policy.normalizer.load_state_dict({k[11:]: v for k, v in tensors.items() if k.startswith("normalizer.")})
        except (SafetensorError, RuntimeError, ValueError, TypeError) as err:
            raise ValueError(f"actor weights: not a loadable actor of this configuration ({err})") from err
        for name, t in tensors.items():
            if not t.is_floating_point() or t.numel() == 0:
                continue
            if not bool(torch.isfinite(t).all()) or float(t.abs().max()) > MAX_WEIGHT:
                raise ValueError(f"actor weights: {name} holds non-finite or out-of-range values (|w| > "
                                 f"{MAX_WEIGHT:g}); weights rejected")
        if bool((policy.normalizer.action_std <= 0).any()):
            raise ValueError("actor weights: the normaliser's action std must be > 0; weights rejected")
        return policy

    def update_from_export(self, weights: bytes, config_json: str) -> None:
        """Swap in newer weights (same configuration required)."""
        other = ActorPolicy.from_export(weights, config_json, expect=self.cfg)
        self.actor, self.normalizer, self.version = other.actor, other.normalizer, other.version

    def _check(self, token, proprio, reference) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cfg = self.cfg
        token = np.asarray(token, np.float32)
        proprio = np.asarray(proprio, np.float32)
        reference = np.asarray(reference, np.float32)
        if token.shape[-1:] != (cfg.token_dim,):
            raise PolicyInputError(f"token has length {token.shape[-1:]}, the actor expects token_dim="
                                   f"{cfg.token_dim} (is the RL token the one the actor was trained with?)")
        if proprio.shape[-1:] != (cfg.proprio_dim,):
            raise PolicyInputError(f"proprio has length {proprio.shape[-1:]}, the actor expects {cfg.proprio_dim}")
        if reference.ndim < 2 or reference.shape[-1] != cfg.action_dim or reference.shape[-2] < cfg.chunk_size:
            raise PolicyInputError(f"reference chunk must be [H >= C={cfg.chunk_size}, A={cfg.action_dim}], "
                                   f"got {reference.shape}")
        for name, arr in (("token", token), ("proprio", proprio), ("reference chunk", reference)):
            if not np.all(np.isfinite(arr)):
                raise PolicyInputError(f"{name} contains NaN or inf")
        return token, proprio, reference[..., : cfg.chunk_size, :]

    @torch.no_grad()
    def act(self, token: np.ndarray, proprio: np.ndarray, reference: np.ndarray, explore: bool = False,
            rng: np.random.Generator | None = None) -> np.ndarray:
        """token [T], proprio [P], reference [H, A] (or batched [B, ...]) -> chunk [C, A] (or [B, C, A])."""
        token, proprio, ref = self._check(token, proprio, reference)
        single = token.ndim == 1
        if single:
            token, proprio, ref = token[None], proprio[None], ref[None]
        b, c, a = ref.shape
        n = self.normalizer
        ref_n = n.action(torch.from_numpy(ref)).reshape(b, c * a)
        ref_in = ref_n if self.cfg.use_reference else torch.zeros_like(ref_n)
        mu = self.actor(n.token(torch.from_numpy(token)), n.proprio(torch.from_numpy(proprio)), ref_in)
        if explore and (self.cfg.sigma > 0 or self.cfg.chunk_sigma > 0):
            rng = rng or np.random.default_rng()
            noise = rng.standard_normal((b, c * a)).astype(np.float32) * self.cfg.sigma
            if self.cfg.chunk_sigma > 0:  # one offset per joint, held for the whole chunk
                offset = rng.standard_normal((b, 1, a)).astype(np.float32) * self.cfg.chunk_sigma
                noise += np.broadcast_to(offset, (b, c, a)).reshape(b, c * a)
            mu = mu + torch.from_numpy(noise)
        out = n.unaction(mu.reshape(b, c, a)).numpy().astype(np.float32)
        return out[0] if single else out
