"""Training of the RL token on prefix embeddings of demonstration frames (RLT stage 1).

The VLA stays frozen: its prefix embeddings are computed once (``VLABackend.embed_dataset``) and the
encoder/decoder are fitted on them with L_ro (see modeling_token.py). Held-out demo episodes give the
reported reconstruction loss, together with the same loss when the decoder is fed a *shuffled* z_rl
(from another frame): the gap shows that the decoder really reads the token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from rlt_ros.core.rlt.configuration_token import TokenConfig, TokenTrainingConfig
from rlt_ros.core.rlt.modeling_token import RLTokenModel


@dataclass
class TokenTrainingReport:
    """Losses are L_ro per valid token and dimension (see modeling_token.py)."""

    steps: int
    train_loss: float  # mean training loss over the last 10% of steps (context dropout on)
    val_loss: float  # held-out L_ro with the training context dropout
    val_loss_full_context: float  # held-out L_ro with every teacher-forced input given
    val_loss_shuffled_token: float  # held-out L_ro (training context dropout) with z_rl of another frame
    val_loss_mean_baseline: float  # held-out per-dim variance around the training mean (predict-the-mean)
    num_train: int
    num_val: int
    history: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def split_by_episode(episode_ids: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) holding out whole episodes (at least one when val_fraction > 0 and >= 2 episodes)."""
    episode_ids = np.asarray(episode_ids)
    eps = np.unique(episode_ids)
    rng = np.random.default_rng(seed)
    n_val = 0
    if val_fraction > 0 and len(eps) >= 2:
        n_val = min(max(1, int(round(val_fraction * len(eps)))), len(eps) - 1)
    val_eps = set(rng.permutation(eps)[:n_val].tolist())
    is_val = np.array([e in val_eps for e in episode_ids], bool)
    idx = np.arange(len(episode_ids))
    if n_val == 0:  # a single episode: hold out its last frames instead
        n = int(round(val_fraction * len(idx)))
        is_val = idx >= len(idx) - n if n > 0 else np.zeros(len(idx), bool)
    return idx[~is_val], idx[is_val]


@torch.no_grad()
def evaluate(model: RLTokenModel, z: np.ndarray, mask: np.ndarray, batch_size: int = 128,
             seed: int = 0) -> dict[str, float]:
    """Held-out losses (see TokenTrainingReport); deterministic given ``seed``."""
    model.eval()
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    sums = {"val_loss": 0.0, "val_loss_full_context": 0.0, "val_loss_shuffled_token": 0.0}
    n = len(z)
    perm = np.random.default_rng(seed).permutation(n)
    if n > 1:  # a derangement-ish shuffle: never a frame's own token
        perm = np.where(perm == np.arange(n), (perm + 1) % n, perm)
    all_tokens = []
    for s in range(0, n, batch_size):
        zb, mb = torch.from_numpy(z[s:s + batch_size]), torch.from_numpy(mask[s:s + batch_size])
        all_tokens.append(model.encode(zb, mb))
    tokens = torch.cat(all_tokens)
    cd = model.cfg.context_dropout
    for s in range(0, n, batch_size):
        zb, mb = torch.from_numpy(z[s:s + batch_size]), torch.from_numpy(mask[s:s + batch_size])
        k = len(zb)
        tok = tokens[s:s + k]
        sums["val_loss"] += float(model.reconstruction_loss(zb, mb, cd, z_rl=tok)[0]) * k
        sums["val_loss_full_context"] += float(model.reconstruction_loss(zb, mb, 0.0, z_rl=tok)[0]) * k
        shuf = tokens[torch.from_numpy(perm[s:s + k])]
        sums["val_loss_shuffled_token"] += float(model.reconstruction_loss(zb, mb, cd, z_rl=shuf)[0]) * k
    torch.random.set_rng_state(gen_state)
    return {k: v / max(n, 1) for k, v in sums.items()}


def _mean_baseline(z_train: np.ndarray, m_train: np.ndarray, z_val: np.ndarray, m_val: np.ndarray) -> float:
    w = m_train[..., None].astype(np.float64)
    mean = (z_train * w).sum(0) / np.maximum(w.sum(0), 1.0)  # per position [M, D]
    err = ((z_val - mean[None]) ** 2).mean(-1)  # [N, M]
    return float((err * m_val).sum() / max(m_val.sum(), 1))


