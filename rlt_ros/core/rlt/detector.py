"""The learned success detector: did the episode succeed, read from its last ticks of (z_rl, proprio).

Paper ("RL Token", Xu et al. 2026, "The human in the loop"): the reward is sparse and binary, the operator
marks each episode's end, +1 success or 0 failure. Here a small MLP learns those marks from recorded episodes
(/rlt/token + /rlt/events): one sample is the window of the last ``window`` ticks (oldest first) ending at one
of the last ``tail`` ticks before the operator's SUCCESS (1) or FAILURE (0) press (a HUMAN mark; a timeout
or a detector's mark is no label); the earlier windows of the critical phase are samples of "not (yet) a
success" (0), else the detector, which runs over the whole critical phase, calls success early (measured:
docs/experiments.md section 6); its probability is calibrated by Platt scaling on held-out episodes.
The reward node evaluates it on every token tick of the critical phase: a success verdict after
``consecutive`` ticks above ``threshold`` (``HysteresisGate``), a failure verdict at its time limit when the
probability is below 1 - threshold. Saved like the switch (detector.json + detector.safetensors with the
RL token's sha256) and refused with another token.
"""

from __future__ import annotations

from collections import deque
from typing import Callable

import numpy as np
import torch

from rlt_ros.core.rlt.configuration_detector import DetectorConfig
from rlt_ros.core.rlt.token_classifier import (ClassifierError, ClassifierMismatchError, HysteresisGate,
                                               LabelledEpisode, TokenClassifier, calibration_error, split_episodes)


class DetectorError(ClassifierError):
    """A detector that cannot be trained or loaded: too few marks, an outcome never marked, a bad file."""


class DetectorMismatchError(DetectorError, ClassifierMismatchError):
    """A detector trained on another RL token (or VLA) than the one it would read."""


class SuccessDetector(TokenClassifier):
    """p(success | the last ``window`` ticks of (z_rl, proprio)), calibrated."""

    KIND, NAME, COMMAND, CONFIG = "detector", "success detector", "rlt train-detector", DetectorConfig
    Error, Mismatch = DetectorError, DetectorMismatchError

    def in_dim(self) -> int:
        return self.cfg.window * (self.token_dim + self.proprio_dim)

    def windows(self, tokens: np.ndarray, proprio: np.ndarray, ends: np.ndarray) -> torch.Tensor:
        """Features [len(ends), window * (token_dim + P)]: for each tick index in ``ends``, the ticks
        end - window + 1 .. end of the stream (tokens [T, token_dim], proprio [T, P]); ticks before the
        stream's first repeat it."""
        tokens, proprio = self.check_dims(tokens, proprio)
        ticks = np.concatenate([tokens, proprio], axis=1)
        idx = np.asarray(ends)[:, None] + np.arange(1 - self.cfg.window, 1)[None, :]
        return torch.as_tensor(ticks[np.clip(idx, 0, None)].reshape(len(idx), -1), dtype=torch.float32)

    def probabilities(self, tokens: np.ndarray, proprio: np.ndarray, ends: np.ndarray | None = None) -> np.ndarray:
        """float64 [len(ends)]: calibrated p(success) of the windows ending at ``ends`` (default: every tick)."""
        ends = np.arange(len(np.atleast_2d(tokens))) if ends is None else ends
        return self.calibrated(self.windows(tokens, proprio, ends))

    def probability(self, tokens: np.ndarray, proprio: np.ndarray) -> float:
        """Calibrated p(success) of the window ending at the last of the given ticks (the node's newest)."""
        tokens = np.atleast_2d(tokens)
        return float(self.probabilities(tokens, proprio, np.array([len(tokens) - 1]))[0])

    def gate(self) -> HysteresisGate:
        """The success verdict: ``consecutive`` ticks in a row above ``threshold``, once per episode."""
        return HysteresisGate(self.cfg.threshold, self.cfg.consecutive)

    def says_failure(self, probability: float) -> bool:
        """The failure verdict (asked at the reward node's time limit)."""
        return probability < 1.0 - self.cfg.threshold


