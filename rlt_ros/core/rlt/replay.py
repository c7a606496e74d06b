"""The RLT replay buffer: chunk-level critical-phase transitions, persisted to disk as it grows.

A transition (paper: RLT stage 2) is (x, ã_1:C, a_1:C, r_1:C, done, x', ã'_1:C) with x = (z_rl, proprio),
plus bookkeeping: episode id, start step, valid steps, intervention flag and source
(VLA warm-up rollout, RL rollout, human intervention). Interventions are stored with ã <- a_human.

Persistence: ``<dir>/meta.json`` (dimensions, format) and ``<dir>/log.bin``, an append-only log of framed
records (magic, type, length, crc32, payload): one record per transition and one per episode end
(sparse reward attached after the fact). Every record is flushed to the OS as it is written (a killed
process loses nothing already added) and fsync'ed at episode ends and on ``sync()``. Reopening replays the
log; a torn last record (power loss mid-write) is cut off. The in-memory ring keeps the newest
``capacity`` transitions for sampling; the log keeps them all.

The state vector is float32 (z_rl) or, for the no-token ablation (``RLTConfig.state_image_size``), the
cameras' uint8 pixels (``token_dtype`` "u1": whole numbers in [0, 255], 1 byte each: with two 32 x 32
cameras x and x' take 12 KiB of a ~14 KiB transition).

``ChunkRecorder`` turns a stream of control steps into transitions: one starts every ``stride`` steps
(paper: stride 2, ~25 samples/s at 50 Hz), each covering the C executed steps from its start.
"""

from __future__ import annotations

import fcntl
import json
import os
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

SOURCE_VLA = 0  # the VLA's own rollout (warm-up)
SOURCE_RL = 1  # the RL actor's rollout
SOURCE_HUMAN = 2  # a human intervention (teleoperation) in the window
SOURCES = {SOURCE_VLA: "vla", SOURCE_RL: "rl", SOURCE_HUMAN: "human"}

FORMAT_VERSION = 1
TOKEN_DTYPES = ("f4", "u1")  # the state vector: float32 (z_rl) or uint8 camera pixels (no-token ablation)
_MAGIC = b"RLTr"
_HEADER = struct.Struct("<4sBII")  # magic, record type, payload length, crc32 of payload
_REC_TRANSITION = 1
_REC_EPISODE_END = 2
_END = struct.Struct("<qfi")  # episode_id, reward, last_step


class ReplayError(ValueError):
    """A transition or a buffer directory that cannot be used (wrong dimensions, NaN, mismatched config)."""


@dataclass
class Transition:
    """One chunk-level transition; arrays are float32, shapes given with T, P, C, A of the buffer."""

    episode_id: int  # episode the transition belongs to
    index: int  # start step of the window within the episode's critical phase (control steps)
    token: np.ndarray  # [T] z_rl of x (or its camera pixels: the no-token ablation)
    proprio: np.ndarray  # [P] proprioception of x
    reference: np.ndarray  # [C, A] ã_1:C at x (rows a human executed are relabelled to the human action)
    action: np.ndarray  # [C, A] executed a_1:C (absolute joint targets); rows past `steps` repeat the last one
    rewards: np.ndarray  # [C] r_1:C
    done: bool  # True when the episode ended inside this window (no bootstrap)
    next_token: np.ndarray  # [T] z_rl of x' (C steps later; unused when done)
    next_proprio: np.ndarray  # [P]
    next_reference: np.ndarray  # [C, A] ã'_1:C at x'
    intervention: bool = False  # a human produced at least one executed action of the window
    source: int = SOURCE_RL  # SOURCE_VLA / SOURCE_RL / SOURCE_HUMAN
    steps: int = 0  # executed steps in the window (C, fewer only when the episode ended); 0 = C


