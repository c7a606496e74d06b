"""`rlt train-token`: train the RL-token encoder/decoder on demonstrations (RLT stage 1).

    rlt train-token --demos data/demos --out runs/token                 # the shipped built-in VLA
    rlt train-token --vla runs/base_vla --demos data/demos --out runs/token --steps 2000
    rlt train-token --vla-kind pi05 --vla /models/pi05_policy --tokenizer-path /models/paligemma_tokenizer \
        --device cuda --demos data/my_lerobot_dataset --out runs/token_pi05

The frozen VLA embeds every ``--frame-stride``-th demo frame (prefix embeddings z_1..z_M); the encoder g
and decoder d + head h are fitted on them with L_ro; whole demo episodes are held out to report the
reconstruction loss (and the same loss with a shuffled token, which shows the decoder reads z_rl).
Writes token.safetensors, token_config.json, token_meta.json (VLA, losses, and the per-joint action mean/std
of the demos' critical phase, which set the learner's action scale) and token_train_config.json.
``--stats-only`` adds or renews those action statistics in an existing token folder, without training:

    rlt train-token --stats-only --demos data/demos --out runs/token
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rlt_ros.core.rlt.configuration_token import TokenConfig, TokenTrainingConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vla", default=None, help="VLA checkpoint directory (default: the shipped built-in VLA)")
    parser.add_argument("--vla-kind", default="builtin", help="VLA backend kind (builtin, smolvla, pi0, pi05)")
    parser.add_argument("--vlm-path", default=None, help="SmolVLA: local folder with its VLM's config + tokenizer")
    parser.add_argument("--tokenizer-path", default=None, help="pi0/pi05: local folder with the PaliGemma tokenizer")
    parser.add_argument("--device", default="cpu", help="torch device of the VLA (cpu, cuda, ...)")
    parser.add_argument("--demos", required=True,
                        help="demonstrations directory (MCAP bags, a LeRobotDataset or .npz episodes)")
    parser.add_argument("--out", required=True, help="output directory of the RL token")
    parser.add_argument("--steps", type=int, default=TokenTrainingConfig.steps, help="gradient steps")
    parser.add_argument("--batch-size", type=int, default=TokenTrainingConfig.batch_size, help="frames per step")
    parser.add_argument("--lr", type=float, default=TokenTrainingConfig.lr, help="AdamW learning rate")
    parser.add_argument("--frame-stride", type=int, default=4, help="embed every N-th demo frame")
    parser.add_argument("--max-frames", type=int, default=8000, help="at most this many demo frames (evenly thinned)")
    parser.add_argument("--max-episodes", type=int, default=None, help="use at most this many demo episodes")
    parser.add_argument("--token-dim", type=int, default=TokenConfig.token_dim,
                        help="length of z_rl (0 = the model width, no projection)")
    parser.add_argument("--width", type=int, default=TokenConfig.width, help="model width (0 = the VLA's width D)")
    parser.add_argument("--layers", type=int, default=TokenConfig.layers, help="encoder layers")
    parser.add_argument("--decoder-layers", type=int, default=TokenConfig.decoder_layers, help="decoder layers")
    parser.add_argument("--heads", type=int, default=TokenConfig.heads, help="attention heads")
    parser.add_argument("--context-dropout", type=float, default=TokenConfig.context_dropout,
                        help="probability of masking a teacher-forced decoder input")
    parser.add_argument("--val-fraction", type=float, default=TokenTrainingConfig.val_fraction,
                        help="fraction of demo episodes held out")
    parser.add_argument("--seed", type=int, default=0, help="seed")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--stats-only", action="store_true",
                        help="only measure the demos' action statistics into the existing token folder --out")


def vla_weights_hash(kind: str, path: str | None) -> str | None:
    """sha256 of the VLA's model.safetensors (the token is only valid for these exact weights)."""
    import hashlib

    from rlt_ros.core.vla import default_checkpoint

    directory = Path(path) if path else (default_checkpoint() if kind == "builtin" else None)
    f = None if directory is None else directory / "model.safetensors"
    if f is None or not f.is_file():
        return None
    return hashlib.sha256(f.read_bytes()).hexdigest()


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from rlt_ros.core.rlt.action_stats import META_KEY, demo_action_stats, store_action_stats
    from rlt_ros.core.rlt.training_token import embed_demos, train_token
    from rlt_ros.core.vla import load_backend
    from rlt_ros.core.vla.training_builtin import load_demo_episodes

    episodes = load_demo_episodes(args.demos, max_episodes=args.max_episodes, progress=True)
    stats = demo_action_stats(episodes)
    if stats is None:
        print("rlt train-token: WARNING: no demo marks its critical phase (a critical_phase_start event): no action "
              "statistics stored; the learner will fit its action scale on the warm-up", file=sys.stderr)
    else:
        print(f"rlt train-token: action statistics of {stats.episodes} demos' critical phase ({stats.rows} steps): "
              f"std {', '.join(f'{x:.4g}' for x in stats.std)}")
    if args.stats_only:
        if stats is None:
            raise SystemExit(f"rlt train-token --stats-only: no demo in {args.demos} marks its critical phase")
        if not (Path(args.out) / "token_meta.json").is_file():
            raise SystemExit(f"rlt train-token --stats-only: {args.out} is not an RL-token folder (no token_meta.json)")
        store_action_stats(args.out, stats)
        print(f"rlt train-token: action statistics written to {Path(args.out) / 'token_meta.json'}")
        return 0
    torch.set_num_threads(args.threads)
    train_cfg = TokenTrainingConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                                    val_fraction=args.val_fraction, seed=args.seed, num_threads=args.threads,
                                    eval_every=max(1, min(TokenTrainingConfig.eval_every, args.steps)))
    extra = {k: v for k, v in (("vlm_path", args.vlm_path), ("tokenizer_path", args.tokenizer_path)) if v}
    vla = load_backend(args.vla_kind, args.vla, device=args.device, **extra)
    print(f"rlt train-token: {vla.describe()}")
    t0 = time.time()
    z, mask, eps = embed_demos(vla, episodes, args.frame_stride, args.max_frames)
    print(f"rlt train-token: {len(z)} frames from {len(episodes)} episodes, M={z.shape[1]} D={z.shape[2]} "
          f"({time.time() - t0:.0f} s)")
    # the built-in VLA's M is fixed; a LeRobot VLA's M grows with the instruction: leave room up to the default
    max_tokens = int(z.shape[1]) if args.vla_kind == "builtin" else max(int(z.shape[1]), TokenConfig.max_tokens)
    cfg = TokenConfig(embed_dim=vla.embed_dim, max_tokens=max(max_tokens, 1), width=args.width,
                      token_dim=args.token_dim, layers=args.layers, decoder_layers=args.decoder_layers,
                      heads=args.heads, context_dropout=args.context_dropout)
    t0 = time.time()
    model, report = train_token(z, mask, eps, cfg, train_cfg, progress=True)
    out = Path(args.out)
    meta = {"vla_kind": args.vla_kind, "vla": str(args.vla) if args.vla else "builtin:default",
            "vla_weights_sha256": vla_weights_hash(args.vla_kind, args.vla),
            "embed_dim": vla.embed_dim, "num_prefix_tokens": int(z.shape[1]), "demos": str(args.demos),
            "frames": int(len(z)), "train_seconds": round(time.time() - t0, 1), "report": report.to_dict(),
            **({META_KEY: stats.to_dict()} if stats else {})}
    model.save(out, meta=meta)
    train_cfg.save(out / "token_train_config.json")
    print(json.dumps({k: v for k, v in report.to_dict().items() if k != "history"}, indent=2))
    print(f"rlt train-token: held-out reconstruction loss {report.val_loss:.4f} per dim "
          f"(shuffled token {report.val_loss_shuffled_token:.4f}, predict-the-mean {report.val_loss_mean_baseline:.4f}); "
          f"saved to {out}")
    return 0 if np.isfinite(report.val_loss) else 1
