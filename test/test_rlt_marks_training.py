"""Retraining the handover switch and the success detector during practice (core.rlt.marks_training): the token
stream and the events into rolling token bags, a new version of both after every ``every`` marked episodes,
their held-out metrics, a resume that continues the versions, and the export as bytes (to_bytes/from_bytes)."""

from __future__ import annotations

import numpy as np
import pytest

from rlt_ros.core.interfaces import EpisodeEventPacket, EventSource, EventType, Phase, TokenPacket
from rlt_ros.core.rlt.configuration_detector import DetectorConfig
from rlt_ros.core.rlt.configuration_switch import SwitchConfig
from rlt_ros.core.rlt.detector import DetectorError, SuccessDetector
from rlt_ros.core.rlt.marks_training import MarksTrainer
from rlt_ros.core.rlt.switch import HandoverSwitch, SwitchMismatchError
from test_rlt_detector import FAST, IDENTITY, synthetic_episodes

HZ = 25.0


def practice(trainer: MarksTrainer, n: int, first: int = 1, seed: int = 0) -> list[bool]:
    """Feed ``n`` episodes as the learner hears them: START, an approach whose token[2] (the distance) falls to
    0.4 at the operator's handover press, the detector's synthetic critical phase (token[0]: the plug's depth),
    the operator's mark. Returns write_event's answers at each mark."""
    due = []
    for ep in synthetic_episodes(n, seed):
        eid, t0 = first + ep.episode_id - 1, ep.stamps[0] + 10.0
        approach = t0 - np.arange(30, 0, -1) / HZ
        stamps = np.concatenate([approach, ep.stamps + 10.0])
        tokens = np.concatenate([np.zeros((30, 4), np.float32), ep.tokens])
        tokens[:, 2] = np.concatenate([np.linspace(1.0, 0.45, 30), np.full(len(ep.stamps), 0.35)])
        trainer.write_event(EpisodeEventPacket(stamps[0] - 0.01, eid, EventType.START, EventSource.SYSTEM))
        for stamp, token in zip(stamps, tokens):
            if stamp == t0:
                trainer.write_event(EpisodeEventPacket(t0, eid, EventType.HANDOVER, EventSource.HUMAN))
            trainer.write_token(TokenPacket(stamp=stamp, episode_id=eid, phase=Phase.VLA if stamp < t0 else Phase.RL,
                                            token=token, proprio=np.zeros(3, np.float32), joint_names=("a", "b"),
                                            reference_chunk=np.zeros((2, 2), np.float32), step_dt=0.02))
        outcome = EventType.SUCCESS if ep.outcome else EventType.FAILURE
        due.append(trainer.write_event(EpisodeEventPacket(ep.outcome_s + 10.0, eid, outcome, EventSource.HUMAN,
                                                          float(ep.outcome))))
        trainer.write_event(EpisodeEventPacket(ep.outcome_s + 10.5, eid, EventType.RESET, EventSource.SYSTEM))
    return due


def trainer_at(directory, every: int = 30) -> MarksTrainer:
    return MarksTrainer(directory, IDENTITY, every, SwitchConfig(**FAST, test_fraction=0.25),
                        DetectorConfig(**FAST, test_fraction=0.25))


def test_both_classifiers_retrain_after_every_marked_episodes_as_a_new_version(tmp_path):
    trainer = trainer_at(tmp_path)
    due = practice(trainer, 30)
    assert due == [False] * 29 + [True]  # the 30th mark fills the bag
    trainer.roll()
    update = trainer.train()
    assert update.version == 1 and not update.errors and set(update.models) == {"switch", "detector"}
    assert update.metrics["marks_version"] == 1.0
    assert update.metrics["switch_test_episodes"] == update.metrics["detector_test_episodes"] > 0
    assert update.metrics["switch_on_time"] >= 0.8 and update.metrics["detector_accuracy"] >= 0.8
    switch = HandoverSwitch.load(tmp_path / "switch" / "v0001", IDENTITY)
    detector = SuccessDetector.load(tmp_path / "detector" / "v0001", IDENTITY)
    assert switch.report["test"]["on_time"] == update.metrics["switch_on_time"]
    assert detector.report["episodes"]["successes"] + detector.report["episodes"]["failures"] == 30

    # a restarted learner continues: versions and bags go on from the last; the open bag of a crash is not read
    practice(trainer, 5, first=100, seed=1)  # left open (a kill: nobody closes it)
    again = trainer_at(tmp_path)
    assert again.version == 1 and [p.name for p in again.closed_bags()] == ["0001"]
    practice(again, 30, first=200, seed=2)
    again.roll()
    second = again.train()
    assert second.version == 2 and (tmp_path / "detector" / "v0002" / "detector.json").is_file()
    assert [p.name for p in again.closed_bags()] == ["0001", "0003"]  # 0002 is the crashed one
    assert second.models["detector"].report["episodes"]["successes"] + \
        second.models["detector"].report["episodes"]["failures"] == 60


