"""The VLA backend interface and the built-in VLA: shapes, validation, checkpoints, training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rlt_ros.core.types import Observation
from rlt_ros.core.vla import BACKEND_KINDS, IncompatibleArmError, VLAInputError, default_checkpoint, load_backend
from rlt_ros.core.vla.configuration_builtin import BuiltinTrainingConfig, BuiltinVLAConfig
from rlt_ros.core.vla.modeling_builtin import (
    BuiltinVLA,
    BuiltinVLABackend,
    CheckpointError,
    load_pretrained,
    save_pretrained,
    tokenize_instruction,
)
from rlt_ros.core.vla.training_builtin import BuiltinTrainer, ChunkDataset, DemoEpisode, config_for_episodes

JOINTS = ["j0", "j1", "j2", "j3", "j4"]
SMALL = dict(width=32, num_layers=1, num_heads=2, head_layers=1, chunk_size=10, action_queries=5,
             max_instruction_len=6, joint_names=JOINTS)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def make_backend(**kw) -> BuiltinVLABackend:
    torch.manual_seed(0)
    return BuiltinVLABackend(BuiltinVLA(BuiltinVLAConfig(**{**SMALL, **kw})))


def make_obs(rng, size=64, cams=("base", "wrist"), proprio_dim=10, text="insert the peg") -> Observation:
    return Observation(images={c: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for c in cams},
                       proprio=rng.standard_normal(proprio_dim).astype(np.float32), instruction=text)


# ---- forward shapes ---------------------------------------------------------------------------------
def test_infer_shapes_and_mask():
    b = make_backend()
    out = b.infer(make_obs(np.random.default_rng(0)))
    m = b.config.num_prefix_tokens
    assert m == 2 * (16 + 1) + 6 + 1
    assert out.prefix_embeddings.shape == (m, 32) and out.prefix_embeddings.dtype == np.float32
    assert out.prefix_mask.shape == (m,) and out.prefix_mask.dtype == np.bool_
    assert out.prefix_mask.sum() == 2 * 17 + 3 + 1  # three instruction words, the rest is padding
    assert out.reference_chunk.shape == (10, 5) and out.reference_chunk.dtype == np.float32
    assert np.all(np.isfinite(out.prefix_embeddings)) and np.all(np.isfinite(out.reference_chunk))


def test_chunk_is_residual_on_current_joint_positions():
    b = make_backend()
    obs = make_obs(np.random.default_rng(1))
    with torch.no_grad():
        b.model.action_out.weight.zero_()
        b.model.action_out.bias.zero_()
        b.model.delta_mean.fill_(0.25)
    chunk = b.infer(obs).reference_chunk
    np.testing.assert_allclose(chunk, np.tile(obs.proprio[:5] + 0.25, (10, 1)), rtol=1e-5, atol=1e-6)


def test_infer_batch_matches_single_and_embed_dataset_stacks():
    b = make_backend()
    rng = np.random.default_rng(2)
    obs = [make_obs(rng) for _ in range(3)]
    batch = b.infer_batch(obs)
    for o, out in zip(obs, batch):
        single = b.infer(o)
        np.testing.assert_allclose(single.prefix_embeddings, out.prefix_embeddings, atol=1e-4)
        np.testing.assert_allclose(single.reference_chunk, out.reference_chunk, atol=1e-4)
    emb, mask, chunks = b.embed_dataset(iter(obs), batch_size=2)
    assert emb.shape == (3, b.config.num_prefix_tokens, 32) and mask.shape == emb.shape[:2] and chunks.shape == (3, 10, 5)
    np.testing.assert_allclose(emb[2], batch[2].prefix_embeddings, atol=1e-4)


def test_tokenizer_is_word_level_and_deterministic():
    ids, mask = tokenize_instruction("Insert the peg, into the socket", 8)
    assert mask.tolist() == [True] * 7 + [False]
    assert ids[1] == ids[5] and ids[3] != ids[2]  # "the" twice; "," is a token of its own
    assert ids[0] == tokenize_instruction("insert", 8)[0][0]  # case-insensitive


# ---- input validation -------------------------------------------------------------------------------
@pytest.mark.parametrize("mutate, match", [
    (lambda o: o.images.update(base=np.zeros((32, 32, 3), np.uint8)), "image size is 32x32"),
    (lambda o: o.images.update(base=np.zeros((64, 64, 4), np.uint8)), "encoding must be rgb8"),
    (lambda o: o.images.update(wrist=np.zeros((64, 64), np.uint8)), "encoding must be rgb8"),
    (lambda o: o.images.update(base=np.zeros((64, 64, 3), np.float32)), "dtype is float32"),
    (lambda o: o.images.pop("wrist"), r"missing camera\(s\) \['wrist'\]"),
    (lambda o: setattr(o, "proprio", np.zeros(17, np.float32)), "proprio has length 17, this VLA expects 10"),
    (lambda o: setattr(o, "proprio", np.full(10, np.nan, np.float32)), "NaN"),
])
def test_bad_observations_raise_naming_the_cause(mutate, match):
    b = make_backend()
    obs = make_obs(np.random.default_rng(3))
    mutate(obs)
    with pytest.raises(VLAInputError, match=match):
        b.infer(obs)


def test_check_compatible_joint_order_and_dimension():
    b = make_backend()
    b.check_compatible(JOINTS)  # same order: fine
    with pytest.raises(IncompatibleArmError, match="joint order mismatch"):
        b.check_compatible(["j1", "j0", "j2", "j3", "j4"])
    with pytest.raises(IncompatibleArmError, match="outputs 5-D actions but the arm takes 6"):
        b.check_compatible(JOINTS + ["j5"])
    with pytest.raises(IncompatibleArmError, match="joint names differ"):
        b.check_compatible(["a", "b", "c", "d", "e"])


def test_load_backend_unknown_kind_lists_choices():
    with pytest.raises(ValueError, match="valid choices: builtin, smolvla, pi0, pi05"):
        load_backend("openvla", "x")
    assert BACKEND_KINDS == ("builtin", "smolvla", "pi0", "pi05")


# ---- config -----------------------------------------------------------------------------------------
def test_config_round_trip_and_validation():
    c = BuiltinVLAConfig(**SMALL)
    assert BuiltinVLAConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    with pytest.raises(ValueError, match="divisible by num_heads"):
        BuiltinVLAConfig(width=30, num_heads=4)
    with pytest.raises(ValueError, match="unknown BuiltinVLAConfig field"):
        BuiltinVLAConfig.from_dict({"widht": 64})
    with pytest.raises(ValueError, match="joint_names"):
        BuiltinVLAConfig(joint_names=["a"], action_dim=5)
    t = BuiltinTrainingConfig(steps=5)
    assert BuiltinTrainingConfig.from_dict(t.to_dict()) == t
    with pytest.raises(ValueError, match="lr must be > 0"):
        BuiltinTrainingConfig(lr=0.0)


# ---- checkpoints ------------------------------------------------------------------------------------
def test_checkpoint_round_trip(tmp_path):
    b = make_backend()
    with torch.no_grad():
        b.model.delta_std.fill_(0.5)
    save_pretrained(b.model, tmp_path / "ck")
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["config.json", "model.safetensors"]
    b2 = BuiltinVLABackend.from_pretrained(tmp_path / "ck")
    obs = make_obs(np.random.default_rng(4))
    o1, o2 = b.infer(obs), b2.infer(obs)
    np.testing.assert_array_equal(o1.prefix_embeddings, o2.prefix_embeddings)
    np.testing.assert_array_equal(o1.reference_chunk, o2.reference_chunk)
    assert b2.joint_names == JOINTS
    assert load_backend("builtin", tmp_path / "ck").embed_dim == 32


def test_checkpoint_errors_name_path_and_cause(tmp_path):
    with pytest.raises(CheckpointError, match="not a directory"):
        load_pretrained(tmp_path / "nope")
    ck = tmp_path / "ck"
    save_pretrained(make_backend().model, ck)
    weights = (ck / "model.safetensors").read_bytes()

    (ck / "model.safetensors").write_bytes(weights[: len(weights) // 2])  # truncated
    with pytest.raises(CheckpointError, match=r"model\.safetensors: corrupt or unreadable"):
        load_pretrained(ck)
    (ck / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_pretrained(ck)
    (ck / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing file model.safetensors"):
        load_pretrained(ck)

    (ck / "model.safetensors").write_bytes(weights)
    cfg = json.loads((ck / "config.json").read_text())
    (ck / "config.json").write_text(json.dumps({**cfg, "width": 64, "num_heads": 2}))
    with pytest.raises(CheckpointError, match="config mismatch"):
        load_pretrained(ck)
    (ck / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_pretrained(ck)
    (ck / "config.json").write_text(json.dumps({**cfg, "patch_size": 3}))
    with pytest.raises(CheckpointError, match="invalid config"):
        load_pretrained(ck)


# ---- training ---------------------------------------------------------------------------------------
def synthetic_episodes(n=6, t_len=40, seed=0) -> list[DemoEpisode]:
    """Joint targets move towards a goal encoded by the brightness of the base image."""
    rng = np.random.default_rng(seed)
    eps = []
    for _ in range(n):
        goal = rng.uniform(-1, 1, 5).astype(np.float32)
        q = np.zeros((t_len, 5), np.float32)
        for t in range(1, t_len):
            q[t] = q[t - 1] + 0.1 * (goal - q[t - 1])
        base = np.broadcast_to((128 + 100 * goal[0]).astype(np.uint8), (t_len, 64, 64, 3)).copy()
        wrist = np.broadcast_to((128 + 100 * goal[1]).astype(np.uint8), (t_len, 64, 64, 3)).copy()
        actions = np.concatenate([q[1:], q[-1:]])
        eps.append(DemoEpisode(images={"base": base, "wrist": wrist},
                               proprio=np.concatenate([q, np.zeros_like(q)], 1), actions=actions,
                               instruction="insert the peg", joint_names=tuple(JOINTS)))
    return eps


def test_dataset_chunks_pad_with_last_action():
    eps = synthetic_episodes(n=1, t_len=12)
    cfg = config_for_episodes(eps, **{k: v for k, v in SMALL.items() if k != "joint_names"})
    data = ChunkDataset(eps, cfg)
    assert len(data) == 12 and data.chunks.shape == (12, 10, 5)
    np.testing.assert_array_equal(data.chunks[0], eps[0].actions[:10])
    np.testing.assert_array_equal(data.chunks[11], np.tile(eps[0].actions[-1], (10, 1)))
    assert cfg.joint_names == JOINTS and cfg.proprio_dim == 10


def _trainer(out, steps, resume=False):
    eps = synthetic_episodes()
    cfg = config_for_episodes(eps, **{k: v for k, v in SMALL.items() if k != "joint_names"})
    tcfg = BuiltinTrainingConfig(steps=steps, batch_size=16, lr=3e-3, warmup_steps=5, save_every=10, seed=3)
    return BuiltinTrainer(cfg, tcfg, ChunkDataset(eps, cfg), out, resume=resume)


def test_tiny_training_reduces_loss(tmp_path):
    tr = _trainer(tmp_path / "run", 100)
    stats = tr.run(progress=False)
    assert stats["loss_last"] < 0.7 * stats["loss_first"], stats
    assert (tmp_path / "run" / "model.safetensors").exists() and (tmp_path / "run" / "training_state.pt").exists()


def test_training_is_deterministic_and_resumable(tmp_path):
    full = _trainer(tmp_path / "full", 30)
    full.run(progress=False)
    part = _trainer(tmp_path / "part", 30)
    part.run(progress=False, until=20)  # interrupted after a checkpoint at step 20
    resumed = _trainer(tmp_path / "part", 30, resume=True)
    assert resumed.step == 20
    resumed.run(progress=False)
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    with pytest.raises(FileNotFoundError, match="no training_state.pt"):
        _trainer(tmp_path / "empty", 5, resume=True)


# ---- the shipped base checkpoint ---------------------------------------------------------------------
def test_shipped_checkpoint_loads_and_fits_the_sim_arm():
    ck = default_checkpoint()
    assert (ck / "model.safetensors").stat().st_size < 8_000_000
    vla = load_backend("builtin")
    vla.check_compatible(["base_yaw", "shoulder_pitch", "elbow_pitch", "wrist_pitch", "wrist_roll"])
    assert (vla.chunk_size, vla.action_dim, vla.camera_names, vla.image_size) == (50, 5, ["base", "wrist"], (64, 64))
    out = vla.infer(make_obs(np.random.default_rng(5), text="insert the peg into the socket"))
    assert out.reference_chunk.shape == (50, 5)


# ---- closed-loop evaluation ---------------------------------------------------------------------------
def test_chunk_policy_queries_every_k_steps_and_executes_the_chunk_in_order():
    from rlt_ros.core.vla.evaluation import VLAChunkPolicy, observation_from_sim

    b = make_backend()
    calls = []
    real = b._infer_batch

    def counting(obs):
        calls.append(obs[0].proprio.copy())
        return real(obs)

    b._infer_batch = counting
    pol = VLAChunkPolicy(b, "insert the peg", execute_steps=4)
    rng = np.random.default_rng(6)
    sim_obs = {"images": {c: rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for c in ("base", "wrist")},
               "joint_pos": np.zeros(5, np.float32), "joint_vel": np.ones(5, np.float32),
               "proprio": np.zeros(17, np.float32)}
    pol.reset(sim_obs)
    actions = [pol.act(sim_obs) for _ in range(9)]
    assert len(calls) == 3 and [pol.needs_images(n) for n in range(5)] == [True, False, False, False, True]
    np.testing.assert_array_equal(calls[0], np.r_[np.zeros(5), np.ones(5)])  # joint_pos + joint_vel, no ee_pose
    chunk = b.infer(observation_from_sim(sim_obs, "insert the peg")).reference_chunk
    np.testing.assert_allclose(actions[:4], chunk[:4], atol=1e-5)
    with pytest.raises(ValueError, match="execute_steps"):
        VLAChunkPolicy(b, "x", execute_steps=11)


def test_eval_runs_the_shipped_vla_on_the_simulator():
    from rlt_ros.core.vla.evaluation import evaluate_backend

    res = evaluate_backend(load_backend("builtin"), episodes=1, execute_steps=10, seed=7, progress=False)
    assert res.episodes == 1 and res.successes in (0, 1) and res.reached_critical in (0, 1)
    assert 0.0 < res.median_episode_s <= 20.0
