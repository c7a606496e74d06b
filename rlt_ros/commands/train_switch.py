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
import json
import sys
import time

from rlt_ros.core.rlt.configuration_switch import SwitchConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    c = SwitchConfig()
    parser.add_argument("--bags", nargs="+", required=True,
                        help="bag folders (or .mcap files, or folders of bags) with /rlt/token and /rlt/events")
    parser.add_argument("--token", default=None,
                        help="the RL-token folder the bags' tokens came from (default: the shipped one); "
                             "the switch records it and is refused with any other")
    parser.add_argument("--out", required=True, help="output folder: switch.safetensors + switch.json")
    parser.add_argument("--hidden", type=int, nargs="*", default=list(c.hidden),
                        help="hidden layer sizes (none: logistic regression)")
    parser.add_argument("--steps", type=int, default=c.steps, help="training steps")
    parser.add_argument("--threshold", type=float, default=c.threshold, help="calibrated probability threshold")
    parser.add_argument("--consecutive", type=int, default=c.consecutive,
                        help="ticks in a row above the threshold that fire the handover")
    parser.add_argument("--test-fraction", type=float, default=c.test_fraction,
                        help="fraction of episodes held out for the reported metrics (0: train on all)")
    parser.add_argument("--test-bags", nargs="+", default=None,
                        help="bags of other episodes to report the metrics on (then --bags is only split into "
                             "training and calibration)")
    parser.add_argument("--tolerance", type=float, default=c.tolerance_s, help="on-time tolerance of the metrics [s]")
    parser.add_argument("--min-episodes", type=int, default=c.min_episodes, help="fewest labelled episodes")
    parser.add_argument("--seed", type=int, default=c.seed, help="seed")


def run(args: argparse.Namespace) -> int:
    import torch

    from rlt_ros.core.checkpoints import token_identity
    from rlt_ros.core.data.token_bags import read_labelled_episodes
    from rlt_ros.core.rlt.switch import SwitchError, evaluate, train_switch

    torch.set_num_threads(1)
    try:
        cfg = SwitchConfig(hidden=tuple(args.hidden), steps=args.steps, threshold=args.threshold,
                           consecutive=args.consecutive, test_fraction=0.0 if args.test_bags else args.test_fraction,
                           tolerance_s=args.tolerance, min_episodes=args.min_episodes, seed=args.seed)
        identity = token_identity(args.token)
        episodes = read_labelled_episodes(args.bags)
        print(f"rlt train-switch: {len(episodes)} episodes, {sum(e.handover_s is not None for e in episodes)} with "
              f"a handover press, {sum(len(e.stamps) for e in episodes)} tokens", flush=True)
        t0 = time.time()

        def progress(step: int, loss: float) -> None:
            print(f"\r[train-switch] step {step}/{cfg.steps} loss {loss:.4f} ({time.time() - t0:.0f} s)",
                  end="", flush=True)

        switch = train_switch(episodes, cfg, identity, progress)
        print()
        if args.test_bags:
            test = [e for e in read_labelled_episodes(args.test_bags) if e.handover_s is not None]
            if not test:
                raise SwitchError(f"no episode with an operator's handover press in {args.test_bags}")
            switch.report["test"] = evaluate(switch, test)
            switch.report["episodes"]["test"] = len(test)
    except (SwitchError, ValueError, FileNotFoundError) as err:
        print(f"rlt train-switch: {err}", file=sys.stderr)
        return 2
    switch.save(args.out)
    print(json.dumps(switch.report, indent=2))
    test = switch.report.get("test")
    if test:
        print(f"held-out episodes: {test['episodes']}; handover within ±{test['tolerance_s']:g} s of the press: "
              f"{100 * test['on_time']:.1f}%; outside the critical region: {100 * test['outside_critical']:.1f}%; "
              f"late: {100 * test['late']:.1f}%; never: {100 * test['missed']:.1f}%")
    print(f"switch written to {args.out}")
    return 0
