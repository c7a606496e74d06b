"""What `rlt train-switch` and `rlt train-detector` share: the arguments naming the recordings, the token and
the classifier, and the run: read the labelled episodes, train, report on held-out episodes, save."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Callable


def add_common_arguments(parser: argparse.ArgumentParser, cfg, out_help: str, threshold_help: str,
                         consecutive_help: str) -> None:
    """--bags --token --out --hidden --steps --threshold --consecutive --test-fraction --test-bags
    --min-episodes --seed, with the defaults of ``cfg`` (SwitchConfig or DetectorConfig)."""
    parser.add_argument("--bags", nargs="+", required=True,
                        help="bag folders (or .mcap files, or folders of bags) with /rlt/token and /rlt/events")
    parser.add_argument("--token", default=None,
                        help="the RL-token folder the bags' tokens came from (default: the shipped one); "
                             "the classifier records it and is refused with any other")
    parser.add_argument("--out", required=True, help=out_help)
    parser.add_argument("--hidden", type=int, nargs="*", default=list(cfg.hidden),
                        help="hidden layer sizes (none: logistic regression)")
    parser.add_argument("--steps", type=int, default=cfg.steps, help="training steps")
    parser.add_argument("--threshold", type=float, default=cfg.threshold, help=threshold_help)
    parser.add_argument("--consecutive", type=int, default=cfg.consecutive, help=consecutive_help)
    parser.add_argument("--test-fraction", type=float, default=cfg.test_fraction,
                        help="fraction of episodes held out for the reported metrics (0: train on all)")
    parser.add_argument("--test-bags", nargs="+", default=None,
                        help="bags of other episodes to report the metrics on (then --bags is only split into "
                             "training and calibration)")
    parser.add_argument("--min-episodes", type=int, default=cfg.min_episodes, help="fewest labelled episodes")
    parser.add_argument("--seed", type=int, default=cfg.seed, help="seed")


def common_config(args: argparse.Namespace) -> dict:
    """The config fields the common arguments set."""
    return dict(hidden=tuple(args.hidden), steps=args.steps, threshold=args.threshold, consecutive=args.consecutive,
                test_fraction=0.0 if args.test_bags else args.test_fraction, min_episodes=args.min_episodes,
                seed=args.seed)


def train_and_save(args: argparse.Namespace, command: str, make_config: Callable[[], object],
                   train: Callable, evaluate: Callable, labelled: Callable, error: type[Exception],
                   summary: Callable[[dict], str]) -> int:
    """Read ``args.bags``, ``train(episodes, cfg, identity, progress)``, evaluate on ``args.test_bags`` when
    given (its episodes for which ``labelled(episode)``), save to ``args.out``, print the report and
    ``summary(report['test'])``. Bad input: the error on stderr, exit status 2, nothing written."""
    import torch

    from rlt_ros.core.checkpoints import token_identity
    from rlt_ros.core.data.token_bags import read_labelled_episodes

    torch.set_num_threads(1)
    try:
        cfg = make_config()
        identity = token_identity(args.token)
        episodes = read_labelled_episodes(args.bags)
        print(f"rlt {command}: {len(episodes)} episodes, {sum(map(labelled, episodes))} labelled, "
              f"{sum(len(e.stamps) for e in episodes)} tokens", flush=True)
        t0 = time.time()

        def progress(step: int, loss: float) -> None:
            print(f"\r[{command}] step {step}/{cfg.steps} loss {loss:.4f} ({time.time() - t0:.0f} s)",
                  end="", flush=True)

        model = train(episodes, cfg, identity, progress)
        print()
        if args.test_bags:
            test = [e for e in read_labelled_episodes(args.test_bags) if labelled(e)]
            if not test:
                raise error(f"no labelled episode in {args.test_bags}")
            model.report["test"] = evaluate(model, test)
            model.report["episodes"]["test"] = len(test)
    except (error, ValueError, FileNotFoundError) as err:
        print(f"rlt {command}: {err}", file=sys.stderr)
        return 2
    model.save(args.out)
    print(json.dumps(model.report, indent=2))
    if model.report.get("test"):
        print(summary(model.report["test"]))
    print(f"{model.NAME} written to {args.out}")
    return 0
