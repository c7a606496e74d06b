"""Export demonstration bags to a LeRobotDataset (LeRobot v3 format, lerobot >= 0.4).

lerobot is optional: it pins torch < 2.11 and so usually lives in its own environment. Importing
this module never needs it; :func:`export_to_lerobot` raises a clear error when it is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlt_ros.core.data.bag_io import read_episodes

LEROBOT_MISSING = (
    "LeRobot is not installed in this environment: pip install lerobot  (lerobot 0.4.x needs torch < 2.11, "
    "so use a separate virtual environment for the export, e.g. python -m venv .venv-lerobot && "
    ".venv-lerobot/bin/pip install lerobot -e .)"
)


@dataclass
class ExportSummary:
    root: Path
    repo_id: str
    episodes: int
    frames: int


def _import_dataset_class():
    try:
        from lerobot.datasets.lerobot_dataset import LeRobotDataset
    except ImportError as err:
        raise ImportError(LEROBOT_MISSING) from err
    return LeRobotDataset


def lerobot_features(joint_names: list[str], image_shapes: dict[str, tuple[int, int, int]], use_videos: bool) -> dict:
    """LeRobot feature spec: observation.state = joint positions then velocities, action = joint targets."""
    state_names = [f"{n}.pos" for n in joint_names] + [f"{n}.vel" for n in joint_names]
    features = {
        "observation.state": {"dtype": "float32", "shape": (len(state_names),), "names": state_names},
        "action": {"dtype": "float32", "shape": (len(joint_names),), "names": [f"{n}.pos" for n in joint_names]},
    }
    for cam, shape in image_shapes.items():
        features[f"observation.images.{cam}"] = {
            "dtype": "video" if use_videos else "image", "shape": tuple(shape), "names": ["height", "width", "channels"],
        }
    return features


def export_to_lerobot(bags: list[str | Path], root: str | Path, repo_id: str = "local/rlt_peg_insertion",
                      fps: int = 50, task: str | None = None, only_successes: bool = True,
                      use_videos: bool = False, robot_type: str = "rlt_sim_arm", progress: bool = True) -> ExportSummary:
    """Write every episode of ``bags`` as one LeRobotDataset under ``root`` (which must not exist).

    task: the language instruction stored with each frame (default: the episode's recorded instruction,
    else "insert the peg into the socket"). Failed episodes are skipped unless ``only_successes=False``.
    """
    dataset_cls = _import_dataset_class()
    root = Path(root)
    if root.exists():
        raise ValueError(f"{root} already exists; LeRobotDataset.create needs a new folder")
    episodes = [ep for bag in bags for ep in read_episodes(bag)]
    if only_successes:
        episodes = [ep for ep in episodes if ep.success is not False]
    if not episodes:
        raise ValueError(f"no episodes to export from {bags} (only_successes={only_successes})")
    first = episodes[0]
    shapes = {cam: tuple(frames.shape[1:]) for cam, frames in first.images.items()}
    features = lerobot_features(first.joint_names, shapes, use_videos)
    dataset = dataset_cls.create(repo_id=repo_id, fps=fps, features=features, root=root, robot_type=robot_type,
                                 use_videos=use_videos)
    iterator = episodes
    if progress:
        from tqdm import tqdm

        iterator = tqdm(episodes, desc="exporting to LeRobot", unit="ep")
    frames = 0
    for ep in iterator:
        if ep.joint_names != first.joint_names or {c: tuple(v.shape[1:]) for c, v in ep.images.items()} != shapes:
            raise ValueError("all episodes must share joint names and camera image shapes to form one dataset")
        instruction = task or ep.meta.get("instruction") or "insert the peg into the socket"
        state = np.concatenate([ep.joint_pos, ep.joint_vel], axis=1).astype(np.float32)
        for t in range(len(ep)):
            frame = {"observation.state": state[t], "action": ep.actions[t].astype(np.float32), "task": instruction}
            for cam, imgs in ep.images.items():
                frame[f"observation.images.{cam}"] = imgs[t]
            dataset.add_frame(frame)
        dataset.save_episode()
        frames += len(ep)
    if hasattr(dataset, "finalize"):
        dataset.finalize()
    return ExportSummary(root, repo_id, len(episodes), frames)
