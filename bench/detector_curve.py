"""The learned success detector against the number of labelled training episodes (docs/experiments.md section 6).

    python bench/detector_curve.py --bags runs/det_train/tokens --test-bags runs/det_test/tokens \
        --sizes 20 40 60 80 100 --seeds 0 1 2 --out bench/results/detector_curve.json

For each size n and seed: n episodes drawn (by the seed) from the operator-marked episodes of --bags, split
into training and calibration as `rlt train-detector` does (DetectorConfig defaults), and the held-out metrics
on every marked episode of --test-bags. Prints a markdown table; the JSON holds every run's report.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlt_ros.core.checkpoints import token_identity  # noqa: E402
from rlt_ros.core.data.token_bags import read_labelled_episodes  # noqa: E402
from rlt_ros.core.rlt.configuration_detector import DetectorConfig  # noqa: E402
from rlt_ros.core.rlt.detector import evaluate, marked, train_detector  # noqa: E402

METRICS = ("accuracy", "precision", "recall", "false_success", "online_false_success", "online_recall", "early",
           "confident")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bags", nargs="+", required=True)
    parser.add_argument("--test-bags", nargs="+", required=True)
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 40, 60, 80, 100])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--token", default=None)
    parser.add_argument("--out", default=None, help="JSON of every run's report")
    args = parser.parse_args()
    torch.set_num_threads(1)
    pool, test = marked(read_labelled_episodes(args.bags)), marked(read_labelled_episodes(args.test_bags))
    identity = token_identity(args.token)
    print(f"{len(pool)} marked training episodes ({sum(e.outcome for e in pool)} successes), {len(test)} held out "
          f"({sum(e.outcome for e in test)} successes)", flush=True)
    runs = []
    for n in args.sizes:
        for seed in args.seeds:
            pick = np.random.default_rng(seed).permutation(len(pool))[:n]
            detector = train_detector([pool[i] for i in pick], DetectorConfig(test_fraction=0.0, seed=seed), identity)
            runs.append({"episodes": n, "seed": seed, "report": detector.report, "test": evaluate(detector, test)})
            print(f"n={n} seed={seed}: " + ", ".join(f"{k} {runs[-1]['test'][k]}" for k in METRICS), flush=True)
    print("\n| labelled episodes | " + " | ".join(METRICS) + " |\n|" + "---|" * (len(METRICS) + 1))
    for n in args.sizes:
        rows = [r["test"] for r in runs if r["episodes"] == n]
        cells = [f"{100 * np.mean([r[k] for r in rows]):.1f} %" for k in METRICS]
        print(f"| {n} | " + " | ".join(cells) + " |")
    if args.out:
        Path(args.out).write_text(json.dumps(runs, indent=2) + "\n")


if __name__ == "__main__":
    main()
