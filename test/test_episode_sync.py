"""The pure logic behind reward_node and observation_node: episode life cycle and synchronization."""

import pytest

from rlt_ros.core.episode import EpisodeConfig, EpisodeError, EpisodeManager, EpisodeStats, PhaseTracker
from rlt_ros.core.interfaces import EventSource, EventType, Phase
from rlt_ros.core.sync import ApproxTimeSync, StaleInput, SyncConfig


def test_episode_cycle_and_rejections():
    m = EpisodeManager(EpisodeConfig(timeout_s=10, critical_timeout_s=5))
    with pytest.raises(EpisodeError, match="no episode is running"):
        m.mark(True, 0.0)
    start = m.start(1.0)
    assert (start.type, start.episode_id, m.phase) == (EventType.START, 1, Phase.VLA)
    with pytest.raises(EpisodeError, match="still running"):
        m.start(1.5)
    with pytest.raises(EpisodeError, match="cannot end an intervention"):
        m.intervention(False, 1.6)
    m.handover(2.0)
    with pytest.raises(EpisodeError, match="only in the VLA phase"):
        m.handover(2.1)
    done = m.mark(True, 4.5, EventSource.HUMAN, "clean")
    assert done.type == EventType.SUCCESS and done.reward == 1.0 and m.phase == Phase.IDLE
    with pytest.raises(EpisodeError, match="episode 1 was already marked"):
        m.mark(True, 4.6)  # a double success mark is refused
    assert m.history[-1].critical_s == pytest.approx(2.5) and m.success_rate() == 1.0
    m.start(5.0)
    m.handover(6.0)
    assert m.tick(10.0) is None
    timeout = m.tick(11.5)  # critical phase longer than 5 s
    assert timeout.type == EventType.TIMEOUT and timeout.reward == 0.0 and m.success_rate() == 0.5


def test_stats_and_tracker_follow_events():
    m, stats, tracker = EpisodeManager(), EpisodeStats(), PhaseTracker()
    events = [m.start(0.0), m.handover(1.0), m.mark(False, 3.0), m.start(4.0), m.handover(5.0), m.mark(True, 6.5)]
    for e in events:
        stats.apply(e)
        tracker.apply(e)
    assert [r.success for r in stats.history] == [False, True]
    assert stats.median_critical_s() == pytest.approx(1.5)
    assert tracker.phase == Phase.IDLE and tracker.episode_id == 2
    assert not tracker.apply(events[1])  # an old episode's event is ignored (a START would begin a new one)


def test_stats_kept_over_a_restart_of_the_listener(tmp_path):
    """A restarted learner rebuilt its statistics from the last 100 events /rlt/events replays (issue 19 #10):
    with a log it reads its history back, and the replayed events of recorded episodes are not counted twice."""
    m, log = EpisodeManager(), tmp_path / "episodes.jsonl"
    events = [m.start(0.0), m.handover(1.0), m.mark(False, 3.0), m.start(4.0), m.handover(5.0), m.mark(True, 6.5)]
    first = EpisodeStats(log=log)
    for e in events:
        first.apply(e)
    with open(log, "a") as f:
        f.write('{"episode_id": 3, "succ')  # a line torn by a crash
    restarted = EpisodeStats(log=log)
    assert restarted.history == first.history
    for e in events[3:]:  # what the restarted listener hears again
        assert restarted.apply(e) is None
    assert [r.success for r in restarted.history] == [False, True] and restarted.median_critical_s() == 1.5
    for e in (m.start(7.0), m.handover(7.5), m.mark(True, 8.0)):
        restarted.apply(e)
    assert [r.success for r in EpisodeStats(log=log).history] == [False, True, True]  # after the torn line: kept


def test_sync_matches_within_skew_and_reports_stale():
    sync = ApproxTimeSync(["joints", "cam"], SyncConfig(max_skew=0.02, max_age=0.1))
    with pytest.raises(StaleInput, match="no message yet on joints"):
        sync.latest_set(1.0)
    for t in (1.00, 1.02, 1.04):
        sync.add("joints", t, f"j{t}")
    sync.add("cam", 1.011, "c1")
    sync.add("cam", 1.031, "c2")
    stamp, values = sync.latest_set(1.05)
    assert stamp == 1.04 and values == {"joints": "j1.04", "cam": "c2"}
    sync.add("joints", 1.10, "late")
    with pytest.raises(StaleInput, match="cam: nearest message"):
        sync.latest_set(1.11)
    with pytest.raises(StaleInput, match="old"):
        sync.latest_set(1.5)
    sync.add("cam", 1.0, "out of order")
    stats = sync.stats()
    assert stats["cam"].out_of_order == 1 and stats["cam"].stale == 1 and stats["joints"].stale == 1


