"""`rlt train-detector`: learn the success detector from the operator's success/failure marks (recorded
/rlt/token + /rlt/events).

    ros2 bag record -s mcap /rlt/token /rlt/events            # on the robot, while the operator practises
    rlt train-detector --bags rosbag2_2026_... --token my_token --out my_detector
    rlt sim-train --base --token T --out runs/det --sim clearance_mm=0.3 --sim chamfer_mm=1.0 \
        --record-tokens runs/det/tokens                       # in simulation: a task with failures too
    rlt train-detector --bags runs/det/tokens --out runs/detector

Whole episodes are split into training, calibration and test sets (or the test set is --test-bags, other
recordings); only episodes a person marked count (a timeout is no label). The command prints the test
episodes' accuracy, precision and recall of success, and the false-success rate (failures called success),
at the operator's mark and over the stream as the reward node runs it. The reward node uses the detector
with ``reward.detector: suggest`` or ``auto`` and ``reward.detector_path: <--out>``.
"""

from __future__ import annotations

import argparse

from rlt_ros.commands.classifier_training import add_common_arguments, common_config, train_and_save
from rlt_ros.core.rlt.configuration_detector import DetectorConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    c = DetectorConfig()
    add_common_arguments(parser, c, "output folder: detector.safetensors + detector.json",
                         "calibrated p(success) above which success is called (below 1 - it: failure)",
                         "ticks in a row above the threshold that call success")
    parser.add_argument("--window", type=int, default=c.window, help="ticks of (z_rl, proprio) in one sample")
    parser.add_argument("--tail", type=int, default=c.tail, help="training windows per episode, ending at its last ticks")


def _percent(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _summary(test: dict) -> str:
    return (f"held-out episodes: {test['episodes']} ({test['successes']} successes, {test['failures']} failures); "
            f"accuracy {_percent(test['accuracy'])}; precision {_percent(test['precision'])}; recall "
            f"{_percent(test['recall'])}; false success {_percent(test['false_success'])} at the mark, "
            f"{_percent(test['online_false_success'])} over the stream; success verdicts by the mark "
            f"{_percent(test['online_recall'])}, early {_percent(test['early'])}; confident at the mark "
            f"{_percent(test['confident'])}")


def run(args: argparse.Namespace) -> int:
    from rlt_ros.core.rlt.detector import DetectorError, evaluate, train_detector

    return train_and_save(args, "train-detector",
                          lambda: DetectorConfig(**common_config(args), window=args.window, tail=args.tail),
                          train_detector, evaluate, lambda e: e.outcome is not None, DetectorError, _summary)
