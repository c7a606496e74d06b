"""Configuration of the built-in VLA (a small vision-language-action transformer; see modeling_builtin.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from rlt_ros.core.config_fields import ConfigMixin


@dataclass
class BuiltinVLAConfig(ConfigMixin):
    """Architecture and I/O of the built-in VLA. Saved as config.json next to model.safetensors."""

    camera_names: list[str] = field(default_factory=lambda: ["base", "wrist"])  # camera roles, in token order
    image_size: int = 64  # height = width of every camera image, pixels
    patch_size: int = 16  # side of one image patch token, pixels (tokens per camera = (image_size/patch_size)^2)
    joint_names: list[str] = field(default_factory=list)  # joint order of actions (and of proprio[:action_dim])
    action_dim: int = 5  # A: joint position targets per step
    proprio_dim: int = 10  # P: proprioception length (joint positions, then joint velocities)
    chunk_size: int = 50  # H: steps per predicted action chunk (50 = 1 s at 50 Hz)
    keypoints: int = 16  # spatial-softmax keypoints per camera, summarised in one extra token per camera (0 = off)
    max_instruction_len: int = 12  # instruction words kept as language tokens (longer ones are truncated)
    vocab_size: int = 1024  # hashed word vocabulary of the instruction tokenizer (id 0 = padding)
    width: int = 128  # D: transformer width = prefix embedding dimension
    num_layers: int = 4  # prefix transformer layers
    num_heads: int = 4  # attention heads (width must be divisible by it)
    mlp_ratio: float = 4.0  # hidden size of the transformer MLPs, in multiples of width
    head_layers: int = 2  # layers of the action-chunk head (action queries cross-attending to the prefix)
    action_queries: int = 10  # action query tokens of the head; each predicts chunk_size/action_queries steps
    dropout: float = 0.0  # dropout probability inside the transformers during training

    def __post_init__(self) -> None:
        self.camera_names = list(self.camera_names)
        self.joint_names = list(self.joint_names)
        if not self.camera_names or len(set(self.camera_names)) != len(self.camera_names):
            raise ValueError(f"camera_names must be non-empty and unique, got {self.camera_names}")
        for name, lo in (("image_size", 8), ("patch_size", 2), ("action_dim", 1), ("proprio_dim", 1),
                         ("chunk_size", 1), ("max_instruction_len", 0), ("keypoints", 0), ("width", 8), ("num_layers", 1),
                         ("num_heads", 1), ("head_layers", 1), ("action_queries", 1),
                         ("vocab_size", 2)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} must be divisible by patch_size {self.patch_size}")
        if self.patch_size not in (2, 4, 8, 16):
            raise ValueError(f"patch_size must be 2, 4, 8 or 16 (a stack of stride-2 convs), got {self.patch_size}")
        if self.chunk_size % self.action_queries:
            raise ValueError(f"chunk_size {self.chunk_size} must be divisible by action_queries {self.action_queries}")
        if self.width % self.num_heads:
            raise ValueError(f"width {self.width} must be divisible by num_heads {self.num_heads}")
        if self.proprio_dim < self.action_dim:
            raise ValueError(f"proprio_dim {self.proprio_dim} < action_dim {self.action_dim}: proprio starts with joint positions")
        if self.joint_names and len(self.joint_names) != self.action_dim:
            raise ValueError(f"{len(self.joint_names)} joint_names for action_dim {self.action_dim}")
        if not (self.mlp_ratio > 0):
            raise ValueError(f"mlp_ratio must be > 0, got {self.mlp_ratio}")
        if not (0.0 <= self.dropout < 1.0):
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def patches_per_camera(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def tokens_per_camera(self) -> int:
        """Patch tokens plus the keypoint token (when keypoints > 0)."""
        return self.patches_per_camera + (1 if self.keypoints > 0 else 0)

    @property
    def num_prefix_tokens(self) -> int:
        """M = image tokens of all cameras + instruction tokens + 1 proprioception token."""
        return len(self.camera_names) * self.tokens_per_camera + self.max_instruction_len + 1


@dataclass
class BuiltinTrainingConfig(ConfigMixin):
    """How train-vla fits the built-in VLA to demonstrations (saved as train_config.json)."""

    steps: int = 5000  # gradient steps in total (a resumed run continues up to this)
    batch_size: int = 32  # frames per gradient step
    lr: float = 1e-3  # AdamW peak learning rate
    weight_decay: float = 1e-4  # AdamW weight decay
    warmup_steps: int = 100  # linear learning-rate warm-up steps, then cosine decay to 10% of lr
    grad_clip: float = 1.0  # max global gradient norm
    frame_stride: int = 3  # use every frame_stride-th demo frame as a training sample
    image_shift: int = 0  # random image translation augmentation, +- pixels (0 = off; shifts blur where the socket is)
    seed: int = 0  # seed for initialisation, batch sampling and augmentation
    save_every: int = 500  # steps between checkpoints (model + optimizer + step, for --resume)
    num_threads: int = 1  # torch CPU threads

    def __post_init__(self) -> None:
        for name, lo in (("steps", 1), ("batch_size", 1), ("warmup_steps", 0), ("frame_stride", 1),
                         ("image_shift", 0), ("save_every", 1), ("num_threads", 1)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.weight_decay < 0 or self.grad_clip <= 0:
            raise ValueError(f"weight_decay must be >= 0 and grad_clip > 0, got {self.weight_decay}, {self.grad_clip}")

