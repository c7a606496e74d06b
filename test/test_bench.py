"""bench/sample_efficiency.py's pure parts: the run commands of an arm and task, the per-seed table, and the
simulated operator's own critical phase."""

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
    assert cmd[cmd.index("--episodes") + 1] == "250" and "--token" not in cmd
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
