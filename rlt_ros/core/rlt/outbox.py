"""The actor's durable outbox: every transition is kept until the learner acknowledges it.

DDS delivers a reliable message only to a subscriber that exists: whatever the actor publishes while the
learner is down, or starting up, is gone. So each transition is written to the outbox before it is sent,
and stays there until learner_node acknowledges it (/rlt/transitions_ack: stored durably in its replay, or
refused for good); what is not acknowledged within ``resend_after_s`` is sent again. The learner drops a
transition it already holds by its key (episode_id, index), so a resend never duplicates one.

On disk (``directory``): one file per transition, ``<episode_id>_<index>.bin``, holding its serialized
message; written to a temporary name and renamed, so a kill at any moment leaves whole files only, and read
back at start-up (an actor restarted with transitions still unacknowledged sends them again).
``directory=None`` keeps them in memory (survives learner restarts, not the actor's). Bounded: beyond
``capacity`` the oldest are dropped, counted and said.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

Key = tuple[int, int]  # (episode_id, index): one transition


class Outbox:
    def __init__(self, directory: str | Path | None, capacity: int = 50_000, resend_after_s: float = 5.0):
        if capacity < 1 or resend_after_s <= 0:
            raise ValueError(f"outbox: capacity must be >= 1 and resend_after_s > 0, got {capacity}, {resend_after_s}")
        self.capacity, self.resend_after_s = int(capacity), float(resend_after_s)
        self.directory = None if directory is None else Path(directory).expanduser()
        self._pending: OrderedDict[Key, list] = OrderedDict()  # key -> [payload (None: on disk), last sent]
        self.counters = {"outbox_sent": 0, "outbox_resent": 0, "outbox_acked": 0, "outbox_dropped": 0}
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            for stale in self.directory.glob("*.tmp"):  # a write cut off by a kill: its transition was never sent
                stale.unlink()
            for key in sorted(filter(None, map(_key_of, self.directory.glob("*.bin")))):
                self._pending[key] = [None, -float("inf")]  # due at once

    def __len__(self) -> int:
        return len(self._pending)

    def put(self, key: Key, payload: bytes, now: float) -> str:
        """Keep ``payload`` until ``key`` is acknowledged (call before sending it). Returns a warning when the
        outbox was full and its oldest transition was dropped, else ''."""
        key = (int(key[0]), int(key[1]))
        warning = ""
        if key not in self._pending and len(self._pending) >= self.capacity:
            old, _ = self._pending.popitem(last=False)
            self._unlink(old)
            self.counters["outbox_dropped"] += 1
            warning = (f"outbox full ({self.capacity} transitions the learner has not acknowledged; is it running?): "
                       f"the oldest, episode {old[0]} index {old[1]}, dropped ({self.counters['outbox_dropped']} so far)")
        if self.directory is not None:
            tmp = self._path(key).with_suffix(".tmp")
            tmp.write_bytes(payload)  # flushed to the OS on close: survives this process being killed
            os.replace(tmp, self._path(key))
            payload = None
        self._pending[key] = [payload, now]
        self.counters["outbox_sent"] += 1
        return warning

    def ack(self, keys) -> int:
        """The learner is done with ``keys``: forget them. Returns how many were pending."""
        n = 0
        for key in keys:
            key = (int(key[0]), int(key[1]))
            if self._pending.pop(key, None) is not None:
                self._unlink(key)
                n += 1
        self.counters["outbox_acked"] += n
        return n

    def due(self, now: float, limit: int) -> list[tuple[Key, bytes]]:
        """Up to ``limit`` transitions unacknowledged for ``resend_after_s`` (oldest first), to send again."""
        out = []
        for key, entry in self._pending.items():
            if len(out) >= limit:
                break
            if now - entry[1] < self.resend_after_s:
                continue
            payload = entry[0] if entry[0] is not None else self._path(key).read_bytes()
            entry[1] = now
            out.append((key, payload))
        self.counters["outbox_resent"] += len(out)
        return out

    def _path(self, key: Key) -> Path:
        return self.directory / f"{key[0]}_{key[1]}.bin"

    def _unlink(self, key: Key) -> None:
        if self.directory is not None:
            self._path(key).unlink(missing_ok=True)


def _key_of(path: Path) -> Key | None:
    episode, _, index = path.stem.partition("_")
    return (int(episode), int(index)) if episode.isdigit() and index.isdigit() else None
