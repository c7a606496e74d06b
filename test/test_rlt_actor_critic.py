"""RLT actor/critic (stage 2): TD target, reference dropout, residual actor, learning signal, state round trip."""

import io

import numpy as np
import pytest
import torch

from rlt_ros.core.rlt.configuration_rlt import RLTConfig
from rlt_ros.core.rlt.learner import CheckpointMismatchError, RLTAlgorithm, load_checkpoint, save_checkpoint
from rlt_ros.core.rlt.modeling_actor_critic import reference_dropout_mask, td_target
from rlt_ros.core.rlt.policy import ActorPolicy, PolicyInputError
from rlt_ros.core.rlt.replay import Batch

torch.set_num_threads(1)


def small_cfg(**kw):
    base = dict(chunk_size=4, action_dim=2, token_dim=6, proprio_dim=3, actor_hidden=(32, 32),
                critic_hidden=(32, 32), batch_size=32, warmup_transitions=0, stride=2)
    return RLTConfig(**{**base, **kw})


def random_batch(cfg, b=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    c, a = cfg.chunk_size, cfg.action_dim
    return Batch(r(b, cfg.token_dim), r(b, cfg.proprio_dim), r(b, c, a), r(b, c, a), torch.zeros(b, c),
                 torch.zeros(b), r(b, cfg.token_dim), r(b, cfg.proprio_dim), r(b, c, a), torch.zeros(b, dtype=torch.bool))


def test_td_target_hand_computed():
    # C = 3, gamma = 0.9: y = sum_t gamma^{t-1} r_t + gamma^3 (1 - done) min(Q1', Q2')
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.5, 0.0, 0.0]])
    done = torch.tensor([1.0, 0.0, 0.0])
    next_q = torch.tensor([[2.0, 5.0, 1.0], [3.0, 4.0, 2.0]])  # [K=2, B=3]
    y = td_target(rewards, done, next_q, 0.9)
    expected = torch.tensor([0.81 * 1.0, 0.729 * 4.0, 0.5 + 0.729 * 1.0])
    torch.testing.assert_close(y, expected)


def test_reference_dropout_training_only():
    cfg = small_cfg(ref_dropout=0.5)
    alg = RLTAlgorithm(cfg)
    ref = torch.ones(4000, cfg.chunk_flat)
    dropped = (alg._ref_in(ref, train=True).abs().sum(1) == 0).float().mean().item()
    assert 0.46 < dropped < 0.54, dropped
    assert torch.equal(alg._ref_in(ref, train=False), ref)  # inference / targets: always given
    m = reference_dropout_mask(1000, 0.0)
    assert torch.all(m == 1)
    # the inference wrapper always passes ã: a different reference changes the output
    pol = alg.policy()
    tok, pro = np.zeros(cfg.token_dim), np.zeros(cfg.proprio_dim)
    r1 = np.ones((10, cfg.action_dim), np.float32)
    assert not np.allclose(pol.act(tok, pro, r1), pol.act(tok, pro, 2 * r1))
    # no pass-through (ablation): the actor never sees ã, even at inference
    alg2 = RLTAlgorithm(small_cfg(use_reference=False, residual_actor=False))
    assert torch.all(alg2._ref_in(ref, train=False) == 0)
    pol2 = alg2.policy()
    np.testing.assert_allclose(pol2.act(tok, pro, r1), pol2.act(tok, pro, 2 * r1))


def test_reference_dropout_with_a_residual_actor_keeps_the_anchor():
    """A dropped-out ã is hidden from the MLP only: mu = ã + MLP(x, 0), so the untrained actor reproduces ã
    even for a dropped sample (in the loss too: the deviation from ã is ~0)."""
    cfg = small_cfg(ref_dropout=1.0)
    alg = RLTAlgorithm(cfg)
    nb = alg.normalise(random_batch(cfg, b=8))
    mu = alg.actor(nb["token"], nb["proprio"], alg._ref_in(nb["ref"], True), nb["ref"])
    torch.testing.assert_close(mu, nb["ref"], atol=0.05, rtol=0)
    _, stats = alg.actor_loss(nb)
    assert stats["mu_deviation"] < 0.1


def test_untrained_residual_actor_reproduces_reference():
    cfg = small_cfg()
    pol = RLTAlgorithm(cfg).policy()
    ref = np.random.default_rng(0).normal(size=(10, cfg.action_dim)).astype(np.float32)
    out = pol.act(np.ones(cfg.token_dim), np.ones(cfg.proprio_dim), ref)
    assert out.shape == (cfg.chunk_size, cfg.action_dim)
    np.testing.assert_allclose(out, ref[: cfg.chunk_size], atol=0.05)
    noisy = pol.act(np.ones(cfg.token_dim), np.ones(cfg.proprio_dim), ref, explore=True,
                    rng=np.random.default_rng(1))
    assert 0.7 * cfg.sigma < np.std(noisy - out) < 1.3 * cfg.sigma  # normalised (here identity) units