class DetectorRunner:
    """The detector over one episode at a time, as the reward node runs it: ``push`` each token tick of the
    running episode (approach included, so the window is full when the critical phase begins), ``judge`` its
    probability: a success verdict on the ``consecutive``-th tick in a row above the threshold during the
    critical phase; a failure verdict once the critical phase has lasted ``failure_after_s`` and the
    probability has stayed below 1 - threshold for ``consecutive`` ticks; at most one verdict per episode."""

    def __init__(self, detector: SuccessDetector, failure_after_s: float):
        self.detector, self.failure_after_s = detector, float(failure_after_s)
        self.success, self.failure = detector.gate(), HysteresisGate(detector.cfg.threshold, detector.cfg.consecutive)
        self.episode_id: int | None = None
        self.ticks: deque = deque(maxlen=detector.cfg.window)
        self.decided = False

    def with_model(self, detector: SuccessDetector) -> "DetectorRunner":
        """A runner of ``detector`` (a retrained version) that goes on with this one's episode: its ticks and
        whether it has given its verdict."""
        runner = DetectorRunner(detector, self.failure_after_s)
        runner.episode_id, runner.decided = self.episode_id, self.decided
        runner.ticks.extend(self.ticks)
        return runner

    def push(self, episode_id: int, token: np.ndarray, proprio: np.ndarray) -> float:
        """Add one tick of ``episode_id`` (a new id starts afresh); returns p(success) of the newest window."""
        if episode_id != self.episode_id:
            self.episode_id, self.decided = episode_id, False
            self.ticks.clear()
        self.ticks.append((np.asarray(token, np.float32), np.asarray(proprio, np.float32)))
        tokens, proprio = map(np.stack, zip(*self.ticks))
        return self.detector.probability(tokens, proprio)

    def judge(self, episode_id: int, critical_s: float | None, p: float) -> bool | None:
        """True (success), False (failure) or None (no verdict yet) after this tick; ``critical_s``: time since
        the critical phase began [s], None before it."""
        if critical_s is None or self.decided:
            return None
        if self.success.update(episode_id, p):
            self.decided = True
            return True
        if critical_s >= self.failure_after_s and self.failure.update(episode_id, 1.0 - p):
            self.decided = True
            return False
        return None


def mark_index(episode: LabelledEpisode) -> int:
    """Index of the last tick at or before the operator's outcome mark."""
    return max(int(np.searchsorted(episode.stamps, episode.outcome_s, side="right")) - 1, 0)