def train_token(z: np.ndarray, mask: np.ndarray, episode_ids: np.ndarray, cfg: TokenConfig,
                train_cfg: TokenTrainingConfig, progress: bool = True,
                model: RLTokenModel | None = None) -> tuple[RLTokenModel, TokenTrainingReport]:
    """Fit the RL token on prefix embeddings z [N, M, D] float32, mask [N, M] bool, episode_ids [N]."""
    z = np.ascontiguousarray(z) if z.dtype in (np.float16, np.float32) else np.ascontiguousarray(z, np.float32)
    mask = np.ascontiguousarray(mask, bool)
    episode_ids = np.asarray(episode_ids)
    if z.ndim != 3 or z.shape[-1] != cfg.embed_dim:
        raise ValueError(f"prefix embeddings must be [N, M, D={cfg.embed_dim}], got {z.shape}")
    if mask.shape != z.shape[:2] or episode_ids.shape != (z.shape[0],):
        raise ValueError(f"mask must be [N, M] and episode_ids [N]; got {mask.shape}, {episode_ids.shape} for z {z.shape}")
    if not all(np.all(np.isfinite(z[i:i + 1024])) for i in range(0, len(z), 1024)):
        raise ValueError("prefix embeddings contain NaN or inf")
    if len(z) < 2:
        raise ValueError(f"need at least 2 frames to train the RL token, got {len(z)}")
    torch.manual_seed(train_cfg.seed)
    torch.set_num_threads(train_cfg.num_threads)
    sel = np.arange(0, len(z), train_cfg.frame_stride)
    z, mask, episode_ids = z[sel], mask[sel], episode_ids[sel]
    tr, va = split_by_episode(episode_ids, train_cfg.val_fraction, train_cfg.seed)
    if len(va) == 0:
        va = tr[-max(1, len(tr) // 10):]
    model = RLTokenModel(cfg) if model is None else model
    opt = torch.optim.AdamW(model.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)

    def lr_at(step: int) -> float:
        if step < train_cfg.warmup_steps:
            return train_cfg.lr * (step + 1) / train_cfg.warmup_steps
        frac = (step - train_cfg.warmup_steps) / max(1, train_cfg.steps - train_cfg.warmup_steps)
        return train_cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))

    rng = np.random.default_rng(train_cfg.seed)
    history: list[dict] = []
    losses: list[float] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=train_cfg.steps, desc="train-token", unit="step")
    for step in range(train_cfg.steps):
        model.train()
        idx = tr[rng.integers(0, len(tr), size=min(train_cfg.batch_size, len(tr)))]
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        loss, _ = model.reconstruction_loss(torch.from_numpy(z[idx].astype(np.float32)), torch.from_numpy(mask[idx]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
        opt.step()
        losses.append(loss.item())
        last = (step + 1) == train_cfg.steps
        if (step + 1) % train_cfg.eval_every == 0 or last:
            ev = evaluate(model, z[va].astype(np.float32), mask[va], seed=train_cfg.seed)
            history.append({"step": step + 1, "train_loss": float(np.mean(losses[-train_cfg.eval_every:])), **ev})
            if bar is not None:
                bar.set_postfix(train=f"{history[-1]['train_loss']:.4f}", val=f"{ev['val_loss']:.4f}",
                                shuffled=f"{ev['val_loss_shuffled_token']:.4f}")
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    model.eval()
    final = history[-1]
    tail = max(1, train_cfg.steps // 10)
    report = TokenTrainingReport(
        steps=train_cfg.steps, train_loss=float(np.mean(losses[-tail:])), val_loss=final["val_loss"],
        val_loss_full_context=final["val_loss_full_context"],
        val_loss_shuffled_token=final["val_loss_shuffled_token"],
        val_loss_mean_baseline=_mean_baseline(z[tr].astype(np.float32), mask[tr], z[va].astype(np.float32), mask[va]),
        num_train=len(tr), num_val=len(va), history=history)
    return model, report


def embed_demos(vla, episodes, frame_stride: int = 4, max_frames: int = 8000, batch_size: int = 64,
                progress: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prefix embeddings of demo frames through the frozen VLA.

    episodes: objects with ``images`` (camera -> uint8 [T, S, S, 3]), ``proprio`` [T, P], ``instruction``
    (rlt_ros.core.vla.training_builtin.DemoEpisode). Every ``frame_stride``-th frame is used, at most
    ``max_frames`` (evenly thinned). Returns (z float16 [N, M, D], mask bool [N, M], episode_ids [N]).
    """
    from tqdm import tqdm

    from rlt_ros.core.types import Observation

    frames = [(e, t) for e, ep in enumerate(episodes) for t in range(0, len(ep.proprio), frame_stride)]
    if len(frames) > max_frames:
        keep = np.linspace(0, len(frames) - 1, max_frames).round().astype(int)
        frames = [frames[i] for i in keep]
    if not frames:
        raise ValueError("no demo frames to embed")
    vla_p = getattr(vla, "proprio_dim", None)
    zs, masks = [], []
    for s in tqdm(range(0, len(frames), batch_size), desc="embed demos", unit="batch", disable=not progress):
        obs = []
        for e, t in frames[s:s + batch_size]:
            ep = episodes[e]
            proprio = np.asarray(ep.proprio[t], np.float32)
            obs.append(Observation(images={c: v[t] for c, v in ep.images.items()},
                                   proprio=proprio[:vla_p] if vla_p else proprio,
                                   instruction=ep.instruction or "insert the peg into the socket"))
        for out in vla.infer_batch(obs):
            zs.append(out.prefix_embeddings.astype(np.float16))
            masks.append(out.prefix_mask)
    m = max(z.shape[0] for z in zs)
    z = np.zeros((len(zs), m, zs[0].shape[1]), np.float16)
    mask = np.zeros((len(zs), m), bool)
    for i, (zi, mi) in enumerate(zip(zs, masks)):
        z[i, : len(zi)], mask[i, : len(mi)] = zi, mi
    return z, mask, np.array([e for e, _ in frames])
