"""``rlt``: the single entry point of rlt_ros on machines without a ROS install.

Each subcommand lives in its own module ``rlt_ros.commands.<module>`` exposing
``add_arguments(parser)`` and ``run(args) -> int``; modules are imported only when their
subcommand runs, so ``rlt --help`` stays fast and a missing optional dependency only affects
the subcommand that needs it.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module under rlt_ros.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("info", "show the installation: ROS interfaces, torch, simulator, shipped checkpoints"),
    "record-demos": ("record_demos", "record scripted-expert demonstrations on the simulated arm as MCAP bags"),
    "export-lerobot": ("export_lerobot", "convert MCAP demonstration bags to a LeRobotDataset"),
    "train-vla": ("train_vla", "train the built-in VLA base policy on demonstrations"),
    "eval-vla": ("eval_vla", "evaluate a VLA base policy on the simulated task"),
    "make-tiny-vla": ("make_tiny_vla", "a tiny random-weight SmolVLA/π0/π0.5 checkpoint, built offline (try-out, tests)"),
    "train-token": ("train_token", "train the RL-token encoder/decoder on demonstrations (RLT stage 1)"),
    "sim-train": ("sim_train", "online RLT practice on the simulated arm, headless and in-process (RLT stage 2)"),
    "train-switch": ("train_switch", "learn the handover switch from recorded operator presses (/rlt/token + /rlt/events)"),
    "train-detector": ("train_detector", "learn the success detector from recorded operator marks (/rlt/token + /rlt/events)"),
    "launch": ("launch", "start a node graph (train, eval) without `ros2 launch`, e.g. `rlt launch train arm:=sim`"),
    "demo": ("demo", "the full ROS 2 graph practising on the simulated arm with a simulated operator"),
    "security-policy": ("security_policy", "write the SROS2 access-control policy of a graph (one enclave per node)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlt", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") or argv[0] not in COMMANDS:
        build_parser().parse_args(argv)  # prints help or a usage error listing the commands
        return 2
    name, rest = argv[0], argv[1:]
    module_name, help_text = COMMANDS[name]
    try:
        module = importlib.import_module(f"rlt_ros.commands.{module_name}")
    except ModuleNotFoundError as err:
        if err.name and err.name.startswith("rlt_ros.commands"):
            print(f"rlt {name}: not available in this version", file=sys.stderr)
            return 2
        raise SystemExit(f"rlt {name}: missing dependency {err.name!r} ({err}); run `make setup`") from err
    parser = argparse.ArgumentParser(prog=f"rlt {name}", description=help_text)
    module.add_arguments(parser)
    return int(module.run(parser.parse_args(rest)) or 0)


if __name__ == "__main__":
    sys.exit(main())
