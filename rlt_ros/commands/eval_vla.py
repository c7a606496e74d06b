"""`rlt eval-vla`: success rate and critical-phase time of a VLA base policy on the simulated arm.

    rlt eval-vla --episodes 100                       # the shipped built-in base VLA
    rlt eval-vla --checkpoint runs/base_vla --episodes 100 --execute-steps 30
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from rlt_ros.core.vla.base import BACKEND_KINDS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default=None, help="checkpoint directory (default: the shipped built-in base VLA)")
    parser.add_argument("--kind", default="builtin", choices=BACKEND_KINDS, help="VLA backend kind")
    parser.add_argument("--episodes", type=int, default=100, help="randomized episodes")
    parser.add_argument("--execute-steps", type=int, default=30,
                        help="K: actions of each chunk executed before the next VLA query (receding horizon)")
    parser.add_argument("--seed", type=int, default=100_000, help="seed of the first episode (episode i uses seed + i)")
    parser.add_argument("--start", choices=("home", "pre_critical"), default=None, help="override the simulator's start mode")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--json", default=None, help="also write the result as JSON to this file")


def run(args: argparse.Namespace) -> int:
    import torch

    from rlt_ros.core.vla import load_backend
    from rlt_ros.core.vla.evaluation import evaluate_backend

    torch.set_num_threads(args.threads)
    backend = load_backend(args.kind, args.checkpoint)
    print(f"rlt eval-vla: {backend.describe()}")
    t0 = time.time()
    res = evaluate_backend(backend, args.episodes, args.execute_steps, seed=args.seed, start=args.start)
    print(f"rlt eval-vla: {res.summary()} ({time.time() - t0:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(dataclasses.asdict(res), indent=2) + "\n")
    return 0
