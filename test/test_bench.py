"""The benchmarks' parts that run in seconds: sample_efficiency.py's run commands, per-seed table and the simulated
operator's own critical phase; critic_probe.py on a tiny run folder."""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import sample_efficiency as se  # noqa: E402


def test_job_command_carries_the_task_and_the_arm():
    args = argparse.Namespace(eval_episodes=80, critical_timeout=12.0, minutes=90.0, episodes=250, vla=None,
                              token="tok", intervene_after=0.0, rlt=[], task="hard", device="cpu")
    cmd = se.job_command("no_token", 5, args, Path("/tmp/x"))
    # the no-token arm reads only the token folder's action statistics (the same action scale as RLT)
    assert cmd[cmd.index("--episodes") + 1] == "250" and cmd[cmd.index("--token") + 1] == "tok"
    assert cmd[-4:] == ["--sim", "chamfer_mm=1.0", "--state", "image"] and "clearance_mm=0.3" in cmd
    base = se.job_command("base", 5, argparse.Namespace(**{**vars(args), "task": "default"}), Path("/tmp/x"))
    assert "--base" in base and "--sim" not in base and base[base.index("--episodes") + 1] == "1"


def test_per_seed_table_marks_the_held_out_seeds():
    runs = {("rlt", 0): {"summary": {"eval": {"success_rate": 0.9, "critical_phase_s": 3.4}}},
            ("rlt", 5): {"summary": {"eval": {"success_rate": 0.95, "critical_phase_s": 3.2}}},
            ("rlt", 6): {"summary": {"eval": {"success_rate": 0.85, "critical_phase_s": None}}}}
    head, _, row = se.per_seed_table(runs, ["rlt"], [0, 5, 6])
    assert "seed 5 (held out)" in head and "seed 0 (held out)" not in head
    # the held-out mean: success over both held-out seeds, critical phase over those that had successes
    assert row == "| rlt | 90% / 3.40 s | 95% / 3.20 s | 85% / - | 90.0% / 3.20 s |"


def test_the_operator_reference_runs_the_task_variant_and_counts_the_operators_timeout():
    hard = se.operator_reference("hard", 2, critical_timeout=12.0)
    assert set(hard) == {"demonstrator", "teleoperator"}
    assert hard["teleoperator"]["success_rate"] == 1.0 and hard["teleoperator"]["critical_phase_s"] < \
        hard["demonstrator"]["critical_phase_s"]
    # a critical phase longer than the operator's patience is a failure, as in the benchmark's runs
    assert se.operator_reference("hard", 2, critical_timeout=1.0)["demonstrator"] == \
        {"success_rate": 0.0, "critical_phase_s": None}


def test_the_critic_probe_shifts_one_joint_and_prices_a_millimetre(tmp_path):
    import json

    import numpy as np

    import critic_probe
    from rlt_ros.core.rlt.configuration_rlt import RLTConfig
    from rlt_ros.core.rlt.learner import RLTAlgorithm, save_checkpoint
    from rlt_ros.core.rlt.replay import SOURCE_RL, SOURCE_VLA, ReplayBuffer, Transition

    cfg = RLTConfig(chunk_size=4, action_dim=3, token_dim=6, proprio_dim=3, actor_hidden=(16,), critic_hidden=(16,))
    algorithm = RLTAlgorithm(cfg)
    algorithm.normalizer.action_std.fill_(0.01)
    save_checkpoint(tmp_path / "checkpoints", algorithm)
    (tmp_path / "config.json").write_text(json.dumps({"rlt": cfg.to_dict()}))
    replay = ReplayBuffer(6, 3, 4, 3, directory=tmp_path / "replay")
    rng = np.random.default_rng(0)
    for episode, (index, source) in enumerate([(0, SOURCE_VLA), (0, SOURCE_RL), (2, SOURCE_RL), (0, SOURCE_RL)]):
        chunk = lambda: rng.normal(size=(4, 3)).astype(np.float32)  # noqa: E731
        replay.add(Transition(episode, index, rng.normal(size=6).astype(np.float32), rng.normal(size=3).astype(np.float32),
                              chunk(), chunk(), np.zeros(4, np.float32), False, rng.normal(size=6).astype(np.float32),
                              rng.normal(size=3).astype(np.float32), chunk(), source=source))
    replay.close()
    res = critic_probe.probe(tmp_path, transitions=10, lever_m=0.5)
    assert res["states"] == 2  # the first window of each RL episode, not the VLA's nor a later one
    assert len(res["joints"]) == 3 and res["beta"] == cfg.beta
    for joint in res["joints"]:
        assert joint["mean_dq"][0.0] == 0.0 and np.isfinite(list(joint["mean_dq"].values())).all()
        assert joint["abs_dq_1mm"] >= 0.0
        # 1 mm at 0.5 m is 2 mrad = 0.2 normalised units on every step of the chunk: beta * C * 0.2^2
        assert abs(joint["beta_cost_1mm"] - cfg.beta * 4 * 0.2 ** 2) < 1e-6
