"""How much the trained critics care where the arm goes: Q(x, ã + δ) for a constant shift δ of one joint over the chunk.

    python bench/critic_probe.py RUN_DIR [--transitions 200] [--lever 0.4]

RUN_DIR is an `rlt sim-train` output (config.json, replay/, checkpoints/). At the first transition of the last
``--transitions`` RL episodes, each joint of ã is shifted by the angle that moves a point ``--lever`` metres from
its axis by ±0.5, 1 and 2 mm; the table gives the mean change of Q (the critics' mean) and, per state, the mean
|Q(+1 mm) − Q(−1 mm)|: what the critic credits a millimetre with, to set against β‖δ‖² (docs/experiments.md 2.18).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

SHIFTS_MM = (-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0)


def probe(run: Path, transitions: int = 200, lever_m: float = 0.4) -> dict:
    """{"q": mean Q at ã, "beta": β, "joints": [{"mean_dq": {mm: ΔQ}, "abs_dq_1mm": ..., "beta_cost_1mm": ...}]}."""
    from rlt_ros.core.rlt.configuration_rlt import RLTConfig
    from rlt_ros.core.rlt.learner import RLTAlgorithm, latest_checkpoint, load_checkpoint
    from rlt_ros.core.rlt.replay import SOURCE_RL, ReplayBuffer

    cfg = RLTConfig.from_dict(json.loads((run / "config.json").read_text())["rlt"])
    checkpoint = latest_checkpoint(run / "checkpoints")
    if checkpoint is None:
        raise SystemExit(f"no checkpoint in {run / 'checkpoints'}")
    algorithm = RLTAlgorithm(cfg)
    load_checkpoint(checkpoint, algorithm)
    replay = ReplayBuffer(cfg.token_dim, cfg.proprio_dim, cfg.chunk_size, cfg.action_dim, directory=run / "replay",
                          read_only=True, token_dtype=cfg.token_dtype)
    rows = replay.arrays()
    replay.close()
    first = rows[(rows["source"] == SOURCE_RL) & (rows["index"] == 0)][-transitions:]
    if len(first) == 0:
        raise SystemExit(f"no RL episode in {run / 'replay'}")
    field = lambda k: torch.tensor(np.ascontiguousarray(first[k]), dtype=torch.float32)  # noqa: E731
    n = algorithm.normalizer
    token, proprio, ref = n.token(field("token")), n.proprio(field("proprio")), field("reference")
    out = {"q": None, "beta": cfg.beta, "states": len(first), "joints": []}
    for j in range(cfg.action_dim):
        q = {}
        for mm in SHIFTS_MM:
            shifted = ref.clone()
            shifted[..., j] += mm / 1000.0 / lever_m
            with torch.no_grad():
                q[mm] = algorithm.critics(token, proprio, n.action(shifted).reshape(len(first), -1)).mean(0).numpy()
        out["q"] = float(q[0.0].mean())
        step = 1.0 / 1000.0 / lever_m / float(n.action_std[j])  # 1 mm in normalised units, every step of the chunk
        out["joints"].append({"mean_dq": {mm: float((q[mm] - q[0.0]).mean()) for mm in SHIFTS_MM},
                              "abs_dq_1mm": float(np.abs(q[1.0] - q[-1.0]).mean() / 2),
                              "beta_cost_1mm": cfg.beta * cfg.chunk_size * step ** 2})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", nargs="?", type=Path, help="an `rlt sim-train` output directory")
    ap.add_argument("--transitions", type=int, default=200, help="states probed: the last N RL episodes' first")
    ap.add_argument("--lever", type=float, default=0.4, help="distance from each joint's axis to the plug [m]")
    args = ap.parse_args()
    if args.run is None:
        print("critic_probe: give an `rlt sim-train` run directory (python bench/critic_probe.py RUN_DIR)")
        return 0
    res = probe(args.run, args.transitions, args.lever)
    print(f"{res['states']} states, mean Q at ã {res['q']:.3f}, beta {res['beta']:g}\n")
    print("| joint | " + " | ".join(f"ΔQ at {mm:+g} mm" for mm in SHIFTS_MM if mm) +
          " | per state, |ΔQ| per mm | β cost of 1 mm |")
    print("|---" * (len(SHIFTS_MM) + 2) + "|")
    for j, r in enumerate(res["joints"]):
        print(f"| {j} | " + " | ".join(f"{r['mean_dq'][mm]:+.4f}" for mm in SHIFTS_MM if mm) +
              f" | {r['abs_dq_1mm']:.4f} | {r['beta_cost_1mm']:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
