"""The built-in VLA: a small vision-language-action transformer that runs in a few ms on one CPU core.

Prefix (M = cameras * ((image_size/patch_size)^2 + 1) + max_instruction_len + 1 tokens, width D):
  - image tokens of every camera: patch tokens from a stride-2 conv stem (patch embed) and one keypoint
    token (spatial-softmax image coordinates), + learned position/camera embeddings;
  - instruction tokens: hashed lower-case words of the instruction, one embedding each (padding masked out);
  - one proprioception token: a linear map of the normalised proprio vector.
A pre-norm transformer encoder runs over the prefix; its final LayerNorm output is z_1..z_M (the
"final-layer post-norm prefix embeddings" RLT reads). The action head is a small transformer decoder:
a few learned action queries (each predicting H/queries steps) cross-attend to z_1..z_M and predict the chunk as normalised residuals relative
to the current joint positions (proprio[:A]); de-normalised, they give absolute joint targets ã [H, A].

Checkpoint = a directory with config.json (BuiltinVLAConfig) and model.safetensors (weights plus the
normalisation statistics as buffers).
"""

from __future__ import annotations

import json
import math
import re
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rlt_ros.core.types import Observation, VLAOutput
from rlt_ros.core.vla.base import VLABackend
from rlt_ros.core.vla.configuration_builtin import BuiltinVLAConfig

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class CheckpointError(ValueError):
    """A VLA checkpoint directory is missing, corrupt or does not match its config."""


