"""The RL token (RLT stage 1): encoder g reading the VLA prefix, autoregressive decoder d + head h.

Paper: "RL Token" (Xu et al., 2026), stage 1.

- Encoder: [z_1..z_M, e_rl] -> transformer g -> output at position M+1 = z_rl (optionally projected to
  ``token_dim``). Invalid prefix tokens (mask False) are excluded from attention.
- Decoder: [z_rl, zbar_1..zbar_{M-1}] -> causal transformer d -> linear head h -> prediction of zbar_1..zbar_M,
  with zbar = stop-gradient(z) (the loss never reaches the VLA). Teacher-forced inputs are replaced by a
  learned mask embedding with probability ``context_dropout`` during training (not in the paper: without it
  the decoder can reconstruct from its context alone and ignore z_rl).
- L_ro = sum_i || h(d([z_rl, zbar_1..zbar_{i-1}]))_i - zbar_i ||^2 over valid tokens. We optimise it
  divided by (number of valid tokens x D), i.e. a per-dimension MSE: the same minimiser, a scale that does
  not depend on M or D.

Shapes: B batch, M prefix tokens, D = TokenConfig.embed_dim, W = model width, T = token dim.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rlt_ros.core.rlt.configuration_token import TokenConfig

TOKEN_WEIGHTS = "token.safetensors"
TOKEN_CONFIG = "token_config.json"
TOKEN_META = "token_meta.json"


class TokenDimensionError(ValueError):
    """Embeddings or tokens whose dimensions do not match the RL-token model."""


def _transformer(cfg: TokenConfig, layers: int) -> nn.TransformerEncoder:
    width = cfg.model_width
    layer = nn.TransformerEncoderLayer(
        d_model=width, nhead=cfg.heads, dim_feedforward=int(round(cfg.mlp_ratio * width)),
        dropout=cfg.dropout, activation="gelu", batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)


class RLTokenModel(nn.Module):
    """Encoder g (+ ``<rl>`` embedding) and decoder d + head h of the RL token."""

    def __init__(self, cfg: TokenConfig):
        super().__init__()
        self.cfg = cfg
        d, w, t = cfg.embed_dim, cfg.model_width, cfg.out_dim
        # encoder g
        self.enc_in = nn.Linear(d, w)
        self.enc_pos = nn.Parameter(torch.randn(cfg.max_tokens, w) * 0.02)
        self.rl_embedding = nn.Parameter(torch.randn(w) * 0.02)  # e_rl, the <rl> token
        self.encoder = _transformer(cfg, cfg.layers)
        self.enc_norm = nn.LayerNorm(w)
        self.token_proj = nn.Linear(w, t) if t != w else nn.Identity()
        # decoder d + head h
        self.dec_token_in = nn.Linear(t, w)
        self.dec_in = nn.Linear(d, w)
        self.dec_pos = nn.Parameter(torch.randn(cfg.max_tokens, w) * 0.02)
        self.mask_embedding = nn.Parameter(torch.randn(w) * 0.02)  # replaces dropped teacher-forced inputs
        self.decoder = _transformer(cfg, cfg.decoder_layers)
        self.dec_norm = nn.LayerNorm(w)
        self.head = nn.Linear(w, d)  # h

    # ---- checks ---------------------------------------------------------------------------------
    def check_inputs(self, z: torch.Tensor, mask: torch.Tensor) -> None:
        """Raise TokenDimensionError unless z is [B, M, D] and mask [B, M] with M <= max_tokens."""
        if z.ndim != 3 or z.shape[-1] != self.cfg.embed_dim:
            raise TokenDimensionError(
                f"prefix embeddings must be [B, M, D={self.cfg.embed_dim}], got {tuple(z.shape)}; the RL token "
                f"was trained for a VLA of width {self.cfg.embed_dim} (retrain it for this VLA: rlt train-token)")
        if mask.shape != z.shape[:2]:
            raise TokenDimensionError(f"prefix mask must be [B, M] = {tuple(z.shape[:2])}, got {tuple(mask.shape)}")
        if z.shape[1] > self.cfg.max_tokens:
            raise TokenDimensionError(
                f"{z.shape[1]} prefix tokens exceed TokenConfig.max_tokens={self.cfg.max_tokens}")
        if z.shape[1] == 0:
            raise TokenDimensionError("empty prefix (M = 0)")

    # ---- encoder g ------------------------------------------------------------------------------
    def encode(self, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """z [B, M, D] float, mask [B, M] bool (True = valid) -> z_rl [B, T]."""
        self.check_inputs(z, mask)
        b, m, _ = z.shape
        x = self.enc_in(z) + self.enc_pos[:m]
        x = torch.cat([x, self.rl_embedding.expand(b, 1, -1)], dim=1)  # [B, M+1, W]
        pad = torch.cat([~mask.bool(), torch.zeros(b, 1, dtype=torch.bool, device=z.device)], dim=1)
        h = self.encoder(x, src_key_padding_mask=pad)
        return self.token_proj(self.enc_norm(h[:, -1]))

    forward = encode

    # ---- decoder d + head h ---------------------------------------------------------------------
    def decode(self, z_rl: torch.Tensor, zbar: torch.Tensor, mask: torch.Tensor,
               context_dropout: float = 0.0) -> torch.Tensor:
        """Teacher-forced reconstruction: z_rl [B, T], zbar [B, M, D] (detached), mask [B, M] -> [B, M, D].

        Input i (0-based) is z_rl for i = 0, else zbar_{i-1} -- replaced by the mask embedding when that
        token is invalid or dropped (probability ``context_dropout``).
        """
        b, m, _ = zbar.shape
        if z_rl.shape != (b, self.cfg.out_dim):
            raise TokenDimensionError(f"z_rl must be [B={b}, T={self.cfg.out_dim}], got {tuple(z_rl.shape)}")
        start = self.dec_token_in(z_rl).unsqueeze(1)  # [B, 1, W]
        teacher = self.dec_in(zbar[:, : m - 1])  # [B, M-1, W]
        keep = mask[:, : m - 1].bool()
        if context_dropout > 0.0:
            keep = keep & (torch.rand(b, m - 1, device=zbar.device) >= context_dropout)
        teacher = torch.where(keep.unsqueeze(-1), teacher, self.mask_embedding.expand_as(teacher))
        x = torch.cat([start, teacher], dim=1) + self.dec_pos[:m]
        causal = torch.triu(torch.ones(m, m, dtype=torch.bool, device=zbar.device), diagonal=1)
        h = self.decoder(x, mask=causal)
        return self.head(self.dec_norm(h))

    def reconstruction_loss(self, z: torch.Tensor, mask: torch.Tensor, context_dropout: float | None = None,
                            z_rl: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """L_ro per valid token and dimension: returns (mean over batch, per-sample [B]).

        ``context_dropout`` defaults to the config's value in training mode and 0 in eval mode;
        ``z_rl`` overrides the encoder's output (used to test that the decoder depends on the token).
        """
        self.check_inputs(z, mask)
        zbar = z.detach()
        if context_dropout is None:
            context_dropout = self.cfg.context_dropout if self.training else 0.0
        if z_rl is None:
            z_rl = self.encode(z, mask)
        pred = self.decode(z_rl, zbar, mask, context_dropout)
        assert pred.shape == zbar.shape, (pred.shape, zbar.shape)
        valid = mask.float()
        per_token = ((pred - zbar) ** 2).sum(-1)  # [B, M] = || h(d(...))_i - zbar_i ||^2
        per_sample = (per_token * valid).sum(1) / (valid.sum(1).clamp(min=1.0) * z.shape[-1])
        return per_sample.mean(), per_sample

    # ---- persistence ----------------------------------------------------------------------------
    def save(self, directory: str | Path, meta: dict | None = None) -> None:
        """Write token.safetensors + token_config.json (+ token_meta.json) into ``directory`` atomically."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        _atomic_write(directory / TOKEN_WEIGHTS, lambda p: save_file(state, str(p)))
        _atomic_write(directory / TOKEN_CONFIG, lambda p: p.write_text(self.cfg.to_json() + "\n"))
        if meta is not None:
            _atomic_write(directory / TOKEN_META, lambda p: p.write_text(json.dumps(meta, indent=2) + "\n"))

    @classmethod
    def from_dir(cls, directory: str | Path, expect_embed_dim: int | None = None) -> "RLTokenModel":
        """Load a saved RL token; checks the weights against the config and ``expect_embed_dim`` (the VLA's D)."""
        from safetensors.torch import load_file

        directory = Path(directory)
        if not (directory / TOKEN_WEIGHTS).is_file() or not (directory / TOKEN_CONFIG).is_file():
            raise FileNotFoundError(
                f"{directory} is not an RL-token directory (needs {TOKEN_WEIGHTS} and {TOKEN_CONFIG}); "
                "create one with `rlt train-token`")
        cfg = TokenConfig.load(directory / TOKEN_CONFIG)
        if expect_embed_dim is not None and cfg.embed_dim != expect_embed_dim:
            raise TokenDimensionError(
                f"the RL token in {directory} was trained on embeddings of width D={cfg.embed_dim} but the VLA "
                f"produces D={expect_embed_dim}; train a token for this VLA with `rlt train-token`")
        model = cls(cfg)
        state = load_file(str(directory / TOKEN_WEIGHTS))
        expected = model.state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            raise ValueError(f"{directory / TOKEN_WEIGHTS} does not match {TOKEN_CONFIG}: missing {missing}, "
                             f"unexpected {unexpected}")
        for k, v in state.items():
            if tuple(v.shape) != tuple(expected[k].shape):
                raise TokenDimensionError(
                    f"{directory / TOKEN_WEIGHTS}: tensor {k} has shape {tuple(v.shape)}, the config implies "
                    f"{tuple(expected[k].shape)} (weights and token_config.json disagree)")
        model.load_state_dict(state)
        model.eval()
        return model


