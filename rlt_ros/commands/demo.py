"""``rlt demo``: the full ROS 2 graph practising RLT on the simulated arm, with a simulated operator.

Starts the demo graph of arm=sim (rlt_ros.graph: sim_arm, observation, vla, actor, learner, reward,
monitor, plus sim_operator, which hands over to the RL actor near the socket and presses "success"
through the same services a person would use). The demo graph's episodes start just above the
socket, as the paper's practice curriculum does (``--start home``: the full task, the VLA's approach
first), and its operator holds the insertion to a 6 s cycle time: it presses failure when the critical
phase runs longer (sim_operator's ``operator.critical_timeout_s``, ``--critical-timeout``). Besides the success rate the
summary counts the insertions done within a tighter budget (``--budget``). Shows live progress (episode, phase, success rate, critical-phase time,
learner updates and the UTD ratio they achieve).
For the last ``--eval-minutes`` the demo turns the actor's exploration noise off (``ros2 param set /actor
actor.explore false``, as a user evaluates) and ends with a table: the base policy (episodes before the
actor's first weights), practice in blocks of episodes, and the noise-free evaluation of the practised
actor. Node logs go to <out>/graph.log.
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
from rlt_ros.core.interfaces import EventSource, EventType
from rlt_ros.core.rlt.configuration_detector import failure_after_s
from rlt_ros.graph import KIND_OVERRIDES


# episode start -> default budget of the summary [s]: a cycle time tighter than the operator's (6 s from
# pre_critical), well below the base policy's median critical phase (5.4-6.3 s in the graph)
BUDGET_S = {"pre_critical": 5.0, "home": 9.0}


def demo_start(args: argparse.Namespace) -> str:
    """Where the demo's episodes start: --start, else the demo graph's sim.start."""
    return args.start or KIND_OVERRIDES["demo"]["sim_arm"]["sim.start"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=15.0,
                        help="wall-clock length of the whole demo, evaluation included (default 15)")
    parser.add_argument("--eval-minutes", type=float, default=4.0,
                        help="the last minutes run without exploration noise: the practised actor's evaluation "
                             "(default 4; 0 = none)")
    parser.add_argument("--out", default=None, help="run folder for the replay, checkpoints and logs "
                        "(default runs/demo-<time>)")
    parser.add_argument("--realtime-factor", type=float, default=None,
                        help="simulated seconds per wall second (default: config/arms/sim.yaml)")
    parser.add_argument("--budget", type=float, default=None,
                        help="cycle-time budget of the summary, s: it also counts the successes whose critical phase "
                             "was at most this long (default: about the base policy's median in the graph, "
                             + ", ".join(f"{v:g} s from {k}" for k, v in BUDGET_S.items()) + ")")
    parser.add_argument("--critical-timeout", type=float, default=None,
                        help="the operator presses failure when the critical phase lasts longer, s "
                             "(sim_operator's operator.critical_timeout_s, 0 = never; default: the demo graph's cycle "
                             f"time, {KIND_OVERRIDES['demo']['sim_operator']['operator.critical_timeout_s']:g})")
    parser.add_argument("--start", choices=tuple(BUDGET_S), default=None,
                        help="where each episode starts: just above the socket (the demo graph's default) or at home, "
                             "the full task (the VLA's approach first; longer episodes)")
    parser.add_argument("--block", type=int, default=10, help="episodes per practice row of the summary (default 10)")
    parser.add_argument("--switch", default=None, metavar="DIR",
                        help="hand over with this learned switch (`rlt train-switch --out`: episode.handover auto; "
                             "'learner': the versions the learner retrains, see --marks-every); the simulated "
                             "operator presses only when it is late")
    parser.add_argument("--detector", default=None, metavar="DIR",
                        help="mark outcomes with this learned success detector (`rlt train-detector --out`: "
                             "reward.detector auto; 'learner': as for --switch); the simulated operator presses only "
                             "to correct it")
    parser.add_argument("--marks-every", type=int, default=0, metavar="N",
                        help="the learner retrains the switch and the detector after every N episodes the operator "
                             "marked (learner.marks_every; 0 = never)")


class Progress:
    """Follows /rlt/events, /rlt/learner_stats and /rlt/actor_weights; prints a live line."""

    def __init__(self, out=sys.stdout):
        self.stats = EpisodeStats()
        self.tracker = PhaseTracker()
        self.episode = 0  # episodes started since the demo began (the reward node's ids are large: see first_episode_id)
        self.updates = self.transitions = 0
        self.utd = 0.0  # critic updates per transition achieved by the learner
        self.marks: dict[str, float] = {}  # the learner's retrained switch and detector: held-out metrics
        self.first_weights_at_episode: int | None = None
        self.eval_after_episode: int | None = None  # episodes with a larger id are the noise-free evaluation
        self.base: list[EpisodeRecord] = []
        self.presses: dict[int, int] = {}  # episode id -> the operator's handover and outcome presses
        self.handover_presses: dict[int, int] = {}  # episode id -> the operator's handover presses
        self.out = out
        self.tty = out.isatty()
        self._lock = threading.Lock()
        self._last_print = 0.0

    def on_event(self, event) -> None:
        with self._lock:
            if self.tracker.apply(event) and event.type == EventType.START:
                self.episode += 1
            if event.source == EventSource.HUMAN and (event.type == EventType.HANDOVER or event.type.terminal):
                self.presses[event.episode_id] = self.presses.get(event.episode_id, 0) + 1
                if event.type == EventType.HANDOVER:
                    self.handover_presses[event.episode_id] = self.handover_presses.get(event.episode_id, 0) + 1
            record = self.stats.apply(event)
            if record is not None and self.first_weights_at_episode is None:
                self.base.append(record)
            if record is not None:
                self.print(force=True)

    def start_evaluation(self) -> None:
        """From the next episode on, episodes count as the evaluation (exploration is off)."""
        with self._lock:
            self.eval_after_episode = self.tracker.episode_id
            self.out.write(f"\n[demo] exploration off from episode {self.episode + 1}: "
                           "evaluating the practised actor\n")

    def split(self) -> tuple[list[EpisodeRecord], list[EpisodeRecord], list[EpisodeRecord]]:
        """(base, practice, evaluation) episodes."""
        history = self.stats.history[len(self.base):]
        if self.eval_after_episode is None:
            return self.base, history, []
        return (self.base, [r for r in history if r.episode_id <= self.eval_after_episode],
                [r for r in history if r.episode_id > self.eval_after_episode])

    def on_stats(self, msg) -> None:
        with self._lock:
            self.updates, self.transitions = msg.updates, msg.transitions
            values = dict(zip(msg.names, msg.values))
            self.utd = values.get("utd_achieved", 0.0)
            self.marks = {k: v for k, v in values.items() if k.startswith(("switch_", "detector_", "marks_"))}

    def on_weights(self, msg) -> None:
        with self._lock:
            if self.first_weights_at_episode is None:
                self.first_weights_at_episode = self.tracker.episode_id
                self.out.write(f"\n[demo] actor weights v{msg.version} reached the actor side at episode "
                               f"{self.episode}: practice with the RL actor begins\n")

    def line(self, elapsed: float) -> str:
        h = self.stats.history
        crit = self.stats.median_critical_s(10)
        return (f"[demo] {int(elapsed // 60)}:{int(elapsed % 60):02d} episode {self.episode} "
                f"{self.tracker.phase.name:<12} "
                f"| success {sum(r.success for r in h)}/{len(h)} (last 10: {100 * self.stats.success_rate(10):.0f}%) "
                f"| critical {'-' if math.isnan(crit) else f'{crit:.2f} s'} | updates {self.updates} "
                f"(UTD {self.utd:.1f}) | transitions {self.transitions}")

    def print(self, force: bool = False, elapsed: float | None = None) -> None:
        now = time.monotonic()
        if not force and now - self._last_print < (1.0 if self.tty else 15.0):
            return
        self._last_print = now
        text = self.line(elapsed if elapsed is not None else getattr(self, "elapsed", 0.0))
        self.out.write(("\r" + text.ljust(120)) if self.tty else text + "\n")
        self.out.flush()


def blocks(records: list, size: int) -> list[list]:
    """``records`` in blocks of ``size``; a last block shorter than half of it joins the one before."""
    parts = [records[i: i + size] for i in range(0, len(records), size)]
    if len(parts) > 1 and len(parts[-1]) < size / 2:
        tail = parts.pop()
        parts[-1] = parts[-1] + tail
    return parts


def summary(progress: Progress, block: int, budget_s: float) -> str:
    """The table: success, successes within ``budget_s`` of the handover, median critical phase of successes,
    and the operator's presses per episode (all, and in brackets those that hand over)."""
    def row(name, records):
        if not records:
            return f"| {name} | 0 | - | - | - | - |"
        crit = [r.critical_s for r in records if r.success and r.critical_s is not None]
        rate = 100 * sum(r.success for r in records) / len(records)
        in_budget = 100 * sum(c <= budget_s for c in crit) / len(records)
        med = f"{statistics.median(crit):.2f}" if crit else "-"
        presses = sum(progress.presses.get(r.episode_id, 0) for r in records) / len(records)
        handover = sum(progress.handover_presses.get(r.episode_id, 0) for r in records) / len(records)
        return f"| {name} | {len(records)} | {rate:.0f}% | {in_budget:.0f}% | {med} | {presses:.2f} ({handover:.2f}) |"

    base, practice, evaluation = progress.split()
    lines = [f"| policy | episodes | success | inserted within {budget_s:g} s | median critical phase [s] "
             "| presses per episode (handover) |",
             "|---|---|---|---|---|---|",
             row("base VLA (before the actor's first weights)", base)]
    first = len(base) + 1  # the demo's own episode count (the reward node's ids are large)
    for part in blocks(practice, block):
        lines.append(row(f"RLT practice, episodes {first}-{first + len(part) - 1} (exploring)", part))
        first += len(part)
    if progress.eval_after_episode is not None:
        lines.append(row("RLT after practice, no exploration noise", evaluation))
    lines.append(row("all episodes", progress.stats.history))
    if progress.marks:  # the learner retrains the switch and the detector (learner.marks_every)
        shown = ", ".join(f"{k} {v:.2f}" for k, v in sorted(progress.marks.items()) if k != "marks_version")
        lines.append(f"\nThe learner's switch and detector (version {progress.marks.get('marks_version', 0):g}) on "
                     f"their held-out episodes: {shown}")
    return "\n".join(lines)


