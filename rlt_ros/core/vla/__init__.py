"""VLA part of the pure core (no rclpy): the backend interface, the built-in VLA, the LeRobot backends.

    from rlt_ros.core.vla import load_backend, default_checkpoint
    vla = load_backend("builtin")            # the shipped base policy (rlt_ros/checkpoints/base_vla)
    vla.check_compatible(arm_joint_names)    # before anything moves
    out = vla.infer(obs)                     # VLAOutput: prefix_embeddings [M, D], prefix_mask [M], reference_chunk [H, A]
"""

from __future__ import annotations

from pathlib import Path

from rlt_ros.core.vla.base import (
    BACKEND_KINDS,
    IncompatibleArmError,
    VLABackend,
    VLAInputError,
    load_backend,
)


def default_checkpoint() -> Path:
    """Directory of the built-in base VLA checkpoint shipped with rlt_ros (config.json + model.safetensors)."""
    return Path(__file__).resolve().parents[2] / "checkpoints" / "base_vla"


__all__ = ["BACKEND_KINDS", "IncompatibleArmError", "VLABackend", "VLAInputError", "default_checkpoint", "load_backend"]
