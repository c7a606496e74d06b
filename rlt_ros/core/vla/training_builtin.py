"""Behaviour cloning of the built-in VLA on demonstrations (what `rlt train-vla` runs).

Each training sample is one demo frame t: the images of every camera, proprio [P] and the instruction as
input; the target is the chunk of the next H actions a_t..a_{t+H-1} (absolute joint targets, the last
action repeated past the end of the demo), learned as normalised residuals relative to the joint
positions proprio[:A] (L1 loss). The run is deterministic for a given seed and resumable: every
``save_every`` steps the output directory receives the model (config.json + model.safetensors) and
training_state.pt (optimizer, step, random generator states).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rlt_ros.core.vla.configuration_builtin import BuiltinTrainingConfig, BuiltinVLAConfig
from rlt_ros.core.vla.modeling_builtin import BuiltinVLA, load_pretrained, save_pretrained, tokenize_instruction

TRAIN_STATE_NAME = "training_state.pt"
TRAIN_CONFIG_NAME = "train_config.json"
DEFAULT_INSTRUCTION = "insert the peg into the socket"  # used when a demo does not record its instruction


@dataclass
class DemoEpisode:
    """One demonstration, T control steps.

    images: camera -> uint8 [T, S, S, 3]; proprio: float32 [T, P] (joint positions first);
    actions: float32 [T, A] absolute joint targets sent at each step; instruction: the task's text;
    critical_start: the first step of the critical phase (None where the demo marks none).
    """

    images: dict[str, np.ndarray]
    proprio: np.ndarray
    actions: np.ndarray
    instruction: str = ""
    joint_names: tuple[str, ...] = ()
    critical_start: int | None = None

    def __post_init__(self) -> None:
        t = self.actions.shape[0]
        if self.actions.ndim != 2 or self.proprio.ndim != 2 or self.proprio.shape[0] != t:
            raise ValueError(f"DemoEpisode: actions {self.actions.shape} and proprio {self.proprio.shape} must be [T, A] and [T, P]")
        if self.critical_start is not None and not 0 <= self.critical_start < max(t, 1):
            raise ValueError(f"DemoEpisode: critical_start {self.critical_start} must be a step of the episode (0..{t - 1})")
        for cam, img in self.images.items():
            if img.dtype != np.uint8 or img.ndim != 4 or img.shape[0] != t or img.shape[3] != 3:
                raise ValueError(f"DemoEpisode: camera {cam!r} images must be uint8 [T={t}, S, S, 3], got {img.dtype} {img.shape}")


class ChunkDataset:
    """All training frames of a list of episodes, in memory.

    images uint8 [N, cams, S, S, 3], proprio float32 [N, P], chunks float32 [N, H, A], text ids [N, L].
    """

    def __init__(self, episodes: list[DemoEpisode], config: BuiltinVLAConfig, frame_stride: int = 1):
        if not episodes:
            raise ValueError("no demonstration episodes to train on")
        h = config.chunk_size
        imgs, props, chunks, texts = [], [], [], []
        for i, ep in enumerate(episodes):
            missing = [c for c in config.camera_names if c not in ep.images]
            if missing:
                raise ValueError(f"episode {i}: missing camera(s) {missing}; has {sorted(ep.images)}")
            if ep.actions.shape[1] != config.action_dim or ep.proprio.shape[1] != config.proprio_dim:
                raise ValueError(f"episode {i}: actions {ep.actions.shape} / proprio {ep.proprio.shape} do not match "
                                 f"action_dim {config.action_dim} / proprio_dim {config.proprio_dim}")
            t_len = ep.actions.shape[0]
            idx = np.arange(0, t_len, frame_stride)
            padded = np.concatenate([ep.actions, np.repeat(ep.actions[-1:], h, 0)], 0)
            chunks.append(np.stack([padded[t:t + h] for t in idx]).astype(np.float32))
            imgs.append(np.stack([ep.images[c][idx] for c in config.camera_names], 1))
            props.append(ep.proprio[idx].astype(np.float32))
            ids = tokenize_instruction(ep.instruction, config.max_instruction_len, config.vocab_size)[0]
            texts.append(np.repeat(ids[None], len(idx), 0))
        self.images = np.concatenate(imgs)
        self.proprio = np.concatenate(props)
        self.chunks = np.concatenate(chunks)
        self.text_ids = np.concatenate(texts)
        self.num_episodes = len(episodes)

    def __len__(self) -> int:
        return self.images.shape[0]

    def statistics(self, action_dim: int) -> dict[str, np.ndarray]:
        """Normalisation statistics: proprio mean/std [P], residual (chunk - joint_pos) mean/std [H, A]."""
        delta = self.chunks - self.proprio[:, None, :action_dim]
        return {
            "proprio_mean": self.proprio.mean(0),
            "proprio_std": np.maximum(self.proprio.std(0), 1e-2),
            "delta_mean": delta.mean(0),
            "delta_std": np.maximum(delta.std(0), 1e-3),
        }


def shift_images(images: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Random translation augmentation of uint8 [B, cams, S, S, 3] by +-max_shift pixels (edge padding)."""
    if max_shift <= 0:
        return images
    b, c, s = images.shape[:3]
    x = images.reshape(b * c, s, s, 3).permute(0, 3, 1, 2).float()
    x = torch.nn.functional.pad(x, (max_shift,) * 4, mode="replicate")
    off = torch.randint(0, 2 * max_shift + 1, (b * c, 2), generator=gen)
    rows = off[:, 0, None] + torch.arange(s)
    cols = off[:, 1, None] + torch.arange(s)
    n = torch.arange(b * c)[:, None, None, None]
    ch = torch.arange(3)[None, :, None, None]
    out = x[n, ch, rows[:, None, :, None], cols[:, None, None, :]]
    return out.permute(0, 2, 3, 1).reshape(b, c, s, s, 3).to(torch.uint8)


