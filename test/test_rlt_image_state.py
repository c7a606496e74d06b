"""The no-token ablation as the paper ran it: the state is the camera images, read by a small ResNet-10-like
CNN trained online (RLTConfig.state_image_size, PracticeConfig.state_source="image"): the encoder, its
gradients, the uint8 replay and its mirror, checkpoints and exports, and practice on fakes."""

import json

import numpy as np
import pytest
import torch

from rlt_fakes import FakeReachEnv, FakeVLA, PooledToken
from rlt_ros.core.rlt.configuration_practice import PracticeConfig
from rlt_ros.core.rlt.configuration_rlt import RLTConfig
from rlt_ros.core.rlt.learner import CheckpointMismatchError, RLTAlgorithm, load_checkpoint, save_checkpoint
from rlt_ros.core.rlt.modeling_actor_critic import IMAGE_FEATURES, ImageEncoder
from rlt_ros.core.rlt.policy import ActorPolicy
from rlt_ros.core.rlt.practice import Practice, StateReader, downscale
from rlt_ros.core.rlt.replay import Batch, ReplayBuffer, ReplayError, TensorReplay, Transition

torch.set_num_threads(1)
SIDE, CAMS = 16, 2
PIXELS = CAMS * SIDE * SIDE * 3


def image_cfg(**kw):
    base = dict(chunk_size=4, action_dim=2, token_dim=PIXELS, state_image_size=SIDE, proprio_dim=3,
                actor_hidden=(32, 32), critic_hidden=(32, 32), batch_size=8, warmup_transitions=0, stride=2)
    return RLTConfig(**{**base, **kw})


