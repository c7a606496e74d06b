"""`rlt train-token` and `rlt sim-train` end to end on the real simulator with a tiny random VLA."""

import json

import numpy as np
import pytest

from rlt_ros.cli import main
from rlt_ros.core.rlt.modeling_token import TokenDimensionError, TokenEncoder
from rlt_ros.core.rlt.policy import ActorPolicy

JOINTS = ["base_yaw", "shoulder_pitch", "elbow_pitch", "wrist_pitch", "wrist_roll"]


@pytest.fixture(scope="module")
def tiny_vla(tmp_path_factory):
    from rlt_ros.core.vla.configuration_builtin import BuiltinVLAConfig
    from rlt_ros.core.vla.modeling_builtin import BuiltinVLA, save_pretrained

    cfg = BuiltinVLAConfig(image_size=16, patch_size=8, joint_names=JOINTS, action_dim=5, proprio_dim=10,
                           chunk_size=20, action_queries=10, max_instruction_len=4, width=32, num_layers=1, num_heads=2, head_layers=1)
    return save_pretrained(BuiltinVLA(cfg), tmp_path_factory.mktemp("vla"))


def test_train_token_command(tmp_path, tiny_vla):
    demos = tmp_path / "demos"
    demos.mkdir()
    rng = np.random.default_rng(0)
    critical = []  # the action rows of each demo's critical phase (from step 12 on)
    for i in range(3):
        t = 20
        actions = rng.normal(size=(t, 5)).astype(np.float32)
        actions[:12] += 100.0  # the approach: far from the critical phase, must not enter the action statistics
        critical.append(actions[12:])
        np.savez(demos / f"ep{i}.npz", images_base=rng.integers(0, 255, (t, 16, 16, 3), dtype=np.uint8),
                 images_wrist=rng.integers(0, 255, (t, 16, 16, 3), dtype=np.uint8),
                 proprio=rng.normal(size=(t, 10)).astype(np.float32), actions=actions, critical_start=12)
    t = 20  # a demo that marks no critical phase: left out of the action statistics
    np.savez(demos / "ep3.npz", images_base=rng.integers(0, 255, (t, 16, 16, 3), dtype=np.uint8),
             images_wrist=rng.integers(0, 255, (t, 16, 16, 3), dtype=np.uint8),
             proprio=rng.normal(size=(t, 10)).astype(np.float32), actions=np.full((t, 5), 50.0, np.float32))
    out = tmp_path / "token"
    assert main(["train-token", "--vla", str(tiny_vla), "--demos", str(demos), "--out", str(out), "--steps", "10",
                 "--frame-stride", "2", "--heads", "2", "--token-dim", "8"]) == 0
    meta = json.loads((out / "token_meta.json").read_text())
    assert meta["embed_dim"] == 32 and np.isfinite(meta["report"]["val_loss"])
    rows = np.concatenate(critical).astype(np.float64)
    stats = meta["action_stats"]
    assert (stats["episodes"], stats["rows"]) == (3, 24)
    np.testing.assert_allclose(stats["mean"], rows.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats["std"], rows.std(0), rtol=1e-5)
    # --stats-only renews them from other demos and keeps the rest of the token folder
    weights = (out / "token.safetensors").read_bytes()
    for i in range(3):
        with np.load(demos / f"ep{i}.npz") as f:
            np.savez(demos / f"ep{i}.npz", **{k: (f[k] * 2 if k == "actions" else f[k]) for k in f.files})
    assert main(["train-token", "--stats-only", "--demos", str(demos), "--out", str(out)]) == 0
    renewed = json.loads((out / "token_meta.json").read_text())
    np.testing.assert_allclose(renewed["action_stats"]["std"], 2 * rows.std(0), rtol=1e-5)
    assert renewed["report"] == meta["report"] and (out / "token.safetensors").read_bytes() == weights
    with pytest.raises(SystemExit, match="not an RL-token folder"):
        main(["train-token", "--stats-only", "--demos", str(demos), "--out", str(tmp_path / "elsewhere")])
    for i in range(3):  # demos that mark no critical phase give no statistics
        with np.load(demos / f"ep{i}.npz") as f:
            np.savez(demos / f"ep{i}.npz", **{k: f[k] for k in f.files if k != "critical_start"})
    with pytest.raises(SystemExit, match="marks its critical phase"):
        main(["train-token", "--stats-only", "--demos", str(demos), "--out", str(out)])
    enc = TokenEncoder.from_dir(out, expect_embed_dim=32)
    assert enc.token_dim == 8
    with pytest.raises(TokenDimensionError):
        TokenEncoder.from_dir(out, expect_embed_dim=128)