def test_too_few_marks_train_nothing_and_say_why(tmp_path):
    trainer = trainer_at(tmp_path, every=5)
    forged = EpisodeEventPacket(-1.0, 1, EventType.SUCCESS, EventSource.HUMAN, 1.0)  # before 1970: no bag holds it
    assert not trainer.write_event(forged) and trainer.marked == 0
    assert practice(trainer, 5)[-1]
    trainer.roll()
    update = trainer.train()
    assert not update.models and set(update.errors) == {"switch", "detector"}
    assert "at least" in update.errors["detector"] and trainer.version == 0
    assert not (tmp_path / "switch").exists()
    with pytest.raises(ValueError, match="every"):
        MarksTrainer(tmp_path, IDENTITY, 0)


def test_a_classifier_travels_as_bytes_and_is_refused_for_another_token():
    from rlt_ros.core.rlt.switch import train_switch
    from test_rlt_switch import synthetic_episodes as approaches

    switch = train_switch(approaches(20), SwitchConfig(**FAST), IDENTITY)
    meta, weights = switch.to_bytes()
    copy = HandoverSwitch.from_bytes(meta, weights, IDENTITY)
    x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    proprio = np.zeros((6, 3), np.float32)
    np.testing.assert_allclose(copy.probabilities(x, proprio), switch.probabilities(x, proprio))
    with pytest.raises(SwitchMismatchError, match="retrain"):
        HandoverSwitch.from_bytes(meta, weights, {"token": "b", "token_sha256": "b" * 64})
    with pytest.raises(DetectorError, match="not a valid success detector"):
        SuccessDetector.from_bytes(meta, weights[:-7], IDENTITY, "/rlt/detector_weights")


def test_a_press_made_because_the_switch_was_late_is_no_label(tmp_path):
    """With a switch running the operator presses only once it is late: that press's timing is the operator's
    wait, and a switch trained on it would fire later with every version."""
    from rlt_ros.core.data.token_bags import TokenBagWriter, read_labelled_episodes
    from rlt_ros.core.interfaces import LATE_SWITCH

    with TokenBagWriter(tmp_path / "bag") as bag:
        for eid, note in ((1, ""), (2, LATE_SWITCH)):
            bag.write_event(EpisodeEventPacket(10.0 * eid, eid, EventType.START, EventSource.SYSTEM))
            bag.write_token(TokenPacket(stamp=10.0 * eid + 0.1, episode_id=eid, phase=Phase.VLA,
                                        token=np.zeros(4, np.float32), proprio=np.zeros(3, np.float32),
                                        joint_names=("a", "b"), reference_chunk=np.zeros((0, 2), np.float32),
                                        step_dt=0.02))
            bag.write_event(EpisodeEventPacket(10.0 * eid + 0.2, eid, EventType.HANDOVER, EventSource.HUMAN, note=note))
            bag.write_event(EpisodeEventPacket(10.0 * eid + 0.3, eid, EventType.SUCCESS, EventSource.HUMAN, 1.0))
    first, second = read_labelled_episodes([tmp_path / "bag"])
    assert first.handover_s == pytest.approx(10.2) and second.handover_s is None
    assert first.outcome and second.outcome  # the outcome marks are labels either way