def chunk_loss(model: BuiltinVLA, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """L1 between predicted and demonstrated normalised residual chunks [B, H, A]."""
    a = model.config.action_dim
    _, _, pred = model(batch["images"], batch["proprio"], batch["text_ids"])
    target = model.normalize_chunk(batch["chunks"], batch["proprio"][:, :a])
    assert pred.shape == target.shape, (pred.shape, target.shape)
    return (pred - target).abs().mean()


def lr_at(step: int, cfg: BuiltinTrainingConfig) -> float:
    """Linear warm-up then cosine decay to 10% of cfg.lr."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


class BuiltinTrainer:
    """Owns the loop: ``run()`` trains up to cfg.steps, saving checkpoints into ``out_dir``."""

    def __init__(self, model_cfg: BuiltinVLAConfig, train_cfg: BuiltinTrainingConfig, dataset: ChunkDataset,
                 out_dir: str | Path, resume: bool = False):
        self.cfg = train_cfg
        self.data = dataset
        self.out = Path(out_dir)
        torch.set_num_threads(train_cfg.num_threads)
        torch.manual_seed(train_cfg.seed)
        self.gen = torch.Generator().manual_seed(train_cfg.seed)
        self.step = 0
        state_path = self.out / TRAIN_STATE_NAME
        if resume:
            if not state_path.is_file():
                raise FileNotFoundError(f"--resume: no {TRAIN_STATE_NAME} in {self.out}; start without --resume")
            self.model = load_pretrained(self.out).train()
            for p in self.model.parameters():
                p.requires_grad_(True)
            if self.model.config.to_dict() != model_cfg.to_dict():
                raise ValueError(f"--resume: the model config in {self.out} differs from the requested one")
        else:
            self.model = BuiltinVLA(model_cfg)
            for k, v in dataset.statistics(model_cfg.action_dim).items():
                getattr(self.model, k).copy_(torch.from_numpy(v))
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
        if resume:
            st = torch.load(state_path, weights_only=False)
            self.opt.load_state_dict(st["optimizer"])
            self.step = int(st["step"])
            self.gen.set_state(st["generator"])
            torch.set_rng_state(st["torch_rng"])
        self.losses: list[float] = []

    def sample_batch(self) -> dict[str, torch.Tensor]:
        idx = torch.randint(0, len(self.data), (self.cfg.batch_size,), generator=self.gen).numpy()
        images = shift_images(torch.from_numpy(self.data.images[idx]), self.cfg.image_shift, self.gen)
        return {
            "images": images,
            "proprio": torch.from_numpy(self.data.proprio[idx]),
            "text_ids": torch.from_numpy(self.data.text_ids[idx]),
            "chunks": torch.from_numpy(self.data.chunks[idx]),
        }

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        for g in self.opt.param_groups:
            g["lr"] = lr_at(self.step, self.cfg)
        loss = chunk_loss(self.model, batch)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self.step += 1
        return {"loss": loss.item(), "grad_norm": float(gnorm), "lr": self.opt.param_groups[0]["lr"]}

    def save(self) -> None:
        self.model.eval()
        save_pretrained(self.model, self.out)
        self.model.train()
        (self.out / TRAIN_CONFIG_NAME).write_text(json.dumps(self.cfg.to_dict(), indent=2) + "\n")
        tmp = self.out / (TRAIN_STATE_NAME + ".tmp")
        torch.save({"optimizer": self.opt.state_dict(), "step": self.step, "generator": self.gen.get_state(),
                    "torch_rng": torch.get_rng_state()}, tmp)
        tmp.replace(self.out / TRAIN_STATE_NAME)

    def run(self, progress: bool = True, until: int | None = None) -> dict[str, float]:
        """Train until cfg.steps (or step ``until``, e.g. to simulate an interruption); returns the last
        stats plus the mean loss of the first/last 10% of the steps run."""
        from tqdm import tqdm

        self.model.train()
        stats: dict[str, float] = {}
        with tqdm(total=self.cfg.steps, initial=self.step, desc="train-vla", unit="step", disable=not progress) as bar:
            end = self.cfg.steps if until is None else min(until, self.cfg.steps)
            while self.step < end:
                stats = self.update(self.sample_batch())
                self.losses.append(stats["loss"])
                bar.update(1)
                if self.step % 10 == 0:
                    bar.set_postfix(loss=f"{stats['loss']:.4f}")
                if self.step % self.cfg.save_every == 0 or self.step == end:
                    self.save()
        if self.losses:
            k = max(1, len(self.losses) // 10)
            stats["loss_first"] = float(np.mean(self.losses[:k]))
            stats["loss_last"] = float(np.mean(self.losses[-k:]))
        self.model.eval()
        return stats


def train_builtin(episodes: list[DemoEpisode], out_dir: str | Path, train_cfg: BuiltinTrainingConfig,
                  model_cfg: BuiltinVLAConfig | None = None, resume: bool = False, progress: bool = True):
    """Fit a built-in VLA to ``episodes``; returns (model, stats). The model config is inferred from the
    demos (action_dim, proprio_dim, cameras, image size, joint names) unless given."""
    if model_cfg is None:
        model_cfg = config_for_episodes(episodes)
    data = ChunkDataset(episodes, model_cfg, train_cfg.frame_stride)
    trainer = BuiltinTrainer(model_cfg, train_cfg, data, out_dir, resume=resume)
    stats = trainer.run(progress=progress)
    return trainer.model, stats


def config_for_episodes(episodes: list[DemoEpisode], **overrides) -> BuiltinVLAConfig:
    """A BuiltinVLAConfig whose I/O sizes match the demos."""
    ep = episodes[0]
    cams = [c for c in ("base", "wrist") if c in ep.images] + sorted(c for c in ep.images if c not in ("base", "wrist"))
    kw = dict(camera_names=cams, image_size=int(ep.images[cams[0]].shape[1]), action_dim=int(ep.actions.shape[1]),
              proprio_dim=int(ep.proprio.shape[1]), joint_names=list(ep.joint_names))
    kw.update(overrides)
    return BuiltinVLAConfig(**kw)


def load_demo_episodes(path: str | Path, max_episodes: int | None = None, progress: bool = False) -> list[DemoEpisode]:
    """Demonstrations from a directory: MCAP bags (``rlt record-demos``), a local LeRobotDataset (needs
    lerobot) or ``*.npz`` episodes.

    An .npz episode holds ``images_<camera>`` uint8 [T, S, S, 3], ``proprio`` float32 [T, P],
    ``actions`` float32 [T, A] and optionally ``instruction`` (str), ``joint_names`` (str [A]) and
    ``critical_start`` (int: the first step of the critical phase).
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"demonstrations directory {path} does not exist; record some with `rlt record-demos --out {path}`")
    from rlt_ros.core.data.lerobot_export import is_lerobot_dataset, read_lerobot_dataset

    if is_lerobot_dataset(path):
        episodes = read_lerobot_dataset(path, max_episodes)
        if not episodes:
            raise ValueError(f"no episodes in the LeRobotDataset {path}")
        return episodes
    bags = sorted({p.parent if (p.parent / "metadata.yaml").exists() else p for p in path.glob("**/*.mcap")})
    npz = sorted(path.glob("*.npz"))
    if bags:
        episodes = _load_mcap_episodes(bags[:max_episodes], progress)
    elif npz:
        episodes = [_load_npz_episode(p) for p in npz[:max_episodes]]
    else:
        raise FileNotFoundError(f"no demonstrations in {path} (expected *.mcap bags, a LeRobotDataset or *.npz episodes)")
    if not episodes:
        raise ValueError(f"no usable demonstration episodes in {path}")
    return episodes


