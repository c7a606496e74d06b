"""The RLT learner: the algorithm (``RLTAlgorithm``: update(batch) -> stats, state_dict round trip) and
the loop that owns it (``Learner``: UTD-throttled updates, synchronous or in a background thread,
latest-only actor-weight exports, atomic checkpoints).

Paper: "RL Token" (Xu et al., 2026), stage 2: UTD 5, 2 critic updates per actor update, asynchronous
rollouts and learning (the robot never waits for the learner). Losses: see modeling_actor_critic.py.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import torch

from rlt_ros.core.rlt.configuration_rlt import RLTConfig
from rlt_ros.core.rlt.modeling_actor_critic import (Actor, Critics, Normalizer, reference_dropout_mask,
                                                    td_target)
from rlt_ros.core.rlt.policy import ActorPolicy, export_actor
from rlt_ros.core.rlt.replay import Batch, ReplayBuffer

log = logging.getLogger(__name__)

CHECKPOINT_LATEST = "latest"


class CheckpointMismatchError(ValueError):
    """A checkpoint (or replay buffer) was made with a configuration that differs from the requested one."""


def _polyak(target: list[torch.Tensor], source: list[torch.Tensor], tau: float) -> None:
    """target <- (1 - tau) target + tau source, for lists of parameters."""
    with torch.no_grad():
        torch._foreach_lerp_(target, source, tau)


def _adam(module: torch.nn.Module, lr: float) -> torch.optim.Adam:
    """Adam with one fused kernel per step (~0.5 ms of an update on one CPU core: 8% at batch 128, 12% at
    64); the multi-tensor Adam where this torch has no fused kernel for the parameters' device (CPU: < 2.4)."""
    params = list(module.parameters())
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except RuntimeError:
        return torch.optim.Adam(params, lr=lr, foreach=True)


