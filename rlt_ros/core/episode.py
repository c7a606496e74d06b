"""The episode life cycle (reward_node's logic, pure): start -> VLA -> handover -> RL (<-> human) -> end.

The sparse binary reward of RLT lives here: the operator (or a detector, or the timer) ends each
episode with SUCCESS (+1) or FAILURE/TIMEOUT (0). Every request that does not fit the current
state (marking when no episode runs, a double mark, a handover outside the VLA phase) raises
``EpisodeError`` with the reason, and changes nothing.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

from rlt_ros.core.interfaces import EpisodeEventPacket, EventSource, EventType, Phase


HANDOVER_MODES = ("operator", "auto")
# the simulated operator's delay between seeing something (a seated plug, the critical phase) and pressing the
# button [s]: a person's; the token stream of the scene runs meanwhile, so a success mark follows seated ticks
OPERATOR_REACTION_S = 0.2


class EpisodeError(RuntimeError):
    """A request that does not fit the episode's current state."""


@dataclass
class EpisodeConfig:
    timeout_s: float = 30.0  # an episode not marked within this time ends as TIMEOUT [s] (0 = never)
    critical_timeout_s: float = 15.0  # a critical phase longer than this ends as TIMEOUT [s] (0 = never)
    stats_window: int = 20  # episodes in the moving success rate / critical-phase statistics
    handover: str = "operator"  # who starts the critical phase: operator (/rlt/start_rl) | auto (the learned switch of episode.switch; the operator's button still works)
    switch: str = ""  # handover-switch folder (rlt train-switch --out), read with handover auto; "learner": the versions learner_node retrains (learner.marks_every)
    token_checkpoint: str = ""  # the RL-token folder the vla node runs (its vla.token_checkpoint, which the launch argument vla.token_checkpoint:= sets too; '' = the shipped one): the learner takes its demos' action scale from it; a switch or detector trained on another token is refused

    def __post_init__(self):
        if self.timeout_s < 0 or self.critical_timeout_s < 0 or self.stats_window < 1:
            raise ValueError("episode: timeouts must be >= 0 s and stats_window >= 1")
        if self.handover not in HANDOVER_MODES:
            raise ValueError(f"episode.handover: {self.handover!r} is not one of {HANDOVER_MODES}")
        if self.handover == "auto" and not self.switch:
            raise ValueError("episode.handover is 'auto' but episode.switch is empty: give the folder of "
                             "`rlt train-switch --out`")


@dataclass(frozen=True)
class EpisodeRecord:
    episode_id: int
    success: bool
    outcome: EventType
    duration_s: float  # start to end
    critical_s: float | None  # handover to end (None when the critical phase never began)


def first_episode_id(wall_s: float) -> int:
    """The first episode id of an episode owner started at wall-clock time ``wall_s`` [s since 1970]: its
    milliseconds. Ids then count up by one, so they stay unique across restarts of the owner (no file to keep or
    lose) unless a run averaged more than one episode per millisecond, and they keep increasing, as the replay,
    the outcome gate and the demo's tables expect. (Wall-clock, not ROS time: a simulated clock restarts at 0.)"""
    return int(wall_s * 1000)


