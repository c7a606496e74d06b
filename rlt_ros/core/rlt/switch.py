"""The learned handover switch: when does the critical phase start, read from (z_rl, proprio).

Paper ("RL Token", Xu et al. 2026, "The human in the loop"): the operator hands control from the VLA to
the RL actor at the start of the critical phase; after training, a switch learnt from those presses
can do it. Here: a small MLP (or logistic regression) classifies each token tick as before (0) or after
(1) the operator's HANDOVER press, trained on recorded episodes (/rlt/token + /rlt/events); its
probability is calibrated by Platt scaling on held-out episodes; a hysteresis gate fires the handover
once per episode after ``consecutive`` ticks above ``threshold``. The switch records the RL token it
was trained on (``token_identity``) and refuses another.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from rlt_ros.core.rlt.configuration_switch import SwitchConfig
from rlt_ros.core.rlt.token_classifier import (ClassifierError, ClassifierMismatchError, HysteresisGate,
                                               LabelledEpisode, TokenClassifier, calibration_error, fit_platt,
                                               split_episodes)

__all__ = ["HandoverSwitch", "HysteresisGate", "LabelledEpisode", "SwitchError", "SwitchMismatchError",
           "calibration_error", "evaluate", "fit_platt", "predicted_handover", "train_switch"]


class SwitchError(ClassifierError):
    """A switch that cannot be trained or loaded: too few labels, a missing class, a bad file."""


class SwitchMismatchError(SwitchError, ClassifierMismatchError):
    """A switch trained on another RL token (or VLA) than the one it would read."""


class HandoverSwitch(TokenClassifier):
    """p(critical | z_rl, proprio) = sigmoid(a * f((x - mean) / std) + b), x = one tick's (z_rl, proprio)."""

    KIND, NAME, COMMAND, CONFIG = "switch", "handover switch", "rlt train-switch", SwitchConfig
    Error, Mismatch = SwitchError, SwitchMismatchError

    def features(self, tokens: np.ndarray, proprio: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.concatenate(self.check_dims(tokens, proprio), axis=1), dtype=torch.float32)

    def probabilities(self, tokens: np.ndarray, proprio: np.ndarray) -> np.ndarray:
        """float64 [N]: calibrated p(critical) per tick."""
        return self.calibrated(self.features(tokens, proprio))

    def probability(self, token: np.ndarray, proprio: np.ndarray) -> float:
        return float(self.probabilities(token, proprio)[0])

    def gate(self) -> HysteresisGate:
        return HysteresisGate(self.cfg.threshold, self.cfg.consecutive)


# ---- training ----------------------------------------------------------------------------------------
def _stack(switch: HandoverSwitch, episodes: list[LabelledEpisode]) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.cat([switch.features(ep.tokens, ep.proprio) for ep in episodes])
    y = torch.as_tensor(np.concatenate([ep.labels() for ep in episodes]))
    return x, y


def train_switch(episodes: list[LabelledEpisode], cfg: SwitchConfig, identity: dict | None = None,
                 progress: Callable[[int, float], None] | None = None) -> HandoverSwitch:
    """Fit the switch on the training episodes, calibrate it on the calibration ones, and put the metrics of
    the test episodes (none when ``cfg.test_fraction`` is 0) in ``switch.report``. ``progress(step, loss)``
    is called every 50 steps."""
    labelled = [ep for ep in episodes if ep.handover_s is not None and len(ep.stamps)]
    train, cal, test = split_episodes(
        labelled, cfg, SwitchError,
        f"{{n}} episodes with an operator's handover press (of {len(episodes)} recorded): the switch needs at "
        "least {need} (SwitchConfig.min_episodes); record more episodes in which the operator presses /rlt/start_rl")
    switch = HandoverSwitch(train[0].tokens.shape[1], train[0].proprio.shape[1], cfg, identity)
    x, y = _stack(switch, train)
    x_cal, y_cal = _stack(switch, cal)
    missing = "before" if int(y.sum()) == len(y) else "after"
    switch.fit(x, y, x_cal, y_cal, f"the training episodes have no token {missing} the handover press ({{n}} ticks, "
               "{positives} after it): the switch needs both classes; record the whole episode (the VLA's "
               "approach too), not only the critical phase", progress)
    switch.report = {"episodes": {"train": len(train), "calibration": len(cal), "test": len(test),
                                  "unlabelled": len(episodes) - len(train) - len(cal) - len(test)},
                     "ticks": {"train": len(y), "calibration": len(y_cal)}}
    if test:
        switch.report["test"] = evaluate(switch, test)
    return switch


# ---- evaluation --------------------------------------------------------------------------------------
def predicted_handover(switch: HandoverSwitch, episode: LabelledEpisode) -> float | None:
    """The stamp of the tick on which the gate fires over the episode's stream (None: it never fires)."""
    gate = switch.gate()
    for stamp, p in zip(episode.stamps, switch.probabilities(episode.tokens, episode.proprio)):
        if gate.update(episode.episode_id, p):
            return float(stamp)
    return None


def evaluate(switch: HandoverSwitch, episodes: list[LabelledEpisode]) -> dict:
    """Episode metrics of the gated switch against the operator's presses, and tick metrics of its probability.

    on_time: |predicted - press| <= tolerance_s; outside_critical: fired before press - tolerance_s (while
    the VLA's approach still ran); late: fired after press + tolerance_s; missed: never fired."""
    tol = switch.cfg.tolerance_s
    errors, on_time, early, late, missed = [], 0, 0, 0, 0
    p_all, y_all = [], []
    for ep in episodes:
        p_all.append(switch.probabilities(ep.tokens, ep.proprio))
        y_all.append(ep.labels())
        fired = predicted_handover(switch, ep)
        if fired is None:
            missed += 1
            continue
        error = fired - ep.handover_s
        errors.append(error)
        on_time += abs(error) <= tol + 1e-9
        early += error < -tol - 1e-9
        late += error > tol + 1e-9
    n = len(episodes)
    p, y = np.concatenate(p_all), np.concatenate(y_all)
    return {"episodes": n, "on_time": on_time / n, "outside_critical": early / n, "late": late / n,
            "missed": missed / n, "tolerance_s": tol,
            "median_abs_error_s": float(np.median(np.abs(errors))) if errors else None,
            "tick_accuracy": float(np.mean((p > 0.5) == (y > 0.5))),
            "brier": float(np.mean((p - y) ** 2)), "calibration_error": calibration_error(p, y)}
