"""``rlt demo``: the full ROS 2 graph practising RLT on the simulated arm, with a simulated operator.

Starts the demo graph of arm=sim (rlt_ros.graph: sim_arm, observation, vla, actor, learner, reward,
monitor, plus sim_operator, which hands over to the RL actor near the socket and presses "success"
through the same services a person would use). Episodes start just above the socket, as the paper's
practice does. Shows live progress (episode, phase, success rate, critical-phase
time, learner updates) and ends with a table: the base policy (episodes before the actor's first
weights) against the last episodes of practice. Node logs go to <out>/graph.log.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import threading
import time
from pathlib import Path

from rlt_ros.core.episode import EpisodeRecord, EpisodeStats, PhaseTracker


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=10.0, help="wall-clock length of the practice (default 10)")
    parser.add_argument("--out", default=None, help="run folder for the replay, checkpoints and logs "
                        "(default runs/demo-<time>)")
    parser.add_argument("--realtime-factor", type=float, default=None,
                        help="simulated seconds per wall second (default: config/arms/sim.yaml)")
    parser.add_argument("--window", type=int, default=20, help="episodes in the 'after practice' row (default 20)")


class Progress:
    """Follows /rlt/events, /rlt/learner_stats and /rlt/actor_weights; prints a live line."""

    def __init__(self, out=sys.stdout):
        self.stats = EpisodeStats()
        self.tracker = PhaseTracker()
        self.updates = self.transitions = 0
        self.first_weights_at_episode: int | None = None
        self.base: list[EpisodeRecord] = []
        self.out = out
        self.tty = out.isatty()
        self._lock = threading.Lock()
        self._last_print = 0.0

    def on_event(self, event) -> None:
        with self._lock:
            self.tracker.apply(event)
            record = self.stats.apply(event)
            if record is not None and self.first_weights_at_episode is None:
                self.base.append(record)
            if record is not None:
                self.print(force=True)

    def on_stats(self, msg) -> None:
        with self._lock:
            self.updates, self.transitions = msg.updates, msg.transitions

    def on_weights(self, msg) -> None:
        with self._lock:
            if self.first_weights_at_episode is None:
                self.first_weights_at_episode = self.tracker.episode_id
                self.out.write(f"\n[demo] actor weights v{msg.version} reached the actor side at episode "
                               f"{self.tracker.episode_id}: practice with the RL actor begins\n")

    def line(self, elapsed: float) -> str:
        h = self.stats.history
        crit = self.stats.median_critical_s(10)
        return (f"[demo] {int(elapsed // 60)}:{int(elapsed % 60):02d} episode {self.tracker.episode_id} "
                f"{self.tracker.phase.name:<12} "
                f"| success {sum(r.success for r in h)}/{len(h)} (last 10: {100 * self.stats.success_rate(10):.0f}%) "
                f"| critical {'-' if math.isnan(crit) else f'{crit:.2f} s'} | updates {self.updates} "
                f"| transitions {self.transitions}")

    def print(self, force: bool = False, elapsed: float | None = None) -> None:
        now = time.monotonic()
        if not force and now - self._last_print < (1.0 if self.tty else 15.0):
            return
        self._last_print = now
        text = self.line(elapsed if elapsed is not None else getattr(self, "elapsed", 0.0))
        self.out.write(("\r" + text.ljust(120)) if self.tty else text + "\n")
        self.out.flush()


def summary(progress: Progress, window: int) -> str:
    def row(name, records):
        if not records:
            return f"| {name} | 0 | - | - |"
        rate = sum(r.success for r in records) / len(records)
        crit = [r.critical_s for r in records if r.success and r.critical_s is not None]
        med = f"{statistics.median(crit):.2f}" if crit else "-"
        return f"| {name} | {len(records)} | {100 * rate:.0f}% | {med} |"

    history = progress.stats.history
    after = history[len(progress.base):][-window:]
    lines = ["| policy | episodes | success | median critical phase [s] |", "|---|---|---|---|",
             row("base VLA (before the actor's first weights)", progress.base),
             row(f"RLT, last {window} episodes of practice", after),
             row("all episodes", history)]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from rlt_ros import graph as graph_mod
    from rlt_ros.commands.launch import GraphProcesses
    from rlt_ros.msg import ActorWeights, EpisodeEvent, LearnerStats
    from rlt_ros.ros import qos
    from rlt_ros.ros.conversions import event_from_msg

    out = Path(args.out or f"runs/demo-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    overrides = {"learner": {"learner.output_dir": str(out / "learner")}}
    if args.realtime_factor is not None:
        overrides["sim_arm"] = {"driver.realtime_factor": float(args.realtime_factor)}
    specs = graph_mod.graph("demo", "sim", overrides)
    progress = Progress()
    print(f"[demo] practising on the simulated arm for {args.minutes:g} min; logs: {out / 'graph.log'}")

    rclpy.init()
    node = rclpy.create_node("rlt_demo_monitor")
    node.create_subscription(EpisodeEvent, "/rlt/events", lambda m: progress.on_event(event_from_msg(m)), qos.EVENTS)
    node.create_subscription(LearnerStats, "/rlt/learner_stats", progress.on_stats, qos.STREAM)
    node.create_subscription(ActorWeights, "/rlt/actor_weights", progress.on_weights, qos.LATCHED)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    code = 0
    with open(out / "graph.log", "w") as log:
        procs = GraphProcesses(specs, out=log)
        procs.start()
        start = time.monotonic()
        try:
            while time.monotonic() - start < args.minutes * 60:
                if procs.exited():
                    print(f"\n[demo] a node exited early: {procs.exited()} (see {out / 'graph.log'})")
                    code = 1
                    break
                progress.elapsed = time.monotonic() - start
                progress.print()
                time.sleep(0.5)
        except KeyboardInterrupt:
            print("\n[demo] interrupted")
        finally:
            stop_code = procs.stop()
            executor.shutdown()
            node.destroy_node()
            rclpy.try_shutdown()
            spinner.join(timeout=5)
    table = summary(progress, args.window)
    print("\n\n" + table)
    (out / "summary.md").write_text(table + "\n")
    print(f"\n[demo] run folder: {out}")
    return code or stop_code