class EpisodeManager:
    def __init__(self, config: EpisodeConfig | None = None, first_episode_id: int = 1):
        self.config = config or EpisodeConfig()
        self.phase = Phase.IDLE
        self.episode_id = 0
        self._next_id = first_episode_id
        self._started_at = self._handover_at = None
        self._provisional: float | None = None  # when a detector marked the last episode (until its reset or overrule)
        self.stats = EpisodeStats(self.config.stats_window)

    @property
    def started_at(self) -> float | None:
        """Start time of the running (or last) episode [s]."""
        return self._started_at

    @property
    def history(self) -> list[EpisodeRecord]:
        return self.stats.history

    # --- transitions ---------------------------------------------------------------------------
    def start(self, now: float) -> EpisodeEventPacket:
        if self.phase != Phase.IDLE:
            raise EpisodeError(f"episode {self.episode_id} is still running ({self.phase.name}); end it first")
        self.episode_id, self._next_id = self._next_id, self._next_id + 1
        self.phase, self._started_at, self._handover_at = Phase.VLA, now, None
        return self._event(now, EventType.START, EventSource.SYSTEM)

    def handover(self, now: float, source: EventSource = EventSource.HUMAN, note: str = "") -> EpisodeEventPacket:
        if self.phase != Phase.VLA:
            raise EpisodeError(self._not_in("the VLA phase", "hand over to the RL actor"))
        self.phase, self._handover_at = Phase.RL, now
        return self._event(now, EventType.HANDOVER, source, note=note)

    def intervention(self, active: bool, now: float, note: str = "") -> EpisodeEventPacket:
        if active and self.phase not in (Phase.VLA, Phase.RL):
            raise EpisodeError(self._not_in("the VLA or RL phase", "start an intervention"))
        if not active and self.phase != Phase.INTERVENTION:
            raise EpisodeError(self._not_in("an intervention", "end an intervention"))
        if active:
            if self._handover_at is None:  # a takeover during the approach starts the critical phase
                self._handover_at = now
            self.phase = Phase.INTERVENTION
            return self._event(now, EventType.INTERVENTION_START, EventSource.HUMAN, note=note)
        self.phase = Phase.RL
        return self._event(now, EventType.INTERVENTION_END, EventSource.HUMAN, note=note)

    def mark(self, success: bool, now: float, source: EventSource = EventSource.HUMAN,
             note: str = "") -> EpisodeEventPacket:
        if self.phase == Phase.IDLE:
            last = f" (episode {self.history[-1].episode_id} was already marked)" if self.history else ""
            raise EpisodeError(f"no episode is running{last}")
        return self._end(EventType.SUCCESS if success else EventType.FAILURE, now, source, note)

    @property
    def provisional(self) -> bool:
        """The last episode ended by a detector's SUCCESS/FAILURE, not yet reset nor overruled."""
        return self._provisional is not None

    def overrule(self, success: bool, now: float, grace_s: float, note: str = "") -> EpisodeEventPacket:
        """The operator's mark after a detector's: within ``grace_s`` of it and before the reset, it replaces the
        detector's outcome (a HUMAN SUCCESS/FAILURE event of the same episode; the learner's outcome gate
        labels the episode's rows by it)."""
        if self.phase != Phase.IDLE or self._provisional is None:
            raise EpisodeError(f"no detector's mark to overrule ({self._not_in('an ended episode', 'overrule')})")
        if now - self._provisional > grace_s:
            raise EpisodeError(f"episode {self.episode_id}: the detector's mark is {now - self._provisional:.1f} s old, "
                               f"past the grace period of {grace_s:g} s (reward.detector_grace_s)")
        old = self.history[-1]
        outcome = EventType.SUCCESS if success else EventType.FAILURE
        self.stats.history[-1] = EpisodeRecord(old.episode_id, success, outcome, old.duration_s, old.critical_s)
        self._provisional = None
        return self._event(now, outcome, EventSource.HUMAN, reward=float(success),
                           note=note or f"overrules the detector's {old.outcome.name}")

    def critical_elapsed_s(self, now: float) -> float | None:
        """Time since the running episode's critical phase began [s]; None before it, or when none runs."""
        return None if self.phase == Phase.IDLE or self._handover_at is None else now - self._handover_at

    def tick(self, now: float) -> EpisodeEventPacket | None:
        """A TIMEOUT event when the running episode (or its critical phase) ran past its limit."""
        if self.phase == Phase.IDLE:
            return None
        c = self.config
        if c.timeout_s and now - self._started_at > c.timeout_s:
            return self._end(EventType.TIMEOUT, now, EventSource.TIMEOUT, f"episode longer than {c.timeout_s} s")
        if c.critical_timeout_s and self._handover_at is not None and now - self._handover_at > c.critical_timeout_s:
            return self._end(EventType.TIMEOUT, now, EventSource.TIMEOUT,
                             f"critical phase longer than {c.critical_timeout_s} s")
        return None

    def reset_event(self, now: float) -> EpisodeEventPacket:
        if self.phase != Phase.IDLE:
            raise EpisodeError(f"episode {self.episode_id} is running; end it before a reset")
        self._provisional = None
        return EpisodeEventPacket(now, max(self.episode_id, 1), EventType.RESET, EventSource.SYSTEM)

    def success_rate(self, window: int | None = None) -> float:
        return self.stats.success_rate(window)

    def median_critical_s(self, window: int | None = None) -> float:
        return self.stats.median_critical_s(window)

    # --- internals -----------------------------------------------------------------------------
    def _end(self, outcome: EventType, now: float, source: EventSource, note: str) -> EpisodeEventPacket:
        critical = None if self._handover_at is None else now - self._handover_at
        self.stats.history.append(EpisodeRecord(self.episode_id, outcome == EventType.SUCCESS, outcome,
                                          now - self._started_at, critical))
        event = self._event(now, outcome, source, reward=1.0 if outcome == EventType.SUCCESS else 0.0, note=note)
        self.phase = Phase.IDLE
        self._provisional = now if source == EventSource.DETECTOR and outcome != EventType.TIMEOUT else None
        return event

    def _event(self, now, kind, source, reward=0.0, note=""):
        return EpisodeEventPacket(now, self.episode_id, kind, source, reward, note)

    def _not_in(self, where: str, what: str) -> str:
        state = "no episode is running" if self.phase == Phase.IDLE else f"episode {self.episode_id} is in {self.phase.name}"
        return f"cannot {what}: only in {where}, but {state}"


