"""``rlt export-lerobot``: convert MCAP demonstration bags to a LeRobotDataset (needs lerobot installed)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bags", nargs="+", type=Path, help="bag folders (or .mcap files) written by `rlt record-demos` or `ros2 bag record`")
    parser.add_argument("--out", type=Path, required=True, help="dataset root folder to create")
    parser.add_argument("--repo-id", default="local/rlt_peg_insertion", help="LeRobot repo id stored in the dataset")
    parser.add_argument("--fps", type=int, default=50, help="control rate of the demonstrations, Hz (default 50)")
    parser.add_argument("--task", default=None, help="language instruction (default: the one recorded in the bag)")
    parser.add_argument("--include-failures", action="store_true", help="also export episodes marked as failures")
    parser.add_argument("--videos", action="store_true", help="store cameras as videos (needs ffmpeg/torchcodec) instead of images")


def run(args: argparse.Namespace) -> int:
    from rlt_ros.core.data.lerobot_export import export_to_lerobot

    try:
        summary = export_to_lerobot(args.bags, args.out, repo_id=args.repo_id, fps=args.fps, task=args.task,
                                    only_successes=not args.include_failures, use_videos=args.videos)
    except ImportError as err:
        print(f"rlt export-lerobot: {err}", file=sys.stderr)
        return 1
    print(f"wrote LeRobotDataset {summary.repo_id} at {summary.root}: {summary.episodes} episodes, {summary.frames} frames")
    return 0
