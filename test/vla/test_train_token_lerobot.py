"""`rlt train-token` on the prefix embeddings of tiny SmolVLA / π0 / π0.5 (built offline), from MCAP demo bags and
from a LeRobotDataset exported from them; the RL token then refuses another VLA (sha256) at start-up."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rlt_ros.cli import main
from rlt_ros.core.checkpoints import check_token_matches_vla, load_token_encoder
from rlt_ros.core.data.bag_io import DemoBagWriter
from rlt_ros.core.data.lerobot_export import export_to_lerobot, read_lerobot_dataset
from rlt_ros.core.rlt.modeling_token import TokenDimensionError
from rlt_ros.core.vla.lerobot_tiny import make_tiny_vla
from rlt_ros.core.vla.training_builtin import load_demo_episodes

KINDS = ("smolvla", "pi0", "pi05")
JOINTS = ["base_yaw", "shoulder_pitch", "elbow_pitch", "wrist_pitch", "wrist_roll"]
DT_NS = 20_000_000


def write_bag(bag_dir, episodes=3, steps=12, size=32, seed=0):
    """A rosbag2/MCAP demo bag as `rlt record-demos` writes it: joint states, camera images, actions, events."""
    rng = np.random.default_rng(seed)
    t0, offset = 1_700_000_000_000_000_000, 0
    with DemoBagWriter(bag_dir, JOINTS) as w:
        for k in range(episodes):
            w.write_event({"event": "episode_start", "episode": k, "seed": k}, t0 + offset)
            for i in range(steps):
                t = t0 + offset + i * DT_NS
                w.write_joint_state(rng.normal(size=5) * 0.3, rng.normal(size=5) * 0.1, t)
                for cam in ("base", "wrist"):
                    w.write_image(cam, rng.integers(0, 256, (size, size, 3), dtype=np.uint8), t)
                w.write_action(rng.normal(size=5) * 0.3, t, 0.02)
            w.write_event({"event": "success", "episode": k}, t0 + offset + steps * DT_NS)
            offset += (steps + 100) * DT_NS
    return bag_dir


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    root = tmp_path_factory.mktemp("demos")
    bag = write_bag(root / "bags" / "demo")
    dataset = root / "dataset"
    summary = export_to_lerobot([bag], dataset, repo_id="local/tiny_demos", fps=50, progress=False)
    assert summary.episodes == 3 and summary.frames == 36
    return {"mcap": root / "bags", "lerobot": dataset}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.set_num_threads(1)
    return {kind: (root, make_tiny_vla(kind, root, joint_names=JOINTS))
            for kind in KINDS for root in [tmp_path_factory.mktemp(f"tiny_{kind}")]}


def test_lerobot_dataset_reads_back_as_the_bags_episodes(demos):
    from_bag = load_demo_episodes(demos["mcap"])
    from_dataset = read_lerobot_dataset(demos["lerobot"])
    assert len(from_bag) == len(from_dataset) == 3
    for a, b in zip(from_bag, from_dataset):
        assert b.joint_names == tuple(JOINTS) and set(b.images) == {"base", "wrist"}
        np.testing.assert_allclose(b.proprio, a.proprio, atol=1e-6)
        np.testing.assert_allclose(b.actions, a.actions, atol=1e-6)
        np.testing.assert_array_equal(b.images["wrist"], a.images["wrist"])  # PNG frames: lossless
    assert load_demo_episodes(demos["lerobot"], max_episodes=2)[1].actions.shape == (12, 5)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("source", ("mcap", "lerobot"))
def test_train_token_on_lerobot_vla_embeddings(tmp_path, tiny, demos, kind, source):
    root, pol = tiny[kind]
    local = ["--vlm-path", str(root / "vlm")] if kind == "smolvla" else ["--tokenizer-path", str(root / "tokenizer")]
    out = tmp_path / "token"
    assert main(["train-token", "--vla-kind", kind, "--vla", str(pol), *local, "--demos", str(demos[source]),
                 "--out", str(out), "--steps", "6", "--frame-stride", "3", "--heads", "2", "--token-dim", "8",
                 "--layers", "1", "--decoder-layers", "1"]) == 0
    meta = json.loads((out / "token_meta.json").read_text())
    assert meta["vla_kind"] == kind and meta["embed_dim"] == 64 and meta["frames"] == 12
    assert np.isfinite(meta["report"]["val_loss"])
    assert meta["num_prefix_tokens"] == (80 if kind != "smolvla" else meta["num_prefix_tokens"])
    encoder = load_token_encoder(out, expect_embed_dim=64)
    assert encoder.token_dim == 8
    check_token_matches_vla(out, pol)  # the VLA it was trained on: accepted
    other = tiny["smolvla" if kind != "smolvla" else "pi0"][1]
    with pytest.raises(ValueError, match=f"trained on another VLA \\({kind} VLA .*retrain it for this VLA"):
        check_token_matches_vla(out, other)
    with pytest.raises(TokenDimensionError):
        load_token_encoder(out, expect_embed_dim=2048)
