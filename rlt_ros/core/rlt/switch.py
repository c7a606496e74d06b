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

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from rlt_ros.core.rlt.configuration_switch import SwitchConfig

SWITCH_WEIGHTS = "switch.safetensors"
SWITCH_META = "switch.json"


class SwitchError(ValueError):
    """A switch that cannot be trained or loaded: too few labels, a missing class, a bad file."""


class SwitchMismatchError(SwitchError):
    """A switch trained on another RL token (or VLA) than the one it would read."""


@dataclass
class LabelledEpisode:
    """One recorded episode: the token stream (T ticks) and the operator's handover press."""

    episode_id: int
    stamps: np.ndarray  # float64 [T]: the tokens' observation times [s]
    tokens: np.ndarray  # float32 [T, token_dim]: z_rl
    proprio: np.ndarray  # float32 [T, P]
    handover_s: float | None  # stamp of the operator's HANDOVER press [s]; None: the episode had none

    def labels(self) -> np.ndarray:
        """float32 [T]: 1 at and after the press (critical phase), 0 before."""
        return (self.stamps >= self.handover_s).astype(np.float32)


class HysteresisGate:
    """Fires once per episode, at the ``consecutive``-th tick in a row whose probability exceeds
    ``threshold``; a tick at or below it restarts the count. A new episode id re-arms it."""

    def __init__(self, threshold: float, consecutive: int):
        self.threshold, self.consecutive = float(threshold), int(consecutive)
        self.episode_id: int | None = None
        self.run = 0
        self.fired = False

    def update(self, episode_id: int, probability: float) -> bool:
        """True exactly once per episode: on the tick that completes the run."""
        if episode_id != self.episode_id:
            self.episode_id, self.run, self.fired = episode_id, 0, False
        if self.fired:
            return False
        self.run = self.run + 1 if probability > self.threshold else 0
        self.fired = self.run >= self.consecutive
        return self.fired