def plot_progress(progress: Progress, path: Path, window: int = 10) -> Path:
    """The run's success rate and critical phase over episodes (rolling ``window``), the base policy's
    episodes as its baseline and a mark where the noise-free evaluation begins."""
    from rlt_ros.core.curves import plot_curves, rolling

    history = progress.stats.history
    base, practice, _ = progress.split()
    episodes = list(range(1, len(history) + 1))  # the demo's own count (the reward node's ids are large)
    rate, crit = rolling([r.success for r in history], [r.critical_s for r in history], window)
    base_crit = [r.critical_s for r in base if r.success and r.critical_s is not None]
    baseline = {"success_rate": sum(r.success for r in base) / len(base) if base else None,
                "critical_phase_s": statistics.median(base_crit) if base_crit else None}
    marks = {}
    if progress.first_weights_at_episode is not None:
        marks["actor's first weights"] = len(base) + 0.5
    if progress.eval_after_episode is not None:
        marks["no exploration noise from here"] = len(base) + len(practice) + 0.5
    return plot_curves({"rlt demo": (episodes, rate, crit)}, path, xlabel="episode", window=window, baseline=baseline,
                       marks=marks, title="rlt demo: the ROS graph practising on the simulated arm")


def set_exploration(node, enabled: bool, timeout_s: float = 10.0) -> str:
    """Set actor.explore on /actor through its parameter service, as `ros2 param set` does; '' or an error."""
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    client = node.create_client(SetParameters, "/actor/set_parameters")
    if not client.wait_for_service(timeout_sec=timeout_s):
        return "the actor's parameter service /actor/set_parameters is not available"
    request = SetParameters.Request(parameters=[Parameter("actor.explore", value=enabled).to_parameter_msg()])
    future = client.call_async(request)
    deadline = time.monotonic() + timeout_s
    while not future.done() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not future.done():
        return "no answer from /actor/set_parameters"
    result = future.result().results[0]
    return "" if result.successful else result.reason


