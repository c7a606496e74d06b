"""The learner's terminal rewards come from the episode's one outcome event (core.rlt.outcomes); the operator's
overrule of a detector's mark within the grace period rewrites the held rows' reward."""

import numpy as np
import pytest

from rlt_ros.core.episode import EpisodeError, EpisodeManager, EpisodeStats
from rlt_ros.core.interfaces import EpisodeEventPacket, EventSource, EventType
from rlt_ros.core.rlt.outcomes import OutcomeGate, stored_outcome
from rlt_ros.core.rlt.replay import Transition

C = 4


def row(episode, index, reward=0.0, done=False, steps=0):
    z = np.zeros
    rewards = z(C, np.float32)
    rewards[(steps or C) - 1] = reward
    return Transition(episode, index, z(2), z(2), z((C, 1)), z((C, 1)), rewards, done, z(2), z(2), z((C, 1)),
                      steps=steps)


def forged(episode, kind):
    return EpisodeEventPacket(1.0, episode, kind, EventSource.HUMAN, 1.0 if kind == EventType.SUCCESS else 0.0)


def test_rows_that_claim_nothing_are_stored_at_once_end_rows_at_the_close():
    gate, m = OutcomeGate(), EpisodeManager()
    gate.on_event(m.start(0.0))
    assert len(gate.add(row(1, 0))) == 1 and gate.add(row(1, 2))[0].index == 2
    assert gate.add(row(1, 4, reward=1.0, done=True, steps=3)) == []  # held until the episode is closed
    assert gate.on_event(m.mark(True, 1.0)) == []
    out = gate.on_event(m.reset_event(1.5))
    assert len(out) == 1 and out[0].done and out[0].rewards.tolist() == [0, 0, 1, 0]
    late = gate.add(row(1, 6, reward=1.0, done=True, steps=1))  # after the close: judged at once
    assert late[0].rewards.tolist() == [1, 0, 0, 0] and gate.counters["end_rows_stored"] == 2


def test_a_forged_success_creates_no_reward_one_row():
    """The reward node timed the episode out; a forged SUCCESS event (before or after its TIMEOUT) and forged
    terminal Transitions claiming reward 1 store nothing; a FAILURE relabels a claimed reward 1 to 0."""
    for forged_first in (True, False):
        gate, m = OutcomeGate(), EpisodeManager()
        gate.on_event(m.start(0.0))
        m.handover(0.1)
        if forged_first:
            gate.on_event(forged(1, EventType.SUCCESS))
        rows = [gate.add(row(1, 2 * i, reward=1.0, done=True)) for i in range(5)]
        m.config.critical_timeout_s = 0.5
        gate.on_event(m.tick(1.0))
        if not forged_first:
            gate.on_event(forged(1, EventType.SUCCESS))
        rows += [gate.on_event(m.reset_event(1.5)), gate.on_event(m.start(2.0))]
        assert not any(rows) and gate.counters["end_rows_dropped"] == 5
        assert "conflicting" in gate.last_drop if forged_first else "TIMEOUT" in gate.last_drop
    gate.on_event(m.mark(False, 3.0))
    gate.add(row(2, 0, reward=1.0, done=True))
    assert gate.on_event(m.reset_event(3.5))[0].rewards.sum() == 0.0


def test_a_start_closes_the_previous_episode_and_held_rows_are_bounded():
    gate, m = OutcomeGate(max_held=3), EpisodeManager()
    gate.on_event(m.start(0.0))
    for i in range(3):
        gate.add(row(1, i, reward=1.0, done=True))
    gate.on_event(m.mark(True, 1.0))
    assert len(gate.on_event(m.start(2.0))) == 3  # the RESET was lost: the next START closes episode 1
    for i in range(4):
        gate.add(row(2, i, done=True))
    assert gate.counters["end_rows_dropped"] == 4 and "more than 3" in gate.last_drop


def test_history_after_the_live_outcome_neither_reopens_nor_closes_an_episode():
    """A restarted learner got the live FAILURE of episode 312 before the reward node's recent events (its
    transient-local history, STARTs of 310-312); the end rows came next: they were dropped as having no outcome
    (the kill test, 2026-12-07). Older STARTs are history: the rows are stored with the live outcome."""
    def event(episode, kind):
        return EpisodeEventPacket(1.0, episode, kind, EventSource.SYSTEM, 0.0)

    gate = OutcomeGate()
    gate.on_event(EpisodeEventPacket(1.0, 312, EventType.FAILURE, EventSource.HUMAN, 0.0))  # live
    for episode in (310, 311):  # history
        assert gate.on_event(event(episode, EventType.START)) == []
        gate.on_event(event(episode, EventType.RESET))
    gate.on_event(event(312, EventType.START))
    gate.on_event(event(312, EventType.START))  # history again, or a repeat
    assert gate.on_event(event(311, EventType.START)) == []  # late: closes nothing
    assert not any(gate.add(row(312, i, reward=1.0, done=True)) for i in range(3))  # the actor's end rows
    out = gate.on_event(event(312, EventType.RESET))
    assert len(out) == 3 and all(t.rewards.sum() == 0.0 and t.done for t in out) and not gate.dropped
    assert len(gate.on_event(event(313, EventType.START))) == 0 and gate.counters["end_rows_stored"] == 3


def _detector_episode(gate, m, success, rows=3):
    """An episode the detector marks: START, HANDOVER, end rows held, the detector's mark."""
    gate.on_event(m.start(0.0))
    m.handover(0.1)
    assert not any(gate.add(row(m.episode_id, i, reward=float(success), done=True)) for i in range(rows))
    gate.on_event(m.mark(success, 1.0, EventSource.DETECTOR, "success detector p=0.97"))
    return m.episode_id


