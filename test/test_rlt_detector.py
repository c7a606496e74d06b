"""The learned success detector: training on the operator's success/failure marks, held-out metrics, save/load
with the RL token's identity, too few marks or one outcome only; the marks read from token bags; `rlt
train-detector`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlt_ros.core.checkpoints import token_identity
from rlt_ros.core.data.token_bags import TokenBagWriter, read_labelled_episodes
from rlt_ros.core.interfaces import EpisodeEventPacket, EventSource, EventType, Phase, TokenPacket
from rlt_ros.core.rlt.configuration_detector import DetectorConfig
from rlt_ros.core.rlt.detector import (DetectorError, DetectorMismatchError, DetectorRunner, SuccessDetector, evaluate,
                                       train_detector)
from rlt_ros.core.rlt.token_classifier import LabelledEpisode

torch.set_num_threads(1)

IDENTITY = {"token": "token_a", "token_sha256": "a" * 64}
FAST = dict(hidden=(), steps=300)  # logistic regression: enough for these streams


def synthetic_episodes(n: int, seed: int = 0, informative: bool = True, hz: float = 25.0,
                       success_rate: float = 0.5) -> list[LabelledEpisode]:
    """Critical phases whose token[0] is the plug's depth: it rises to 0.8 and drops in (1, seated) 0.3 s before
    the mark in the successes, rises to 0.3-0.6 (jammed) in the failures; the operator marks at the last tick. ``informative=False``:
    the depth is left out of the tokens."""
    rng = np.random.default_rng(seed)
    episodes = []
    for i in range(n):
        success = rng.random() < success_rate
        t = 100.0 * i + np.arange(int(hz * rng.uniform(3.0, 6.0))) / hz
        depth = 0.8 * ((t - t[0]) / (t[-1] - t[0])) ** rng.uniform(1.0, 2.0) * (1.0 if success else rng.uniform(0.4, 0.7))
        if success:
            depth[t > t[-1] - 0.3] = 1.0  # past the chamfer, the plug drops in; the operator marks 0.3 s later
        tokens = rng.normal(0.0, 0.02, (len(t), 4))
        tokens[:, 1] += rng.normal()  # a nuisance that differs between episodes
        if informative:
            tokens[:, 0] += depth
        proprio = rng.normal(0.0, 0.1, (len(t), 3))
        episodes.append(LabelledEpisode(i + 1, t, tokens.astype(np.float32), proprio.astype(np.float32),
                                        float(t[0]), bool(success), float(t[-1])))
    return episodes


def test_detector_tells_success_from_failure_on_held_out_episodes():
    detector = train_detector(synthetic_episodes(60), DetectorConfig(**FAST, test_fraction=0.3), IDENTITY)
    test = detector.report["test"]
    assert detector.report["episodes"]["test"] == 18 and test["episodes"] == 18
    assert test["accuracy"] == 1.0 and test["false_success"] == 0.0 and test["recall"] == 1.0
    assert test["online_false_success"] == 0.0 and test["confident"] > 0.8
    assert test["early"] == 0.0


def test_training_samples_the_last_windows_and_the_earlier_ones_as_negatives():
    from rlt_ros.core.rlt.token_classifier import split_episodes

    episodes, cfg = synthetic_episodes(30), dict(**FAST, test_fraction=0.0)
    last_only = train_detector(episodes, DetectorConfig(**cfg, negatives_before_s=0.0))
    assert last_only.report["samples"]["train"] == 3 * last_only.report["episodes"]["train"]  # the last 3 windows each
    every = train_detector(episodes, DetectorConfig(**cfg, negative_stride=1))
    train, _, _ = split_episodes(episodes, DetectorConfig(**cfg), DetectorError, "")
    # a failure: every window of its critical phase; a success: those ending 0.5 s or more before the mark, + the last 3
    expected = sum(int(np.sum(e.stamps <= e.outcome_s - 0.5)) + 3 if e.outcome else len(e.stamps) for e in train)
    assert every.report["samples"]["train"] == expected


def test_detector_without_signal_fails_the_metrics():
    """The metric can fail: tokens that do not show the depth leave the detector at chance."""
    detector = train_detector(synthetic_episodes(60, informative=False), DetectorConfig(**FAST, test_fraction=0.3))
    assert detector.report["test"]["accuracy"] < 0.8


def test_windows_take_the_last_ticks_and_pad_with_the_first():
    detector = SuccessDetector(2, 1, DetectorConfig(window=3, hidden=()))
    tokens = np.arange(8, dtype=np.float32).reshape(4, 2)
    proprio = 10 + np.arange(4, dtype=np.float32)[:, None]
    x = detector.windows(tokens, proprio, np.array([0, 3])).numpy()
    assert x.shape == (2, 9)
    assert x[0].tolist() == [0, 1, 10] * 3  # before the stream: its first tick
    assert x[1].tolist() == [2, 3, 11, 4, 5, 12, 6, 7, 13]  # oldest first
    assert detector.probability(tokens, proprio) == pytest.approx(detector.probabilities(tokens, proprio)[-1])


def test_save_load_round_trip_and_a_detector_for_another_token(tmp_path):
    episodes = synthetic_episodes(24)
    detector = train_detector(episodes, DetectorConfig(**FAST, test_fraction=0.0), IDENTITY)
    detector.save(tmp_path / "det")
    loaded = SuccessDetector.load(tmp_path / "det", IDENTITY)
    ep = episodes[0]
    np.testing.assert_allclose(loaded.probabilities(ep.tokens, ep.proprio), detector.probabilities(ep.tokens, ep.proprio))
    assert loaded.cfg == detector.cfg and loaded.report["episodes"] == detector.report["episodes"]
    with pytest.raises(DetectorMismatchError, match="success detector .* trained on the RL token token_a .* "
                                                    "retrain it with `rlt train-detector --token`"):
        SuccessDetector.load(tmp_path / "det", {"token": "token_b", "token_sha256": "b" * 64})
    with pytest.raises(DetectorError, match="trained for another token or arm"):
        loaded.probability(np.zeros((5, 5), np.float32), np.zeros((5, 3), np.float32))
    with pytest.raises(DetectorError, match="not a success detector folder .* `rlt train-detector`"):
        SuccessDetector.load(tmp_path / "nothing", IDENTITY)
    (tmp_path / "det" / "detector.json").write_text("{")
    with pytest.raises(DetectorError, match="not a valid success detector"):
        SuccessDetector.load(tmp_path / "det", IDENTITY)


def test_too_few_marks_or_one_outcome_only():
    with pytest.raises(DetectorError, match=r"19 episodes with an operator's success/failure mark \(of 19 "
                                            r"recorded\): the detector needs at least 20"):
        train_detector(synthetic_episodes(19), DetectorConfig(**FAST))
    unmarked = [LabelledEpisode(e.episode_id, e.stamps, e.tokens, e.proprio, e.handover_s)  # timeouts: no label
                for e in synthetic_episodes(30)]
    with pytest.raises(DetectorError, match=r"10 episodes with .* \(of 40 recorded\)"):
        train_detector(synthetic_episodes(10) + unmarked, DetectorConfig(**FAST))
    with pytest.raises(DetectorError, match="30 successes and 0 failures .* at least 3 of each .* marks failure"):
        train_detector(synthetic_episodes(30, success_rate=1.0), DetectorConfig(**FAST))
    with pytest.raises(DetectorError, match="0 successes and 30 failures .* marks success"):
        train_detector(synthetic_episodes(30, success_rate=0.0), DetectorConfig(**FAST))


def test_evaluate_counts_false_successes():
    episodes = synthetic_episodes(40)
    detector = train_detector(episodes, DetectorConfig(**FAST, test_fraction=0.0))
    flipped = [LabelledEpisode(e.episode_id, e.stamps, e.tokens, e.proprio, e.handover_s, not e.outcome, e.outcome_s)
               for e in episodes]
    m = evaluate(detector, flipped)  # every failure now looks like a success
    assert m["accuracy"] == 0.0 and m["false_success"] == 1.0 and m["online_false_success"] > 0.9
    assert m["confusion"]["fp"] == m["failures"]


def _write(bag, episodes, marks):
    """Each synthetic episode as START, its tokens and events ``marks(episode)``: (type, source) pairs."""
    for ep in episodes:
        bag.write_event(EpisodeEventPacket(ep.stamps[0], ep.episode_id, EventType.START, EventSource.SYSTEM))
        for stamp, token in zip(ep.stamps, ep.tokens):
            bag.write_token(TokenPacket(stamp=stamp, episode_id=ep.episode_id, phase=Phase.RL, token=token,
                                        proprio=np.zeros(3, np.float32), joint_names=("a", "b"),
                                        reference_chunk=np.zeros((2, 2), np.float32), step_dt=0.02))
        for k, (kind, source) in enumerate(marks(ep)):
            bag.write_event(EpisodeEventPacket(ep.outcome_s + 0.001 * k, ep.episode_id, kind, source))


def test_token_bag_marks_only_from_a_person_and_the_overrule_wins(tmp_path):
    ok, fail = EventType.SUCCESS, EventType.FAILURE
    human, detector = EventSource.HUMAN, EventSource.DETECTOR
    events = {1: [(ok, human)], 2: [(fail, human)], 3: [(EventType.TIMEOUT, EventSource.TIMEOUT)],
              4: [(ok, detector)], 5: [(ok, detector), (fail, human)]}  # 5: the operator overrules the detector
    episodes = synthetic_episodes(5)
    with TokenBagWriter(tmp_path / "bag") as bag:
        _write(bag, episodes, lambda ep: events[ep.episode_id])
    read = read_labelled_episodes([tmp_path / "bag"])
    assert [e.outcome for e in read] == [True, False, None, None, False]
    assert read[4].outcome_s == pytest.approx(episodes[4].outcome_s + 0.001)
    assert len(read[4].stamps) == len(episodes[4].stamps)  # the stream ends at the detector's (first) mark


def test_train_detector_command_on_bags(tmp_path, capsys):
    from rlt_ros import cli

    episodes = synthetic_episodes(40)
    with TokenBagWriter(tmp_path / "bag") as bag:
        _write(bag, episodes, lambda ep: [(EventType.SUCCESS if ep.outcome else EventType.FAILURE, EventSource.HUMAN)])
    args = ["train-detector", "--bags", str(tmp_path / "bag"), "--out", str(tmp_path / "det"), "--steps", "300",
            "--hidden", "--test-fraction", "0.25"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "held-out episodes: 10 (" in out and "accuracy 100.0%" in out and "false success 0.0% at the mark" in out
    detector = SuccessDetector.load(tmp_path / "det", token_identity())
    assert detector.report["episodes"]["train"] == 22 and detector.token_dim == 4
    assert cli.main(args[:-2] + ["--min-episodes", "41", "--out", str(tmp_path / "other")]) == 2
    assert "40 episodes with an operator's success/failure mark (of 40 recorded): the detector needs at least 41" \
        in capsys.readouterr().err
    assert not (tmp_path / "other").exists()


def test_runner_gives_one_verdict_per_episode_success_on_k_ticks_failure_after_the_time_limit():
    detector = train_detector(synthetic_episodes(40), DetectorConfig(**FAST, test_fraction=0.0))
    runner = DetectorRunner(detector, failure_after_s=1.0)
    seated, jammed = np.array([1.0, 0, 0, 0], np.float32), np.array([0.4, 0, 0, 0], np.float32)
    proprio = np.zeros(3, np.float32)

    def run(episode, token, n, critical=lambda k: 0.1 * k):
        return [runner.judge(episode, critical(k), runner.push(episode, token, proprio)) for k in range(n)]

    assert run(1, seated, 8, critical=lambda k: None) == [None] * 8  # the approach: no verdict
    verdicts = run(2, seated, 8)
    assert verdicts[:2] == [None, None] and verdicts[2] is True and verdicts[3:] == [None] * 5  # k = 3, once
    verdicts = run(3, jammed, 20)  # jammed: failure only once the critical phase lasted 1 s, then k ticks
    assert verdicts.index(False) == 12 and verdicts.count(False) == 1 and True not in verdicts