def _atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename over ``path`` (readers never see a half-written file)."""
    import os

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write(tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def pooled_prefix(z: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of the valid prefix embeddings: z [M, D], mask [M] -> [D] (bench/token_probe.py compares it with z_rl)."""
    z = np.asarray(z, np.float32)
    mask = np.asarray(mask, bool)
    if z.ndim != 2 or mask.shape != (z.shape[0],):
        raise TokenDimensionError(f"pooled_prefix: z must be [M, D] and mask [M], got {z.shape} and {mask.shape}")
    n = max(int(mask.sum()), 1)
    return (z * mask[:, None]).sum(0).astype(np.float32) / n


class TokenEncoder:
    """Inference wrapper: prefix embeddings of one observation -> z_rl as float32 numpy (no gradients)."""

    def __init__(self, model: RLTokenModel, device: str = "cpu"):
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        self.cfg = model.cfg

    @classmethod
    def from_dir(cls, directory: str | Path, expect_embed_dim: int | None = None, device: str = "cpu") -> "TokenEncoder":
        return cls(RLTokenModel.from_dir(directory, expect_embed_dim), device=device)

    @property
    def token_dim(self) -> int:
        return self.cfg.out_dim

    @torch.no_grad()
    def encode(self, prefix_embeddings: np.ndarray, prefix_mask: np.ndarray | None = None) -> np.ndarray:
        """prefix_embeddings [M, D] (or [B, M, D]), mask [M] (or [B, M]) -> z_rl float32 [T] (or [B, T])."""
        z = np.asarray(prefix_embeddings, np.float32)
        single = z.ndim == 2
        if single:
            z = z[None]
        if z.ndim != 3 or z.shape[-1] != self.cfg.embed_dim:
            raise TokenDimensionError(
                f"prefix embeddings must be [M, D={self.cfg.embed_dim}], got {tuple(np.shape(prefix_embeddings))}: "
                f"the RL token was trained for a VLA of width {self.cfg.embed_dim}")
        if not np.all(np.isfinite(z)):
            raise ValueError("prefix embeddings contain NaN or inf")
        m = np.ones(z.shape[:2], bool) if prefix_mask is None else np.asarray(prefix_mask, bool).reshape(z.shape[:2])
        out = self.model.encode(torch.from_numpy(z).to(self.device), torch.from_numpy(m).to(self.device))
        out = out.float().cpu().numpy()
        return out[0] if single else out