def _stack(detector: SuccessDetector, episodes: list[LabelledEpisode], tail: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples (x [N, in_dim], y [N]): each episode's last ``tail`` windows before the mark, labelled by it, and
    (``negatives_before_s`` > 0) every ``negative_stride``-th window of its critical phase ending more than
    ``negatives_before_s`` before a success mark (all of a failure's), labelled 0."""
    cfg = detector.cfg
    xs, ys = [], []
    for ep in episodes:
        last = mark_index(ep)
        ends = np.arange(max(last - tail + 1, 0), last + 1)
        labels = np.full(len(ends), float(ep.outcome), np.float32)
        if cfg.negatives_before_s > 0:
            first = 0 if ep.handover_s is None else int(np.searchsorted(ep.stamps, ep.handover_s))
            before = ep.stamps[:ends[0]] <= ep.outcome_s - (cfg.negatives_before_s if ep.outcome else 0.0)
            early = np.arange(first, ends[0])[before[first:]][::cfg.negative_stride]
            ends, labels = np.concatenate([early, ends]), np.concatenate([np.zeros(len(early), np.float32), labels])
        xs.append(detector.windows(ep.tokens, ep.proprio, ends))
        ys.append(labels)
    return torch.cat(xs), torch.as_tensor(np.concatenate(ys))


def marked(episodes: list[LabelledEpisode]) -> list[LabelledEpisode]:
    """The episodes with an operator's success/failure mark (and a token at or before it)."""
    return [ep for ep in episodes if ep.outcome is not None and len(ep.stamps) and ep.stamps[0] <= ep.outcome_s]


def train_detector(episodes: list[LabelledEpisode], cfg: DetectorConfig, identity: dict | None = None,
                   progress: Callable[[int, float], None] | None = None) -> SuccessDetector:
    """Fit the detector on the training episodes' last ``cfg.tail`` windows, calibrate it on the calibration
    episodes', and put the metrics of the test episodes (none when ``cfg.test_fraction`` is 0) in
    ``detector.report``. DetectorError with too few marked episodes or too few of either outcome."""
    labelled = marked(episodes)
    successes = sum(ep.outcome for ep in labelled)
    failures = len(labelled) - successes
    if labelled and min(successes, failures) < cfg.min_per_class:
        missing = "failure" if failures < cfg.min_per_class else "success"
        raise DetectorError(
            f"{successes} successes and {failures} failures marked by the operator: the detector needs at least "
            f"{cfg.min_per_class} of each (DetectorConfig.min_per_class); record episodes in which the operator "
            f"marks {missing} (/rlt/mark_{missing}), e.g. a harder task (--sim clearance_mm=0.3 --sim chamfer_mm=1.0)")
    train, cal, test = split_episodes(
        labelled, cfg, DetectorError,
        f"{{n}} episodes with an operator's success/failure mark (of {len(episodes)} recorded): the detector "
        "needs at least {need} (DetectorConfig.min_episodes); record more episodes in which the operator marks "
        "the outcome (/rlt/mark_success, /rlt/mark_failure; a timeout is no label)")
    detector = SuccessDetector(train[0].tokens.shape[1], train[0].proprio.shape[1], cfg, identity)
    x, y = _stack(detector, train, cfg.tail)
    x_cal, y_cal = _stack(detector, cal, cfg.tail)
    detector.fit(x, y, x_cal, y_cal, "the training episodes hold one outcome only ({n} samples, {positives} "
                 "successes): the detector needs both; add episodes with the other mark, or another --seed", progress)
    detector.report = {"episodes": {"train": len(train), "calibration": len(cal), "test": len(test),
                                    "unlabelled": len(episodes) - len(labelled),
                                    "successes": successes, "failures": failures},
                       "samples": {"train": len(y), "calibration": len(y_cal)}}
    if test:
        detector.report["test"] = evaluate(detector, test)
    return detector


# ---- evaluation --------------------------------------------------------------------------------------
def success_verdict(detector: SuccessDetector, episode: LabelledEpisode) -> float | None:
    """The stamp at which the gate gives a success verdict over the episode's stream from its handover
    (or its start) to its end, as the reward node would; None: never."""
    first = 0 if episode.handover_s is None else int(np.searchsorted(episode.stamps, episode.handover_s))
    ends = np.arange(first, len(episode.stamps))
    if not len(ends):
        return None
    runner = DetectorRunner(detector, np.inf)
    for stamp, p in zip(episode.stamps[ends], detector.probabilities(episode.tokens, episode.proprio, ends)):
        if runner.judge(episode.episode_id, 0.0, p):
            return float(stamp)
    return None


def evaluate(detector: SuccessDetector, episodes: list[LabelledEpisode]) -> dict:
    """Metrics against the operator's marks on held-out episodes.

    At the mark (the window ending at the last tick before it, p > 0.5 = success): accuracy, precision and
    recall of success, false_success (failures called success / failures), Brier, calibration error.
    Over the stream (the gate as the reward node runs it from the handover on): online_false_success
    (failure episodes with a success verdict before the operator's failure mark / failures), online_recall
    (success episodes with a verdict by the mark / successes; the reward node may give it later, the recorded
    stream ends at the mark), early (success episodes with a verdict more than ``early_s`` before the mark /
    successes), confident (episodes whose
    verdict at the mark is decided: above threshold for success, below 1 - threshold for failure)."""
    episodes = marked(episodes)
    y = np.array([float(ep.outcome) for ep in episodes])
    p = np.array([detector.probabilities(ep.tokens, ep.proprio, np.array([mark_index(ep)]))[0] for ep in episodes])
    said = p > 0.5
    tp, fp = int(np.sum(said & (y == 1))), int(np.sum(said & (y == 0)))
    fn, tn = int(np.sum(~said & (y == 1))), int(np.sum(~said & (y == 0)))
    verdicts = [success_verdict(detector, ep) for ep in episodes]
    online_fp = sum(v is not None for v, ep in zip(verdicts, episodes) if not ep.outcome)
    early = sum(v is not None and v < ep.outcome_s - detector.cfg.early_s for v, ep in zip(verdicts, episodes)
                if ep.outcome)
    online_tp = sum(v is not None for v, ep in zip(verdicts, episodes) if ep.outcome)
    confident = np.where(y == 1, p > detector.cfg.threshold, p < 1.0 - detector.cfg.threshold)
    ratio = lambda a, b: a / b if b else None  # noqa: E731
    return {"episodes": len(episodes), "successes": tp + fn, "failures": fp + tn,
            "accuracy": (tp + tn) / len(episodes), "precision": ratio(tp, tp + fp), "recall": ratio(tp, tp + fn),
            "false_success": ratio(fp, fp + tn), "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
            "online_false_success": ratio(online_fp, fp + tn), "online_recall": ratio(online_tp, tp + fn),
            "early": ratio(early, tp + fn),
            "confident": float(np.mean(confident)), "brier": float(np.mean((p - y) ** 2)),
            "calibration_error": calibration_error(p, y), "threshold": detector.cfg.threshold}
