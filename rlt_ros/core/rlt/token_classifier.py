"""What the learned handover switch and the learned success detector share: a calibrated classifier on
(z_rl, proprio) learnt from the operator's presses in recorded episodes.

``LabelledEpisode`` is one recorded episode (token stream and the operator's presses, read by
``rlt_ros.core.data.token_bags``); ``split_episodes`` splits whole episodes into training, calibration and
test sets; ``TokenClassifier`` is an MLP on normalised features with Platt scaling (a, b), trained with
balanced classes (``fit``), saved as ``<kind>.safetensors`` + ``<kind>.json`` with the identity (sha256) of
the RL token it was trained on, and refused (``load``) with any other token. Subclasses (switch.py,
detector.py) say what a feature vector is and how the probability is used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from rlt_ros.core.rlt.configuration_classifier import ClassifierConfig


class ClassifierError(ValueError):
    """A classifier that cannot be trained or loaded: too few labels, a missing class, a bad file."""


class ClassifierMismatchError(ClassifierError):
    """A classifier trained on another RL token (or VLA) than the one it would read."""


@dataclass
class LabelledEpisode:
    """One recorded episode: the token stream (T ticks) and the operator's presses."""

    episode_id: int
    stamps: np.ndarray  # float64 [T]: the tokens' observation times [s]
    tokens: np.ndarray  # float32 [T, token_dim]: z_rl
    proprio: np.ndarray  # float32 [T, P]
    handover_s: float | None  # stamp of the operator's HANDOVER press [s]; None: the episode had none
    outcome: bool | None = None  # the operator's mark: True success, False failure; None: no human mark
    outcome_s: float | None = None  # stamp of that mark [s]

    def labels(self) -> np.ndarray:
        """float32 [T]: 1 at and after the handover press (critical phase), 0 before."""
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


def split_episodes(labelled: list[LabelledEpisode], cfg, error: type[ClassifierError],
                   too_few: str) -> tuple[list, list, list]:
    """(train, calibration, test) by whole episodes, shuffled by ``cfg.seed`` (``cfg.test_fraction``,
    ``cfg.calibration_fraction``); ``error(too_few.format(n=..., need=cfg.min_episodes))`` when there are
    fewer than ``cfg.min_episodes`` labelled episodes."""
    if len(labelled) < cfg.min_episodes:
        raise error(too_few.format(n=len(labelled), need=cfg.min_episodes))
    order = np.random.default_rng(cfg.seed).permutation(len(labelled))
    n_test = int(round(cfg.test_fraction * len(labelled)))
    n_cal = max(1, int(round(cfg.calibration_fraction * len(labelled))))
    pick = lambda idx: [labelled[i] for i in idx]  # noqa: E731
    return pick(order[n_test + n_cal:]), pick(order[n_test: n_test + n_cal]), pick(order[:n_test])


def fit_platt(logits: torch.Tensor, y: torch.Tensor, steps: int = 200) -> tuple[float, float]:
    """(a, b) minimising the log loss of sigmoid(a * logit + b) on held-out samples (Platt scaling)."""
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