@dataclass
class Batch:
    """A sampled minibatch (torch float32 unless noted); B = batch size. Un-normalised as ``ReplayBuffer.sample``
    returns it; ``TensorReplay.sample`` returns it normalised (``normalized``), on its device, with ``finite``."""

    token: torch.Tensor  # [B, T]
    proprio: torch.Tensor  # [B, P]
    reference: torch.Tensor  # [B, C, A]
    action: torch.Tensor  # [B, C, A]
    rewards: torch.Tensor  # [B, C]
    done: torch.Tensor  # [B] (1.0 = terminal)
    next_token: torch.Tensor  # [B, T]
    next_proprio: torch.Tensor  # [B, P]
    next_reference: torch.Tensor  # [B, C, A]
    intervention: torch.Tensor  # [B] bool
    normalized: bool = False  # token, proprio and the chunks are normalised already (by the learner's Normalizer)
    finite: torch.Tensor | None = None  # 0-dim bool: every value finite (None: not checked yet)

    FLOAT_FIELDS = ("token", "proprio", "reference", "action", "rewards", "done", "next_token", "next_proprio",
                    "next_reference")


def relabel_intervention(reference: np.ndarray, action: np.ndarray, human: np.ndarray) -> np.ndarray:
    """ã <- a_human: reference [C, A] with the rows where ``human`` [C] is True replaced by the executed action."""
    reference = np.array(reference, np.float32, copy=True)
    human = np.asarray(human, bool)
    if reference.shape != np.shape(action) or human.shape != (reference.shape[0],):
        raise ReplayError(f"relabel_intervention: reference {reference.shape}, action {np.shape(action)} and "
                          f"human {human.shape} must be [C, A], [C, A] and [C]")
    reference[human] = np.asarray(action, np.float32)[human]
    return reference


