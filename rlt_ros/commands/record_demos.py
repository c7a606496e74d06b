"""``rlt record-demos``: scripted-expert demonstrations on the simulated arm, written as a ROS 2 MCAP bag."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--episodes", type=int, default=50, help="number of episodes to record (default 50)")
    parser.add_argument("--out", type=Path, required=True, help="bag folder to create (rosbag2 layout: <out>/<name>_0.mcap + metadata.yaml)")
    parser.add_argument("--image-size", type=int, default=64, help="camera image side in pixels (default 64)")
    parser.add_argument("--image-every", type=int, default=1, help="render cameras every N control steps (default 1 = 50 Hz)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode; episode i uses seed + i")
    parser.add_argument("--sim-config", type=Path, default=None, help="JSON file with SimConfig fields to override")
    parser.add_argument("--only-successes", action="store_true", help="drop failed episodes from the bag")
    parser.add_argument("--overwrite", action="store_true", help="replace the files of an existing bag folder")


def run(args: argparse.Namespace) -> int:
    from rlt_ros.core.data.recording import record_expert_demos
    from rlt_ros.core.sim.configuration_sim import SimConfig

    overrides = json.loads(args.sim_config.read_text()) if args.sim_config else {}
    overrides["image_size"] = args.image_size
    sim_config = SimConfig.from_dict(overrides)
    summary = record_expert_demos(args.out, args.episodes, sim_config=sim_config, seed=args.seed,
                                  image_every=args.image_every, overwrite=args.overwrite,
                                  keep_failures=not args.only_successes)
    crit = "n/a" if summary.median_critical_phase_s is None else f"{summary.median_critical_phase_s:.2f} s"
    print(f"wrote {summary.bag_dir}: {summary.episodes} episodes, {summary.successes} successes, "
          f"{summary.steps} steps, median critical phase {crit}, {summary.bytes / 1e6:.1f} MB")
    return 0
