"""Demonstration bags to a LeRobotDataset (LeRobot v3 format, lerobot >= 0.4) and LeRobotDatasets back to
demonstration episodes (:func:`read_lerobot_dataset`, what ``rlt train-token --demos DATASET`` reads).

lerobot is optional: it lives in the real-VLA environment (``make setup-vla``: Python >= 3.12, lerobot 0.6).
Importing this module never needs it; the functions raise a clear error when it is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlt_ros.core.data.bag_io import read_episodes

LEROBOT_MISSING = (
    "LeRobot is not installed in this environment: use the real-VLA environment (`make setup-vla`, then "
    ".venv-vla/bin/rlt ...), which has lerobot[dataset] 0.6 (Python >= 3.12)"
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
        raise ImportError(f"{LEROBOT_MISSING}: {err}") from err
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


def is_lerobot_dataset(root: str | Path) -> bool:
    """True when ``root`` is a local LeRobotDataset (it has meta/info.json)."""
    return (Path(root) / "meta" / "info.json").is_file()


def read_lerobot_dataset(root: str | Path, max_episodes: int | None = None) -> list:
    """Episodes of a local LeRobotDataset as DemoEpisodes (images uint8 [T, H, W, 3] per camera, proprio =
    observation.state, actions = action, the frames' task as instruction, joint names from the action's names)."""
    from rlt_ros.core.vla.training_builtin import DemoEpisode

    dataset_cls = _import_dataset_class()
    root = Path(root)
    dataset = dataset_cls(repo_id=f"local/{root.name}", root=root)
    action_names = dataset.meta.features["action"].get("names") or []
    joints = tuple(n[: -len(".pos")] if n.endswith(".pos") else n for n in action_names)
    cams = [k for k in dataset.meta.features if k.startswith("observation.images.")]
    frames: dict[int, list[dict]] = {}
    for i in range(len(dataset)):
        item = dataset[i]
        ep = int(item["episode_index"])
        if max_episodes is not None and ep not in frames and len(frames) >= max_episodes:
            continue
        frames.setdefault(ep, []).append(item)
    episodes = []
    for items in frames.values():
        images = {c[len("observation.images."):]: np.stack([_to_uint8_hwc(it[c]) for it in items]) for c in cams}
        episodes.append(DemoEpisode(
            images=images,
            proprio=np.stack([np.asarray(it["observation.state"], np.float32) for it in items]),
            actions=np.stack([np.asarray(it["action"], np.float32) for it in items]),
            instruction=str(items[0].get("task", "")), joint_names=joints))
    return episodes


def _to_uint8_hwc(img) -> np.ndarray:
    """A LeRobotDataset image (float [3, H, W] in [0, 1]) as uint8 [H, W, 3]."""
    a = np.asarray(img, np.float32)
    if a.ndim == 3 and a.shape[0] == 3:
        a = a.transpose(1, 2, 0)
    return (a * 255.0).round().clip(0, 255).astype(np.uint8)
