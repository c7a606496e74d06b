"""`rlt train-switch`: learn the handover switch from the operator's presses (recorded /rlt/token + /rlt/events).

    ros2 bag record -s mcap /rlt/token /rlt/events            # on the robot, while the operator practises
    rlt train-switch --bags rosbag2_2026_... --token my_token --out my_switch
    rlt sim-train --base --start home --token T --out runs/base --record-tokens runs/base/tokens   # in simulation
    rlt train-switch --bags runs/base/tokens --out runs/switch

Whole episodes are split into training, calibration and test sets (or the test set is --test-bags, other
recordings); the command prints the test episodes' metrics: the fraction whose predicted handover is within
--tolerance of the operator's press, and the fraction with a handover outside the critical region (before
the press). The reward node uses the switch with ``episode.handover: auto`` and ``episode.switch: <--out>``.
"""

from __future__ import annotations

import argparse

from rlt_ros.commands.classifier_training import add_common_arguments, common_config, train_and_save
from rlt_ros.core.rlt.configuration_switch import SwitchConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    c = SwitchConfig()
    add_common_arguments(parser, c, "output folder: switch.safetensors + switch.json", "calibrated probability threshold",
                         "ticks in a row above the threshold that fire the handover")
    parser.add_argument("--tolerance", type=float, default=c.tolerance_s, help="on-time tolerance of the metrics [s]")


def _summary(test: dict) -> str:
    return (f"held-out episodes: {test['episodes']}; handover within ±{test['tolerance_s']:g} s of the press: "
            f"{100 * test['on_time']:.1f}%; outside the critical region: {100 * test['outside_critical']:.1f}%; "
            f"late: {100 * test['late']:.1f}%; never: {100 * test['missed']:.1f}%")


def run(args: argparse.Namespace) -> int:
    from rlt_ros.core.rlt.switch import SwitchError, evaluate, train_switch

    return train_and_save(args, "train-switch", lambda: SwitchConfig(**common_config(args), tolerance_s=args.tolerance),
                          train_switch, evaluate, lambda e: e.handover_s is not None, SwitchError, _summary)
