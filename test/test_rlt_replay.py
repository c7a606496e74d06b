"""RLT replay buffer: validation, stride-2 chunk windows, intervention relabelling, persistence."""

import hashlib

import numpy as np
import pytest

from rlt_ros.core.rlt.replay import (SOURCE_HUMAN, SOURCE_RL, SOURCE_VLA, ChunkRecorder, ReplayBuffer, ReplayError,
                                     Transition, relabel_intervention)

T, P, C, A = 3, 2, 4, 2


def transition(eid=0, index=0, **kw):
    rng = np.random.default_rng(eid * 1000 + index)
    base = dict(episode_id=eid, index=index, token=rng.normal(size=T), proprio=rng.normal(size=P),
                reference=rng.normal(size=(C, A)), action=rng.normal(size=(C, A)), rewards=np.zeros(C), done=False,
                next_token=rng.normal(size=T), next_proprio=rng.normal(size=P), next_reference=rng.normal(size=(C, A)))
    return Transition(**{**base, **kw})


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_rejects_nan_and_wrong_dimensions(tmp_path):
    rb = ReplayBuffer(T, P, C, A, directory=tmp_path)
    rb.add(transition())
    before = digest(tmp_path / "log.bin")
    bad_token = transition(token=[0.0, np.nan, 1.0])
    with pytest.raises(ReplayError, match=r"transition.token: non-finite value nan at index \[1\]"):
        rb.add(bad_token)
    with pytest.raises(ReplayError, match=r"transition.action: expected shape \(4, 2\), got \(4, 3\)"):
        rb.add(transition(action=np.zeros((C, 3))))
    with pytest.raises(ReplayError, match="next_proprio"):
        rb.add(transition(next_proprio=[np.inf, 0.0]))
    with pytest.raises(ReplayError, match="steps"):
        rb.add(transition(steps=C + 1))
    assert len(rb) == 1 and digest(tmp_path / "log.bin") == before  # nothing of the bad ones stored


def test_chunk_recorder_stride_windows_and_terminal_reward():
    rec = ChunkRecorder(episode_id=7, chunk_size=C, stride=2, source=SOURCE_RL)
    out, steps = [], 11  # episode ends after 11 executed steps (success on the last)
    for t in range(steps):
        if rec.needs_observation():
            out += rec.observe(np.full(T, t), np.full(P, t), np.full((6, A), t))
        rec.act(np.full(A, 100 + t))
    out += rec.finish(reward=1.0)
    starts = [tr.index for tr in out]
    assert starts == [0, 2, 4, 6, 8, 10]  # one window every stride=2 steps
    full = [tr for tr in out if not tr.done]
    assert [tr.index for tr in full] == [0, 2, 4, 6]
    for tr in full:  # x' is the state C steps later; actions are the executed ones
        assert tr.next_token[0] == tr.index + C and tr.next_reference[0, 0] == tr.index + C
        np.testing.assert_array_equal(tr.action[:, 0], 100 + tr.index + np.arange(C))
        assert tr.rewards.sum() == 0 and tr.steps == C
    for tr in out[4:]:  # windows containing the last step: terminal, reward at that step
        k = steps - 1 - tr.index
        assert tr.done and tr.steps == k + 1 and tr.rewards[k] == 1.0 and tr.rewards.sum() == 1.0
        assert np.all(tr.action[k:, 0] == 100 + steps - 1)  # padded with the last executed action
    # 7 + 4 = 11 steps: window 6 covers steps 6..9 and is complete, window 8 covers 8..10 and ends the episode
    assert out[4].index == 8 and out[4].steps == 3


def test_intervention_relabels_reference_to_human_action():
    rec = ChunkRecorder(episode_id=1, chunk_size=C, stride=2, source=SOURCE_RL)
    out = []
    for t in range(8):
        if rec.needs_observation():
            out += rec.observe(np.zeros(T), np.zeros(P), np.full((C, A), -1.0))
        human = t in (2, 3)
        rec.act(np.full(A, 50.0 + t), human=human)
    out += rec.finish(0.0)
    by_start = {tr.index: tr for tr in out}
    w0 = by_start[0]  # steps 0..3, human at 2, 3
    assert w0.intervention and w0.source == SOURCE_HUMAN
    np.testing.assert_array_equal(w0.reference[:, 0], [-1, -1, 52, 53])  # ã <- a_human on those rows only
    w2 = by_start[2]  # steps 2..5
    np.testing.assert_array_equal(w2.reference[:, 0], [52, 53, -1, -1])
    w4 = by_start[4]
    assert not w4.intervention and w4.source == SOURCE_RL and np.all(w4.reference == -1)
    np.testing.assert_array_equal(relabel_intervention(np.zeros((2, 1)), np.ones((2, 1)), [False, True]), [[0], [1]])


