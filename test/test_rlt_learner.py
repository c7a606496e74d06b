"""RLT learner loop: UTD budget, background thread, latest-only weight queue, atomic checkpoints."""

import time

import numpy as np
import torch

from rlt_ros.core.rlt.configuration_rlt import RLTConfig
from rlt_ros.core.rlt.learner import LatestWeights, Learner, RLTAlgorithm, latest_checkpoint
from rlt_ros.core.rlt.policy import ActorPolicy
from rlt_ros.core.rlt.replay import ReplayBuffer, Transition

torch.set_num_threads(1)
T, P, C, A = 4, 3, 4, 2


def cfg(**kw):
    return RLTConfig(**{**dict(chunk_size=C, action_dim=A, token_dim=T, proprio_dim=P, actor_hidden=(16,),
                                critic_hidden=(16,), batch_size=8, warmup_transitions=20, utd=5,
                                critic_updates_per_actor=2, export_every=10), **kw})


def fill(rb, n, start=0):
    rng = np.random.default_rng(start)
    for i in range(start, start + n):
        r = lambda *s: rng.normal(size=s)  # noqa: E731
        rb.add(Transition(0, i, r(T), r(P), r(C, A), r(C, A), np.zeros(C), False, r(T), r(P), r(C, A)))


def test_latest_weights_keeps_only_the_newest():
    q = LatestWeights()
    assert q.get() is None
    q.put(1, b"a", "{}")
    q.put(2, b"b", "{}")
    assert q.get() == (2, b"b", "{}") and q.get() is None


def test_utd_budget_and_critic_actor_ratio():
    rb = ReplayBuffer(T, P, C, A)
    learner = Learner(RLTAlgorithm(cfg()), rb)
    fill(rb, 10)
    assert not learner.ready() and learner.catch_up() == 0  # below warm-up: no updates
    assert learner.progress() == {"pending_updates": 0.0, "utd_achieved": 0.0}
    fill(rb, 15, start=10)
    assert learner.progress() == {"pending_updates": 125.0, "utd_achieved": 0.0}  # behind by the warm-up budget
    learner.run_updates(50)
    assert learner.progress() == {"pending_updates": 75.0, "utd_achieved": 2.0}
    assert learner.catch_up() == 5 * 25 - 50
    assert learner.algorithm.num_updates == 125 and learner.algorithm.num_actor_updates == 62
    assert bool(learner.algorithm.normalizer.fitted)
    fill(rb, 2, start=25)
    assert learner.catch_up() == 10


def test_behind_only_past_the_warm_up_budget():
    rb = ReplayBuffer(T, P, C, A)
    learner = Learner(RLTAlgorithm(cfg()), rb)
    fill(rb, 25)
    learner.run_updates(50)  # 75 updates pending, UTD 2 of 5, but still spending its warm-up budget
    assert not learner.behind(min_pending=10)
    learner.run_updates(75)
    fill(rb, 20, start=25)  # the data outrun the learner: 100 pending, UTD 125 / 45 = 2.8 of 5
    assert learner.behind(min_pending=10) and not learner.behind(min_pending=100)
    learner.catch_up()
    assert not learner.behind(min_pending=10)


def test_no_weights_leave_before_the_warm_up_budget_is_spent(tmp_path):
    rb = ReplayBuffer(T, P, C, A)
    learner = Learner(RLTAlgorithm(cfg()), rb, checkpoint_dir=tmp_path)
    fill(rb, 30)  # training starts with a budget of 5 x 30 = 150 updates
    learner.run_updates(130)  # a learner slower than the data: the acting side must keep the VLA's chunk
    assert learner.weights.get() is None
    learner.save()  # stopped during its warm-up and restarted: it still holds its weights back
    learner = Learner(RLTAlgorithm(cfg()), rb, checkpoint_dir=tmp_path)
    learner.resume()
    learner.run_updates(10)
    assert learner.weights.get() is None and learner.algorithm.num_updates == 140
    learner.run_updates(10)
    assert learner.weights.get()[0] == 150  # the first weights: the warm-up budget spent, not a multiple of 10
    fill(rb, 4, start=30)
    learner.catch_up()
    assert learner.weights.get()[0] == 170  # then every export_every updates
    learner.save()
    resumed = Learner(RLTAlgorithm(cfg()), rb, checkpoint_dir=tmp_path)
    resumed.resume()  # a restarted learner's actor is trained already: it exports at once
    resumed.run_updates(10)
    assert resumed.weights.get()[0] == 180


