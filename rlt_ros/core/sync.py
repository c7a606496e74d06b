"""Approximate-time synchronization of several input streams, with a max age (no message_filters).

Each stream keeps a short history of (stamp, value). ``latest_set(now)`` returns, for the newest
stamp of the reference stream, the value of every other stream closest in time, provided all lie
within ``max_skew`` of it and the set is no older than ``max_age``; otherwise it raises ``StaleInput``
naming the late stream. Counters say how often each stream was missing, stale or out of order. Given
``now``, ``add`` refuses a stamp from the future (beyond ``max_age``: another process, or two machines'
clocks apart) and forgets what it held from before a clock that jumped back (a restarted simulator or driver),
so one bad stamp never makes the newer real messages look out of order.
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from dataclasses import dataclass, field


class StaleInput(RuntimeError):
    """No synchronized set is fresh enough (a stream is silent, late or skewed)."""


@dataclass
class SyncConfig:
    max_skew: float = 0.05  # largest stamp difference between streams within one set [s]
    max_age: float = 0.25  # oldest acceptable set, relative to now [s]
    history: int = 10  # messages kept per stream

    def __post_init__(self):
        if self.max_skew <= 0 or self.max_age <= 0 or self.history < 1:
            raise ValueError("sync: max_skew and max_age must be > 0 s and history >= 1")


@dataclass
class StreamStats:
    received: int = 0  # messages accepted
    out_of_order: int = 0  # messages older than the newest one already held (dropped)
    future: int = 0  # messages stamped later than now + max_age (dropped)
    unmatched: int = 0  # sets that failed because this stream had no message within max_skew
    stale: int = 0  # sets that failed because this stream's newest message was too old


@dataclass
class _Stream:
    stamps: deque = field(default_factory=deque)
    values: deque = field(default_factory=deque)
    stats: StreamStats = field(default_factory=StreamStats)


class ApproxTimeSync:
    """Thread-safe approximate-time synchronizer; the first stream is the reference."""

    def __init__(self, streams: list[str], config: SyncConfig | None = None):
        if not streams or len(set(streams)) != len(streams):
            raise ValueError(f"sync: stream names must be unique and non-empty, got {streams}")
        self.config = config or SyncConfig()
        self.reference = streams[0]
        self._streams = {name: _Stream() for name in streams}
        self._lock = threading.Lock()
        self.emitted = 0

    def add(self, stream: str, stamp: float, value, now: float | None = None) -> bool:
        """Hold ``value``; False when it was dropped (out of order, or stamped in the future of ``now``)."""
        with self._lock:
            s = self._streams[stream]
            if now is not None and stamp > now + self.config.max_age:
                s.stats.future += 1
                return False
            if now is not None and s.stamps and s.stamps[-1] > now + self.config.max_age:
                s.stamps.clear()  # held from before the clock jumped back: a new epoch
                s.values.clear()
            if s.stamps and stamp <= s.stamps[-1]:
                s.stats.out_of_order += 1
                return False
            s.stamps.append(stamp)
            s.values.append(value)
            s.stats.received += 1
            while len(s.stamps) > self.config.history:
                s.stamps.popleft()
                s.values.popleft()
            return True

    def latest_set(self, now: float) -> tuple[float, dict]:
        """(reference stamp, {stream: value}) of the newest fresh set, or raise StaleInput."""
        with self._lock:
            ref = self._streams[self.reference]
            if not ref.stamps:
                ref.stats.unmatched += 1
                raise StaleInput(f"no message yet on {self.reference}")
            stamp = ref.stamps[-1]
            if now - stamp > self.config.max_age:
                ref.stats.stale += 1
                raise StaleInput(f"{self.reference} is {now - stamp:.3f} s old (max age {self.config.max_age} s)")
            out = {self.reference: ref.values[-1]}
            for name, s in self._streams.items():
                if name == self.reference:
                    continue
                if not s.stamps:
                    s.stats.unmatched += 1
                    raise StaleInput(f"no message yet on {name}")
                stamps = list(s.stamps)
                i = bisect.bisect_left(stamps, stamp)
                best = min((j for j in (i - 1, i) if 0 <= j < len(stamps)), key=lambda j: abs(stamps[j] - stamp))
                if abs(stamps[best] - stamp) > self.config.max_skew:
                    if stamps[-1] < stamp - self.config.max_skew:
                        s.stats.stale += 1
                    else:
                        s.stats.unmatched += 1
                    raise StaleInput(f"{name}: nearest message is {stamps[best] - stamp:+.3f} s from {self.reference} "
                                     f"(max skew {self.config.max_skew} s)")
                out[name] = s.values[best]
            self.emitted += 1
            return stamp, out

    def stats(self) -> dict[str, StreamStats]:
        with self._lock:
            return {name: StreamStats(**vars(s.stats)) for name, s in self._streams.items()}