def graph_overrides(args: argparse.Namespace, out: Path) -> dict[str, dict]:
    """node name -> {parameter: value} of the demo's command-line options, applied over the demo graph."""
    overrides = {"learner": {"learner.output_dir": str(out / "learner")},
                 "actor": {"actor.outbox_dir": str(out / "outbox")}, "sim_arm": {}}
    if args.start is not None:
        overrides["sim_arm"]["sim.start"] = args.start
    if args.critical_timeout is not None:
        overrides["sim_operator"] = {"operator.critical_timeout_s": float(args.critical_timeout)}
    if args.realtime_factor is not None:
        overrides["sim_arm"]["driver.realtime_factor"] = float(args.realtime_factor)
    if args.marks_every:
        overrides["learner"]["learner.marks_every"] = int(args.marks_every)
    if args.switch or args.detector:  # the learned marks: the operator only corrects them
        overrides.setdefault("sim_operator", {})["operator.learned_marks"] = True
        reward = overrides.setdefault("reward", {})
        where = lambda arg: arg if arg == "learner" else str(Path(arg).resolve())  # noqa: E731
        if args.switch:
            reward.update({"episode.handover": "auto", "episode.switch": where(args.switch)})
        if args.detector:
            patience = overrides["sim_operator"].get(
                "operator.critical_timeout_s", KIND_OVERRIDES["demo"]["sim_operator"]["operator.critical_timeout_s"])
            reward.update({"reward.detector": "auto", "reward.detector_path": where(args.detector)})
            if patience:  # its failure verdict comes before the operator's patience runs out
                reward["reward.detector_failure_after_s"] = failure_after_s(patience)
    return overrides


