"""The learner's terminal rewards come from the episode's one outcome event (core.rlt.outcomes)."""

import numpy as np

from rlt_ros.core.episode import EpisodeManager
from rlt_ros.core.interfaces import EpisodeEventPacket, EventSource, EventType
from rlt_ros.core.rlt.outcomes import OutcomeGate
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