def test_persistence_round_trip_torn_tail_and_episode_end(tmp_path):
    rb = ReplayBuffer(T, P, C, A, directory=tmp_path)
    for i in range(5):
        rb.add(transition(eid=3, index=2 * i, source=SOURCE_VLA if i < 2 else SOURCE_RL))
    assert rb.end_episode(3, 1.0, last_step=9) == 2  # windows 6 (6..9) and 8 (8..11) contain step 9
    rb.close()
    with open(tmp_path / "log.bin", "ab") as f:
        f.write(b"RLTr\x01\xff\xff")  # a torn record, as after a crash mid-write
    rb2 = ReplayBuffer(T, P, C, A, directory=tmp_path)
    assert len(rb2) == 5 and rb2.count_by_source() == {"vla": 2, "rl": 3, "human": 0}
    data = rb2.arrays()
    np.testing.assert_allclose(data["token"][4], transition(eid=3, index=8).token.astype(np.float32))
    assert list(data["done"]) == [0, 0, 0, 1, 1]
    assert data["rewards"][3, 3] == 1.0 and data["rewards"][4, 1] == 1.0
    rb2.add(transition(eid=4, index=0))  # appends after the cut-off tail
    rb2.close()
    assert len(ReplayBuffer(T, P, C, A, directory=tmp_path)) == 6
    batch = ReplayBuffer(T, P, C, A, directory=tmp_path).sample(16, np.random.default_rng(0))
    assert batch.action.shape == (16, C, A) and batch.done.shape == (16,)


def test_reopen_with_other_dimensions_is_refused_and_changes_nothing(tmp_path):
    rb = ReplayBuffer(T, P, C, A, directory=tmp_path)
    rb.add(transition())
    rb.close()
    before = {p.name: digest(p) for p in tmp_path.iterdir()}
    with pytest.raises(ReplayError, match="token_dim: stored 3 vs requested 5"):
        ReplayBuffer(5, P, C, A, directory=tmp_path)
    assert {p.name: digest(p) for p in tmp_path.iterdir()} == before


def test_ring_capacity_keeps_newest_in_memory_and_all_on_disk(tmp_path):
    rb = ReplayBuffer(T, P, C, A, capacity=3, directory=tmp_path)
    for i in range(5):
        rb.add(transition(index=i))
    assert len(rb) == 3 and rb.total_added == 5
    assert list(rb.arrays()["index"]) == [2, 3, 4]
    rb.close()
    assert ReplayBuffer(T, P, C, A, capacity=10, directory=tmp_path).total_added == 5


def test_single_writer_and_read_only_view(tmp_path):
    rb = ReplayBuffer(T, P, C, A, directory=tmp_path)
    rb.add(transition(index=0))
    with open(tmp_path / "log.bin", "ab") as f:
        f.write(b"RLTr\x01")  # as if the writer were in the middle of a record
    before = digest(tmp_path / "log.bin")
    with pytest.raises(ReplayError, match="in use by another process"):
        ReplayBuffer(T, P, C, A, directory=tmp_path)
    view = ReplayBuffer(T, P, C, A, directory=tmp_path, read_only=True)
    assert len(view) == 1 and digest(tmp_path / "log.bin") == before  # the torn tail is left alone
    with pytest.raises(ReplayError, match="read-only"):
        view.add(transition(index=2))
    rb.close()


def test_a_transition_already_held_is_not_added_again(tmp_path):
    """(episode_id, index) names a transition: a resend (the actor's outbox after a lost acknowledgement) is
    dropped, also after the buffer is reopened from its log, and also once pushed out of the ring."""
    rb = ReplayBuffer(T, P, C, A, capacity=2, directory=tmp_path)
    assert rb.add(transition(1, 0)) and rb.add(transition(1, 2)) and rb.add(transition(2, 0))
    assert not rb.add(transition(1, 2)) and not rb.add(transition(1, 0))  # 1/0 is out of the ring, still in the log
    assert rb.total_added == 3 and rb.holds(1, 0) and not rb.holds(1, 4)
    rb.close()
    again = ReplayBuffer(T, P, C, A, capacity=2, directory=tmp_path)
    assert not again.add(transition(2, 0)) and again.add(transition(2, 2)) and again.total_added == 4


def test_chunk_recorder_opened_late_numbers_from_its_first_step():
    rec, out = ChunkRecorder(episode_id=7, chunk_size=C, stride=2, first_step=151), []
    for _ in range(6):
        if rec.needs_observation():
            out += rec.observe(np.zeros(T), np.zeros(P), np.zeros((C, A)))
        rec.act(np.zeros(A))
    assert [t.index for t in out + rec.finish(1.0)] == [152, 154, 156]