def test_the_operators_overrule_within_the_grace_period_rewrites_the_held_rows():
    """The detector says failure; the operator overrules (success) before the reset: the held rows are stored
    once, with reward 1; every row the actor sent is stored (none lost, none twice)."""
    gate, m = OutcomeGate(), EpisodeManager()
    episode = _detector_episode(gate, m, False)
    assert m.provisional and all(gate.holds(episode, i) for i in range(3))  # held: the actor's outbox keeps them
    overrule = m.overrule(True, 2.0, grace_s=2.0)
    assert overrule.source == EventSource.HUMAN and overrule.type == EventType.SUCCESS and "overrules" in overrule.note
    assert gate.on_event(overrule) == []
    assert m.history[-1].outcome == EventType.SUCCESS and m.history[-1].success and len(m.history) == 1
    stored = gate.on_event(m.reset_event(3.0))
    assert sorted(t.index for t in stored) == [0, 1, 2] and all(t.done and t.rewards.sum() == 1.0 for t in stored)
    assert gate.counters == {"end_rows_stored": 3, "end_rows_dropped": 0, "conflicting_outcomes": 0}
    assert not any(gate.holds(episode, i) for i in range(3))


def test_an_overruled_success_is_a_truncation_not_a_failure():
    """The detector says success, the operator overrules (failure): the detector cut the episode, whose last
    state may be a plug on its way in, so the end rows are not stored as a terminal failure (reward 0) but
    dropped as a truncation's, and acknowledged (their keys in ``dropped``); the episode counts as a failure."""
    gate, m = OutcomeGate(), EpisodeManager()
    episode = _detector_episode(gate, m, True)
    gate.on_event(m.overrule(False, 2.0, grace_s=2.0))
    assert m.history[-1].outcome == EventType.FAILURE
    assert gate.on_event(m.reset_event(3.0)) == []
    assert gate.counters == {"end_rows_stored": 0, "end_rows_dropped": 3, "conflicting_outcomes": 0}
    assert sorted(gate.dropped) == [(episode, 0), (episode, 1), (episode, 2)] and "overruled" in gate.last_drop
    assert stored_outcome({(EventType.SUCCESS, True), (EventType.FAILURE, False)}) == (EventType.TIMEOUT, False)
    assert stored_outcome({(EventType.FAILURE, True), (EventType.SUCCESS, False)}) == (EventType.SUCCESS, False)
    assert stored_outcome({(EventType.FAILURE, False)}) == (EventType.FAILURE, False)  # the operator's own failure
    assert stored_outcome({(EventType.FAILURE, True)}) == (EventType.FAILURE, False)  # the detector's, not overruled
    assert stored_outcome({(EventType.FAILURE, False), (EventType.SUCCESS, False)}) == (None, True)


def test_without_an_overrule_the_detectors_mark_stands_and_the_grace_period_ends():
    gate, m = OutcomeGate(), EpisodeManager()
    _detector_episode(gate, m, True)
    with pytest.raises(EpisodeError, match=r"2.5 s old, past the grace period of 2 s"):
        m.overrule(False, 3.5, grace_s=2.0)
    stored = gate.on_event(m.reset_event(3.6))
    assert [t.rewards.sum() for t in stored] == [1.0] * 3
    with pytest.raises(EpisodeError, match="no detector's mark to overrule"):
        m.overrule(False, 3.7, grace_s=10.0)  # after the reset
    gate2, m2 = OutcomeGate(), EpisodeManager()
    gate2.on_event(m2.start(0.0))
    gate2.on_event(m2.mark(True, 1.0))
    with pytest.raises(EpisodeError, match="no detector's mark to overrule"):  # a person's mark is final
        m2.overrule(False, 1.1, grace_s=10.0)


def test_a_confirmation_keeps_the_outcome_and_two_human_outcomes_still_conflict():
    gate, m = OutcomeGate(), EpisodeManager()
    _detector_episode(gate, m, False)
    gate.on_event(m.overrule(False, 1.5, grace_s=2.0))  # the operator confirms
    assert [t.rewards.sum() for t in gate.on_event(m.reset_event(3.0))] == [0.0] * 3
    gate, m = OutcomeGate(), EpisodeManager()
    episode = _detector_episode(gate, m, True)
    gate.on_event(m.overrule(False, 1.5, grace_s=2.0))
    gate.on_event(forged(episode, EventType.SUCCESS))  # a second "human" outcome: no authority left
    assert gate.on_event(m.reset_event(3.0)) == [] and gate.counters["end_rows_dropped"] == 3


def test_episode_stats_take_the_overrule(tmp_path):
    stats, m = EpisodeStats(log=tmp_path / "episodes.jsonl"), EpisodeManager()
    stats.apply(m.start(0.0))
    stats.apply(m.mark(True, 1.0, EventSource.DETECTOR))
    assert stats.success_rate() == 1.0
    assert stats.apply(m.overrule(False, 1.5, grace_s=2.0)).outcome == EventType.FAILURE
    assert stats.success_rate() == 0.0 and len(stats.history) == 1
    stats.apply(m.reset_event(2.0))
    stats.apply(m.start(3.0))
    stats.apply(m.mark(True, 4.0))
    assert stats.apply(forged(m.episode_id, EventType.FAILURE)) is None  # a person's mark is not rewritten
    assert stats.success_rate() == 0.5
    again = EpisodeStats(log=tmp_path / "episodes.jsonl")  # a restarted listener: the overrule's line wins
    assert [r.outcome for r in again.history] == [EventType.FAILURE, EventType.SUCCESS]