def test_background_thread_spends_budget_and_exports(tmp_path):
    rb = ReplayBuffer(T, P, C, A)
    learner = Learner(RLTAlgorithm(cfg()), rb, checkpoint_dir=tmp_path, checkpoint_every=50,
                      actor_dir=tmp_path / "actor")
    fill(rb, 30)
    learner.start()
    try:
        deadline = time.time() + 60
        while learner.algorithm.num_updates < 150 and time.time() < deadline:
            time.sleep(0.01)
        fill(rb, 4, start=30)  # the acting side keeps adding while the thread learns
        while learner.algorithm.num_updates < 170 and time.time() < deadline:
            time.sleep(0.01)
    finally:
        learner.stop()
    assert learner.algorithm.num_updates == 170  # exactly utd x transitions, never more
    version, weights, cfg_json = learner.weights.get()
    assert version == 170
    policy = ActorPolicy.from_export(weights, cfg_json, expect=learner.cfg)
    assert policy.act(np.zeros(T), np.zeros(P), np.zeros((C, A))).shape == (C, A)
    ckpt = latest_checkpoint(tmp_path)
    assert ckpt is not None and ckpt.name == "checkpoint-000000150"
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary leftovers
    from rlt_ros.core.control import load_policy_file  # each checkpoint also left the actor for actor.initial_weights
    assert load_policy_file(str(tmp_path / "actor"), learner.cfg).act(np.zeros(T), np.zeros(P), np.zeros((C, A))).shape == (C, A)


def _poison(kind):
    """An update that leaves the networks divergent: NaN parameters, a parameter norm blown up, or a huge loss."""
    def update(alg, original):
        def poisoned(batch):
            out = original(batch)
            with torch.no_grad():
                if kind == "nan":
                    alg.actor.parameters().__next__().fill_(float("nan"))
                elif kind == "norm":
                    for p in alg.critics.parameters():
                        p.mul_(1e3)
                else:
                    alg.stats["critic_loss"] = 1e9
            return out
        return poisoned
    return update


def _params(alg):
    return [p.detach().clone() for name in ("actor", "critics") for p in getattr(alg, name).parameters()]


def test_a_divergent_update_is_never_exported_and_rolls_back(tmp_path):
    """NaN parameters, an exploding parameter norm or critic loss: the export is withheld, the networks roll
    back to the last good state (the update count goes on), the checkpoint holds the good state; a learner
    resumed from a poisoned checkpoint (made before the guard) refuses to start."""
    for kind in ("nan", "norm", "loss"):
        rb = ReplayBuffer(T, P, C, A)
        learner = Learner(RLTAlgorithm(cfg(warmup_transitions=8, utd=1)), rb, checkpoint_dir=tmp_path / kind)
        fill(rb, 10)
        learner.run_updates(20)
        assert learner.weights.get()[0] == 20
        good = _params(learner.algorithm)
        alg = learner.algorithm
        original = alg.update
        alg.update = _poison(kind)(alg, original)
        learner.run_updates(10)  # the poisoned update reaches the export at 30
        assert learner.weights.get() is None and learner.rollbacks == 1 and learner.stats["rollbacks"] == 1
        assert all(torch.equal(a, b) for a, b in zip(good, _params(alg))) and alg.num_updates == 30
        alg.update = original
        learner.run_updates(10)  # training goes on from the good state
        version, weights, cfg_json = learner.weights.get()
        assert version == 40
        assert np.all(np.isfinite(ActorPolicy.from_export(weights, cfg_json).act(np.zeros(T), np.zeros(P),
                                                                                   np.zeros((C, A)))))
        alg.update = _poison(kind)(alg, original)
        learner.run_updates(1)
        learner.save()  # shutdown during a divergence: the good state is saved
        assert learner.rollbacks == 2
        resumed = Learner(RLTAlgorithm(cfg()), rb, checkpoint_dir=tmp_path / kind)
        resumed.resume()
        assert np.isfinite(resumed.algorithm.parameter_norm())
        assert resumed.algorithm.parameter_norm() < 2 * learner._good_norm
    import pytest
    from rlt_ros.core.rlt.learner import save_checkpoint
    with torch.no_grad():
        alg.actor.parameters().__next__().fill_(float("nan"))
    save_checkpoint(tmp_path / "old", alg)  # what the learner wrote before it had the guard
    with pytest.raises(ValueError, match="non-finite parameters"):
        Learner(RLTAlgorithm(cfg()), rb, checkpoint_dir=tmp_path / "old").resume()