class RLTAlgorithm:
    """Twin-critic chunked actor-critic with reference anchoring (RLT stage 2).

    ``update(batch)`` = one critic update; every ``critic_updates_per_actor``-th call also one actor
    update (and the actor target's Polyak step). Critic targets move by ``tau`` every critic update.
    """

    def __init__(self, cfg: RLTConfig):
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        self.normalizer = Normalizer(cfg.token_dim, cfg.proprio_dim, cfg.action_dim,
                                     action_std_floor=cfg.action_std_floor)
        self.actor = Actor(cfg)
        self.critics = Critics(cfg)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critics_target = copy.deepcopy(self.critics).requires_grad_(False)
        # the actor the acting side runs: the latest one, or a Polyak average of it (cfg.actor_ema)
        self.actor_ema = copy.deepcopy(self.actor).requires_grad_(False) if False else None  # actor_ema removed (being rewritten on issue17 branch)
        self.actor_opt = _adam(self.actor, cfg.actor_lr)
        self.critic_opt = _adam(self.critics, cfg.critic_lr)
        self._params = {name: list(getattr(self, name).parameters()) for name in self.modules()}
        self.generator = torch.Generator().manual_seed(cfg.seed + 1)
        self.num_updates = 0  # critic updates
        self.num_actor_updates = 0

    # ---- losses ---------------------------------------------------------------------------------
    def _normalise(self, batch: Batch) -> dict[str, torch.Tensor]:
        cfg, n = self.cfg, self.normalizer
        b = batch.token.shape[0]
        c, a = cfg.chunk_size, cfg.action_dim
        expect = {"token": (b, cfg.token_dim), "proprio": (b, cfg.proprio_dim), "reference": (b, c, a),
                  "action": (b, c, a), "rewards": (b, c), "done": (b,), "next_token": (b, cfg.token_dim),
                  "next_proprio": (b, cfg.proprio_dim), "next_reference": (b, c, a)}
        for k, shape in expect.items():
            assert tuple(getattr(batch, k).shape) == shape, f"batch.{k}: {tuple(getattr(batch, k).shape)} != {shape}"
        flat = lambda x: n.action(x).reshape(b, c * a)  # noqa: E731
        return {"token": n.token(batch.token), "proprio": n.proprio(batch.proprio), "ref": flat(batch.reference),
                "action": flat(batch.action), "rewards": batch.rewards, "done": batch.done,
                "next_token": n.token(batch.next_token), "next_proprio": n.proprio(batch.next_proprio),
                "next_ref": flat(batch.next_reference)}

    def _noise(self, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(like.shape, generator=self.generator) * self.cfg.sigma

    def _ref_in(self, ref: torch.Tensor, train: bool) -> torch.Tensor:
        """ã as the actor sees it: zeroed entirely without pass-through, per sample with ref dropout (training)."""
        if not self.cfg.use_reference:
            return torch.zeros_like(ref)
        if train and self.cfg.ref_dropout > 0:
            return ref * reference_dropout_mask(ref.shape[0], self.cfg.ref_dropout, self.generator)
        return ref

    def critic_loss(self, nb: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        cfg = self.cfg
        with torch.no_grad():
            mu_next = self.actor_target(nb["next_token"], nb["next_proprio"], self._ref_in(nb["next_ref"], False))
            noise = self._noise(mu_next).clamp(-cfg.target_noise_clip, cfg.target_noise_clip)
            next_q = self.critics_target(nb["next_token"], nb["next_proprio"], mu_next + noise)
            y = td_target(nb["rewards"], nb["done"], next_q, cfg.gamma).clamp(cfg.return_min, cfg.return_max)
        q = self.critics(nb["token"], nb["proprio"], nb["action"])  # [K, B]
        assert q.shape == (cfg.num_critics, y.shape[0]), q.shape
        loss = ((q - y.unsqueeze(0)) ** 2).mean(dim=1).sum()
        return loss, {"critic_loss": loss.item(), "q_mean": q.mean().item(), "target_mean": y.mean().item()}

    def actor_loss(self, nb: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        """E_{a ~ N(mu(x, ã_in), sigma^2)}[ -mean_j Q_j(x, a) + beta || a - ã ||^2 ]."""
        cfg = self.cfg
        anchor = nb["ref"] if cfg.residual_actor else None
        mu = self.actor(nb["token"], nb["proprio"], self._ref_in(nb["ref"], True), anchor)
        act = mu + self._noise(mu)
        q = self.critics(nb["token"], nb["proprio"], act).mean(dim=0)
        dev = ((act - nb["ref"]) ** 2).sum(-1)
        assert q.shape == dev.shape == (mu.shape[0],)
        loss = (-q + cfg.beta * dev).mean()
        return loss, {"actor_loss": loss.item(), "actor_q": q.mean().item(), "ref_deviation": dev.mean().item(),
                      "mu_deviation": ((mu - nb["ref"]) ** 2).sum(-1).mean().item()}

    # ---- contract -------------------------------------------------------------------------------
    def update(self, batch: Batch) -> dict[str, float]:
        """One critic update (+ one actor update every ``critic_updates_per_actor`` calls) -> stats."""
        nb = self._normalise(batch)
        loss, stats = self.critic_loss(nb)
        self.critic_opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self._params["critics"], self.cfg.grad_clip, foreach=True)
        self.critic_opt.step()
        _polyak(self._params["critics_target"], self._params["critics"], self.cfg.tau)
        self.num_updates += 1
        if self.num_updates % self.cfg.critic_updates_per_actor == 0:
            self.critics.requires_grad_(False)
            aloss, astats = self.actor_loss(nb)
            self.actor_opt.zero_grad(set_to_none=True)
            aloss.backward()
            torch.nn.utils.clip_grad_norm_(self._params["actor"], self.cfg.grad_clip, foreach=True)
            self.actor_opt.step()
            self.critics.requires_grad_(True)
            _polyak(self._params["actor_target"], self._params["actor"], self.cfg.tau)
            if self.actor_ema is not None:
                _polyak(self._params["actor_ema"], self._params["actor"], self.cfg.actor_ema)
            self.num_actor_updates += 1
            stats.update(astats)
        stats["updates"] = self.num_updates
        return stats

    def modules(self) -> tuple[str, ...]:
        """Names of the networks this algorithm holds (``actor_ema`` only with cfg.actor_ema > 0)."""
        return ("actor", "critics", "actor_target", "critics_target") + (("actor_ema",) if self.actor_ema is not None else ())

    @property
    def acting_actor(self) -> Actor:
        """The actor that drives the arm and is exported: the latest, or its Polyak average (cfg.actor_ema)."""
        return self.actor if self.actor_ema is None else self.actor_ema

    def policy(self) -> ActorPolicy:
        """An independent inference copy of the current actor (safe to use while training goes on)."""
        weights, cfg_json = self.export()
        return ActorPolicy.from_export(weights, cfg_json)

    def export(self) -> tuple[bytes, str]:
        return export_actor(self.cfg, self.acting_actor, self.normalizer, version=self.num_updates)

    def state_dict(self) -> dict:
        """Everything needed to resume: config, networks, normaliser, optimisers, counters, RNG."""
        return {
            "config": self.cfg.to_dict(),
            **{name: getattr(self, name).state_dict() for name in self.modules()},
            "normalizer": self.normalizer.state_dict(),
            "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
            "counters": {"num_updates": self.num_updates, "num_actor_updates": self.num_actor_updates},
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        stored = RLTConfig.from_dict(state["config"])
        check_compatible(stored, self.cfg, "checkpoint")
        for name in ("actor", "critics", "actor_target", "critics_target"):
            getattr(self, name).load_state_dict(state[name])
        if self.actor_ema is not None:  # a run that starts averaging on resume starts from the latest actor
            self.actor_ema.load_state_dict(state.get("actor_ema") or state["actor"])
        self.normalizer.load_state_dict(state["normalizer"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        for opt, lr in ((self.actor_opt, self.cfg.actor_lr), (self.critic_opt, self.cfg.critic_lr)):
            for group in opt.param_groups:  # a stored optimiser state brings its own lr: this config's wins
                group["lr"] = lr
        self.num_updates = int(state["counters"]["num_updates"])
        self.num_actor_updates = int(state["counters"]["num_actor_updates"])
        self.generator.set_state(state["generator"])


def check_compatible(stored: RLTConfig, requested: RLTConfig, what: str) -> dict:
    """Raise CheckpointMismatchError when the network-defining fields differ; return the other fields that
    differ (training hyperparameters such as beta or batch_size, which may change on resume) as
    {name: (stored, requested)}."""
    a, b = stored.network_dims(), requested.network_dims()
    diff = {k: (a[k], b[k]) for k in a if a[k] != b[k]}
    if diff:
        listed = ", ".join(f"{k}: stored {s} vs requested {r}" for k, (s, r) in diff.items())
        raise CheckpointMismatchError(
            f"the {what} was made with a different RLT configuration ({listed}); nothing stored was changed. "
            "Resume with the configuration saved next to it (config.json), or start in a new output directory.")
    a, b = stored.to_dict(), requested.to_dict()
    return {k: (a[k], b[k]) for k in a if a[k] != b[k]}


# ---- checkpoints ------------------------------------------------------------------------------------
def save_checkpoint(directory: str | Path, algorithm: RLTAlgorithm, extra: dict | None = None,
                    keep: int = 2) -> Path:
    """Write ``<directory>/checkpoint-<updates>/`` (model.safetensors, optimizer.pt, config.json, state.json)
    into a temporary folder, rename it into place, then point ``<directory>/latest`` at it (atomic)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = algorithm.state_dict()
    name = f"checkpoint-{algorithm.num_updates:09d}"
    tmp = directory / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    tensors = {f"{part}.{k}": v.detach().cpu().contiguous()
               for part in (*algorithm.modules(), "normalizer") for k, v in state[part].items()}
    save_file(tensors, str(tmp / "model.safetensors"))
    torch.save({"actor_opt": state["actor_opt"], "critic_opt": state["critic_opt"],
                "generator": state["generator"]}, tmp / "optimizer.pt")
    (tmp / "config.json").write_text(algorithm.cfg.to_json() + "\n")
    (tmp / "state.json").write_text(json.dumps({"counters": state["counters"], **(extra or {})}, indent=2) + "\n")
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    final = directory / name
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    pointer = directory / f".{CHECKPOINT_LATEST}.tmp-{os.getpid()}"
    pointer.write_text(name + "\n")
    os.replace(pointer, directory / CHECKPOINT_LATEST)
    old = sorted(p for p in directory.glob("checkpoint-*") if p.is_dir() and p.name != name)
    for p in old[: max(0, len(old) - (keep - 1))]:
        shutil.rmtree(p, ignore_errors=True)
    return final


def save_actor(directory: str | Path, weights: bytes, config_json: str) -> None:
    """``<directory>/actor.safetensors`` + ``actor_config.json`` (what actor.initial_weights reads), each
    replaced atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in (("actor.safetensors", weights), ("actor_config.json", config_json.encode())):
        tmp = directory / f".{name}.tmp"
        tmp.write_bytes(data)
        tmp.replace(directory / name)


def latest_checkpoint(directory: str | Path) -> Path | None:
    pointer = Path(directory) / CHECKPOINT_LATEST
    if not pointer.is_file():
        return None
    path = Path(directory) / pointer.read_text().strip()
    return path if path.is_dir() else None


def load_checkpoint(path: str | Path, algorithm: RLTAlgorithm) -> dict:
    """Load a checkpoint folder (or a directory with ``latest``) into ``algorithm``; returns state.json."""
    from safetensors.torch import load_file

    path = Path(path)
    if (path / CHECKPOINT_LATEST).is_file():
        resolved = latest_checkpoint(path)
        if resolved is None:
            raise FileNotFoundError(f"{path / CHECKPOINT_LATEST} points at a missing checkpoint")
        path = resolved
    stored = RLTConfig.load(path / "config.json")
    changed = check_compatible(stored, algorithm.cfg, f"checkpoint {path}")
    if changed:
        log.warning("resuming %s with changed hyperparameters (the new values apply from now on): %s", path,
                    ", ".join(f"{k} {s} -> {r}" for k, (s, r) in changed.items()))
    tensors = load_file(str(path / "model.safetensors"))
    opt = torch.load(path / "optimizer.pt", weights_only=False)
    info = json.loads((path / "state.json").read_text())
    parts = {k.split(".", 1)[0] for k in tensors}
    state = {part: {k[len(part) + 1:]: v for k, v in tensors.items() if k.startswith(part + ".")} for part in parts}
    state.update(config=stored.to_dict(), counters=info["counters"], **opt)
    algorithm.load_state_dict(state)
    return info


# ---- the loop -------------------------------------------------------------------------------------
class LatestWeights:
    """A one-slot, latest-only queue of exported actor weights: a put replaces what was not taken yet."""

    def __init__(self):
        self._lock = threading.Lock()
        self._item: tuple[int, bytes, str] | None = None

    def put(self, version: int, weights: bytes, config_json: str) -> None:
        with self._lock:
            self._item = (version, weights, config_json)

    def get(self) -> tuple[int, bytes, str] | None:
        """The newest (version, safetensors bytes, config JSON) not yet taken, or None."""
        with self._lock:
            item, self._item = self._item, None
            return item


class Learner:
    """Owns the update loop over a replay buffer.

    Update budget (UTD): after the buffer holds ``warmup_transitions`` (and at least one batch), the learner
    may do ``pretrain_updates + utd x transitions_added`` critic updates in total. ``catch_up()`` spends the
    budget synchronously (deterministic, for benchmarks); ``start()`` spends it in a background thread
    (the acting side never waits). Weights are exported to ``weights`` every ``export_every`` updates, but
    none before the warm-up budget (the budget when training starts: ``pretrain_updates + utd x`` the
    warm-up transitions) is spent: a learner slower than the data (a robot's graph on a CPU) would otherwise
    hand the actor a critic of a few hundred updates, whose gradient sent the simulated plug off the socket's
    top face; until then the acting side keeps passing the VLA's chunk through (more warm-up data).
    """

    def __init__(self, algorithm: RLTAlgorithm, replay: ReplayBuffer, checkpoint_dir: str | Path | None = None,
                 checkpoint_every: int = 0, seed: int | None = None, actor_dir: str | Path | None = None):
        self.algorithm = algorithm
        self.cfg = algorithm.cfg
        self.replay = replay
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        # with each checkpoint, the actor alone (actor.safetensors + actor_config.json) for actor.initial_weights
        self.actor_dir = None if actor_dir is None else Path(actor_dir)
        self.checkpoint_every = checkpoint_every
        self.weights = LatestWeights()
        self.rng = np.random.default_rng(self.cfg.seed if seed is None else seed)
        self.stats: dict[str, float] = {}
        self._lock = threading.RLock()  # guards the algorithm (updates vs checkpoint/export)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self.first_export_at = 0  # no weights leave before this many updates (set when training starts)
        self.extra_state: dict = {}  # saved into state.json with each checkpoint (e.g. episode counters)

    # ---- budget ---------------------------------------------------------------------------------
    def ready(self) -> bool:
        return len(self.replay) >= max(self.cfg.warmup_transitions, self.cfg.batch_size, 1)

    def budget(self) -> int:
        """Critic updates allowed so far (0 until ready)."""
        if not self.ready():
            return 0
        return self.cfg.pretrain_updates + self.cfg.utd * self.replay.total_added

    def pending(self) -> int:
        return max(0, self.budget() - self.algorithm.num_updates)

    def progress(self) -> dict[str, float]:
        """How the learner keeps up with the data: updates still pending, and the UTD ratio achieved so far
        (critic updates per transition added; below ``utd`` when the updates are slower than the data)."""
        added = self.replay.total_added
        return {"pending_updates": float(self.pending()),
                "utd_achieved": self.algorithm.num_updates / added if added and self.ready() else 0.0}

    def behind(self, min_pending: int = 2000, fraction: float = 0.8) -> bool:
        """True when, past its warm-up budget, the learner lags the data: more than ``min_pending`` updates
        pending and under ``fraction`` of its UTD achieved (the acting side then uses less-trained weights)."""
        p = self.progress()
        return (self.algorithm.num_updates >= self.first_export_at and p["pending_updates"] > min_pending
                and p["utd_achieved"] < fraction * self.cfg.utd)

    def fit_normalizer(self) -> None:
        """Fit the normaliser on the buffer's contents (once, when training starts)."""
        data = self.replay.arrays()
        actions = np.concatenate([data["reference"].reshape(-1, self.cfg.action_dim),
                                  data["action"].reshape(-1, self.cfg.action_dim)])
        self.algorithm.normalizer.fit(data["token"], data["proprio"], actions)

    # ---- updates --------------------------------------------------------------------------------
    def run_updates(self, n: int) -> dict[str, float]:
        """``n`` updates now (ignores the budget); exports and checkpoints on schedule."""
        if not bool(self.algorithm.normalizer.fitted):  # training starts (a resumed learner was fitted already)
            self.fit_normalizer()
            self.first_export_at = self.budget()
        stats: dict[str, float] = {}
        for _ in range(n):
            batch = self.replay.sample(self.cfg.batch_size, self.rng)
            with self._lock:
                stats = self.algorithm.update(batch)
                u = self.algorithm.num_updates
            if u == self.first_export_at or (u % self.cfg.export_every == 0 and u > self.first_export_at):
                self.export()
            if self.checkpoint_every and self.checkpoint_dir is not None and u % self.checkpoint_every == 0:
                self.save()
        if stats:
            self.stats = {**self.stats, **stats}
        return stats

    def catch_up(self, max_updates: int | None = None) -> int:
        """Spend the pending update budget now (at most ``max_updates``); returns the updates done."""
        n = self.pending() if max_updates is None else min(self.pending(), max_updates)
        if n > 0:
            self.run_updates(n)
        return n

    def export(self) -> None:
        """Put the current actor into the latest-only weight queue."""
        with self._lock:
            weights, cfg_json = self.algorithm.export()
            version = self.algorithm.num_updates
        self.weights.put(version, weights, cfg_json)

    def save(self) -> Path | None:
        if self.checkpoint_dir is None:
            return None
        self.replay.sync()  # the checkpoint never refers to transitions that could still be lost
        with self._lock:
            extra = {"replay_total_added": self.replay.total_added, "first_export_at": self.first_export_at,
                     **self.extra_state}
            path = save_checkpoint(self.checkpoint_dir, self.algorithm, extra)
            if self.actor_dir is not None:
                save_actor(self.actor_dir, *self.algorithm.export())
            return path

    def resume(self) -> dict | None:
        """Load the latest checkpoint of ``checkpoint_dir`` if there is one; returns its state.json."""
        if self.checkpoint_dir is None or latest_checkpoint(self.checkpoint_dir) is None:
            return None
        with self._lock:
            info = load_checkpoint(self.checkpoint_dir, self.algorithm)
        self.first_export_at = int(info.get("first_export_at", 0))  # a learner stopped in its warm-up still holds
        self.extra_state = {k: v for k, v in info.items()
                            if k not in ("counters", "replay_total_added", "first_export_at")}
        return info

    # ---- background thread ------------------------------------------------------------------------
    def start(self, chunk: int = 10, idle_sleep: float = 0.005) -> None:
        """Run updates in a daemon thread whenever budget is pending (``chunk`` at a time)."""
        if self._thread is not None:
            raise RuntimeError("learner thread already running")
        self._stop.clear()

        def loop() -> None:
            try:
                while not self._stop.is_set():
                    n = min(self.pending(), chunk)
                    if n > 0:
                        self.run_updates(n)
                    else:
                        time.sleep(idle_sleep)
            except BaseException as err:  # surfaced to the owner by stop()/check()
                self.error = err
                log.exception("learner thread failed")

        self._thread = threading.Thread(target=loop, name="rlt-learner", daemon=True)
        self._thread.start()

    def check(self) -> None:
        """Re-raise an error of the background thread in the caller."""
        if self.error is not None:
            raise RuntimeError(f"the learner thread failed: {self.error!r}") from self.error

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        self.check()

    def snapshot_bytes(self) -> bytes:
        """The algorithm state as bytes (torch.save), e.g. for a test's round trip."""
        buf = io.BytesIO()
        with self._lock:
            torch.save(self.algorithm.state_dict(), buf)
        return buf.getvalue()