class PhaseTracker:
    """Follows /rlt/events on the nodes that do not own the episode (vla, actor, learner)."""

    _PHASE_AFTER = {EventType.START: Phase.VLA, EventType.HANDOVER: Phase.RL,
                    EventType.INTERVENTION_START: Phase.INTERVENTION, EventType.INTERVENTION_END: Phase.RL,
                    EventType.SUCCESS: Phase.IDLE, EventType.FAILURE: Phase.IDLE, EventType.TIMEOUT: Phase.IDLE,
                    EventType.RESET: Phase.IDLE}

    def __init__(self):
        self.episode_id = 0
        self.phase = Phase.IDLE

    def apply(self, event: EpisodeEventPacket) -> bool:
        """Update from an event; False (ignored) for an event of an older episode than the current one. A
        START always begins a new episode, whatever its id: a restarted reward node numbers from 1 again, and
        an id from a forged or stale START must not wedge the followers on an episode that never ends."""
        if event.episode_id < self.episode_id and event.type != EventType.START:
            return False
        if event.type == EventType.RESET and event.episode_id == self.episode_id and self.phase != Phase.IDLE:
            return False  # a late RESET of this episode's predecessor
        self.episode_id = event.episode_id
        self.phase = self._PHASE_AFTER[event.type]
        return True


def _record_line(record: EpisodeRecord) -> str:
    return json.dumps({**asdict(record), "outcome": int(record.outcome)}) + "\n"


