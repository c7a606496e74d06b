"""RLT learner internals: stacked critics (equivalence with separate networks, old checkpoints), the device
option, the replay's tensor mirror, statistics read back every N updates, non-finite batches and steps."""

import copy
import io
import logging

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from rlt_ros.core.rlt.configuration_rlt import RLTConfig
from rlt_ros.core.rlt.learner import (Learner, RLTAlgorithm, latest_checkpoint, load_checkpoint, resolve_device,
                                      save_checkpoint)
from rlt_ros.core.rlt.modeling_actor_critic import Critics, mlp
from rlt_ros.core.rlt.policy import ActorPolicy
from rlt_ros.core.rlt.replay import Batch, ReplayBuffer, TensorReplay, Transition

torch.set_num_threads(1)
T, P, C, A = 6, 3, 4, 2
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def small_cfg(**kw):
    base = dict(chunk_size=C, action_dim=A, token_dim=T, proprio_dim=P, actor_hidden=(32, 32), critic_hidden=(32, 32),
                batch_size=16, warmup_transitions=20, stride=2, export_every=10)
    return RLTConfig(**{**base, **kw})


def random_batch(cfg, b=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    c, a = cfg.chunk_size, cfg.action_dim
    return Batch(r(b, cfg.token_dim), r(b, cfg.proprio_dim), r(b, c, a), r(b, c, a), torch.rand(b, c, generator=g),
                 (torch.rand(b, generator=g) < 0.3).float(), r(b, cfg.token_dim), r(b, cfg.proprio_dim), r(b, c, a),
                 torch.zeros(b, dtype=torch.bool))


def fill(rb, n, start=0, episode=0):
    rng = np.random.default_rng(start)
    for i in range(start, start + n):
        r = lambda *s: rng.normal(size=s)  # noqa: E731
        rb.add(Transition(episode, 2 * i, r(T), r(P), r(C, A), r(C, A), np.zeros(C), False, r(T), r(P), r(C, A)))


class SeparateCritics(nn.Module):
    """The critics as they were before stacking (K nn.Sequential MLPs in a ModuleList, a Python loop): the
    reference the stacked module must match, and the layout of older checkpoints (keys qs.<j>.<i>.*)."""

    def __init__(self, cfg):
        super().__init__()
        inp = cfg.token_dim + cfg.proprio_dim + cfg.chunk_flat
        self.qs = nn.ModuleList(mlp(inp, cfg.critic_hidden, 1, cfg.critic_layer_norm) for _ in range(cfg.num_critics))

    def forward(self, token, proprio, action):
        x = torch.cat([token, proprio, action], dim=-1)
        return torch.stack([q(x).squeeze(-1) for q in self.qs])


def _params_of(module):
    return [p.detach().clone() for p in module.parameters()]


# ---- stacked critics ------------------------------------------------------------------------------
@pytest.mark.parametrize("layer_norm,num_critics", [(True, 2), (False, 2), (True, 3)])
def test_stacked_critics_match_separate_networks(layer_norm, num_critics):
    """On the same weights: the same Q values, the same TD loss and the same gradients (slice j of each
    stacked gradient = the gradient of critic j's own parameter), and the same initialisation."""
    cfg = small_cfg(critic_layer_norm=layer_norm, num_critics=num_critics)
    torch.manual_seed(3)
    separate = SeparateCritics(cfg)
    torch.manual_seed(3)
    stacked = Critics(cfg)
    for name, (index, attr) in stacked.legacy_names().items():  # the same numbers drawn at initialisation
        expected = Critics.stack([getattr(q[index], attr).detach() for q in separate.qs])
        torch.testing.assert_close(getattr(stacked, name).detach(), expected, rtol=0, atol=0)
    with torch.no_grad():  # fixed weights that are not the initial ones
        for p in separate.parameters():
            p.add_(0.1 * torch.randn_like(p))
    stacked.load_state_dict(separate.state_dict())  # the old layout converts on load
    nb = RLTAlgorithm(cfg).normalise(random_batch(cfg, b=32, seed=1))
    y = torch.rand(32)
    q_sep = separate(nb["token"], nb["proprio"], nb["action"])
    q_st = stacked(nb["token"], nb["proprio"], nb["action"])
    assert q_st.shape == (num_critics, 32)
    torch.testing.assert_close(q_st, q_sep, rtol=1e-5, atol=1e-6)
    loss_sep = (q_sep - y).square().mean(dim=1).sum()
    loss_st = (q_st - y).square().mean(dim=1).sum()
    torch.testing.assert_close(loss_st, loss_sep, rtol=1e-6, atol=1e-7)
    loss_sep.backward()
    loss_st.backward()
    for name, (index, attr) in stacked.legacy_names().items():
        expected = Critics.stack([getattr(q[index], attr).grad for q in separate.qs])
        torch.testing.assert_close(getattr(stacked, name).grad, expected, rtol=1e-5, atol=1e-6)
    # the actor loss's pass: the same values, a gradient in the action only
    act = nb["action"].clone().requires_grad_(True)
    q_act = stacked.action_values(nb["token"], nb["proprio"], act)
    torch.testing.assert_close(q_act, q_st.detach(), rtol=1e-5, atol=1e-6)
    stacked.zero_grad(set_to_none=True)
    (g_st,) = torch.autograd.grad(q_act.mean(0).sum(), act)
    act2 = nb["action"].clone().requires_grad_(True)
    (g_sep,) = torch.autograd.grad(separate(nb["token"], nb["proprio"], act2).mean(0).sum(), act2)
    torch.testing.assert_close(g_st, g_sep, rtol=1e-5, atol=1e-6)
    assert all(p.grad is None for p in stacked.parameters())


def _legacy_state(alg: RLTAlgorithm) -> dict:
    """``alg.state_dict()`` as an algorithm with separate critic networks would have saved it (a copy: a
    state_dict shares its tensors with the live optimiser)."""
    state = torch.load(io.BytesIO(_saved(alg)), weights_only=False)
    names = alg.critics.legacy_names()
    for part in ("critics", "critics_target"):
        old = {}
        for name, (index, attr) in names.items():
            stacked = state[part][name]
            stacked = stacked.transpose(1, 2) if stacked.ndim == 3 else stacked
            for j in range(alg.cfg.num_critics):
                old[f"qs.{j}.{index}.{attr}"] = stacked[j].contiguous()
        state[part] = old
    opt = copy.deepcopy(state["critic_opt"])
    per_critic = len(names)
    old_state = {}
    for n, moments in opt["state"].items():
        for j in range(alg.cfg.num_critics):
            old_state[j * per_critic + n] = {k: (v.transpose(1, 2)[j].contiguous() if v.ndim == 3 else v[j].clone())
                                             if k in ("exp_avg", "exp_avg_sq") else v.clone() for k, v in moments.items()}
    opt["state"] = old_state
    opt["param_groups"] = [{**g, "params": list(range(per_critic * alg.cfg.num_critics))} for g in opt["param_groups"]]
    state["critic_opt"] = opt
    return state


def test_a_checkpoint_with_separate_critic_networks_loads_and_continues(tmp_path):
    """An older checkpoint (separate critic networks, their Adam moments per network) loads into the stacked
    critics, by state dict and from a checkpoint folder, and training continues exactly as it would have."""
    cfg = small_cfg(warmup_transitions=0)
    ref = RLTAlgorithm(cfg, stats_every=1)
    for i in range(4):
        ref.update(random_batch(cfg, seed=i))
    legacy = _legacy_state(ref)
    assert any(k.startswith("qs.0.") for k in legacy["critics"]) and len(legacy["critic_opt"]["state"]) > 0
    # the legacy layout is what SeparateCritics' state_dict holds
    assert set(legacy["critics"]) == set(SeparateCritics(cfg).state_dict())
    by_state = RLTAlgorithm(small_cfg(warmup_transitions=0, seed=5), stats_every=1)
    by_state.load_state_dict(legacy)
    save_checkpoint(tmp_path, ref)
    ckpt = latest_checkpoint(tmp_path)
    tensors = load_file(str(ckpt / "model.safetensors"))  # rewrite the folder in the old layout
    tensors = {k: v for k, v in tensors.items() if not k.startswith("critics")}
    tensors.update({f"{part}.{k}": v for part in ("critics", "critics_target") for k, v in legacy[part].items()})
    save_file(tensors, str(ckpt / "model.safetensors"))
    opt = torch.load(ckpt / "optimizer.pt", weights_only=False)
    opt["critic_opt"] = legacy["critic_opt"]
    torch.save(opt, ckpt / "optimizer.pt")
    by_folder = RLTAlgorithm(small_cfg(warmup_transitions=0, seed=6), stats_every=1)
    load_checkpoint(tmp_path, by_folder)
    for alg in (ref, by_state, by_folder):
        for i in range(3):
            alg.update(random_batch(cfg, seed=50 + i))
    for other in (by_state, by_folder):
        for name in ("critics", "critics_target", "actor"):
            for p, q in zip(getattr(ref, name).parameters(), getattr(other, name).parameters()):
                torch.testing.assert_close(p, q)


# ---- non-finite data --------------------------------------------------------------------------------
def _snapshot(alg):
    return {name: _params_of(getattr(alg, name)) for name in alg.modules()}, copy.deepcopy(alg.critic_opt.state_dict())


def _assert_unchanged(alg, snap):
    params, opt = snap
    for name, before in params.items():
        for p, q in zip(before, getattr(alg, name).parameters()):
            assert torch.equal(p, q), name
    for k, v in opt["state"].items():
        for key, t in v.items():
            assert torch.equal(t, alg.critic_opt.state_dict()["state"][k][key]), key


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("field,value", [("token", float("nan")), ("rewards", float("nan")),
                                         ("next_proprio", float("inf")), ("reference", -float("inf"))])
def test_a_nonfinite_batch_never_reaches_an_optimiser_step(field, value, fused, monkeypatch, caplog):
    """A NaN/inf anywhere in the batch (also where the normaliser's clip would hide an inf): the critic and
    actor steps and their Polyak steps are skipped, the batch counted and logged; then training goes on.
    ``fused``: the fused Adam skips on the device; the multi-tensor fallback skips on the host."""
    if not fused:
        real_adam = torch.optim.Adam
        monkeypatch.setattr(torch.optim, "Adam", lambda params, **kw: real_adam(params, **{**kw, "fused": None}))
    cfg = small_cfg(critic_updates_per_actor=1)
    alg = RLTAlgorithm(cfg, stats_every=1)
    alg.update(random_batch(cfg, seed=0))  # the optimisers hold a state
    snap = _snapshot(alg)
    bad = random_batch(cfg, seed=1)
    getattr(bad, field).view(-1)[3] = value
    with caplog.at_level(logging.WARNING, logger="rlt_ros.core.rlt.learner"):
        stats = alg.update(bad)
    _assert_unchanged(alg, snap)
    assert stats["nonfinite_batches"] == 1 and stats["skipped_steps"] == 2  # the critic and the actor step
    assert "NaN/inf" in caplog.text
    stats = alg.update(random_batch(cfg, seed=2))
    assert stats["nonfinite_batches"] == 1 and stats["skipped_steps"] == 2
    assert not torch.equal(snap[0]["critics"][0], alg.critics.weight_0)  # a finite batch steps again


def test_a_nonfinite_loss_skips_the_step_and_is_counted(monkeypatch):
    cfg = small_cfg(critic_updates_per_actor=2)
    alg = RLTAlgorithm(cfg, stats_every=1)
    alg.update(random_batch(cfg, seed=0))
    snap = _snapshot(alg)
    real = alg.critic_loss
    monkeypatch.setattr(alg, "critic_loss", lambda nb, with_stats=True: (lambda out: (out[0] * float("inf"), out[1]))(
        real(nb, with_stats)))
    stats = alg.update(random_batch(cfg, seed=1))  # a critic step only (the 2nd update)... with an inf loss
    assert stats["skipped_steps"] == 1 and stats["nonfinite_batches"] == 0
    params, _ = snap
    for p, q in zip(params["critics"], alg.critics.parameters()):
        assert torch.equal(p, q)
    for p, q in zip(params["critics_target"], alg.critics_target.parameters()):
        assert torch.equal(p, q)
    assert alg.read_stats()["skipped_steps"] == 1
    state = alg.state_dict()  # the counters are checkpointed
    assert state["counters"]["skipped_steps"] == 1


# ---- statistics ------------------------------------------------------------------------------------
def test_statistics_are_read_back_every_n_updates():
    cfg = small_cfg(critic_updates_per_actor=2)
    alg = RLTAlgorithm(cfg, stats_every=3)
    s1 = alg.update(random_batch(cfg, seed=0))
    s2 = alg.update(random_batch(cfg, seed=1))
    assert "critic_loss" not in s1 and "critic_loss" not in s2 and s2["updates"] == 2
    s3 = alg.update(random_batch(cfg, seed=2))  # read back: the critic's statistics of update 3
    assert {"critic_loss", "q_mean", "target_mean", "nonfinite_batches", "skipped_steps"} <= set(s3)
    assert "actor_loss" not in s3  # update 3 had no actor step: its statistics come with the next one
    s4 = alg.update(random_batch(cfg, seed=3))
    assert s4["critic_loss"] == s3["critic_loss"] and "actor_loss" not in s4
    s6 = [alg.update(random_batch(cfg, seed=i)) for i in (4, 5)][-1]
    assert {"actor_loss", "actor_q", "ref_deviation", "mu_deviation"} <= set(s6)
    assert all(isinstance(v, float) for v in s6.values() if not isinstance(v, int))
    assert np.isfinite(s6["critic_loss"]) and s6["critic_loss"] != s3["critic_loss"]
    with pytest.raises(ValueError, match="stats_every"):
        RLTAlgorithm(cfg, stats_every=0)


# ---- the replay's tensor mirror ---------------------------------------------------------------------
def test_tensor_replay_mirrors_the_ring_normalised_and_follows_episode_ends():
    cfg = small_cfg()
    alg = RLTAlgorithm(cfg)
    rb = ReplayBuffer(T, P, C, A, capacity=12)
    fill(rb, 5, episode=0)
    rng = np.random.default_rng(0)
    alg.normalizer.fit(rng.normal(2, 3, size=(50, T)), rng.normal(size=(50, P)), rng.normal(1, 2, size=(50, A)))
    mirror = TensorReplay(rb, alg.normalise_fields, alg.device)
    assert mirror.sync() == 5 and mirror.sync() == 0  # nothing changed: nothing copied

    def check():
        data = rb._data[: len(rb)]
        raw = {k: torch.from_numpy(np.ascontiguousarray(data[k], np.float32)) for k in TensorReplay.NORMALISED}
        expected = alg.normalise_fields(raw)
        for k in TensorReplay.NORMALISED:
            got = mirror.store[: len(rb), mirror.columns[k]].reshape(expected[k].shape)
            torch.testing.assert_close(got, expected[k])
        torch.testing.assert_close(mirror.store[: len(rb), mirror.columns["rewards"]],
                                   torch.from_numpy(np.ascontiguousarray(data["rewards"])))
        torch.testing.assert_close(mirror.store[: len(rb), mirror.columns["done"]].squeeze(1),
                                   torch.from_numpy(np.ascontiguousarray(data["done"], np.float32)))

    check()
    rb.end_episode(0, 1.0)  # the terminal reward attached after the fact reaches the mirror
    assert mirror.sync() >= 1
    check()
    assert mirror.store[: 5, mirror.columns["done"]].sum() >= 1
    fill(rb, 10, start=5, episode=1)  # the ring wraps
    mirror.sync()
    check()
    batch = mirror.sample(64, torch.Generator().manual_seed(0))
    assert batch.normalized and bool(batch.finite) and batch.reference.shape == (64, C, A)
    assert batch.done.shape == (64,) and batch.intervention.dtype == torch.bool
    nb = alg.normalise(batch)  # a normalised batch is only reshaped
    assert nb["ref"].shape == (64, C * A)
    with pytest.raises(Exception, match="empty"):
        TensorReplay(ReplayBuffer(T, P, C, A), alg.normalise_fields).sample(4, torch.Generator())


def test_learner_samples_from_the_mirror_built_when_training_starts(tmp_path):
    cfg = small_cfg(batch_size=8, utd=2)
    rb = ReplayBuffer(T, P, C, A)
    learner = Learner(RLTAlgorithm(cfg, device="cpu"), rb, checkpoint_dir=tmp_path)
    fill(rb, 25)
    assert learner.mirror is None
    learner.catch_up()
    assert learner.mirror is not None and learner.mirror.size == 25 and learner.algorithm.num_updates == 50
    fill(rb, 3, start=25)
    learner.catch_up()
    assert learner.mirror.size == 28 and learner.algorithm.num_updates == 56
    learner.save()
    learner.resume()  # a loaded normaliser: the mirror is rebuilt with it when training goes on
    assert learner.mirror is None


# ---- device option ---------------------------------------------------------------------------------
def test_device_option_resolves_and_fails_early_naming_the_devices(caplog):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    for bad in ("tpu", "gpu", "cuda:x"):
        with pytest.raises(ValueError, match="auto, cpu, cuda or cuda:N"):
            resolve_device(bad)
    if torch.cuda.is_available():
        assert resolve_device("auto").type == "cuda"
        with pytest.raises(ValueError, match="devices found: cpu, cuda:0"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
        return
    with caplog.at_level(logging.INFO, logger="rlt_ros.core.rlt.learner"):
        assert resolve_device("auto") == torch.device("cpu")
    assert "no CUDA device found" in caplog.text and "runs on the CPU" in caplog.text
    for spec in ("cuda", "cuda:0", "CUDA:1"):
        with pytest.raises(ValueError, match="devices found: cpu"):
            resolve_device(spec)
    with pytest.raises(ValueError, match="devices found: cpu"):
        RLTAlgorithm(small_cfg(), device="cuda")  # at construction, before any update


def test_checkpoint_round_trip_with_the_device_option(tmp_path):
    """A learner with an explicit device saves; one with 'auto' (here the CPU) resumes and continues exactly;
    the exported actor runs on a CPU actor; a generator state of another device type is reseeded, not an error."""
    cfg = small_cfg(warmup_transitions=0)
    a1 = RLTAlgorithm(cfg, device="cpu", stats_every=1)
    for i in range(3):
        a1.update(random_batch(cfg, seed=i))
    save_checkpoint(tmp_path, a1)
    a2 = RLTAlgorithm(small_cfg(warmup_transitions=0, seed=4), device="auto", stats_every=1)
    load_checkpoint(tmp_path, a2)
    for alg in (a1, a2):
        alg.update(random_batch(cfg, seed=10))
    for p, q in zip(a1.actor.parameters(), a2.actor.parameters()):
        torch.testing.assert_close(p, q)
    policy = ActorPolicy.from_export(*a2.export(), expect=cfg)
    assert policy.act(np.zeros(T), np.zeros(P), np.zeros((C, A))).shape == (C, A)
    state = torch.load(io.BytesIO(_saved(a1)), weights_only=False, map_location="cpu")
    state["generator"] = torch.zeros(16, dtype=torch.uint8)  # a CUDA (Philox) generator's state
    state["generator_device"] = "cuda"
    a3 = RLTAlgorithm(small_cfg(warmup_transitions=0), device="cpu")
    a3.load_state_dict(state)
    assert a3.num_updates == a1.num_updates
    a3.update(random_batch(cfg, seed=11))


def _saved(alg) -> bytes:
    buf = io.BytesIO()
    torch.save(alg.state_dict(), buf)
    return buf.getvalue()


# ---- CUDA path (skipped without CUDA) -------------------------------------------------------------------
@needs_cuda
def test_cuda_learner_trains_on_the_device_and_its_checkpoint_loads_on_the_cpu(tmp_path):
    cfg = small_cfg(batch_size=8, utd=2)
    rb = ReplayBuffer(T, P, C, A)
    learner = Learner(RLTAlgorithm(cfg, device="cuda", stats_every=1000), rb, checkpoint_dir=tmp_path)
    fill(rb, 25)
    learner.catch_up()
    alg = learner.algorithm
    assert alg.device.type == "cuda" and learner.mirror.store.is_cuda
    assert all(p.is_cuda for p in alg.critics.parameters()) and alg.normalizer.action_std.is_cuda
    assert learner.mirror.sample(8, learner.sample_generator).token.is_cuda
    torch.cuda.set_sync_debug_mode("error")  # an update (between read-backs) never waits for the GPU
    try:
        for _ in range(4):
            alg.update(learner.mirror.sample(8, learner.sample_generator))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    bad = random_batch(cfg)
    bad.token[0, 0] = float("nan")
    before = alg.critics.weight_0.detach().clone()
    alg.update(bad)
    assert torch.equal(before, alg.critics.weight_0) and alg.read_stats()["nonfinite_batches"] == 1
    learner.save()
    cpu = RLTAlgorithm(cfg, device="cpu")
    load_checkpoint(tmp_path, cpu)
    for p, q in zip(alg.actor.parameters(), cpu.actor.parameters()):
        torch.testing.assert_close(p.cpu(), q)
    cpu.update(random_batch(cfg))
    policy = ActorPolicy.from_export(*alg.export(), expect=cfg)  # a CUDA-trained actor on a CPU actor node
    assert policy.act(np.zeros(T), np.zeros(P), np.zeros((C, A))).shape == (C, A)
    back = RLTAlgorithm(cfg, device="cuda")
    load_checkpoint(tmp_path, back)
    back.update(random_batch(cfg))


# ---- the GPU check script, in its CPU smoke mode -------------------------------------------------------
def test_gpu_check_script_tiny_on_the_cpu(tmp_path):
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "learner_gpu_check.py"
    spec = importlib.util.spec_from_file_location("learner_gpu_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    try:
        assert module.main(["--device", "cpu", "--tiny", "--out", str(tmp_path), "--machine", "ci",
                            "--batch-sizes", "32"]) == 0
    finally:
        torch.set_num_threads(threads)
    result = json.loads((tmp_path / "learner_speed_ci.json").read_text())
    assert result["device"] == "cpu" and result["checks"] == {"nan_batch_skipped": True, "checkpoint_loads_on_cpu": True}
    (row,) = result["learner"]
    assert row["updates_per_s"] > 0 and set(row["breakdown_ms"]) >= {"sample", "critic_step", "actor_step"}
    if not torch.cuda.is_available():  # asked for a GPU that is not there: a clear error, no results file
        with pytest.raises(ValueError, match="devices found: cpu"):
            module.main(["--device", "cuda", "--tiny", "--out", str(tmp_path / "none")])
        assert not (tmp_path / "none").exists()


# ---- the static-buffer path the CUDA graphs capture -------------------------------------------------------
def test_the_static_update_path_equals_the_eager_one():
    """What the CUDA graphs hold (fixed input buffers, gradients zeroed in place, the skip flag at a fixed
    address), run eagerly on the CPU: the same parameters, statistics and skip counts as the plain update; a
    batch of another size takes the plain path; a loaded state keeps the path; cuda_graph needs CUDA."""
    cfg = small_cfg(critic_updates_per_actor=2, warmup_transitions=0)
    eager, static = RLTAlgorithm(cfg, stats_every=3), RLTAlgorithm(cfg, stats_every=3)
    static._use_static_path("static")
    for i in range(7):
        batch = random_batch(cfg, b=cfg.batch_size, seed=i)
        if i == 4:
            batch.rewards[0, 0] = float("nan")
        s1, s2 = eager.update(batch), static.update(batch)
        assert {k: s2[k] for k in s1} == s1  # (the static path has every statistic at each read-back)
    eager.update(random_batch(cfg, b=5, seed=9))
    static.update(random_batch(cfg, b=5, seed=9))  # another batch size: the plain path
    for name in static.modules():
        for p, q in zip(getattr(eager, name).parameters(), getattr(static, name).parameters()):
            assert torch.equal(p, q), name
    assert static.read_stats()["nonfinite_batches"] == 1 == eager.read_stats()["nonfinite_batches"]
    resumed = RLTAlgorithm(small_cfg(warmup_transitions=0, seed=3), stats_every=3)
    resumed._use_static_path("static")
    resumed.load_state_dict(torch.load(io.BytesIO(_saved(static)), weights_only=False))
    for alg in (static, resumed):
        alg.update(random_batch(cfg, b=cfg.batch_size, seed=20))
    for p, q in zip(static.actor.parameters(), resumed.actor.parameters()):
        assert torch.equal(p, q)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="cuda_graph needs a CUDA device"):
            RLTAlgorithm(cfg, cuda_graph=True)


@needs_cuda
def test_cuda_graph_updates_train_without_host_syncs():
    cfg = small_cfg(batch_size=8, warmup_transitions=0)
    alg = RLTAlgorithm(cfg, device="cuda", stats_every=1000, cuda_graph=True)
    batch = random_batch(cfg, b=8)
    for _ in range(RLTAlgorithm.GRAPH_WARMUP + 2):
        alg.update(batch)
    assert alg._graphs is not None  # captured
    before = alg.critics.weight_0.detach().clone()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(4):
            alg.update(batch)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    stats = alg.read_stats()
    assert not torch.equal(before, alg.critics.weight_0) and np.isfinite(stats["critic_loss"])
    bad = random_batch(cfg, b=8)
    bad.token[0, 0] = float("nan")
    before = alg.critics.weight_0.detach().clone()
    alg.update(bad)
    assert torch.equal(before, alg.critics.weight_0) and alg.read_stats()["nonfinite_batches"] == 1