def tokenize_instruction(text: str, max_len: int, vocab_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Hashed word tokens: ids int64 [max_len] (1 + crc32(lower-cased word) % (vocab_size - 1); 0 = padding)
    and mask bool [max_len]. Deterministic across runs and machines; words past max_len are dropped."""
    words = re.findall(r"[\w']+|[^\w\s]", text.lower())[:max_len]
    ids = np.zeros(max_len, np.int64)
    for i, w in enumerate(words):
        ids[i] = 1 + zlib.crc32(w.encode("utf-8")) % (vocab_size - 1)
    return ids, ids > 0


class PatchEmbed(nn.Module):
    """Conv stem: image [B, 3, S, S] in [-0.5, 0.5] -> patch tokens [B, (S/p)^2, D] (log2(p) stride-2 convs),
    plus, with keypoints > 0, one keypoint token [B, 1, D]: a spatial softmax over an early (S/4) feature
    map gives K expected image coordinates (x, y), linearly embedded (precise positions for insertion)."""

    def __init__(self, patch_size: int, width: int, keypoints: int = 0):
        super().__init__()
        n = int(math.log2(patch_size))
        chans = [3] + [min(16 * 2**i, width) for i in range(n - 1)] + [width]
        self.convs = nn.ModuleList(nn.Conv2d(chans[i], chans[i + 1], 3, stride=2, padding=1) for i in range(n))
        self.kp_at = min(1, n - 1)  # keypoints from the feature map after this conv (S/4 for patch >= 4)
        self.keypoints = keypoints
        if keypoints:
            self.kp_conv = nn.Conv2d(chans[self.kp_at + 1], keypoints, 1)
            self.kp_proj = nn.Linear(2 * keypoints, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kp_tok = None
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i < len(self.convs) - 1:
                x = nn.functional.gelu(x)
            if self.keypoints and i == self.kp_at:
                kp_tok = self._keypoint_token(x)
        tokens = x.flatten(2).transpose(1, 2)
        return tokens if kp_tok is None else torch.cat([tokens, kp_tok], 1)

    def _keypoint_token(self, feat: torch.Tensor) -> torch.Tensor:
        b, _, h, w = feat.shape
        attn = torch.softmax(self.kp_conv(feat).flatten(2), -1).view(b, self.keypoints, h, w)
        ys = torch.linspace(-1, 1, h, device=feat.device)
        xs = torch.linspace(-1, 1, w, device=feat.device)
        kx = (attn.sum(2) * xs).sum(-1)  # [B, K]
        ky = (attn.sum(3) * ys).sum(-1)
        return self.kp_proj(torch.cat([kx, ky], -1)).unsqueeze(1)


class BuiltinVLA(nn.Module):
    """The network; inputs and outputs are tensors (see :meth:`forward`)."""

    def __init__(self, config: BuiltinVLAConfig):
        super().__init__()
        self.config = c = config
        d = c.width
        self.patch_embed = PatchEmbed(c.patch_size, d, c.keypoints)
        self.image_pos = nn.Parameter(torch.randn(len(c.camera_names), c.tokens_per_camera, d) * 0.02)
        self.word_embed = nn.Embedding(c.vocab_size, d, padding_idx=0)
        self.text_pos = nn.Parameter(torch.randn(max(c.max_instruction_len, 1), d) * 0.02)
        self.proprio_proj = nn.Linear(c.proprio_dim, d)
        self.proprio_type = nn.Parameter(torch.randn(d) * 0.02)
        ff = int(d * c.mlp_ratio)
        enc_layer = nn.TransformerEncoderLayer(d, c.num_heads, ff, c.dropout, activation="gelu",
                                               batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(enc_layer, c.num_layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(d)
        self.action_queries = nn.Parameter(torch.randn(c.action_queries, d) * 0.02)
        dec_layer = nn.TransformerDecoderLayer(d, c.num_heads, ff, c.dropout, activation="gelu",
                                               batch_first=True, norm_first=True)
        self.head = nn.TransformerDecoder(dec_layer, c.head_layers)
        self.head_norm = nn.LayerNorm(d)
        self.steps_per_query = c.chunk_size // c.action_queries
        self.action_out = nn.Linear(d, self.steps_per_query * c.action_dim)
        # normalisation statistics (set by training from the demos; saved with the weights)
        self.register_buffer("proprio_mean", torch.zeros(c.proprio_dim))
        self.register_buffer("proprio_std", torch.ones(c.proprio_dim))
        self.register_buffer("delta_mean", torch.zeros(c.chunk_size, c.action_dim))
        self.register_buffer("delta_std", torch.ones(c.chunk_size, c.action_dim))

    # ---- pieces -----------------------------------------------------------------------------------
    def embed_prefix(self, images: torch.Tensor, proprio: torch.Tensor, text_ids: torch.Tensor):
        """Prefix token inputs [B, M, D] and mask [B, M] (True = valid).

        images: uint8 [B, cams, S, S, 3]; proprio: float32 [B, P]; text_ids: int64 [B, max_instruction_len].
        """
        c = self.config
        b, ncam = images.shape[:2]
        assert images.shape[1:] == (len(c.camera_names), c.image_size, c.image_size, 3), images.shape
        assert proprio.shape == (b, c.proprio_dim), proprio.shape
        x = images.reshape(b * ncam, c.image_size, c.image_size, 3).permute(0, 3, 1, 2).float() / 255.0 - 0.5
        img_tok = self.patch_embed(x).reshape(b, ncam, c.tokens_per_camera, -1) + self.image_pos
        img_tok = img_tok.reshape(b, ncam * c.tokens_per_camera, -1)
        p = (proprio - self.proprio_mean) / self.proprio_std
        prop_tok = (self.proprio_proj(p) + self.proprio_type).unsqueeze(1)
        parts = [img_tok]
        masks = [torch.ones(b, img_tok.shape[1], dtype=torch.bool, device=images.device)]
        if c.max_instruction_len > 0:
            assert text_ids.shape == (b, c.max_instruction_len), text_ids.shape
            parts.append(self.word_embed(text_ids) + self.text_pos)
            masks.append(text_ids > 0)
        parts.append(prop_tok)
        masks.append(torch.ones(b, 1, dtype=torch.bool, device=images.device))
        return torch.cat(parts, 1), torch.cat(masks, 1)

    def encode(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Final-layer post-norm prefix embeddings z [B, M, D]."""
        return self.final_norm(self.encoder(tokens, src_key_padding_mask=~mask))

    def action_head(self, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Normalised residual chunk [B, H, A] from the prefix embeddings."""
        q = self.action_queries.unsqueeze(0).expand(z.shape[0], -1, -1)
        h = self.head(q, z, memory_key_padding_mask=~mask)
        out = self.action_out(self.head_norm(h))  # [B, queries, steps_per_query * A]
        return out.reshape(z.shape[0], self.config.chunk_size, self.config.action_dim)

    def denormalize(self, out: torch.Tensor, joint_pos: torch.Tensor) -> torch.Tensor:
        """Absolute joint targets [B, H, A] from normalised residuals [B, H, A] and joint_pos [B, A]."""
        return joint_pos.unsqueeze(1) + out * self.delta_std + self.delta_mean

    def normalize_chunk(self, chunk: torch.Tensor, joint_pos: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`denormalize` (training targets)."""
        return (chunk - joint_pos.unsqueeze(1) - self.delta_mean) / self.delta_std

    # ---- whole model ------------------------------------------------------------------------------
    def forward(self, images: torch.Tensor, proprio: torch.Tensor, text_ids: torch.Tensor):
        """Returns (z [B, M, D], mask [B, M], normalised residual chunk [B, H, A])."""
        tokens, mask = self.embed_prefix(images, proprio, text_ids)
        z = self.encode(tokens, mask)
        return z, mask, self.action_head(z, mask)


# ---- checkpoint I/O -------------------------------------------------------------------------------
def save_pretrained(model: BuiltinVLA, directory: str | Path) -> Path:
    """Write config.json + model.safetensors into ``directory`` (created if needed)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.config.save(directory / CONFIG_NAME)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = directory / (WEIGHTS_NAME + ".tmp")
    save_file(state, str(tmp), metadata={"format": "pt", "model": "rlt_ros.builtin_vla"})
    tmp.chmod(0o644)  # safetensors writes 0600 files; checkpoints are meant to be shared
    tmp.replace(directory / WEIGHTS_NAME)
    return directory


def load_pretrained(directory: str | Path, device: str = "cpu") -> BuiltinVLA:
    """Load a built-in VLA checkpoint, raising CheckpointError naming the path and the cause."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"VLA checkpoint {directory}: not a directory (expected {CONFIG_NAME} + {WEIGHTS_NAME}; "
                              "train one with `rlt train-vla` or use the shipped rlt_ros/checkpoints/base_vla)")
    cfg_path, w_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    for p in (cfg_path, w_path):
        if not p.is_file():
            raise CheckpointError(f"VLA checkpoint {directory}: missing file {p.name} ({p})")
    try:
        config = BuiltinVLAConfig.from_dict(json.loads(cfg_path.read_text()))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"VLA checkpoint {cfg_path}: not valid JSON ({err})") from err
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"VLA checkpoint {cfg_path}: invalid config ({err})") from err
    try:
        state = load_file(str(w_path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"VLA checkpoint {w_path}: corrupt or unreadable safetensors file ({err})") from err
    model = BuiltinVLA(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k}: file {tuple(state[k].shape)} vs config {tuple(v.shape)}"
             for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"VLA checkpoint {directory}: weights do not match {CONFIG_NAME} (config mismatch): "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            f"{'...' if len(unexpected) > 5 else ''}, wrong shapes {wrong[:5]}"
        )
    model.load_state_dict(state)
    return model.to(device).eval()


