"""Configuration of the RL token (RLT stage 1): encoder g, decoder d, head h, and their training.

Paper: "RL Token" (Xu et al., 2026), stage 1. The encoder reads the frozen VLA's final-layer prefix
embeddings z_1..z_M (plus a learned ``<rl>`` embedding) and outputs the RL token z_rl; the decoder
reconstructs zbar_1..zbar_M from z_rl autoregressively with teacher forcing. Sizes not given by the
paper follow public re-implementations (2 layers, 8 heads, width = VLA width).
"""

from __future__ import annotations

from dataclasses import dataclass

from rlt_ros.core.config_fields import ConfigMixin, check_float, check_int


@dataclass
class TokenConfig(ConfigMixin):
    """Architecture of the RL-token encoder/decoder. Saved as token_config.json next to token.safetensors."""

    embed_dim: int = 128  # D: width of the VLA's prefix embeddings z_i (must match the VLA)
    max_tokens: int = 1024  # largest number M of prefix tokens accepted (positional table; π0.5 with 3 cameras: 968)
    width: int = 0  # model width of g and d; 0 = embed_dim (the paper uses the VLA's width)
    token_dim: int = 0  # length of z_rl; 0 = width (no projection), else a linear projection to this size
    layers: int = 2  # transformer layers of the encoder g
    decoder_layers: int = 2  # transformer layers of the decoder d
    heads: int = 8  # attention heads in g and d (width must be divisible by it)
    mlp_ratio: float = 4.0  # hidden size of the transformer MLPs, in multiples of width
    dropout: float = 0.0  # ordinary dropout inside the transformers during training
    context_dropout: float = 0.9  # probability that a teacher-forced decoder input zbar_{i-1} is masked out (forces use of z_rl)

    def __post_init__(self) -> None:
        check_int(self, "embed_dim", 1)
        check_int(self, "max_tokens", 1)
        check_int(self, "width", 0)
        check_int(self, "token_dim", 0)
        check_int(self, "layers", 1)
        check_int(self, "decoder_layers", 1)
        check_int(self, "heads", 1)
        check_float(self, "mlp_ratio", 0.0, None, lo_open=True)
        check_float(self, "dropout", 0.0, 1.0, hi_open=True)
        check_float(self, "context_dropout", 0.0, 1.0)
        if self.model_width % self.heads:
            raise ValueError(
                f"TokenConfig: width {self.model_width} must be divisible by heads {self.heads}; "
                "choose heads among the divisors of the width")

    @property
    def model_width(self) -> int:
        """Resolved width of g and d."""
        return self.width or self.embed_dim

    @property
    def out_dim(self) -> int:
        """Resolved length of z_rl."""
        return self.token_dim or self.model_width


@dataclass
class TokenTrainingConfig(ConfigMixin):
    """How `rlt train-token` fits the RL token on demo-frame prefix embeddings (saved as token_train_config.json)."""

    steps: int = 2000  # gradient steps (the paper uses 2,000-10,000)
    batch_size: int = 64  # demo frames per gradient step
    lr: float = 3e-4  # AdamW learning rate (cosine decay to 10% after warm-up)
    weight_decay: float = 1e-4  # AdamW weight decay
    warmup_steps: int = 100  # linear learning-rate warm-up steps
    grad_clip: float = 1.0  # max global gradient norm
    val_fraction: float = 0.1  # fraction of demo EPISODES held out to report reconstruction loss
    frame_stride: int = 1  # use every frame_stride-th demo frame
    eval_every: int = 250  # steps between held-out evaluations
    seed: int = 0  # seed for initialisation, split and batch sampling
    num_threads: int = 1  # torch CPU threads

    def __post_init__(self) -> None:
        check_int(self, "steps", 1)
        check_int(self, "batch_size", 1)
        check_float(self, "lr", 0.0, None, lo_open=True)
        check_float(self, "weight_decay", 0.0)
        check_int(self, "warmup_steps", 0)
        check_float(self, "grad_clip", 0.0, None, lo_open=True)
        check_float(self, "val_fraction", 0.0, 0.9)
        check_int(self, "frame_stride", 1)
        check_int(self, "eval_every", 1)
        check_int(self, "seed", 0)
        check_int(self, "num_threads", 1)
