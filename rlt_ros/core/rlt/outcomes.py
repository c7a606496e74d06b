"""The learner's terminal rewards come from the episode's outcome event, not from what a Transition claims.

Any process on the domain can publish a Transition or an EpisodeEvent (without SROS2: see the README). The
reward node publishes exactly one outcome (SUCCESS, FAILURE or TIMEOUT) per episode, then RESET, then the next
START. ``OutcomeGate`` stores a transition that claims nothing (no reward, not done) at once, and holds an
episode's end rows (done, or any reward) until the episode is closed (its RESET, or a START of a later
episode). Then its rows are stored as the outcome says: SUCCESS and FAILURE relabel them (reward 1 or 0 at the
window's last executed step, done); a TIMEOUT is a truncation, which has no end rows (the actor drops the open
windows), so any claimed end row is dropped; no outcome, or two different ones (a forged event beside the reward
node's), drops them too, with a count and a reason (and their keys in ``dropped``, for the learner's
acknowledgements). Rows of an episode already closed are judged at once. ``holds`` says whether a row waits.

Episode ids grow (the reward node's start time in ms, also across its restarts), so a START older than the
newest one seen is history: a restarted learner receives the reward node's recent events (transient local)
and may get them after the live ones; such a START closes nothing and reopens nothing (it once reopened an
episode whose outcome had come live, and its end rows were dropped as having none: the kill test, 2026-12-07).

A DETECTOR's outcome (the learned success detector, ``reward.detector: auto``) is provisional: an outcome
from anyone else (the operator's overrule, source HUMAN) for the same episode before its close replaces it,
and the rows are labelled by that one. The reward node closes such an episode (its RESET) only after the
grace period ``reward.detector_grace_s`` in which the operator may overrule, so the rows wait for it here,
unacknowledged (the actor's outbox keeps them and resends; a resend of a held row is dropped by its key):
the overrule rewrites their reward, and no row is lost or stored twice. The operator's FAILURE overruling a
detector's SUCCESS is stored as a truncation (``stored_outcome``): the detector ended the episode, so its last
state may be a plug on its way in, and a terminal failure there taught the critic that almost-in is failed
(practice collapsed to 1 % success on a held-out seed: docs/experiments.md section 7).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace

import numpy as np

from rlt_ros.core.interfaces import EpisodeEventPacket, EventSource, EventType
from rlt_ros.core.rlt.replay import Transition

_REWARD = {EventType.SUCCESS: 1.0, EventType.FAILURE: 0.0}


def stored_outcome(marks: set[tuple[EventType, bool]]) -> tuple[EventType | None, bool]:
    """(the outcome an episode's rows are stored by, whether its marks conflict) from its (outcome, from a
    detector) marks: the operator's replace the detector's, a FAILURE overruling a detector's SUCCESS is a
    TIMEOUT (a truncation: the episode was cut, not failed); None when there is no mark or they conflict."""
    authority = {kind for kind, detector in marks if not detector}
    seen = authority or {kind for kind, _ in marks}
    if len(seen) != 1:
        return None, len(seen) > 1
    outcome = next(iter(seen))
    if outcome == EventType.FAILURE and authority and (EventType.SUCCESS, True) in marks:
        outcome = EventType.TIMEOUT
    return outcome, False


class OutcomeGate:
    def __init__(self, max_held: int = 10_000, max_closed: int = 1000):
        self.max_held, self.max_closed = max_held, max_closed
        self._held: OrderedDict[int, list[Transition]] = OrderedDict()  # episode -> end rows waiting for the close
        self._outcomes: dict[int, set[tuple[EventType, bool]]] = {}  # (outcome, from a detector) seen per open episode
        self._closed: OrderedDict[int, EventType | None] = OrderedDict()  # the outcome closed episodes kept
        self._newest_start: int | None = None  # the largest episode id a START has opened
        self.counters = {"end_rows_stored": 0, "end_rows_dropped": 0, "conflicting_outcomes": 0}
        self.last_drop = ""  # why the last end rows were dropped (for the node's log)
        self.dropped: list[tuple[int, int]] = []  # (episode_id, index) of dropped rows, for the caller to drain

    def add(self, t: Transition) -> list[Transition]:
        """The rows to store now (``t`` itself, relabelled, or nothing while its episode is open)."""
        if not t.done and not np.any(t.rewards):
            return [t]
        if t.episode_id in self._closed:
            return self._judge(t.episode_id, self._closed[t.episode_id], [t])
        held = self._held.setdefault(t.episode_id, [])
        held.append(t)
        if sum(len(v) for v in self._held.values()) > self.max_held:
            episode, rows = self._held.popitem(last=False)
            self._drop(rows, f"more than {self.max_held} end rows held: episode {episode}'s dropped")
        return []

    def holds(self, episode_id: int, index: int) -> bool:
        return any(t.index == index for t in self._held.get(episode_id, ()))

    def on_event(self, event: EpisodeEventPacket) -> list[Transition]:
        """Track outcomes; a RESET closes its episode, a new START closes every older one (a START no newer than
        the newest seen is history and changes nothing). Returns rows to store."""
        kind, episode = event.type, event.episode_id
        if kind in (EventType.SUCCESS, EventType.FAILURE, EventType.TIMEOUT):
            if episode in self._closed:
                if self._closed[episode] != kind:
                    self.counters["conflicting_outcomes"] += 1
                    self.last_drop = f"episode {episode}: a late {kind.name} after it was closed: ignored"
                return []
            self._outcomes.setdefault(episode, set()).add((kind, event.source == EventSource.DETECTOR))
            return []
        if kind == EventType.RESET:
            return self._close(episode)
        if kind == EventType.START:
            if self._newest_start is not None and episode <= self._newest_start:
                return []
            self._newest_start = episode
            return [t for other in sorted({*self._held, *self._outcomes}) if other < episode for t in self._close(other)]
        return []

    def _close(self, episode: int) -> list[Transition]:
        marks = self._outcomes.pop(episode, set())
        outcome, conflicting = stored_outcome(marks)
        self._closed[episode] = outcome
        while len(self._closed) > self.max_closed:
            self._closed.popitem(last=False)
        rows = self._held.pop(episode, [])
        if conflicting:
            self.counters["conflicting_outcomes"] += 1
            return self._drop(rows, f"episode {episode}: conflicting outcomes "
                                    f"{sorted({k.name for k, _ in marks})} (a forged event?)")
        return self._judge(episode, outcome, rows)

    def _judge(self, episode: int, outcome: EventType | None, rows: list[Transition]) -> list[Transition]:
        if not rows:
            return []
        if outcome not in _REWARD:
            why = ("no outcome" if outcome is None
                   else "a truncation (a timeout, or the operator overruled the detector's success)")
            return self._drop(rows, f"episode {episode}: {why}")
        out = []
        for t in rows:
            rewards = np.zeros_like(t.rewards)
            rewards[(t.steps or len(rewards)) - 1] = _REWARD[outcome]
            out.append(replace(t, rewards=rewards, done=True))
        self.counters["end_rows_stored"] += len(out)
        return out

    def _drop(self, rows: list[Transition], why: str) -> list[Transition]:
        self.counters["end_rows_dropped"] += len(rows)
        self.dropped.extend((t.episode_id, t.index) for t in rows)
        self.last_drop = f"{len(rows)} end row(s) dropped: {why}"
        return []
