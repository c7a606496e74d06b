"""LeRobotDataset export: frames handed to LeRobot match the bag; clear error without lerobot."""

import sys
import types

import numpy as np
import pytest

from rlt_ros.core.data import lerobot_export
from test_data_bags import NAMES, synthetic_episodes, write_synthetic


class FakeDataset:
    """Records what export_to_lerobot hands to LeRobotDataset (same calls as lerobot 0.4)."""

    last = None

    @classmethod
    def create(cls, repo_id, fps, features, root, robot_type, use_videos):
        obj = cls()
        obj.args = dict(repo_id=repo_id, fps=fps, features=features, root=root, use_videos=use_videos)
        obj.episodes, obj.buffer, obj.finalized = [], [], False
        FakeDataset.last = obj
        return obj

    def add_frame(self, frame):
        self.buffer.append(frame)

    def save_episode(self):
        self.episodes.append(self.buffer)
        self.buffer = []

    def finalize(self):
        self.finalized = True


@pytest.fixture
def fake_lerobot(monkeypatch):
    mod = types.ModuleType("lerobot.datasets.lerobot_dataset")
    mod.LeRobotDataset = FakeDataset
    for name in ("lerobot", "lerobot.datasets"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "lerobot.datasets.lerobot_dataset", mod)


def test_export_hands_lerobot_the_bag_frames(tmp_path, fake_lerobot):
    eps = synthetic_episodes(n_eps=2, steps=6)
    bag = write_synthetic(tmp_path / "demo", eps)
    summary = lerobot_export.export_to_lerobot([bag], tmp_path / "ds", task="insert", progress=False)
    ds = FakeDataset.last
    assert summary.episodes == 1 and summary.frames == 6  # episode 1 is a failure: skipped by default
    assert ds.finalized and ds.args["fps"] == 50
    feats = ds.args["features"]
    assert feats["observation.state"]["shape"] == (10,) and feats["action"]["names"] == [f"{n}.pos" for n in NAMES]
    assert feats["observation.images.base"]["shape"] == (8, 8, 3) and feats["observation.images.base"]["dtype"] == "image"
    frames = ds.episodes[0]
    np.testing.assert_allclose([f["action"] for f in frames], eps[0]["a"].astype(np.float32))
    np.testing.assert_allclose([f["observation.state"][:5] for f in frames], eps[0]["q"].astype(np.float32))
    assert np.array_equal(np.stack([f["observation.images.wrist"] for f in frames]), eps[0]["img"]["wrist"])
    assert all(f["task"] == "insert" for f in frames)
    lerobot_export.export_to_lerobot([bag], tmp_path / "ds2", only_successes=False, progress=False)
    assert len(FakeDataset.last.episodes) == 2


def test_clear_error_without_lerobot(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "lerobot", None)  # import lerobot -> ImportError
    bag = write_synthetic(tmp_path / "demo", synthetic_episodes(n_eps=1, steps=3))
    with pytest.raises(ImportError, match="use the real-VLA environment .*make setup-vla"):
        lerobot_export.export_to_lerobot([bag], tmp_path / "ds", progress=False)


# the export with the real lerobot (0.6, Python >= 3.12) and reading the dataset back: test/vla/test_train_token_lerobot.py