class HandoverSwitch(nn.Module):
    """p(critical | z_rl, proprio) = sigmoid(a * f((x - mean) / std) + b): an MLP f, Platt scaling (a, b)."""

    def __init__(self, token_dim: int, proprio_dim: int, cfg: SwitchConfig, identity: dict | None = None):
        super().__init__()
        self.token_dim, self.proprio_dim, self.cfg = int(token_dim), int(proprio_dim), cfg
        self.identity = dict(identity or {})
        self.report: dict = {}
        dims = [self.token_dim + self.proprio_dim, *cfg.hidden]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(dims[-1], 1))
        self.register_buffer("mean", torch.zeros(dims[0]))
        self.register_buffer("std", torch.ones(dims[0]))
        self.register_buffer("platt", torch.tensor([1.0, 0.0]))  # (a, b)

    def features(self, tokens: np.ndarray, proprio: np.ndarray) -> torch.Tensor:
        tokens, proprio = np.atleast_2d(tokens), np.atleast_2d(proprio)
        if tokens.shape[1] != self.token_dim or proprio.shape[1] != self.proprio_dim or len(tokens) != len(proprio):
            raise SwitchError(f"the switch reads z_rl [{self.token_dim}] and proprio [{self.proprio_dim}], got "
                              f"{tokens.shape} and {proprio.shape}: it was trained for another token or arm")
        return torch.as_tensor(np.concatenate([tokens, proprio], axis=1), dtype=torch.float32)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Uncalibrated logits [N] of normalised features."""
        return self.net((x - self.mean) / self.std).squeeze(-1)

    @torch.no_grad()
    def probabilities(self, tokens: np.ndarray, proprio: np.ndarray) -> np.ndarray:
        """float64 [N]: calibrated p(critical) per tick."""
        a, b = self.platt.tolist()
        return torch.sigmoid(a * self.logits(self.features(tokens, proprio)) + b).double().numpy()

    def probability(self, token: np.ndarray, proprio: np.ndarray) -> float:
        return float(self.probabilities(token, proprio)[0])

    def gate(self) -> HysteresisGate:
        return HysteresisGate(self.cfg.threshold, self.cfg.consecutive)

    # ---- save / load ---------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        """switch.safetensors + switch.json (config, dims, the RL token's identity, the held-out report)."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous() for k, v in self.state_dict().items()}, str(directory / SWITCH_WEIGHTS))
        meta = {"config": self.cfg.to_dict(), "token_dim": self.token_dim, "proprio_dim": self.proprio_dim,
                "token_identity": self.identity, "report": self.report}
        (directory / SWITCH_META).write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | Path, token_identity: dict) -> "HandoverSwitch":
        """Load a switch; SwitchMismatchError when it was trained on another RL token than ``token_identity``
        (``rlt_ros.core.checkpoints.token_identity`` of the token the graph runs), SwitchError on a bad file."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        directory = Path(directory)
        if not (directory / SWITCH_META).is_file() or not (directory / SWITCH_WEIGHTS).is_file():
            raise SwitchError(f"{directory} is not a handover-switch folder (needs {SWITCH_META} and "
                              f"{SWITCH_WEIGHTS}); train one with `rlt train-switch`")
        try:
            meta = json.loads((directory / SWITCH_META).read_text())
            switch = cls(meta["token_dim"], meta["proprio_dim"], SwitchConfig.from_dict(meta["config"]),
                         meta["token_identity"])
            switch.load_state_dict(load_file(str(directory / SWITCH_WEIGHTS)))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, RuntimeError, SafetensorError) as err:
            raise SwitchError(f"{directory}: not a valid handover switch ({type(err).__name__}: {err}); "
                              "retrain it with `rlt train-switch`") from err
        trained, current = switch.identity.get("token_sha256"), token_identity.get("token_sha256")
        if trained != current:
            raise SwitchMismatchError(
                f"the handover switch in {directory} was trained on the RL token {switch.identity.get('token')} "
                f"(sha256 {str(trained)[:12]}...), but the graph runs {token_identity.get('token')} "
                f"(sha256 {str(current)[:12]}...): retrain it with `rlt train-switch --token` on this token's runs")
        switch.report = meta.get("report", {})
        switch.eval()
        return switch


# ---- training ----------------------------------------------------------------------------------------
def split_episodes(episodes: list[LabelledEpisode], cfg: SwitchConfig) -> tuple[list, list, list]:
    """(train, calibration, test) by whole episodes; SwitchError with too few labelled episodes."""
    labelled = [ep for ep in episodes if ep.handover_s is not None and len(ep.stamps)]
    if len(labelled) < cfg.min_episodes:
        raise SwitchError(f"{len(labelled)} episodes with an operator's handover press (of {len(episodes)} "
                          f"recorded): the switch needs at least {cfg.min_episodes} (SwitchConfig.min_episodes); "
                          "record more episodes in which the operator presses /rlt/start_rl")
    order = np.random.default_rng(cfg.seed).permutation(len(labelled))
    n_test = int(round(cfg.test_fraction * len(labelled)))
    n_cal = max(1, int(round(cfg.calibration_fraction * len(labelled))))
    pick = lambda idx: [labelled[i] for i in idx]  # noqa: E731
    return pick(order[n_test + n_cal:]), pick(order[n_test: n_test + n_cal]), pick(order[:n_test])


def _stack(switch: HandoverSwitch, episodes: list[LabelledEpisode]) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.cat([switch.features(ep.tokens, ep.proprio) for ep in episodes])
    y = torch.as_tensor(np.concatenate([ep.labels() for ep in episodes]))
    return x, y


def _check_classes(y: torch.Tensor, what: str) -> None:
    positives = int(y.sum())
    if positives == 0 or positives == len(y):
        missing = "before" if positives == len(y) else "after"
        raise SwitchError(f"the {what} episodes have no token {missing} the handover press ({len(y)} ticks, "
                          f"{positives} after it): the switch needs both classes; record the whole episode "
                          "(the VLA's approach too), not only the critical phase")


def fit_platt(logits: torch.Tensor, y: torch.Tensor, steps: int = 200) -> tuple[float, float]:
    """(a, b) minimising the log loss of sigmoid(a * logit + b) on held-out ticks (Platt scaling)."""
    ab = torch.tensor([1.0, 0.0], requires_grad=True)
    opt = torch.optim.LBFGS([ab], lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")
    loss_fn = nn.BCEWithLogitsLoss()

    def closure():
        opt.zero_grad()
        loss = loss_fn(ab[0] * logits + ab[1], y)
        loss.backward()
        return loss

    opt.step(closure)
    a, b = ab.detach().tolist()
    return float(a), float(b)


def train_switch(episodes: list[LabelledEpisode], cfg: SwitchConfig, identity: dict | None = None,
                 progress: Callable[[int, float], None] | None = None) -> HandoverSwitch:
    """Fit the switch on the training episodes, calibrate it on the calibration ones, and put the metrics of
    the test episodes (none when ``cfg.test_fraction`` is 0) in ``switch.report``. ``progress(step, loss)``
    is called every 50 steps."""
    train, cal, test = split_episodes(episodes, cfg)
    first = train[0]
    torch.manual_seed(cfg.seed)
    switch = HandoverSwitch(first.tokens.shape[1], first.proprio.shape[1], cfg, identity)
    x, y = _stack(switch, train)
    _check_classes(y, "training")
    switch.mean.copy_(x.mean(0))
    switch.std.copy_(x.std(0).clamp(min=1e-6))
    positives = float(y.sum())
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor((len(y) - positives) / positives))  # balanced classes
    opt = torch.optim.Adam(switch.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    for step in range(1, cfg.steps + 1):
        opt.zero_grad()
        loss = loss_fn(switch.logits(x), y)
        loss.backward()
        opt.step()
        if progress is not None and (step % 50 == 0 or step == cfg.steps):
            progress(step, loss.item())
    x_cal, y_cal = _stack(switch, cal)
    with torch.no_grad():
        cal_logits = switch.logits(x_cal)
    switch.platt.copy_(torch.tensor(fit_platt(cal_logits, y_cal)))
    switch.eval()
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


def calibration_error(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: the tick-weighted mean |mean p - frequency of 1| over ``bins`` p-bins."""
    idx = np.minimum((p * bins).astype(int), bins - 1)
    err = sum(abs(p[idx == b].mean() - y[idx == b].mean()) * np.sum(idx == b) for b in range(bins) if np.any(idx == b))
    return float(err / len(p))


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