def test_chunk_sigma_adds_one_offset_per_joint_held_for_the_whole_chunk():
    """The exploration offset of ``chunk_sigma`` is the same on every step of a chunk, new with every chunk, one
    per joint, on top of sigma's i.i.d. noise; without it the noise is sigma's alone."""
    cfg = small_cfg(sigma=1e-6, chunk_sigma=0.3)
    pol = RLTAlgorithm(cfg).policy()
    n = 4000
    ref = np.zeros((n, cfg.chunk_size, cfg.action_dim), np.float32)
    out = pol.act(np.zeros((n, cfg.token_dim)), np.zeros((n, cfg.proprio_dim)), ref, explore=True,
                  rng=np.random.default_rng(1))
    base = pol.act(np.zeros((n, cfg.token_dim)), np.zeros((n, cfg.proprio_dim)), ref)
    noise = out - base  # [n, C, A]
    assert np.abs(noise - noise[:, :1]).max() < 1e-4  # held along the chunk
    np.testing.assert_allclose(noise[:, 0].std(axis=0), 0.3, rtol=0.05)  # per joint, normalised (identity) units
    assert abs(np.corrcoef(noise[:, 0, 0], noise[:, 0, 1])[0, 1]) < 0.05  # an offset of its own per joint
    plain = small_cfg(sigma=0.02)
    pol = RLTAlgorithm(plain).policy()
    draws = pol.act(np.zeros((n, cfg.token_dim)), np.zeros((n, cfg.proprio_dim)), ref, explore=True,
                    rng=np.random.default_rng(1)) - pol.act(np.zeros((n, cfg.token_dim)), np.zeros((n, cfg.proprio_dim)), ref)
    expected = np.random.default_rng(1).standard_normal((n, cfg.chunk_size * cfg.action_dim)).astype(np.float32) * 0.02
    np.testing.assert_allclose(draws.reshape(n, -1), expected, atol=1e-5)  # sigma's noise, the same draws as before


@pytest.mark.parametrize("floor", [1e-3, 0.01])
def test_action_scale_per_joint(floor):
    """Every joint's actions get their own std, at least action_min_std; the means are per joint too."""
    cfg = small_cfg(sigma=0.5, action_min_std=floor)
    alg = RLTAlgorithm(cfg)
    rng = np.random.default_rng(0)
    actions = rng.normal([0.1, 0.8], [0.005, 0.02], size=(20_000, 2))
    alg.normalizer.fit(rng.normal(size=(50, cfg.token_dim)), rng.normal(size=(50, cfg.proprio_dim)), actions)
    std = alg.normalizer.action_std.numpy()
    np.testing.assert_allclose(alg.normalizer.action_mean.numpy(), [0.1, 0.8], atol=1e-3)
    np.testing.assert_allclose(std, [max(0.005, floor), 0.02], rtol=0.03)

    pol = alg.policy()  # the exported policy carries the fitted scale
    ref = np.tile(np.array([0.1, 0.8], np.float32), (4000, cfg.chunk_size, 1))
    out = pol.act(np.zeros((4000, cfg.token_dim)), np.zeros((4000, cfg.proprio_dim)), ref, explore=True,
                  rng=np.random.default_rng(1))
    spread = (out - ref).std(axis=(0, 1))  # the exploration noise per joint, in radians
    np.testing.assert_allclose(spread, 0.5 * std, rtol=0.05)
    ratio = spread[1] / spread[0]
    assert ratio > 3 if floor < 0.005 else 1.8 < ratio < 2.2


