"""``rlt make-tiny-vla``: a tiny random-weight SmolVLA / π0 / π0.5 checkpoint, built offline (needs lerobot 0.6).

    rlt make-tiny-vla pi05 --out /tmp/tiny_pi05     # -> /tmp/tiny_pi05/policy + /tmp/tiny_pi05/tokenizer

For trying the "Bring your own VLA" path end to end without a GPU or downloads: its actions are random.
Defaults fit the simulated arm (5 joints, proprio = 5 positions + 5 velocities, cameras base and wrist).
"""

from __future__ import annotations

import argparse
import sys

SIM_JOINTS = ["base_yaw", "shoulder_pitch", "elbow_pitch", "wrist_pitch", "wrist_roll"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=("smolvla", "pi0", "pi05"), help="which LeRobot VLA")
    parser.add_argument("--out", required=True, help="folder to create (policy/ and tokenizer/ or vlm/ inside)")
    parser.add_argument("--joint-names", nargs="+", default=SIM_JOINTS, help="the action's joint order")
    parser.add_argument("--state-dim", type=int, default=10, help="length of observation.state")
    parser.add_argument("--cameras", nargs="+", default=["base", "wrist"], help="camera roles")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")


def run(args: argparse.Namespace) -> int:
    from rlt_ros.core.vla.lerobot_backend import LeRobotUnavailableError
    from rlt_ros.core.vla.lerobot_tiny import make_tiny_vla

    try:
        pol = make_tiny_vla(args.kind, args.out, action_dim=len(args.joint_names), state_dim=args.state_dim,
                            cameras=tuple(args.cameras), seed=args.seed, joint_names=args.joint_names)
    except LeRobotUnavailableError as err:
        print(f"rlt make-tiny-vla: {err}", file=sys.stderr)
        return 1
    local = "vla.vlm_path" if args.kind == "smolvla" else "vla.tokenizer_path"
    folder = pol.parent / ("vlm" if args.kind == "smolvla" else "tokenizer")
    print(f"rlt make-tiny-vla: vla.checkpoint: {pol}\n{local}: {folder}")
    return 0