def calibration_error(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: the sample-weighted mean |mean p - frequency of 1| over ``bins`` p-bins."""
    idx = np.minimum((p * bins).astype(int), bins - 1)
    err = sum(abs(p[idx == b].mean() - y[idx == b].mean()) * np.sum(idx == b) for b in range(bins) if np.any(idx == b))
    return float(err / len(p))


class TokenClassifier(nn.Module):
    """p(1 | x) = sigmoid(a * f((x - mean) / std) + b): an MLP f on ``in_dim`` features, Platt scaling (a, b).

    Subclasses set KIND (file stem and name in messages), COMMAND (the command that trains one), Error and
    Mismatch (their exception classes), the config class CONFIG, and ``in_dim`` (features per sample)."""

    KIND, NAME, COMMAND = "classifier", "classifier", "rlt"
    Error: type[ClassifierError] = ClassifierError
    Mismatch: type[ClassifierError] = ClassifierMismatchError
    CONFIG: type = ClassifierConfig

    def __init__(self, token_dim: int, proprio_dim: int, cfg, identity: dict | None = None):
        super().__init__()
        self.token_dim, self.proprio_dim, self.cfg = int(token_dim), int(proprio_dim), cfg
        self.identity = dict(identity or {})
        self.report: dict = {}
        dims = [self.in_dim(), *cfg.hidden]
        torch.manual_seed(cfg.seed)  # the initial weights
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(dims[-1], 1))
        self.register_buffer("mean", torch.zeros(dims[0]))
        self.register_buffer("std", torch.ones(dims[0]))
        self.register_buffer("platt", torch.tensor([1.0, 0.0]))  # (a, b)

    def in_dim(self) -> int:
        return self.token_dim + self.proprio_dim

    def check_dims(self, tokens: np.ndarray, proprio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(tokens [N, token_dim], proprio [N, P]) as 2-D arrays; Error when the sizes are not this classifier's."""
        tokens, proprio = np.atleast_2d(tokens), np.atleast_2d(proprio)
        if tokens.shape[1] != self.token_dim or proprio.shape[1] != self.proprio_dim or len(tokens) != len(proprio):
            raise self.Error(f"the {self.NAME} reads z_rl [{self.token_dim}] and proprio [{self.proprio_dim}], got "
                             f"{tokens.shape} and {proprio.shape}: it was trained for another token or arm")
        return tokens, proprio

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Uncalibrated logits [N] of features x [N, in_dim]."""
        return self.net((x - self.mean) / self.std).squeeze(-1)

    @torch.no_grad()
    def calibrated(self, x: torch.Tensor) -> np.ndarray:
        """float64 [N]: calibrated p(1) of features x [N, in_dim]."""
        a, b = self.platt.tolist()
        return torch.sigmoid(a * self.logits(x) + b).double().numpy()

    def fit(self, x: torch.Tensor, y: torch.Tensor, x_cal: torch.Tensor, y_cal: torch.Tensor, what: str,
            progress: Callable[[int, float], None] | None = None) -> None:
        """Normalise by the training features, fit the MLP (full-batch Adam, classes balanced by weight) on
        (x [N, in_dim], y [N] in {0, 1}), then Platt-scale on the calibration set. Error when the training
        labels hold one class only (``what`` names the classes for the message)."""
        assert x.shape == (len(y), self.in_dim()) and x_cal.shape == (len(y_cal), self.in_dim())
        positives = float(y.sum())
        if positives == 0 or positives == len(y):
            raise self.Error(what.format(n=len(y), positives=int(positives)))
        self.mean.copy_(x.mean(0))
        self.std.copy_(x.std(0).clamp(min=1e-6) if len(x) > 1 else torch.ones_like(x[0]))
        loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor((len(y) - positives) / positives))
        opt = torch.optim.Adam(self.net.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        for step in range(1, self.cfg.steps + 1):
            opt.zero_grad()
            loss = loss_fn(self.logits(x), y)
            loss.backward()
            opt.step()
            if progress is not None and (step % 50 == 0 or step == self.cfg.steps):
                progress(step, loss.item())
        with torch.no_grad():
            cal_logits = self.logits(x_cal)
        self.platt.copy_(torch.tensor(fit_platt(cal_logits, y_cal)))
        self.eval()

    # ---- save / load ---------------------------------------------------------------------------------
    def to_bytes(self) -> tuple[str, bytes]:
        """(<KIND>.json text: config, dims, the RL token's identity, the held-out report; the safetensors
        bytes): the two files ``save`` writes, and what learner_node exports on /rlt/<KIND>_weights."""
        from safetensors.torch import save

        meta = {"config": self.cfg.to_dict(), "token_dim": self.token_dim, "proprio_dim": self.proprio_dim,
                "token_identity": self.identity, "report": self.report}
        return json.dumps(meta, indent=2) + "\n", save({k: v.detach().contiguous() for k, v in self.state_dict().items()})

    def save(self, directory: str | Path) -> None:
        """<KIND>.safetensors + <KIND>.json in ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta, weights = self.to_bytes()
        (directory / f"{self.KIND}.safetensors").write_bytes(weights)
        (directory / f"{self.KIND}.json").write_text(meta)

    @classmethod
    def load(cls, directory: str | Path, token_identity: dict):
        """Load one; Mismatch when it was trained on another RL token than ``token_identity``
        (``rlt_ros.core.checkpoints.token_identity`` of the token the graph runs), Error on a bad file."""
        directory = Path(directory)
        meta_path, weights = directory / f"{cls.KIND}.json", directory / f"{cls.KIND}.safetensors"
        if not meta_path.is_file() or not weights.is_file():
            raise cls.Error(f"{directory} is not a {cls.NAME} folder (needs {meta_path.name} and {weights.name}); "
                            f"train one with `{cls.COMMAND}`")
        return cls.from_bytes(meta_path.read_text(), weights.read_bytes(), token_identity, str(directory))

    @classmethod
    def from_bytes(cls, meta_json: str, weights: bytes, token_identity: dict, where: str = "the message"):
        """``load`` from the two files' contents (``to_bytes``); ``where`` names their origin in errors."""
        from safetensors import SafetensorError
        from safetensors.torch import load

        try:
            meta = json.loads(meta_json)
            model = cls(meta["token_dim"], meta["proprio_dim"], cls.CONFIG.from_dict(meta["config"]),
                        meta["token_identity"])
            model.load_state_dict(load(bytes(weights)))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, RuntimeError, SafetensorError) as err:
            raise cls.Error(f"{where}: not a valid {cls.NAME} ({type(err).__name__}: {err}); "
                            f"retrain it with `{cls.COMMAND}`") from err
        trained, current = model.identity.get("token_sha256"), token_identity.get("token_sha256")
        if trained != current:
            raise cls.Mismatch(
                f"the {cls.NAME} in {where} was trained on the RL token {model.identity.get('token')} "
                f"(sha256 {str(trained)[:12]}...), but the graph runs {token_identity.get('token')} "
                f"(sha256 {str(current)[:12]}...): retrain it with `{cls.COMMAND} --token` on this token's runs")
        model.report = meta.get("report", {})
        model.eval()
        return model