def _load_npz_episode(p: Path) -> DemoEpisode:
    with np.load(p, allow_pickle=False) as f:
        images = {k[len("images_"):]: f[k] for k in f.files if k.startswith("images_")}
        return DemoEpisode(images=images, proprio=f["proprio"].astype(np.float32), actions=f["actions"].astype(np.float32),
                           instruction=str(f["instruction"]) if "instruction" in f.files else "",
                           joint_names=tuple(str(s) for s in f["joint_names"]) if "joint_names" in f.files else (),
                           critical_start=int(f["critical_start"]) if "critical_start" in f.files else None)


def _step_at(times: np.ndarray, t: float | None) -> int | None:
    """The first step at or after ``t`` seconds (None for None), at most the last step."""
    if t is None or len(times) == 0:
        return None
    return min(int(np.searchsorted(times, t)), len(times) - 1)


def _load_mcap_episodes(bags: list[Path], progress: bool) -> list[DemoEpisode]:
    """Episodes of rosbag2/MCAP demo bags (rlt_ros.core.data.bag_io); proprio = (joint positions, joint velocities)."""
    from tqdm import tqdm

    from rlt_ros.core.data.bag_io import read_episodes

    out: list[DemoEpisode] = []
    for bag in tqdm(bags, desc="read demos", unit="bag", disable=not progress):
        for ep in read_episodes(bag):
            if ep.success is False:  # keep successful (or unmarked) demonstrations only
                continue
            out.append(DemoEpisode(
                images=ep.images,
                proprio=np.concatenate([ep.joint_pos, ep.joint_vel], 1).astype(np.float32),
                actions=ep.actions.astype(np.float32),
                instruction=str(ep.meta.get("instruction", DEFAULT_INSTRUCTION)),
                joint_names=tuple(ep.joint_names),
                critical_start=_step_at(ep.times, ep.critical_phase_start),
            ))
    return out
