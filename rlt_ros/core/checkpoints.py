"""The checkpoints shipped with rlt_ros, and loading the RL-token encoder a graph uses.

``rlt_ros/checkpoints/base_vla``: the built-in base VLA (made by `rlt record-demos` + `rlt train-vla`).
``rlt_ros/checkpoints/rl_token``: the RL-token encoder trained on that VLA's prefix embeddings of the
demonstrations (made by `rlt train-token`). Both are safetensors + JSON config folders.
"""

from __future__ import annotations

from pathlib import Path

SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints"


def base_vla_checkpoint() -> Path:
    return SHIPPED / "base_vla"


def token_checkpoint() -> Path:
    return SHIPPED / "rl_token"


def load_token_encoder(path: str | Path | None = None, expect_embed_dim: int | None = None):
    """The RL-token encoder at ``path`` (None: the shipped one), checked against the VLA's width."""
    from rlt_ros.core.rlt.modeling_token import TokenEncoder

    directory = Path(path) if path else token_checkpoint()
    if not directory.is_dir():
        raise FileNotFoundError(f"RL-token checkpoint {directory} does not exist; train one with `rlt train-token` "
                                "or set vla.token_checkpoint")
    return TokenEncoder.from_dir(directory, expect_embed_dim=expect_embed_dim)