def test_sync_refuses_future_stamps_and_starts_afresh_after_a_clock_jump():
    """A joint state stamped +30 s (another process) made every real one after it 'out of order' for 30 s, and
    a restarted simulator (its clock back at 0) did the same for as long as it had run (issue 19 #1)."""
    sync = ApproxTimeSync(["joints"], SyncConfig(max_age=0.1))
    assert sync.add("joints", 10.0, "real", now=10.0)
    assert not sync.add("joints", 40.0, "forged", now=10.01) and sync.stats()["joints"].future == 1
    assert sync.add("joints", 10.02, "next real", now=10.02)
    assert sync.latest_set(10.03)[1] == {"joints": "next real"}
    assert sync.add("joints", 0.02, "after the restart", now=0.03)  # the held 10.02 is from before the jump
    assert sync.latest_set(0.04)[1] == {"joints": "after the restart"}


def test_demo_progress_splits_base_and_practice():
    import io

    from rlt_ros.commands.demo import Progress, summary
    p, m = Progress(io.StringIO()), EpisodeManager(first_episode_id=1_796_429_534_484)  # a reward node's ms ids
    for e in (m.start(0.0), m.handover(1.0), m.mark(True, 3.0)):
        p.on_event(e)  # before the actor's first weights: the base policy
    p.on_weights(type("W", (), {"version": 10})())
    for t in (4.0, 10.0):
        for e in (m.start(t), m.handover(t + 1), m.mark(False, t + 2)):
            p.on_event(e)
    assert "episode 3 IDLE" in p.line(5.0) and "success 1/3" in p.line(5.0)
    from rlt_ros.msg import LearnerStats
    p.on_stats(LearnerStats(updates=250, transitions=100, names=["q_mean", "utd_achieved"], values=[0.5, 2.5]))
    assert "updates 250 (UTD 2.5) | transitions 100" in p.line(5.0)
    p.start_evaluation()  # after episode 3: exploration off
    from rlt_ros.core.interfaces import EventSource
    for t, marks in ((20.0, EventSource.DETECTOR), (30.0, EventSource.HUMAN)):  # learned marks, then a person's
        for e in (m.start(t), m.handover(t + 1, EventSource.DETECTOR), m.mark(True, t + 4, marks)):
            p.on_event(e)
    assert "| base VLA (before the actor's first weights) | 1 | 100% | 100% | 2.00 | 2.00 (1.00) |" in summary(p, 10, 8.0)
    table = summary(p, 10, 2.5)  # the evaluation's 3 s insertions miss a 2.5 s budget
    assert ("| policy | episodes | success | inserted within 2.5 s | median critical phase [s] | presses per episode (handover) |"
            in table)
    assert "| base VLA (before the actor's first weights) | 1 | 100% | 100% | 2.00 | 2.00 (1.00) |" in table
    assert "| RLT practice, episodes 2-3 (exploring) | 2 | 0% | 0% | - | 2.00 (1.00) |" in table
    assert "| RLT after practice, no exploration noise | 2 | 100% | 0% | 3.00 | 0.50 (0.00) |" in table
    assert "| all episodes | 5 | 60% | 20% | 3.00 | 1.40 (0.60) |" in table and "switch and detector" not in table
    p.on_stats(LearnerStats(updates=900, transitions=300, names=["detector_accuracy", "marks_version", "utd_achieved"],
                            values=[0.97, 2.0, 5.0]))
    assert ("The learner's switch and detector (version 2) on their held-out episodes: detector_accuracy 0.97"
            in summary(p, 10, 2.5))


def test_demo_summary_blocks_fold_a_short_tail():
    from rlt_ros.commands.demo import blocks

    assert blocks(list(range(24)), 10) == [list(range(10)), list(range(10, 24))]  # 4 < 5: joins
    assert blocks(list(range(25)), 10) == [list(range(10)), list(range(10, 20)), list(range(20, 25))]
    assert blocks(list(range(3)), 10) == [[0, 1, 2]] and blocks([], 10) == []


def test_a_restarted_reward_node_is_followed():
    """A reward node that restarts numbers episodes from 1 again: its START begins a new episode for the
    followers (actor, vla, learner) instead of being ignored as older; other events of older ids still are."""
    from rlt_ros.core.interfaces import EpisodeEventPacket, EventSource, EventType

    tracker = PhaseTracker()
    for eid, kind in ((8, EventType.START), (8, EventType.HANDOVER)):
        assert tracker.apply(EpisodeEventPacket(1.0, eid, kind, EventSource.SYSTEM))
    assert not tracker.apply(EpisodeEventPacket(2.0, 3, EventType.HANDOVER, EventSource.SYSTEM))  # stale
    assert tracker.apply(EpisodeEventPacket(3.0, 1, EventType.START, EventSource.SYSTEM))  # the restarted node
    assert (tracker.episode_id, tracker.phase.name) == (1, "VLA")
    assert tracker.apply(EpisodeEventPacket(4.0, 1, EventType.HANDOVER, EventSource.HUMAN))
    assert tracker.phase.name == "RL"
