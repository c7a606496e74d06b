"""`rlt train-vla`: behaviour-clone the built-in VLA on demonstration bags.

    rlt record-demos --out data/demos --episodes 150 --seed 0 --only-successes
    rlt train-vla --demos data/demos --out runs/base_vla --steps 5000 --frame-stride 3 --seed 0
    rlt train-vla --demos data/demos --out runs/base_vla --steps 5000 --frame-stride 3 --seed 0 --resume  # after an interruption

The shipped rlt_ros/checkpoints/base_vla was made this way (with --no-training-state); see its README.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rlt_ros.core.vla.configuration_builtin import BuiltinTrainingConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = BuiltinTrainingConfig()
    parser.add_argument("--demos", required=True, help="directory of demonstration episodes (MCAP bags from `rlt record-demos`, or *.npz)")
    parser.add_argument("--out", required=True, help="output checkpoint directory (config.json, model.safetensors, training_state.pt)")
    parser.add_argument("--steps", type=int, default=d.steps, help=f"total gradient steps (default {d.steps})")
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument("--frame-stride", type=int, default=d.frame_stride, help="use every N-th demo frame (memory)")
    parser.add_argument("--max-episodes", type=int, default=None, help="use only the first N episodes")
    parser.add_argument("--image-shift", type=int, default=d.image_shift, help="random image translation augmentation, +- pixels")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--save-every", type=int, default=d.save_every)
    parser.add_argument("--threads", type=int, default=d.num_threads, help="torch CPU threads")
    parser.add_argument("--resume", action="store_true", help="continue from the training_state.pt in --out")
    parser.add_argument("--no-training-state", action="store_true",
                        help="delete training_state.pt at the end (a smaller checkpoint to ship; cannot be resumed)")
    parser.add_argument("--model-config", default=None, help="JSON file of BuiltinVLAConfig overrides (width, num_layers, ...)")


def run(args: argparse.Namespace) -> int:
    from rlt_ros.core.vla.training_builtin import TRAIN_STATE_NAME, config_for_episodes, load_demo_episodes, train_builtin

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.resume and (out / TRAIN_STATE_NAME).exists():
        print(f"rlt train-vla: {out} already holds a training run; pass --resume to continue it or choose another --out")
        return 2
    cfg = BuiltinTrainingConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, frame_stride=args.frame_stride, image_shift=args.image_shift,
                                seed=args.seed, save_every=args.save_every, num_threads=args.threads)
    t0 = time.time()
    episodes = load_demo_episodes(args.demos, max_episodes=args.max_episodes, progress=True)
    overrides = json.loads(Path(args.model_config).read_text()) if args.model_config else {}
    model_cfg = config_for_episodes(episodes, **overrides)
    print(f"rlt train-vla: {len(episodes)} episodes, {sum(len(e.actions) for e in episodes)} frames "
          f"(stride {cfg.frame_stride}), loaded in {time.time() - t0:.1f} s; model M={model_cfg.num_prefix_tokens} "
          f"D={model_cfg.width} H={model_cfg.chunk_size} A={model_cfg.action_dim}")
    _, stats = train_builtin(episodes, out, cfg, model_cfg, resume=args.resume)
    if args.no_training_state:
        (out / TRAIN_STATE_NAME).unlink(missing_ok=True)
    print(f"rlt train-vla: done in {time.time() - t0:.0f} s; loss {stats.get('loss_first', float('nan')):.4f} -> "
          f"{stats.get('loss_last', float('nan')):.4f}; checkpoint {out}")
    return 0