class ReplayBuffer:
    """Thread-safe replay of transitions with an append-only on-disk log (see the module docstring).

    ``directory=None`` keeps everything in memory only (tests, benchmarks of the learner).
    ``read_only=True`` loads a directory (e.g. while its writer still runs) without touching it.
    One writer per directory: a second one gets a ReplayError (an exclusive lock on log.bin).
    """

    def __init__(self, token_dim: int, proprio_dim: int, chunk_size: int, action_dim: int,
                 capacity: int = 200_000, directory: str | Path | None = None, sync_every: int = 0,
                 extra_meta: dict | None = None, read_only: bool = False, token_dtype: str = "f4"):
        """``token_dtype``: "f4" (z_rl) or "u1" (camera pixels, ``RLTConfig.token_dtype``)."""
        self.read_only = bool(read_only)
        if token_dtype not in TOKEN_DTYPES:
            raise ReplayError(f"token_dtype must be one of {TOKEN_DTYPES}, got {token_dtype!r}")
        self.dims = {"token_dim": int(token_dim), "proprio_dim": int(proprio_dim),
                     "chunk_size": int(chunk_size), "action_dim": int(action_dim), "token_dtype": token_dtype}
        if proprio_dim < 0 or chunk_size < 1 or action_dim < 1 or token_dim < 1:
            raise ReplayError(f"invalid replay dimensions {self.dims}")
        if capacity < 1:
            raise ReplayError(f"capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.sync_every = int(sync_every)
        self._lock = threading.Lock()
        t, p, c, a = token_dim, proprio_dim, chunk_size, action_dim
        self._dtype = np.dtype([
            ("episode_id", "<i8"), ("index", "<i4"), ("steps", "<i4"), ("done", "u1"), ("intervention", "u1"),
            ("source", "u1"), ("token", token_dtype, (t,)), ("proprio", "<f4", (p,)), ("reference", "<f4", (c, a)),
            ("action", "<f4", (c, a)), ("rewards", "<f4", (c,)), ("next_token", token_dtype, (t,)),
            ("next_proprio", "<f4", (p,)), ("next_reference", "<f4", (c, a)),
        ])
        self._data = np.zeros(self.capacity, self._dtype)
        self._size = 0  # filled slots
        self._next = 0  # ring position of the next write
        self.total_added = 0  # transitions ever added (also those pushed out of the ring)
        self.version = 0  # bumped by every change of the ring (a transition added, an episode's end applied)
        self._slot_version = np.zeros(self.capacity, np.int64)  # the version that last changed each slot
        self.episodes_ended: dict[int, float] = {}  # episode id -> terminal reward
        self._keys: set[tuple[int, int]] = set()  # (episode_id, index) of every transition in the log
        self._unsynced = 0
        self._log = None
        self.directory = None if directory is None else Path(directory)
        if self.directory is not None:
            self._open(extra_meta or {})

    # ---- persistence ----------------------------------------------------------------------------
    def _open(self, extra_meta: dict) -> None:
        d = self.directory
        if not self.read_only:
            d.mkdir(parents=True, exist_ok=True)
        meta_path, log_path = d / "meta.json", d / "log.bin"
        meta = {"format": FORMAT_VERSION, **self.dims}
        if self.read_only and not meta_path.is_file():
            raise ReplayError(f"{d} holds no replay buffer (no meta.json)")
        if meta_path.is_file():
            stored = {"token_dtype": "f4", **json.loads(meta_path.read_text())}  # written before pixel states
            diff = {k: (stored.get(k), v) for k, v in meta.items() if stored.get(k) != v}
            if diff:
                listed = ", ".join(f"{k}: stored {s} vs requested {r}" for k, (s, r) in diff.items())
                raise ReplayError(
                    f"the replay buffer in {d} was written with other dimensions ({listed}); nothing was changed. "
                    "Resume with the configuration it was created with, or use a new output directory.")
        elif not self.read_only:
            tmp = meta_path.with_name(".meta.json.tmp")
            tmp.write_text(json.dumps({**meta, **extra_meta}, indent=2) + "\n")
            os.replace(tmp, meta_path)
        if self.read_only:
            if log_path.exists():
                self._replay_log(log_path)
            return
        self._log = open(log_path, "ab")
        try:
            fcntl.flock(self._log.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            self._log.close()
            self._log = None
            raise ReplayError(f"the replay buffer in {d} is in use by another process; stop it first "
                              "(or open it with read_only=True)") from err
        good = self._replay_log(log_path)
        if log_path.stat().st_size > good:  # a torn last record (crash mid-write): cut it off
            self._log.truncate(good)

    def _replay_log(self, path: Path) -> int:
        """Load every complete record of the log; return the byte offset after the last good one."""
        raw = path.read_bytes()
        off, n = 0, len(raw)
        while off + _HEADER.size <= n:
            magic, kind, length, crc = _HEADER.unpack_from(raw, off)
            start, end = off + _HEADER.size, off + _HEADER.size + length
            if magic != _MAGIC or end > n or zlib.crc32(raw[start:end]) != crc:
                break
            payload = raw[start:end]
            if kind == _REC_TRANSITION:
                if length != self._dtype.itemsize:
                    raise ReplayError(f"{path}: transition record of {length} bytes, expected {self._dtype.itemsize}")
                self._insert(np.frombuffer(payload, self._dtype, count=1)[0])
            elif kind == _REC_EPISODE_END:
                eid, reward, last = _END.unpack(payload)
                self._apply_end(eid, reward, last)
            else:
                raise ReplayError(f"{path}: unknown record type {kind} at byte {off}")
            off = end
        return off

    def _write(self, kind: int, payload: bytes, sync: bool) -> None:
        if self.read_only:
            raise ReplayError("this replay buffer was opened read-only")
        if self._log is None:
            return
        self._log.write(_HEADER.pack(_MAGIC, kind, len(payload), zlib.crc32(payload)) + payload)
        self._log.flush()  # in the OS: survives the process being killed
        self._unsynced += 1
        if sync or (self.sync_every and self._unsynced >= self.sync_every):
            self._fsync()

    def _fsync(self) -> None:
        if self._log is not None and self._unsynced:
            os.fsync(self._log.fileno())
            self._unsynced = 0

    def sync(self) -> None:
        """fsync the log (survives power loss)."""
        with self._lock:
            self._fsync()

    def close(self) -> None:
        with self._lock:
            if self._log is not None:
                self._fsync()
                self._log.close()
                self._log = None

    # ---- adding -----------------------------------------------------------------------------------
    def _record(self, tr: Transition) -> np.void:
        """Validate a Transition and pack it into one structured record (ReplayError naming the field)."""
        t, p, c, a = (self.dims[k] for k in ("token_dim", "proprio_dim", "chunk_size", "action_dim"))
        rec = np.zeros((), self._dtype)
        shapes = {"token": (t,), "proprio": (p,), "reference": (c, a), "action": (c, a), "rewards": (c,),
                  "next_token": (t,), "next_proprio": (p,), "next_reference": (c, a)}
        for name, shape in shapes.items():
            try:
                arr = np.asarray(getattr(tr, name), np.float32)
            except (TypeError, ValueError) as err:
                raise ReplayError(f"transition.{name}: not numeric ({err})") from err
            if arr.shape != shape:
                raise ReplayError(f"transition.{name}: expected shape {shape}, got {arr.shape} "
                                  f"(buffer dims: {self.dims})")
            if not np.all(np.isfinite(arr)):
                bad = np.argwhere(~np.isfinite(arr))[0].tolist()
                raise ReplayError(f"transition.{name}: non-finite value {arr[tuple(bad)]} at index {bad}; "
                                  "transition rejected")
            if name.endswith("token") and self.dims["token_dtype"] == "u1" and (
                    arr.min(initial=0) < 0 or arr.max(initial=0) > 255 or not np.all(arr == np.round(arr))):
                raise ReplayError(f"transition.{name}: pixels must be whole numbers in [0, 255]; transition rejected")
            rec[name] = arr
        steps = int(tr.steps) or c
        if not 1 <= steps <= c:
            raise ReplayError(f"transition.steps must be in [1, {c}], got {tr.steps}")
        if int(tr.source) not in SOURCES:
            raise ReplayError(f"transition.source must be one of {SOURCES}, got {tr.source}")
        rec["episode_id"], rec["index"], rec["steps"] = int(tr.episode_id), int(tr.index), steps
        rec["done"], rec["intervention"], rec["source"] = bool(tr.done), bool(tr.intervention), int(tr.source)
        return rec

    def _insert(self, rec) -> None:
        self._keys.add((int(rec["episode_id"]), int(rec["index"])))
        self._data[self._next] = rec
        self.version += 1
        self._slot_version[self._next] = self.version
        self._next = (self._next + 1) % self.capacity
        self._size = min(self._size + 1, self.capacity)
        self.total_added += 1

    def add(self, tr: Transition, sync: bool = False) -> bool:
        """Validate, append to the log (flushed) and to the ring. Raises ReplayError on bad data. A transition
        whose (episode_id, index) is already held (a resend after a lost acknowledgement) is not added: False."""
        rec = self._record(tr)
        with self._lock:
            if self.holds(tr.episode_id, tr.index):
                return False
            self._write(_REC_TRANSITION, rec.tobytes(), sync)
            self._insert(rec)
            return True

    def holds(self, episode_id: int, index: int) -> bool:
        """Whether the log holds the transition (episode_id, index)."""
        return (int(episode_id), int(index)) in self._keys

    def end_episode(self, episode_id: int, reward: float, last_step: int | None = None) -> int:
        """Attach the sparse terminal reward to an episode's stored transitions (paper: +1 success, 0 failure).

        Transitions of ``episode_id`` whose window contains ``last_step`` (default: the last executed step
        of the episode's latest window) become terminal with ``reward`` at that step. Logged and fsync'ed.
        Returns the number of transitions changed.
        """
        reward = float(reward)
        if not np.isfinite(reward):
            raise ReplayError(f"end_episode: non-finite reward {reward}")
        with self._lock:
            if last_step is None:
                sel = self._data["episode_id"][: self._size] == episode_id
                if not sel.any():
                    self.episodes_ended[int(episode_id)] = reward
                    self._write(_REC_EPISODE_END, _END.pack(int(episode_id), reward, -1), True)
                    return 0
                ends = self._data["index"][: self._size][sel] + self._data["steps"][: self._size][sel] - 1
                last_step = int(ends.max())
            self._write(_REC_EPISODE_END, _END.pack(int(episode_id), reward, int(last_step)), True)
            return self._apply_end(int(episode_id), reward, int(last_step))

    def _apply_end(self, episode_id: int, reward: float, last_step: int) -> int:
        self.episodes_ended[episode_id] = reward
        if last_step < 0:
            return 0
        d = self._data[: self._size]
        sel = np.flatnonzero((d["episode_id"] == episode_id) & (d["index"] <= last_step)
                             & (last_step < d["index"] + d["steps"]))
        for i in sel:
            k = last_step - int(self._data["index"][i])
            self._data["rewards"][i, k] = reward
            self._data["done"][i] = 1
            self._data["steps"][i] = k + 1
        if len(sel):
            self.version += 1
            self._slot_version[sel] = self.version
        return len(sel)

    # ---- reading ----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._size

    def count_by_source(self) -> dict[str, int]:
        with self._lock:
            src = self._data["source"][: self._size]
            return {name: int((src == k).sum()) for k, name in SOURCES.items()}

    def arrays(self) -> np.ndarray:
        """A copy of the stored records (structured array, oldest first)."""
        with self._lock:
            if self._size < self.capacity:
                return self._data[: self._size].copy()
            return np.concatenate([self._data[self._next:], self._data[: self._next]])

    def changes(self, since: int) -> tuple[int, np.ndarray, np.ndarray]:
        """(current version, slots changed after version ``since``, a copy of their records), for a mirror
        that follows the ring (``TensorReplay``)."""
        with self._lock:
            if self.version == since:
                return since, np.zeros(0, np.int64), self._data[:0].copy()
            slots = np.flatnonzero(self._slot_version[: self._size] > since)
            return self.version, slots, self._data[slots]

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        """A uniform minibatch (with replacement) as torch tensors."""
        with self._lock:
            if self._size == 0:
                raise ReplayError("cannot sample from an empty replay buffer")
            rec = self._data[rng.integers(0, self._size, size=batch_size)]
        f = lambda k: torch.from_numpy(np.array(rec[k], np.float32))  # noqa: E731
        return Batch(token=f("token"), proprio=f("proprio"), reference=f("reference"), action=f("action"),
                     rewards=f("rewards"), done=f("done"), next_token=f("next_token"),
                     next_proprio=f("next_proprio"), next_reference=f("next_reference"),
                     intervention=torch.from_numpy(rec["intervention"].astype(bool)))


class ChunkRecorder:
    """Builds stride-subsampled chunk transitions from one episode's control steps.

    Protocol per control step t = 0, 1, ...: when ``needs_observation()`` (t % stride == 0) call
    ``observe(token, proprio, reference)`` with the state x_t and the VLA's reference ã_t (>= C rows); then
    ``act(action, human)`` with the executed action. ``observe`` returns the transitions whose C-step
    window just closed (next state = this x_t); ``finish(reward)`` closes the rest as terminal, with the
    reward at the episode's last step. Interventions are relabelled (ã <- a_human) row by row.
    ``first_step`` numbers the windows of a recorder opened late in the critical phase (rounded up to the
    stride), so that (episode_id, index) stays unique per transition: the learner drops repeats by it.
    """

    def __init__(self, episode_id: int, chunk_size: int, stride: int, source: int = SOURCE_RL, first_step: int = 0):
        if stride < 1 or chunk_size % stride:
            raise ReplayError(f"chunk_size {chunk_size} must be a multiple of stride {stride}")
        self.episode_id, self.c, self.stride, self.source = int(episode_id), int(chunk_size), int(stride), source
        self.t = -(-max(0, int(first_step)) // self.stride) * self.stride
        self._open: list[dict] = []  # windows: start, token, proprio, reference, actions, human, source
        self._last_obs: tuple | None = None

    def needs_observation(self) -> bool:
        return self.t % self.stride == 0

    def observe(self, token: np.ndarray, proprio: np.ndarray, reference: np.ndarray) -> list[Transition]:
        if not self.needs_observation():
            raise ReplayError(f"observe() at step {self.t}: only every {self.stride} steps")
        reference = np.asarray(reference, np.float32)
        if reference.ndim != 2 or reference.shape[0] < self.c:
            raise ReplayError(f"reference chunk must be [H >= C={self.c}, A], got {reference.shape}")
        ref = reference[: self.c].copy()
        token, proprio = np.asarray(token, np.float32).copy(), np.asarray(proprio, np.float32).copy()
        out = []
        for w in [w for w in self._open if len(w["actions"]) == self.c]:
            out.append(self._emit(w, token, proprio, ref, done=False, reward=0.0))
            self._open.remove(w)
        self._open.append({"start": self.t, "token": token, "proprio": proprio, "reference": ref,
                           "actions": [], "human": [], "source": self.source})
        self._last_obs = (token, proprio, ref)
        return out

    def act(self, action: np.ndarray, human: bool = False) -> None:
        action = np.asarray(action, np.float32).copy()
        for w in self._open:
            if len(w["actions"]) < self.c:
                w["actions"].append(action)
                w["human"].append(bool(human))
        self.t += 1

    def finish(self, reward: float, terminal: bool = True) -> list[Transition]:
        """Close the episode after its last executed step: open windows become terminal transitions
        (reward at the last step). ``terminal=False`` (episode aborted) drops incomplete windows."""
        out = []
        if terminal and self._last_obs is not None:
            nt, npr, nref = self._last_obs  # unused by the TD target (done), kept finite
            for w in self._open:
                if w["actions"]:
                    out.append(self._emit(w, nt, npr, nref, done=True, reward=reward))
        self._open = []
        return out

    def _emit(self, w: dict, next_token, next_proprio, next_ref, done: bool, reward: float) -> Transition:
        steps = len(w["actions"])
        actions = np.stack(w["actions"] + [w["actions"][-1]] * (self.c - steps))
        human = np.array(w["human"] + [w["human"][-1]] * (self.c - steps), bool)
        rewards = np.zeros(self.c, np.float32)
        if done:
            rewards[steps - 1] = reward
        intervention = bool(human.any())
        return Transition(
            episode_id=self.episode_id, index=w["start"], token=w["token"], proprio=w["proprio"],
            reference=relabel_intervention(w["reference"], actions, human) if intervention else w["reference"],
            action=actions, rewards=rewards, done=done, next_token=next_token, next_proprio=next_proprio,
            next_reference=next_ref, intervention=intervention,
            source=SOURCE_HUMAN if intervention else w["source"], steps=steps)


class TensorReplay:
    """A replay buffer's ring mirrored as one float tensor on the learner's device, normalised once.

    Each slot is one row: normalised token, proprio, ã, a, next token, next proprio, ã' (``normalize``, the
    learner's Normalizer, applied when the row is copied in), then rewards, done and the intervention flag.
    ``sample`` draws indices on the device and gathers rows (no host round trip, no per-update
    normalisation); ``sync`` copies the slots the buffer changed since the last sync (new transitions, an
    episode's terminal reward). The mirror grows with the buffer, up to its capacity. Pixel states (a "u1"
    buffer) stay uint8 in a second tensor (x and x' per slot), made float only in the sampled batch.
    """

    NORMALISED = ("token", "proprio", "reference", "action", "next_token", "next_proprio", "next_reference")
    RAW = ("rewards", "done", "intervention")

    def __init__(self, replay: ReplayBuffer, normalize: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]],
                 device: torch.device | str = "cpu"):
        self.replay = replay
        self.normalize = normalize
        self.device = torch.device(device)
        t, p, c, a = (replay.dims[k] for k in ("token_dim", "proprio_dim", "chunk_size", "action_dim"))
        self.pixels = replay.dims["token_dtype"] == "u1"
        self.float_fields = tuple(k for k in self.NORMALISED if not (self.pixels and k.endswith("token")))
        widths = {"token": t, "proprio": p, "reference": c * a, "action": c * a, "next_token": t, "next_proprio": p,
                  "next_reference": c * a, "rewards": c, "done": 1, "intervention": 1}
        widths = {k: w for k, w in widths.items() if k in self.float_fields + self.RAW}
        self.columns: dict[str, slice] = {}
        off = 0
        for name, w in widths.items():
            self.columns[name] = slice(off, off + w)
            off += w
        self.width = off
        self.shapes = {"reference": (c, a), "action": (c, a), "next_reference": (c, a)}
        self.store = torch.zeros(0, self.width, device=self.device)
        self.image_store = torch.zeros(0, 2, t if self.pixels else 0, dtype=torch.uint8, device=self.device)
        self.size = 0
        self.version = 0

    def _grow(self, slots_needed: int) -> None:
        if slots_needed <= self.store.shape[0]:
            return
        rows = min(self.replay.capacity, max(1024, 2 * self.store.shape[0], slots_needed))
        store = torch.zeros(rows, self.width, device=self.device)
        store[: self.store.shape[0]] = self.store
        self.store = store
        images = torch.zeros(rows, *self.image_store.shape[1:], dtype=torch.uint8, device=self.device)
        images[: self.image_store.shape[0]] = self.image_store
        self.image_store = images

    def sync(self) -> int:
        """Copy the buffer's changed slots in; returns how many."""
        version, slots, rec = self.replay.changes(self.version)
        if len(slots):
            self._grow(int(slots.max()) + 1)
            raw = {k: torch.from_numpy(np.array(rec[k], np.float32)).reshape(len(slots), -1)
                   .to(self.device, non_blocking=True) for k in self.float_fields + self.RAW}
            shaped = {k: v.reshape(len(slots), *self.shapes[k]) if k in self.shapes else v for k, v in raw.items()}
            normed = self.normalize({k: shaped[k] for k in self.float_fields})
            rows = torch.cat([normed[k].reshape(len(slots), -1) if k in normed else raw[k]
                              for k in self.columns], dim=1)
            index = torch.from_numpy(slots).to(self.device)
            self.store[index] = rows
            if self.pixels:
                self.image_store[index] = torch.from_numpy(np.stack([rec["token"], rec["next_token"]], 1)).to(self.device)
        self.version = version
        self.size = len(self.replay)
        return len(slots)

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        """A uniform minibatch (with replacement) of normalised rows, on the mirror's device (call ``sync`` first)."""
        if self.size == 0:
            raise ReplayError("cannot sample from an empty replay buffer")
        idx = torch.randint(0, self.size, (batch_size,), generator=generator, device=self.device)
        rows = self.store.index_select(0, idx)
        col = lambda k: rows[:, self.columns[k]].view(batch_size, *self.shapes.get(k, (-1,)))  # noqa: E731
        if self.pixels:
            images = self.image_store.index_select(0, idx).float()
            token, next_token = images[:, 0], images[:, 1]
        else:
            token, next_token = col("token"), col("next_token")
        return Batch(token=token, proprio=col("proprio"), reference=col("reference"), action=col("action"),
                     rewards=col("rewards"), done=col("done").view(batch_size), next_token=next_token,
                     next_proprio=col("next_proprio"), next_reference=col("next_reference"),
                     intervention=col("intervention").view(batch_size) > 0.5, normalized=True,
                     finite=torch.isfinite(rows).all())