# ---- the backend ----------------------------------------------------------------------------------
class BuiltinVLABackend(VLABackend):
    """rlt_ros's built-in VLA behind the VLABackend interface (frozen, eval mode, no grad)."""

    def __init__(self, model: BuiltinVLA, device: str = "cpu", num_threads: int | None = None):
        self.model = model.to(device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.config = model.config
        self.device = torch.device(device)
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        self._text_cache: dict[str, np.ndarray] = {}

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu", num_threads: int | None = None) -> "BuiltinVLABackend":
        return cls(load_pretrained(path, device), device=device, num_threads=num_threads)

    kind = "builtin"  # type: ignore[assignment]

    @property
    def embed_dim(self) -> int:
        return self.config.width

    @property
    def chunk_size(self) -> int:
        return self.config.chunk_size

    @property
    def action_dim(self) -> int:
        return self.config.action_dim

    @property
    def joint_names(self) -> list[str]:
        return list(self.config.joint_names)

    @property
    def camera_names(self) -> list[str]:
        return list(self.config.camera_names)

    @property
    def image_size(self) -> tuple[int, int]:
        return (self.config.image_size, self.config.image_size)

    @property
    def proprio_dim(self) -> int:
        return self.config.proprio_dim

    @property
    def num_prefix_tokens(self) -> int:
        return self.config.num_prefix_tokens

    def _text_ids(self, text: str) -> np.ndarray:
        ids = self._text_cache.get(text)
        if ids is None:
            ids = tokenize_instruction(text, self.config.max_instruction_len, self.config.vocab_size)[0]
            if len(self._text_cache) < 256:
                self._text_cache[text] = ids
        return ids

    @torch.no_grad()
    def forward_arrays(self, images: np.ndarray, proprio: np.ndarray, instructions: list[str]):
        """Unvalidated fast path. images uint8 [B, cams, S, S, 3], proprio float32 [B, P].

        Returns (z float32 [B, M, D], mask bool [B, M], chunk float32 [B, H, A]) as numpy arrays.
        """
        a = self.config.action_dim
        img = torch.from_numpy(np.ascontiguousarray(images)).to(self.device)
        prop = torch.from_numpy(np.asarray(proprio, np.float32)).to(self.device)
        text = torch.from_numpy(np.stack([self._text_ids(t) for t in instructions])).to(self.device)
        z, mask, out = self.model(img, prop, text)
        chunk = self.model.denormalize(out, prop[:, :a])
        return z.cpu().numpy(), mask.cpu().numpy(), chunk.cpu().numpy()

    def _infer_batch(self, observations: list[Observation]) -> list[VLAOutput]:
        images = np.stack([np.stack([o.images[c] for c in self.config.camera_names]) for o in observations])
        proprio = np.stack([np.asarray(o.proprio, np.float32) for o in observations])
        z, mask, chunk = self.forward_arrays(images, proprio, [o.instruction for o in observations])
        return [VLAOutput(prefix_embeddings=z[i], prefix_mask=mask[i], reference_chunk=chunk[i])
                for i in range(len(observations))]