def test_sim_train_command_runs_and_resumes(tmp_path, tiny_vla):
    from rlt_ros.core.rlt.configuration_token import TokenConfig
    from rlt_ros.core.rlt.modeling_token import RLTokenModel

    from rlt_ros.core.rlt.action_stats import ActionStats, store_action_stats

    token = tmp_path / "token"
    RLTokenModel(TokenConfig(embed_dim=32, max_tokens=16, heads=2, token_dim=8)).save(token)
    # the demonstrations' action scale stored with the token is the learner's, whatever the warm-up held
    demo_std = (0.011, 0.02, 0.023, 0.018, 0.05)
    store_action_stats(token, ActionStats(mean=(0.0, 0.85, 1.54, 0.75, 0.0), std=demo_std, episodes=150,
                                          rows=45000, joint_names=tuple(JOINTS)))
    out = tmp_path / "run"
    # start 10 mm above the socket: inside the critical phase at once (the random VLA would not get there)
    args = ["sim-train", "--vla", str(tiny_vla), "--token", str(token), "--out", str(out), "--no-progress",
            "--sim", "pre_critical_height_mm=10", "--critical-timeout", "0.6", "--checkpoint-every", "1",
            "--rlt", "warmup_transitions=20", "--rlt", "batch_size=16", "--rlt", "utd=1",
            "--rlt", "actor_hidden=[32,32]", "--rlt", "critic_hidden=[32,32]", "--eval-episodes", "1"]
    assert main(args + ["--episodes", "3"]) == 0
    episodes = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in episodes] == ["warmup", "warmup", "rl"]
    assert all(e["transitions"] > 0 and e["critical_s"] is not None for e in episodes)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["updates"] > 0 and summary["eval"]["episodes"] == 1
    policy = ActorPolicy.from_export((out / "actor" / "actor.safetensors").read_bytes(),
                                     (out / "actor" / "actor_config.json").read_text())
    assert policy.cfg.action_dim == 5 and policy.cfg.proprio_dim == 17 and policy.cfg.token_dim == 8
    np.testing.assert_allclose(policy.normalizer.action_std.numpy(), demo_std, rtol=1e-6)
    np.testing.assert_allclose(policy.normalizer.action_mean.numpy(), (0.0, 0.85, 1.54, 0.75, 0.0), atol=1e-6)
    assert main(args + ["--episodes", "4"]) == 0  # resumes the run: one more episode
    assert len((out / "episodes.jsonl").read_text().splitlines()) == 4
    # resumed without its --rlt overrides, the run keeps them; a new --rlt value changes only that field
    bare = [a for i, a in enumerate(args) if a != "--rlt" and (i == 0 or args[i - 1] != "--rlt")]
    assert main(bare + ["--episodes", "5", "--rlt", "beta=0.05"]) == 0
    rlt = json.loads((out / "config.json").read_text())["rlt"]
    assert (rlt["batch_size"], rlt["utd"], rlt["critic_hidden"], rlt["beta"]) == (16, 1, [32, 32], 0.05)


def test_sim_train_records_the_token_stream_for_train_switch(tmp_path, tiny_vla):
    from rlt_ros.core.data.token_bags import read_labelled_episodes
    from rlt_ros.core.rlt.configuration_token import TokenConfig
    from rlt_ros.core.rlt.modeling_token import RLTokenModel

    token = tmp_path / "token"
    RLTokenModel(TokenConfig(embed_dim=32, max_tokens=16, heads=2, token_dim=8)).save(token)
    assert main(["sim-train", "--vla", str(tiny_vla), "--token", str(token), "--out", str(tmp_path / "run"),
                 "--no-progress", "--base", "--episodes", "2", "--sim", "pre_critical_height_mm=10",
                 "--critical-timeout", "0.4", "--record-tokens", str(tmp_path / "tokens")]) == 0
    episodes = read_labelled_episodes([tmp_path / "tokens"])
    assert [e.episode_id for e in episodes] == [0, 1]
    for e in episodes:  # the operator's press at the first tick (the start is inside the critical phase)
        assert e.handover_s == e.stamps[0] and e.tokens.shape == (len(e.stamps), 8) and e.proprio.shape[1] == 17
        assert np.allclose(np.diff(e.stamps), 0.04) and len(e.stamps) == 10  # 0.4 s at 25 Hz


def test_sim_train_on_camera_images_stores_pixels_trains_and_resumes(tmp_path, tiny_vla):
    """The no-token ablation end to end: --state image (no RL token), the tiny VLA's 16 px cameras as the state."""
    from rlt_ros.core.rlt.replay import ReplayBuffer

    out = tmp_path / "run"
    common = ["sim-train", "--vla", str(tiny_vla), "--state", "image", "--out", str(out), "--no-progress",
              "--sim", "pre_critical_height_mm=10", "--critical-timeout", "0.6", "--checkpoint-every", "1",
              "--rlt", "warmup_transitions=20", "--rlt", "batch_size=8", "--rlt", "utd=1",
              "--rlt", "actor_hidden=[32,32]", "--rlt", "critic_hidden=[32,32]"]
    with pytest.raises(SystemExit, match="state_image_size=S with S dividing 16"):  # the default 32 px
        main(common + ["--episodes", "1"])
    args = common + ["--rlt", "state_image_size=16"]
    assert main(args + ["--episodes", "3"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["updates"] > 0 and summary["transitions"] > 0
    rlt = json.loads((out / "config.json").read_text())["rlt"]
    assert (rlt["state_image_size"], rlt["token_dim"]) == (16, 2 * 16 * 16 * 3)
    replay = ReplayBuffer(rlt["token_dim"], rlt["proprio_dim"], rlt["chunk_size"], rlt["action_dim"],
                          directory=out / "replay", read_only=True, token_dtype="u1")
    pixels = replay.arrays()["token"]
    assert pixels.dtype == np.uint8 and len(pixels) == summary["transitions"] and pixels.std() > 1
    policy = ActorPolicy.from_export((out / "actor" / "actor.safetensors").read_bytes(),
                                     (out / "actor" / "actor_config.json").read_text())
    assert policy.actor.encoder is not None
    assert main(args + ["--episodes", "4"]) == 0  # resumes: checkpoint and pixel replay load
    assert len((out / "episodes.jsonl").read_text().splitlines()) == 4
