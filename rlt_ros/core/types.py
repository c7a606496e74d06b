"""Data types shared across the core: observations and VLA outputs.

Shapes are documented per field; ``validate()`` methods raise ``ValueError`` naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Observation:
    """What a VLA sees at one instant.

    images: camera role -> RGB image, uint8 [H, W, 3] (roles e.g. "base", "wrist").
    proprio: float32 [P] proprioception (joint positions then joint velocities, then any extras).
    instruction: the language instruction of the task.
    stamp: seconds (simulated or ROS time) of the observation.
    """

    images: dict[str, np.ndarray]
    proprio: np.ndarray
    instruction: str = ""
    stamp: float = 0.0
    extras: dict = field(default_factory=dict)


@dataclass
class VLAOutput:
    """What a VLA backend returns for one observation.

    prefix_embeddings: float32 [M, D] final-layer (post-norm) prefix token embeddings z_1..z_M.
    prefix_mask: bool [M], True where a token is valid (padding is False).
    reference_chunk: float32 [H, A] the VLA's reference action chunk ã (absolute joint positions).
    """

    prefix_embeddings: np.ndarray
    prefix_mask: np.ndarray
    reference_chunk: np.ndarray