def pixel_batch(cfg, b=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    px = lambda: torch.randint(0, 256, (b, cfg.token_dim), generator=g).float()  # noqa: E731
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    c, a = cfg.chunk_size, cfg.action_dim
    return Batch(px(), r(b, cfg.proprio_dim), r(b, c, a), r(b, c, a), torch.zeros(b, c), torch.zeros(b), px(),
                 r(b, cfg.proprio_dim), r(b, c, a), torch.zeros(b, dtype=torch.bool))


def test_encoder_output_shape_and_input_check():
    enc = ImageEncoder(image_cfg())
    assert enc.cameras == CAMS
    out = enc(torch.randint(0, 256, (5, PIXELS)).float())
    assert out.shape == (5, IMAGE_FEATURES) and torch.isfinite(out).all()
    with pytest.raises(AssertionError):
        enc(torch.zeros(5, PIXELS - 3))
    with pytest.raises(ValueError, match="state_image_size"):
        image_cfg(token_dim=PIXELS + 1)


def test_critic_loss_trains_the_critics_encoder_and_the_actor_loss_only_the_actors():
    alg = RLTAlgorithm(image_cfg())
    nb = alg.normalise(pixel_batch(alg.cfg))
    assert torch.equal(nb["token"], pixel_batch(alg.cfg).token)  # pixels pass the normaliser unchanged
    alg.critic_loss(nb)[0].backward()
    grads = [p.grad for p in alg.critics.encoder.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
    assert all(p.grad is None for p in alg.actor.parameters())
    alg.critics.zero_grad(set_to_none=True)
    alg.actor_loss(nb)[0].backward()
    assert all(p.grad is None for p in alg.critics.parameters())  # Q differentiated in the action only
    assert sum(float(p.grad.abs().sum()) for p in alg.actor.encoder.parameters()) > 0


def test_updates_move_the_encoders_and_the_target_encoder_follows():
    alg = RLTAlgorithm(image_cfg())
    before = {k: v.clone() for k, v in alg.critics.encoder.state_dict().items()}
    target0 = {k: v.clone() for k, v in alg.critics_target.encoder.state_dict().items()}
    actor0 = {k: v.clone() for k, v in alg.actor.encoder.state_dict().items()}
    for i in range(4):
        alg.update(pixel_batch(alg.cfg, seed=i))
    moved = lambda a, b: any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())  # noqa: E731
    assert moved(alg.critics.encoder.state_dict(), before)
    assert moved(alg.critics_target.encoder.state_dict(), target0)
    assert moved(alg.actor.encoder.state_dict(), actor0)


def test_checkpoint_and_export_round_trip(tmp_path):
    cfg = image_cfg()
    alg = RLTAlgorithm(cfg)
    for i in range(3):
        alg.update(pixel_batch(cfg, seed=i))
    save_checkpoint(tmp_path, alg)
    other = RLTAlgorithm(cfg)
    load_checkpoint(tmp_path, other)
    nb = alg.normalise(pixel_batch(cfg, seed=9))
    with torch.no_grad():
        assert torch.equal(alg.critics(nb["token"], nb["proprio"], nb["action"]),
                           other.critics(nb["token"], nb["proprio"], nb["action"]))
    for a, b in zip(alg.critics_target.encoder.parameters(), other.critics_target.encoder.parameters()):
        assert torch.equal(a, b)
    policy = ActorPolicy.from_export(*alg.export(), expect=cfg)
    rng = np.random.default_rng(0)
    token = rng.integers(0, 256, PIXELS).astype(np.float32)
    proprio, ref = rng.normal(size=3), rng.normal(size=(6, 2))
    np.testing.assert_allclose(policy.act(token, proprio, ref), alg.policy().act(token, proprio, ref), atol=1e-6)
    with pytest.raises(CheckpointMismatchError, match="state_image_size"):
        load_checkpoint(tmp_path, RLTAlgorithm(image_cfg(token_dim=4 * 32 * 32 * 3 // 4, state_image_size=32)))


def pixel_transition(rng, t=PIXELS, episode=0):
    px = lambda: rng.integers(0, 256, t).astype(np.float32)  # noqa: E731
    r = lambda *s: rng.normal(size=s).astype(np.float32)  # noqa: E731
    return Transition(episode, 0, px(), r(3), r(4, 2), r(4, 2), np.zeros(4, np.float32), False, px(), r(3), r(4, 2))


def test_replay_stores_pixels_as_uint8_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    rb = ReplayBuffer(PIXELS, 3, 4, 2, directory=tmp_path, token_dtype="u1")
    added = [pixel_transition(rng, episode=i) for i in range(5)]
    for tr in added:
        rb.add(tr)
    with pytest.raises(ReplayError, match="whole numbers in \\[0, 255\\]"):
        rb.add(Transition(**{**vars(added[0]), "token": added[0].token + 0.5}))
    rb.close()
    again = ReplayBuffer(PIXELS, 3, 4, 2, directory=tmp_path, token_dtype="u1")
    data = again.arrays()
    assert data["token"].dtype == np.uint8 and data.dtype.itemsize < PIXELS * 2 + 1000
    np.testing.assert_array_equal(data["next_token"], np.stack([tr.next_token for tr in added]))
    again.close()
    with pytest.raises(ReplayError, match="token_dtype: stored u1 vs requested f4"):
        ReplayBuffer(PIXELS, 3, 4, 2, directory=tmp_path)
    # the learner's mirror keeps the pixels uint8 and hands them out as floats, unchanged
    alg = RLTAlgorithm(image_cfg(chunk_size=4))
    mirror = TensorReplay(again, alg.normalise_fields)
    mirror.sync()
    assert mirror.image_store.dtype == torch.uint8
    batch = mirror.sample(16, torch.Generator().manual_seed(0))
    rows = {tuple(tr.token[:8]) for tr in added}
    assert batch.token.shape == (16, PIXELS) and all(tuple(t[:8].tolist()) in rows for t in batch.token)
    alg.update(batch)


def test_state_reader_downscales_each_camera_in_order():
    img = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3)
    small = downscale(img, 2)
    assert small.shape == (2, 2, 3) and small[0, 0, 0] == round(img[:2, :2, 0].mean())
    reader = StateReader("image", cameras=("wrist", "base"), image_size=2)
    x = reader(None, {"images": {"base": img, "wrist": 255 - img}})
    assert x.dtype == np.uint8 and reader.dim == x.shape[0] == 2 * 2 * 2 * 3
    np.testing.assert_array_equal(x[:12], downscale(255 - img, 2).reshape(-1))
    with pytest.raises(ValueError, match="multiple of 3"):
        downscale(img, 3)


def test_pooled_state_source_names_its_replacement():
    with pytest.raises(ValueError, match="'pooled' was removed: the no-token ablation is now 'image'"):
        PracticeConfig(state_source="pooled")


def image_practice(out, episodes=4):
    env = FakeReachEnv(image_size=SIDE)
    rlt = image_cfg(chunk_size=10, token_dim=SIDE * SIDE * 3, proprio_dim=4, batch_size=16, warmup_transitions=16,
                    utd=1)
    return Practice(env, FakeVLA(), StateReader("image", cameras=("base",), image_size=SIDE), rlt,
                    PracticeConfig(episodes=episodes, critical_timeout_s=3.0, checkpoint_every=2,
                                   state_source="image"), out_dir=out, progress=False)


def test_practice_on_images_stores_pixels_trains_and_refuses_another_state_source(tmp_path):
    p = image_practice(tmp_path)
    results = p.run()
    assert "rl" in [r.kind for r in results] and p.algorithm.num_updates > 0
    data = p.replay.arrays()
    assert data["token"].dtype == np.uint8 and len(np.unique(data["token"][:, -1])) > 1  # the arm moves in view
    p.replay.close()
    resumed = image_practice(tmp_path, episodes=5)  # the run resumes: its checkpoint and pixels load
    assert resumed.algorithm.num_updates == p.algorithm.num_updates and len(resumed.replay) == len(data)
    resumed.replay.close()
    rlt = RLTConfig(chunk_size=10, action_dim=2, token_dim=8, proprio_dim=4, actor_hidden=(32, 32),
                    critic_hidden=(32, 32))
    with pytest.raises(CheckpointMismatchError, match="state_image_size"):
        Practice(FakeReachEnv(), FakeVLA(), StateReader("token", PooledToken(8)), rlt, PracticeConfig(),
                 out_dir=tmp_path, progress=False)


def test_a_replay_written_before_pixel_states_opens_as_float(tmp_path):
    ReplayBuffer(8, 3, 4, 2, directory=tmp_path).close()
    meta = json.loads((tmp_path / "meta.json").read_text())
    del meta["token_dtype"]
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    assert len(ReplayBuffer(8, 3, 4, 2, directory=tmp_path)) == 0
    with pytest.raises(ReplayError, match="token_dtype: stored f4 vs requested u1"):
        ReplayBuffer(8, 3, 4, 2, directory=tmp_path, token_dtype="u1")