def test_actor_moves_towards_rewarded_actions():
    """A one-chunk bandit: reward 1 - |a - (ã + 1)|^2 / 4 per step; the actor should shift from ã towards ã + 1."""
    cfg = small_cfg(beta=0.01, actor_lr=1e-3, critic_lr=1e-3, sigma=0.3)
    alg = RLTAlgorithm(cfg)
    rng = np.random.default_rng(0)
    b, c, a = 64, cfg.chunk_size, cfg.action_dim

    def batch():
        ref = rng.normal(size=(b, c, a)).astype(np.float32)
        act = ref + rng.uniform(-2, 3, size=(b, c, a)).astype(np.float32)
        rew = (1.0 - ((act - ref - 1.0) ** 2).mean(-1) / 4.0).astype(np.float32)
        t = lambda x: torch.from_numpy(np.ascontiguousarray(x, np.float32))  # noqa: E731
        return Batch(t(rng.normal(size=(b, cfg.token_dim))), t(rng.normal(size=(b, cfg.proprio_dim))), t(ref),
                     t(act), t(rew), torch.ones(b), t(np.zeros((b, cfg.token_dim))),
                     t(np.zeros((b, cfg.proprio_dim))), t(ref), torch.zeros(b, dtype=torch.bool))

    for _ in range(600):
        alg.update(batch())
    pol = alg.policy()
    ref = rng.normal(size=(16, 10, a)).astype(np.float32)
    out = pol.act(rng.normal(size=(16, cfg.token_dim)), rng.normal(size=(16, cfg.proprio_dim)), ref)
    shift = float((out - ref[:, :c]).mean())
    assert 0.4 < shift < 1.6, shift


def test_state_dict_round_trip_continues_identically(tmp_path, caplog):
    cfg = small_cfg()
    a1 = RLTAlgorithm(cfg)
    for i in range(5):
        a1.update(random_batch(cfg, seed=i))
    buf = io.BytesIO()
    torch.save(a1.state_dict(), buf)
    a2 = RLTAlgorithm(small_cfg(seed=7))
    a2.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=False))
    save_checkpoint(tmp_path, a1)
    a3 = RLTAlgorithm(small_cfg(seed=9))
    load_checkpoint(tmp_path, a3)
    for alg in (a1, a2, a3):
        alg.update(random_batch(cfg, seed=99))
        alg.update(random_batch(cfg, seed=100))
    for other in (a2, a3):
        for p, q in zip(a1.actor.parameters(), other.actor.parameters()):
            torch.testing.assert_close(p, q)
        for p, q in zip(a1.critics.parameters(), other.critics.parameters()):
            torch.testing.assert_close(p, q)
    with pytest.raises(CheckpointMismatchError, match="chunk_size"):
        load_checkpoint(tmp_path, RLTAlgorithm(small_cfg(chunk_size=2)))
    # the normaliser's fit depends on these, and a resumed normaliser is never refitted
    with pytest.raises(CheckpointMismatchError, match="action_min_std"):
        load_checkpoint(tmp_path, RLTAlgorithm(small_cfg(action_min_std=0.01)))
    # a training hyperparameter may change on resume, but not silently
    caplog.clear()
    with caplog.at_level("WARNING", logger="rlt_ros.core.rlt.learner"):
        a4 = RLTAlgorithm(small_cfg(beta=0.03, critic_lr=1e-4))
        load_checkpoint(tmp_path, a4)
    assert "changed hyperparameters" in caplog.text and "beta 0.07 -> 0.03" in caplog.text
    assert a4.critic_opt.param_groups[0]["lr"] == 1e-4  # the new values do apply


def test_adam_without_a_fused_kernel_falls_back_and_learns_the_same(monkeypatch):
    """Where torch has no fused Adam for the device (CPU torch < 2.4 raises RuntimeError), the learner uses
    the multi-tensor Adam: the same updates up to float rounding, and a fused optimiser's state loads."""
    cfg = small_cfg()
    fused = RLTAlgorithm(cfg)
    real_adam = torch.optim.Adam

    def adam_without_fused(params, **kw):
        if kw.get("fused"):
            raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of supported devices")
        return real_adam(params, **kw)

    monkeypatch.setattr(torch.optim, "Adam", adam_without_fused)
    fallback = RLTAlgorithm(cfg)
    assert not fallback.actor_opt.defaults["fused"] and fallback.actor_opt.defaults["foreach"]
    assert fused.actor_opt.defaults["fused"]
    for i in range(4):
        for alg in (fused, fallback):
            alg.update(random_batch(cfg, seed=i))
    for p, q in zip(fused.critics.parameters(), fallback.critics.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)
    for p, q in zip(fused.actor.parameters(), fallback.actor.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)
    resumed = RLTAlgorithm(small_cfg(seed=5))
    resumed.load_state_dict(fused.state_dict())
    resumed.update(random_batch(cfg, seed=50))
    assert resumed.num_updates == fused.num_updates + 1