class EpisodeStats:
    """Outcome statistics rebuilt from /rlt/events by any listener (learner, demo, monitor).

    With ``log`` (a JSON-lines file) every finished episode is appended to it and the history is read back from
    it at start, so a restarted listener keeps its statistics (/rlt/events replays only its last 100 events);
    an episode already recorded is not counted twice, except that the operator's overrule of a detector's mark
    replaces its record.
    """

    def __init__(self, window: int = 20, log: str | Path | None = None):
        self.window = window
        self.history: list[EpisodeRecord] = []
        self._open: dict[int, dict] = {}
        self._log = None if log is None else Path(log)
        if self._log is not None and self._log.is_file():
            lines = self._log.read_text().splitlines()
            for line in lines:
                try:
                    raw = json.loads(line)
                    self.history.append(EpisodeRecord(**{**raw, "outcome": EventType(raw["outcome"])}))
                except (json.JSONDecodeError, TypeError, KeyError, ValueError):
                    break  # a torn last line from a crash: cut off, so that new records follow good ones
            if len(self.history) < len(lines) or not self._log.read_text().endswith("\n"):
                self._log.write_text("".join(_record_line(r) for r in self.history))
            latest = {r.episode_id: r for r in self.history}  # an overrule's line replaces the detector's
            self.history = [latest.pop(r.episode_id) for r in self.history if r.episode_id in latest]
        self._ended = {r.episode_id for r in self.history}
        self._by_detector: set[int] = set()  # episodes a detector ended, which the operator may still overrule

    def apply(self, event: EpisodeEventPacket) -> EpisodeRecord | None:
        """Track an event; returns the finished episode's record on a terminal event."""
        if event.episode_id in self._ended:
            if event.episode_id in self._by_detector and event.source != EventSource.DETECTOR and \
                    event.type in (EventType.SUCCESS, EventType.FAILURE):
                return self._overrule(event)
            return None  # recorded before (a restarted listener hears the recent events again)
        if event.type == EventType.START:
            self._open[event.episode_id] = {"start": event.stamp, "handover": None}
        elif event.type in (EventType.HANDOVER, EventType.INTERVENTION_START) and event.episode_id in self._open:
            info = self._open[event.episode_id]
            info["handover"] = info["handover"] if info["handover"] is not None else event.stamp
        elif event.type.terminal and event.episode_id in self._open:
            info = self._open.pop(event.episode_id)
            critical = None if info["handover"] is None else event.stamp - info["handover"]
            record = EpisodeRecord(event.episode_id, event.type == EventType.SUCCESS, event.type,
                                   event.stamp - info["start"], critical)
            self.history.append(record)
            self._ended.add(record.episode_id)
            if event.source == EventSource.DETECTOR:
                self._by_detector.add(record.episode_id)
            self._append(record)
            return record
        return None

    def _overrule(self, event: EpisodeEventPacket) -> EpisodeRecord:
        """The operator's mark after a detector's replaces its record (in the log: a later line of the episode)."""
        self._by_detector.discard(event.episode_id)
        i = next(i for i in range(len(self.history) - 1, -1, -1) if self.history[i].episode_id == event.episode_id)
        old = self.history[i]
        self.history[i] = EpisodeRecord(old.episode_id, event.type == EventType.SUCCESS, event.type, old.duration_s,
                                        old.critical_s)
        self._append(self.history[i])
        return self.history[i]

    def _append(self, record: EpisodeRecord) -> None:
        if self._log is not None:
            with open(self._log, "a") as f:
                f.write(_record_line(record))

    def success_rate(self, window: int | None = None) -> float:
        successes, episodes = self.successes(window)
        return successes / episodes if episodes else 0.0

    def successes(self, window: int | None = None) -> tuple[int, int]:
        """(successes, finished episodes) among the last ``window`` finished episodes."""
        recent = self.history[-(window or self.window):]
        return sum(r.success for r in recent), len(recent)

    def median_critical_s(self, window: int | None = None) -> float:
        recent = [r.critical_s for r in self.history[-(window or self.window):] if r.success and r.critical_s]
        return statistics.median(recent) if recent else float("nan")

    def critical_elapsed_s(self, episode_id: int, now: float) -> float | None:
        """Time since the running episode's critical phase began; None when it has not (or is not running)."""
        info = self._open.get(episode_id)
        return None if info is None or info["handover"] is None else now - info["handover"]
