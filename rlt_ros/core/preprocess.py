"""Observation preprocessing shared by the simulator path and observation_node (pure numpy)."""

from __future__ import annotations

import numpy as np


def resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 [H, W, 3] -> uint8 [height, width, 3] by area averaging (downscale) or nearest (upscale)."""
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    if h % height == 0 and w % width == 0:  # integer downscale: exact area average
        fh, fw = h // height, w // width
        return image.reshape(height, fh, width, fw, 3).mean(axis=(1, 3)).round().astype(np.uint8)
    rows = np.minimum((np.arange(height) + 0.5) * h / height, h - 1).astype(int)
    cols = np.minimum((np.arange(width) + 0.5) * w / width, w - 1).astype(int)
    return image[rows][:, cols]


def proprio_vector(position, velocity, ee_pose=None) -> np.ndarray:
    """The proprioception vector of rlt_ros: joint positions, joint velocities, then (optionally) the
    end-effector pose as xyz [m] + quaternion (w, x, y, z) -- the simulator's ``obs["proprio"]`` layout."""
    parts = [np.asarray(position, np.float32), np.asarray(velocity, np.float32)]
    if ee_pose is not None:
        parts.append(np.asarray(ee_pose, np.float32))
    return np.concatenate(parts)