def test_export_and_policy_input_errors():
    cfg = small_cfg()
    alg = RLTAlgorithm(cfg)
    weights, cfg_json = alg.export()
    pol = ActorPolicy.from_export(weights, cfg_json, expect=cfg)
    with pytest.raises(ValueError, match="token_dim"):
        ActorPolicy.from_export(weights, cfg_json, expect=small_cfg(token_dim=7))
    with pytest.raises(PolicyInputError, match="token_dim=6"):
        pol.act(np.zeros(5), np.zeros(3), np.zeros((10, 2)))
    with pytest.raises(PolicyInputError, match="H >= C"):
        pol.act(np.zeros(6), np.zeros(3), np.zeros((2, 2)))
    with pytest.raises(PolicyInputError, match="NaN"):
        pol.act(np.full(6, np.nan), np.zeros(3), np.zeros((10, 2)))


def test_rlt_config_validation():
    with pytest.raises(ValueError, match="stride"):
        RLTConfig(chunk_size=4, stride=8)
    with pytest.raises(ValueError, match="residual_actor"):
        RLTConfig(use_reference=False)
    with pytest.raises(ValueError, match="gamma"):
        RLTConfig(gamma=1.5)
    cfg = RLTConfig(actor_hidden=(512, 512, 512))
    assert RLTConfig.from_json(cfg.to_json()) == cfg


def test_action_stats_of_the_demos_critical_phase_set_the_normalisers_action_scale(tmp_path):
    from rlt_ros.core.rlt.action_stats import ActionStats, demo_action_stats, load_action_stats, store_action_stats
    from rlt_ros.core.rlt.modeling_actor_critic import Normalizer
    from rlt_ros.core.vla.training_builtin import DemoEpisode

    rng = np.random.default_rng(0)
    demos, critical = [], []
    for start in (5, 0, 9):
        actions = rng.normal(size=(12, 2)).astype(np.float32)
        actions[:start] += 50.0  # before the critical phase: not counted
        critical.append(actions[start:])
        demos.append(DemoEpisode(images={}, proprio=np.zeros((12, 3), np.float32), actions=actions,
                                 joint_names=("a", "b"), critical_start=start))
    unmarked = DemoEpisode(images={}, proprio=np.zeros((12, 3), np.float32), actions=np.full((12, 2), 9.0, np.float32))
    assert demo_action_stats([unmarked]) is None  # no marked critical phase: no statistics, not the whole episode
    stats = demo_action_stats(demos + [unmarked])
    rows = np.concatenate(critical).astype(np.float64)
    np.testing.assert_allclose(stats.mean, rows.mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats.std, rows.std(0), rtol=1e-6)
    assert (stats.episodes, stats.rows, stats.joint_names) == (3, len(rows), ("a", "b"))
    with pytest.raises(ValueError, match="critical_start"):
        DemoEpisode(images={}, proprio=np.zeros((4, 3), np.float32), actions=np.zeros((4, 2), np.float32),
                    critical_start=4)
    # stored beside the token's other metadata, read back; none stored -> None
    (tmp_path / "token_meta.json").write_text('{"embed_dim": 32}')
    assert load_action_stats(tmp_path) is None
    store_action_stats(tmp_path, stats)
    assert load_action_stats(tmp_path) == stats and "embed_dim" in (tmp_path / "token_meta.json").read_text()
    # of another arm: refused with the command that makes them
    with pytest.raises(ValueError, match="2 joints but the arm has 3.*--stats-only"):
        ActionStats(mean=(0.0,) * 2, std=(1.0,) * 2, episodes=1, rows=1).check_arm(3)
    with pytest.raises(ValueError, match="joints"):
        stats.check_arm(2, ("x", "y"))
    for bad in (dict(std=(0.0, 1.0)), dict(std=(1.0,)), dict(mean=(np.nan, 0.0))):
        with pytest.raises(ValueError, match="action statistics"):
            ActionStats(**{**dict(mean=(0.0, 0.0), std=(1.0, 1.0), episodes=1, rows=1), **bad})
    # the normaliser takes the demos' action scale, floored, and fits the state on the data it is given
    norm = Normalizer(token_dim=4, proprio_dim=3, action_dim=2, action_min_std=0.5)
    tokens = rng.normal(3.0, 2.0, size=(200, 4))
    norm.fit(tokens, rng.normal(size=(200, 3)), stats)
    np.testing.assert_allclose(norm.action_mean.numpy(), stats.mean, rtol=1e-5)
    np.testing.assert_allclose(norm.action_std.numpy(), np.maximum(stats.std, 0.5), rtol=1e-5)
    np.testing.assert_allclose(norm.token_mean.numpy(), tokens.mean(0), rtol=1e-5)
    with pytest.raises(ValueError, match="2 joints for 3"):
        Normalizer(token_dim=4, proprio_dim=3, action_dim=3).fit(tokens, np.zeros((200, 3)), stats)
