"""The RLT learner: the algorithm (``RLTAlgorithm``: update(batch) -> stats, state_dict round trip) and
the loop that owns it (``Learner``: UTD-throttled updates, synchronous or in a background thread,
latest-only actor-weight exports, atomic checkpoints).

Device and speed: the algorithm lives on one device (``resolve_device``: auto | cpu | cuda[:N]); the Learner
samples its batches on that device from a ``TensorReplay`` mirror of the replay buffer, normalised once per
transition; statistics come back to the host every ``stats_every`` updates; a non-finite batch, loss or
gradient skips its optimiser step on the device (fused Adam's ``found_inf``) and is counted. Checkpoints and
exported actors hold CPU tensors and load on any device. The CPU thread count is the process's (learner_node:
``learner.num_threads``).

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

from rlt_ros.core.rlt.action_stats import ActionStats
from rlt_ros.core.rlt.configuration_rlt import RLTConfig
from rlt_ros.core.rlt.modeling_actor_critic import (Actor, Critics, Normalizer, chunk_discounts,
                                                    reference_dropout_mask, td_target)
from rlt_ros.core.rlt.policy import ActorPolicy, export_actor
from rlt_ros.core.rlt.replay import Batch, ReplayBuffer, TensorReplay

log = logging.getLogger(__name__)

CHECKPOINT_LATEST = "latest"
PARAMETER_GROWTH = 10.0  # a parameter norm this many times the last good one between two checks is a divergence
LOSS_BOUND = 100.0  # a critic loss above this x num_critics x (return_max - return_min)^2 is a divergence (the
# targets are clipped to [return_min, return_max]: a healthy loss is of the order of that range squared)


class CheckpointMismatchError(ValueError):
    """A checkpoint (or replay buffer) was made with a configuration that differs from the requested one."""


DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


def available_devices() -> list[str]:
    """The devices this process can train on, e.g. ['cpu', 'cuda:0']."""
    return ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else ["cpu"]


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` -> a torch.device the learner can use.

    ``auto`` takes the first CUDA device and falls back to the CPU (logged). ``cuda``/``cuda:N`` without such a
    device is a ValueError that names the devices found (fail at start-up, not at the first update)."""
    text = str(spec).strip().lower()
    found = available_devices()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", 0)
        log.info("learner device 'auto': no CUDA device found (devices: %s), the learner runs on the CPU",
                 ", ".join(found))
        return torch.device("cpu")
    try:
        device = torch.device(text)
    except RuntimeError as err:
        raise ValueError(f"learner device {spec!r} is not one of {DEVICE_CHOICES} (devices found: "
                         f"{', '.join(found)})") from err
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ValueError(f"learner device {spec!r} is not one of {DEVICE_CHOICES} (devices found: {', '.join(found)})")
    device = torch.device("cuda", 0 if device.index is None else device.index)
    if str(device) not in found:
        raise ValueError(f"learner device {spec!r}: no such CUDA device; devices found: {', '.join(found)} "
                         f"(torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}). "
                         "Use learner.device 'cpu', or 'auto' to take a GPU when there is one.")
    return device


def _adam(module: torch.nn.Module, lr: float) -> torch.optim.Adam:
    """Adam with one fused kernel per step (also on CUDA, where it can skip a step on device: ``found_inf``);
    the multi-tensor Adam where this torch has no fused kernel for the parameters' device (CPU: < 2.4)."""
    params = list(module.parameters())
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except RuntimeError:
        return torch.optim.Adam(params, lr=lr, foreach=True)