def run(args: argparse.Namespace) -> int:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from rlt_ros import graph as graph_mod
    from rlt_ros.commands.launch import GraphProcesses
    from rlt_ros.msg import ActorWeights, EpisodeEvent, LearnerStats
    from rlt_ros.ros import qos
    from rlt_ros.ros.conversions import event_from_msg

    budget = args.budget if args.budget is not None else BUDGET_S[demo_start(args)]
    if args.minutes <= 0 or budget <= 0 or args.eval_minutes < 0 or (args.critical_timeout or 0) < 0:
        raise SystemExit("rlt demo: --minutes and --budget must be > 0, --eval-minutes and --critical-timeout >= 0")
    out = Path(args.out or f"runs/demo-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    specs = graph_mod.graph("demo", "sim", graph_overrides(args, out))
    progress = Progress()
    evaluation = (f", the last {args.eval_minutes:g} without exploration noise"
                  if 0 < args.eval_minutes < args.minutes else "")
    print(f"[demo] practising on the simulated arm for {args.minutes:g} min{evaluation}; logs: {out / 'graph.log'}")

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
        evaluate_at = (args.minutes - args.eval_minutes) * 60 if 0 < args.eval_minutes < args.minutes else None
        try:
            while time.monotonic() - start < args.minutes * 60:
                if evaluate_at is not None and time.monotonic() - start >= evaluate_at:
                    evaluate_at = None
                    error = set_exploration(node, False)
                    if error:
                        print(f"\n[demo] could not turn exploration off: {error}")
                    else:
                        progress.start_evaluation()
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
    table = summary(progress, args.block, budget)
    print("\n\n" + table)
    (out / "summary.md").write_text(table + "\n")
    if progress.stats.history:
        print(f"[demo] learning curves: {plot_progress(progress, out / 'progress.png')}")
    print(f"\n[demo] run folder: {out}")
    return code or stop_code
