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


def load_token_encoder(path: str | Path | None = None, expect_embed_dim: int | None = None, device: str = "cpu"):
    """The RL-token encoder at ``path`` (None: the shipped one) on ``device``, checked against the VLA's width."""
    from rlt_ros.core.rlt.modeling_token import TokenEncoder

    directory = Path(path) if path else token_checkpoint()
    if not directory.is_dir():
        raise FileNotFoundError(f"RL-token checkpoint {directory} does not exist; train one with `rlt train-token` "
                                "or set vla.token_checkpoint")
    return TokenEncoder.from_dir(directory, expect_embed_dim=expect_embed_dim, device=device)


def check_token_matches_vla(token_dir: str | Path | None, vla_dir: str | Path | None) -> None:
    """Raise when the RL token was trained on other VLA weights than those at ``vla_dir``.

    The RL token reads one VLA's prefix embeddings; another VLA (even of the same width) gives it
    meaningless input. ``rlt train-token`` records the VLA weights' sha256 in token_meta.json.
    """
    import hashlib
    import json

    meta_path = Path(token_dir or token_checkpoint()) / "token_meta.json"
    weights = Path(vla_dir or base_vla_checkpoint()) / "model.safetensors"
    if not meta_path.is_file() or not weights.is_file():
        return  # nothing recorded (or a backend without a single weights file): cannot check
    meta = json.loads(meta_path.read_text())
    expected = meta.get("vla_weights_sha256")
    if not expected:
        return
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    if digest != expected:
        trained_on = f"{meta.get('vla_kind', '?')} VLA {meta.get('vla', '?')}"
        raise ValueError(f"the RL token in {meta_path.parent} was trained on another VLA ({trained_on}, weights sha256 "
                         f"{expected[:12]}...), but {weights} is {digest[:12]}...: retrain it for this VLA with "
                         f"`rlt train-token --vla-kind KIND --vla {weights.parent} --demos DEMOS --out DIR` and set "
                         "vla.token_checkpoint to DIR")


def token_identity(token_dir: str | Path | None = None) -> dict:
    """What a model trained on RL tokens records of the token it read: the sha256 of its weights (the
    identity checked at load), and the VLA weights' sha256 the token was trained on (token_meta.json)."""
    import hashlib
    import json

    directory = Path(token_dir) if token_dir else token_checkpoint()
    weights = directory / "token.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"{directory} is not an RL-token folder (no token.safetensors); "
                                "train one with `rlt train-token`")
    meta_path = directory / "token_meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    return {"token": str(directory), "token_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
            "vla_weights_sha256": meta.get("vla_weights_sha256")}