class RLTAlgorithm:
    """Twin-critic chunked actor-critic with reference anchoring (RLT stage 2).

    ``update(batch)`` = one critic update; every ``critic_updates_per_actor``-th call also one actor
    update (and the actor target's Polyak step). Critic targets move by ``tau`` every critic update.

    ``device`` (``resolve_device``): networks, normaliser, noise and batches live there; checkpoints and
    exports load on any device. Statistics are read back to the host every ``stats_every`` updates (a
    read-back waits for the device); ``update`` returns the latest ones read. A batch with a NaN/inf, or a
    non-finite loss or gradient norm, never reaches an optimiser step: the step (and its Polyak step) is
    skipped on the device and counted (``nonfinite_batches``, ``skipped_steps``), and logged at read-back.
    """

    STAT_KEYS = ("critic_loss", "q_mean", "target_mean", "actor_loss", "actor_q", "ref_deviation", "mu_deviation")

    GRAPH_WARMUP = 3  # eager updates (on a side stream) before the CUDA graphs are captured

    def __init__(self, cfg: RLTConfig, device: str | torch.device = "cpu", stats_every: int = 10,
                 cuda_graph: bool = False):
        if stats_every < 1:
            raise ValueError(f"stats_every must be >= 1, got {stats_every}")
        self.cfg = cfg
        self.device = resolve_device(device)
        self.stats_every = int(stats_every)
        torch.manual_seed(cfg.seed)
        self.normalizer = Normalizer(cfg.token_dim, cfg.proprio_dim, cfg.action_dim, action_min_std=cfg.action_min_std,
                                     images=bool(cfg.state_image_size)).to(self.device)
        self.actor = Actor(cfg).to(self.device)
        self.critics = Critics(cfg).to(self.device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critics_target = copy.deepcopy(self.critics).requires_grad_(False)
        self.actor_opt = _adam(self.actor, cfg.actor_lr)
        self.critic_opt = _adam(self.critics, cfg.critic_lr)
        self._params = {name: list(getattr(self, name).parameters()) for name in self.modules()}
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed + 1)
        self._discounts = chunk_discounts(cfg.gamma, cfg.chunk_size, self.device)
        self._tau = torch.tensor(cfg.tau, device=self.device)
        # on-device counters (no host sync per update), read back with the statistics
        self._counts = torch.zeros(2, dtype=torch.long, device=self.device)  # nonfinite batches, skipped steps
        self._counts_read = [0, 0]
        self._pending: dict[str, torch.Tensor] = {}  # statistics computed on the device, not read yet
        self._actor_stats_due = False
        self.stats: dict[str, float] = {}
        self.num_updates = 0  # critic updates
        self.num_actor_updates = 0
        # CUDA graphs of the update (cuda_graph): "off", "cuda" (captured), "static" (the same path, eager: tests)
        self._graph_mode = "off"
        self._static: dict[str, torch.Tensor] | None = None  # the captured steps' input buffers
        self._graphs: dict[bool, tuple] | None = None  # with actor step -> (graph, its statistics)
        self._warmups: set[bool] = set()
        if cuda_graph:
            if self.device.type != "cuda":
                raise ValueError(f"cuda_graph needs a CUDA device; this learner runs on {self.device}")
            self._use_static_path("cuda")

    # ---- data ------------------------------------------------------------------------------------
    def normalise(self, batch: Batch) -> dict[str, torch.Tensor]:
        """A Batch -> the networks' inputs on this device: normalised token, proprio, flat chunks ref,
        action, next_ref [B, C*A], and rewards [B, C], done [B]. A batch sampled already normalised
        (``batch.normalized``, e.g. from a ``TensorReplay``) is only reshaped."""
        cfg = self.cfg
        b = batch.token.shape[0]
        c, a = cfg.chunk_size, cfg.action_dim
        expect = {"token": (b, cfg.token_dim), "proprio": (b, cfg.proprio_dim), "reference": (b, c, a),
                  "action": (b, c, a), "rewards": (b, c), "done": (b,), "next_token": (b, cfg.token_dim),
                  "next_proprio": (b, cfg.proprio_dim), "next_reference": (b, c, a)}
        for k, shape in expect.items():
            assert tuple(getattr(batch, k).shape) == shape, f"batch.{k}: {tuple(getattr(batch, k).shape)} != {shape}"
        fields = {k: getattr(batch, k).to(self.device, non_blocking=True) for k in Batch.FLOAT_FIELDS}
        if not batch.normalized:
            fields.update(self.normalise_fields({k: fields[k] for k in TensorReplay.NORMALISED}))
        flat = lambda x: x.reshape(b, c * a)  # noqa: E731
        return {"token": fields["token"], "proprio": fields["proprio"], "ref": flat(fields["reference"]),
                "action": flat(fields["action"]), "rewards": fields["rewards"], "done": fields["done"],
                "next_token": fields["next_token"], "next_proprio": fields["next_proprio"],
                "next_ref": flat(fields["next_reference"])}

    def normalise_fields(self, raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """token, proprio, next_token, next_proprio [N, .] and reference, action, next_reference [N, C, A]
        (on this device) -> the same keys normalised (what ``TensorReplay`` stores once per transition)."""
        n = self.normalizer
        out = {}
        for k, v in raw.items():
            out[k] = n.token(v) if k.endswith("token") else n.proprio(v) if k.endswith("proprio") else n.action(v)
        return out

    def batch_finite(self, batch: Batch) -> torch.Tensor:
        """0-dim bool on this device: every value of the (un-normalised) batch is finite. The normaliser's
        clip would turn an inf into a finite value, so this looks at the batch as sampled."""
        if batch.finite is not None:
            return batch.finite.to(self.device)
        parts = [getattr(batch, k).to(self.device, non_blocking=True).reshape(-1) for k in Batch.FLOAT_FIELDS]
        return torch.isfinite(torch.cat(parts)).all()

    def _noise(self, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(like.shape, generator=self.generator, device=self.device).mul_(self.cfg.sigma)

    def _ref_in(self, ref: torch.Tensor, train: bool) -> torch.Tensor:
        """ã as the actor's MLP sees it: zeroed entirely without pass-through, per sample with ref dropout
        (training). The residual actor's anchor is always ã itself."""
        if not self.cfg.use_reference:
            return torch.zeros_like(ref)
        if train and self.cfg.ref_dropout > 0:
            return ref * reference_dropout_mask(ref.shape[0], self.cfg.ref_dropout, self.generator, self.device)
        return ref

    # ---- losses ---------------------------------------------------------------------------------
    def critic_loss(self, nb: dict[str, torch.Tensor], with_stats: bool = True) -> tuple[torch.Tensor, dict]:
        """sum_j E[(Q_j(x, a) - y)^2]; statistics as 0-dim tensors on the device (not read back)."""
        cfg = self.cfg
        with torch.no_grad():
            mu_next = self.actor_target(nb["next_token"], nb["next_proprio"], self._ref_in(nb["next_ref"], False),
                                        nb["next_ref"] if cfg.residual_actor else None)
            noise = self._noise(mu_next).clamp_(-cfg.target_noise_clip, cfg.target_noise_clip)
            next_q = self.critics_target(nb["next_token"], nb["next_proprio"], mu_next + noise)
            y = td_target(nb["rewards"], nb["done"], next_q, cfg.gamma, self._discounts)
            y = y.clamp_(cfg.return_min, cfg.return_max)
        q = self.critics(nb["token"], nb["proprio"], nb["action"])  # [K, B]
        assert q.shape == (cfg.num_critics, y.shape[0]), q.shape
        loss = (q - y.unsqueeze(0)).square().mean(dim=1).sum()
        stats = {}
        if with_stats:
            stats = {"critic_loss": loss.detach(), "q_mean": q.detach().mean(), "target_mean": y.mean()}
        return loss, stats

    def actor_loss(self, nb: dict[str, torch.Tensor], with_stats: bool = True) -> tuple[torch.Tensor, dict]:
        """E_{a ~ N(mu(x, ã_in), sigma^2)}[ -mean_j Q_j(x, a) + beta || a - ã ||^2 ]; the critics' pass
        differentiates in a only (``Critics.action_values``)."""
        cfg = self.cfg
        mu = self.actor(nb["token"], nb["proprio"], self._ref_in(nb["ref"], True),
                        nb["ref"] if cfg.residual_actor else None)
        act = mu + self._noise(mu)
        q = self.critics.action_values(nb["token"], nb["proprio"], act).mean(dim=0)
        dev = (act - nb["ref"]).square().sum(-1)
        assert q.shape == dev.shape == (mu.shape[0],)
        loss = (cfg.beta * dev - q).mean()
        stats = {}
        if with_stats:
            with torch.no_grad():
                stats = {"actor_loss": loss.detach(), "actor_q": q.detach().mean(),
                         "ref_deviation": dev.detach().mean(), "mu_deviation": (mu - nb["ref"]).square().sum(-1).mean()}
        return loss, stats

    # ---- steps ----------------------------------------------------------------------------------
    def _step(self, opt: torch.optim.Optimizer, loss: torch.Tensor, name: str, finite: torch.Tensor) -> torch.Tensor:
        """backward, clip, and the optimiser step unless the batch, the loss or the gradient norm is not
        finite (decided on the device: the fused Adam's ``found_inf``). Returns the 0-dim ok flag."""
        opt.zero_grad(set_to_none=self._graph_mode == "off")
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self._params[name], self.cfg.grad_clip, foreach=True)
        ok = finite & torch.isfinite(norm + loss.detach())
        if opt.defaults.get("fused"):
            if self._graph_mode == "off":
                opt.found_inf = (~ok).float()
            else:  # a tensor at a fixed address (one graph's step must not read another's)
                opt.found_inf = self._found_inf[name]
                opt.found_inf.copy_(~ok)
            opt.step()
        elif bool(ok):  # the multi-tensor Adam cannot skip on the device: one host sync
            opt.step()
        self._counts[1] += ~ok
        target = self._params[f"{name}_target"]  # Polyak, tau or 0 (a skipped step): a weight tensor per
        torch._foreach_lerp_(target, self._params[name], [self._tau * ok] * len(target))  # parameter, no host read
        return ok

    def critic_step(self, nb: dict[str, torch.Tensor], finite: torch.Tensor, with_stats: bool = False) -> dict:
        loss, stats = self.critic_loss(nb, with_stats)
        self._step(self.critic_opt, loss, "critics", finite)
        return stats

    def actor_step(self, nb: dict[str, torch.Tensor], finite: torch.Tensor, with_stats: bool = False) -> dict:
        loss, stats = self.actor_loss(nb, with_stats)
        self._step(self.actor_opt, loss, "actor", finite)
        return stats

    # ---- contract -------------------------------------------------------------------------------
    def update(self, batch: Batch) -> dict[str, float]:
        """One critic update (+ one actor update every ``critic_updates_per_actor`` calls) -> the latest
        statistics read back (every ``stats_every`` updates; ``updates`` is always current)."""
        finite = self.batch_finite(batch)
        nb = self.normalise(batch)
        if self._graph_mode != "off" and batch.token.shape[0] == self.cfg.batch_size:
            return self._static_update(nb, finite)
        self._counts[0] += ~finite
        self.num_updates += 1
        read = self.num_updates % self.stats_every == 0
        self._pending.update(self.critic_step(nb, finite, read))
        if self.num_updates % self.cfg.critic_updates_per_actor == 0:
            due = read or self._actor_stats_due
            self._pending.update(self.actor_step(nb, finite, due))
            self._actor_stats_due = False
            self.num_actor_updates += 1
        elif read:
            self._actor_stats_due = True
        if read:
            self.read_stats()
        return {**self.stats, "updates": self.num_updates}

    # ---- CUDA graphs --------------------------------------------------------------------------------
    def _use_static_path(self, mode: str) -> None:
        """Updates through fixed input buffers and fixed gradient tensors: on CUDA two graphs (a critic step;
        a critic + actor step) captured after ``GRAPH_WARMUP`` eager updates and replayed from then on
        (capturable fused Adam: the skip of a non-finite step stays on the device). ``static``: the same
        path without capture (what a CPU test can check)."""
        self._graph_mode = mode
        self._graphs, self._warmups = None, set()
        for name, opt in (("actor", self.actor_opt), ("critics", self.critic_opt)):
            for p in self._params[name]:  # gradients at fixed addresses, zeroed and written in place by every replay
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
            if mode == "cuda":
                for group in opt.param_groups:
                    group["capturable"] = True
        self._found_inf = {name: torch.zeros((), device=self.device) for name in ("actor", "critics")}

    def _static_update(self, nb: dict[str, torch.Tensor], finite: torch.Tensor) -> dict[str, float]:
        if self._static is None:
            self._static = {k: v.detach().clone() for k, v in nb.items()} | {"finite": finite.clone()}
        for k, v in nb.items():
            self._static[k].copy_(v)
        self._static["finite"].copy_(finite)
        self.num_updates += 1
        with_actor = self.num_updates % self.cfg.critic_updates_per_actor == 0
        self._pending.update(self._run_static(with_actor))
        self.num_actor_updates += int(with_actor)
        if self.num_updates % self.stats_every == 0:
            self.read_stats()
        return {**self.stats, "updates": self.num_updates}

    def _static_step(self, with_actor: bool) -> dict[str, torch.Tensor]:
        """One update on the static buffers (what a graph holds); statistics as tensors."""
        nb, finite = self._static, self._static["finite"]
        self._counts[0] += ~finite
        out = self.critic_step(nb, finite, True)
        if with_actor:
            out.update(self.actor_step(nb, finite, True))
        return out

    def _run_static(self, with_actor: bool) -> dict[str, torch.Tensor]:
        if self._graphs is None and self._graph_mode == "cuda" and len(self._warmups) == 2 \
                and self.num_updates > self.GRAPH_WARMUP:
            try:
                self._capture()
            except RuntimeError as err:  # keep training, eagerly
                log.warning("capturing the learner's CUDA graphs failed (%s); the learner stays eager", err)
                self._graphs, self._graph_mode = None, "static"
        if self._graphs is not None:
            graph, out = self._graphs[with_actor]
            graph.replay()
            return out
        self._warmups.add(with_actor)
        if self._graph_mode != "cuda":
            return self._static_step(with_actor)
        side = torch.cuda.Stream(self.device)  # warm-up off the default stream, as capture requires
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            out = self._static_step(with_actor)
        torch.cuda.current_stream(self.device).wait_stream(side)
        return out

    def _capture(self) -> None:
        torch.cuda.synchronize(self.device)
        graphs, pool = {}, None
        for with_actor in (False, True):
            graph = torch.cuda.CUDAGraph()
            register = getattr(graph, "register_generator_state", None)
            if register is not None:  # a generator other than the default one must be known to the graph
                register(self.generator)
            with torch.cuda.graph(graph, pool=pool):
                out = self._static_step(with_actor)
            pool = graph.pool()
            graphs[with_actor] = (graph, out)
        self._graphs = graphs
        log.info("learner update captured as CUDA graphs on %s", self.device)

    def read_stats(self) -> dict[str, float]:
        """Read the pending statistics and the non-finite counters back from the device (one sync)."""
        keys = list(self._pending)
        values = torch.cat([torch.stack([self._pending[k].float() for k in keys]) if keys else
                            torch.zeros(0, device=self.device), self._counts.float()]).tolist()
        self._pending = {}
        self.stats.update(zip(keys, values[: len(keys)]))
        counts = [int(v) for v in values[len(keys):]]
        if counts != self._counts_read:
            log.warning("%d optimiser step(s) skipped for NaN/inf by update %d; in all: %d batch(es) with NaN/inf, "
                        "%d step(s) skipped (a non-finite batch, loss or gradient)", counts[1] - self._counts_read[1],
                        self.num_updates, counts[0], counts[1])
        self._counts_read = counts
        self.stats.update(nonfinite_batches=float(counts[0]), skipped_steps=float(counts[1]),
                          updates=float(self.num_updates))
        return dict(self.stats)

    def parameter_norm(self) -> float:
        """The global L2 norm of the trained networks' parameters (actor and critics); NaN or inf when any
        parameter is not finite. One host sync."""
        params = [p.detach().reshape(-1) for name in ("actor", "critics") for p in self._params[name]]
        return float(torch.linalg.vector_norm(torch.cat(params)))

    def modules(self) -> tuple[str, ...]:
        """Names of the networks this algorithm holds."""
        return ("actor", "critics", "actor_target", "critics_target")

    def policy(self) -> ActorPolicy:
        """An independent inference copy of the current actor on the CPU (safe to use while training goes on)."""
        weights, cfg_json = self.export()
        return ActorPolicy.from_export(weights, cfg_json)

    def export(self) -> tuple[bytes, str]:
        """(safetensors bytes, config JSON) of the actor and normaliser, as CPU tensors (any device loads them)."""
        return export_actor(self.cfg, self.actor, self.normalizer, version=self.num_updates)

    def state_dict(self) -> dict:
        """Everything needed to resume: config, networks, normaliser, optimisers, counters, RNG."""
        counts = self._counts.tolist()
        return {
            "config": self.cfg.to_dict(),
            **{name: getattr(self, name).state_dict() for name in self.modules()},
            "normalizer": self.normalizer.state_dict(),
            "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
            "counters": {"num_updates": self.num_updates, "num_actor_updates": self.num_actor_updates,
                         "nonfinite_batches": counts[0], "skipped_steps": counts[1]},
            "generator": self.generator.get_state(), "generator_device": self.device.type,
        }

    def load_state_dict(self, state: dict) -> None:
        """Load a ``state_dict`` made on any device (tensors move to this one). A state saved with separate
        critic networks (before the stacked critics) is converted, its critic optimiser state too."""
        stored = RLTConfig.from_dict(state["config"])
        check_compatible(stored, self.cfg, "checkpoint")
        critic_opt = state["critic_opt"]
        if any(k.startswith("qs.") for k in state["critics"]):
            critic_opt = _stack_optimizer_state(critic_opt, self.critics.legacy_parameter_map())
            log.info("checkpoint with separate critic networks: converted to the stacked critics")
        for name in self.modules():
            getattr(self, name).load_state_dict(state[name])
        self.normalizer.load_state_dict(state["normalizer"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(critic_opt)
        for opt, lr in ((self.actor_opt, self.cfg.actor_lr), (self.critic_opt, self.cfg.critic_lr)):
            for group in opt.param_groups:  # a stored optimiser state brings its own lr: this config's wins
                group["lr"] = lr
        counters = state["counters"]
        self.num_updates = int(counters["num_updates"])
        self.num_actor_updates = int(counters["num_actor_updates"])
        self._counts_read = [int(counters.get("nonfinite_batches", 0)), int(counters.get("skipped_steps", 0))]
        self._counts.copy_(torch.tensor(self._counts_read))
        if self._graph_mode != "off":  # the optimisers' state tensors are new: capture again
            self._use_static_path(self._graph_mode)
        try:
            self.generator.set_state(state["generator"].cpu())
        except RuntimeError:  # a generator of another device type: a state that cannot be carried over
            log.info("the checkpoint's noise generator was a %s one; this %s learner reseeds its own",
                     state.get("generator_device", "different"), self.device.type)
            self.generator.manual_seed(self.cfg.seed + 1 + self.num_updates)


def _stack_optimizer_state(opt_state: dict, parameter_map: list[list[int]]) -> dict:
    """An Adam state_dict of separate critic networks -> one for the stacked critics: the moments of the K
    slices of each stacked parameter are stacked (``Critics.legacy_parameter_map``)."""
    old = opt_state["state"]
    state = {}
    for new_index, old_indices in enumerate(parameter_map):
        if not all(i in old for i in old_indices):
            continue
        first = old[old_indices[0]]
        state[new_index] = {k: (Critics.stack([old[i][k] for i in old_indices]) if k in ("exp_avg", "exp_avg_sq")
                                else v) for k, v in first.items()}
    groups = [{**group, "params": list(range(len(parameter_map)))} for group in opt_state["param_groups"]]
    return {"state": state, "param_groups": groups}


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
    opt = torch.load(path / "optimizer.pt", weights_only=False, map_location="cpu")  # saved on any device
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

    Poison guard: before every export and checkpoint the networks are checked (``divergence``: non-finite
    parameters, a parameter norm grown ``PARAMETER_GROWTH``-fold since the last good check, or a critic loss
    above ``LOSS_BOUND``). A divergent state is never exported or saved: the networks, normaliser and
    optimisers roll back to the last good copy (kept at each passed check; the update count goes on), and the
    rollback is counted (``rollbacks``) and logged.
    """

    def __init__(self, algorithm: RLTAlgorithm, replay: ReplayBuffer, checkpoint_dir: str | Path | None = None,
                 checkpoint_every: int = 0, seed: int | None = None, actor_dir: str | Path | None = None,
                 action_stats: ActionStats | None = None):
        """Batches are sampled on ``algorithm.device`` from a ``TensorReplay`` mirror of ``replay``, normalised
        once per transition (built when training starts, i.e. once the normaliser is fitted). ``action_stats``:
        the demonstrations' action scale (the RL token's, action_stats.py); None fits it on the warm-up."""
        self.algorithm = algorithm
        self.action_stats = action_stats
        self.cfg = algorithm.cfg
        self.replay = replay
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        # with each checkpoint, the actor alone (actor.safetensors + actor_config.json) for actor.initial_weights
        self.actor_dir = None if actor_dir is None else Path(actor_dir)
        self.checkpoint_every = checkpoint_every
        self.weights = LatestWeights()
        self.rng = np.random.default_rng(self.cfg.seed if seed is None else seed)  # numpy draws (ReplayBuffer.sample)
        self.sample_generator = torch.Generator(device=algorithm.device).manual_seed(
            self.cfg.seed if seed is None else seed)
        self.mirror: TensorReplay | None = None  # built when training starts (the normaliser fitted)
        self.stats: dict[str, float] = {}
        self._lock = threading.RLock()  # guards the algorithm (updates vs checkpoint/export)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self.first_export_at = 0  # no weights leave before this many updates (set when training starts)
        self.extra_state: dict = {}  # saved into state.json with each checkpoint (e.g. episode counters)
        self._good: dict | None = None  # the last state that passed the divergence check (a copy), and its
        self._good_norm = float("nan")  # parameter norm; taken when training starts and at every passed check
        self.rollbacks = 0

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
        """Fit the normaliser on the buffer's contents (once, when training starts); the action scale is the
        demonstrations' where given (``action_stats``)."""
        data = self.replay.arrays()
        actions = self.action_stats
        if actions is None:
            actions = np.concatenate([data["reference"].reshape(-1, self.cfg.action_dim),
                                      data["action"].reshape(-1, self.cfg.action_dim)])
        self.algorithm.normalizer.fit(data["token"], data["proprio"], actions)

    # ---- updates --------------------------------------------------------------------------------
    def run_updates(self, n: int) -> dict[str, float]:
        """``n`` updates now (ignores the budget); exports and checkpoints on schedule."""
        if self.mirror is None:  # training starts, or goes on after a resume (one host read of `fitted`)
            if not bool(self.algorithm.normalizer.fitted):  # a resumed learner was fitted already
                self.fit_normalizer()
                self.first_export_at = self.budget()
            with self._lock:
                self.mirror = TensorReplay(self.replay, self.algorithm.normalise_fields, self.algorithm.device)
                if self._good is None:
                    self._keep_good(self.algorithm.parameter_norm())
        stats: dict[str, float] = {}
        for _ in range(n):
            with self._lock:
                self.mirror.sync()
                batch = self.mirror.sample(self.cfg.batch_size, self.sample_generator)
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
        """Put the current actor into the latest-only weight queue (nothing when the check rolled back)."""
        with self._lock:
            if not self.check_divergence():
                return
            weights, cfg_json = self.algorithm.export()
            version = self.algorithm.num_updates
        self.weights.put(version, weights, cfg_json)

    # ---- poison guard -----------------------------------------------------------------------------
    def divergence(self, norm: float) -> str:
        """Why the current networks (parameter norm ``norm``) are divergent, or '' when they are not."""
        cfg = self.cfg
        loss = float(self.algorithm.stats.get("critic_loss", 0.0))
        bound = LOSS_BOUND * cfg.num_critics * (cfg.return_max - cfg.return_min) ** 2
        if not np.isfinite(norm):
            return "non-finite parameters"
        if np.isfinite(self._good_norm) and norm > PARAMETER_GROWTH * max(self._good_norm, 1e-6):
            return f"parameter norm {norm:.4g} > {PARAMETER_GROWTH:g} x the last good {self._good_norm:.4g}"
        if not np.isfinite(loss) or loss > bound:
            return f"critic loss {loss:.4g} (bound {bound:.4g})"
        return ""

    def check_divergence(self) -> bool:
        """True when the networks are healthy (then they become the last good copy); else roll back to the
        last good copy and return False. One host sync (the parameter norm)."""
        with self._lock:
            norm = self.algorithm.parameter_norm()
            why = self.divergence(norm)
            if not why:
                self._keep_good(norm)
                return True
            self.rollbacks += 1
            self.stats["rollbacks"] = float(self.rollbacks)
            if self._good is None:
                raise RuntimeError(f"the learner diverged ({why}) before any good state was kept")
            alg = self.algorithm
            counters, counts = (alg.num_updates, alg.num_actor_updates), alg._counts.clone()
            alg.load_state_dict(self._good)
            (alg.num_updates, alg.num_actor_updates), alg._counts_read = counters, counts.tolist()
            alg._counts.copy_(counts)
            for stats in (alg.stats, self.stats):
                stats.pop("critic_loss", None)  # the divergent loss is not the rolled-back networks'
            log.warning("the learner diverged at update %d (%s): not exported, rolled back to the last good state "
                        "(%d rollback(s) so far); check the replay for bad transitions", alg.num_updates, why,
                        self.rollbacks)
            return False

    def _keep_good(self, norm: float) -> None:
        self._good, self._good_norm = copy.deepcopy(self.algorithm.state_dict()), norm

    def save(self) -> Path | None:
        if self.checkpoint_dir is None:
            return None
        self.replay.sync()  # the checkpoint never refers to transitions that could still be lost
        with self._lock:
            if self._good is not None:
                self.check_divergence()  # a divergent state is rolled back first: never saved
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
            self.mirror = None  # normalised with the loaded normaliser when training (re)starts
            if not np.isfinite(self.algorithm.parameter_norm()):
                raise ValueError(f"the checkpoint in {self.checkpoint_dir} holds non-finite parameters (written "
                                 "before the learner's divergence guard); move it away to start from the previous "
                                 "checkpoint-* folder (point 'latest' at it) or from scratch")
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
