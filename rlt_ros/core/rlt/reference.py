"""The reference ã the actor is anchored to: the VLA's chunk as the base policy executes it.

The base VLA is queried for a chunk of H actions and follows it open loop for ``execute_steps`` rows
before it is queried again (the shipped built-in VLA: 53% success at 30 rows per query, 6% at 10; see
rlt_ros/checkpoints/base_vla/README.md). The actor decides every C rows; its reference ã_1:C is the next
C rows of that executing plan, not the first C rows of a fresh chunk, so that an actor that passes ã
through behaves exactly like the base policy, and "anchored to the VLA" means anchored to what the VLA
would do now. The plan is replaced by the newest VLA chunk only at a decision point, once at least
``execute_steps`` of its rows have gone by (with C = 10 and 30 rows: every third decision).

Latency: a chunk predicted from an observation taken ``skip`` control steps ago starts at its row ``skip``
(the rows meant for the time that already went by are dropped, as asynchronous chunk execution does), so
a slow perception/VLA pipeline does not drag the arm back to where it was. In-process practice has no
latency (skip 0); actor_node passes the RL token's age in control steps (:func:`rows_elapsed`).

Progress: an actor faster than the VLA outruns its plan (three decisions into a 30-row plan a 2x actor has
executed what the plan meant for row 60). Before ã is read, the plan's current row moves forward (never
back) to just past the row nearest the last target sent (``follow``), so ã is the VLA's plan *ahead* of
the arm, and a faster arm consumes the plan, and so replans, sooner. An actor that passes ã through never
moves it: the untrained actor is still the base policy. The variants tried are in docs/experiments.md.

Used by the one episode collector (rlt_ros.core.control.ChunkController), which actor_node and in-process
practice both drive.
"""

from __future__ import annotations

import numpy as np


class ReferencePlan:
    """One VLA chunk followed row by row; ``decide`` replans when due, ``window`` reads ã at any step."""

    def __init__(self, execute_steps: int, chunk_size: int):
        if execute_steps < 1 or chunk_size < 1:
            raise ValueError(f"ReferencePlan: execute_steps ({execute_steps}) and chunk_size ({chunk_size}) must be >= 1")
        self.execute_steps, self.chunk_size = int(execute_steps), int(chunk_size)
        self.chunk: np.ndarray | None = None  # [H, A] the plan
        self.offset = 0  # rows of the plan gone by

    def reset(self) -> None:
        """Forget the plan (a phase change): the next decision starts from the newest chunk."""
        self.chunk, self.offset = None, 0

    def due(self) -> bool:
        return (self.chunk is None or self.offset >= self.execute_steps
                or self.offset + self.chunk_size > len(self.chunk))

    def decide(self, newest: np.ndarray, skip: int = 0) -> np.ndarray:
        """At a decision point: replan from ``newest`` [H, A] when due, starting at its row ``skip`` (the
        control steps since its observation); returns ã [C, A], the next C rows."""
        if self.due():
            newest = np.asarray(newest)
            if newest.ndim != 2 or newest.shape[0] < self.chunk_size:
                raise ValueError(f"ReferencePlan: a VLA chunk must be [H >= C={self.chunk_size}, A], got {newest.shape}")
            self.chunk, self.offset = newest, min(max(int(skip), 0), len(newest) - self.chunk_size)
        return self.window()

    def follow(self, executed: np.ndarray) -> int:
        """After a decision's rows went out: when the executed target ``executed`` [A] (the last row sent)
        lies further along the plan than the plan's own last row, move the plan's current row forward to
        just past its nearest row (never back), so that ã is the plan ahead of an actor that ran ahead
        rather than a reference it has outrun. Returns the rows skipped (0 for an actor passing ã through)."""
        if self.chunk is None or self.offset < 1:
            return 0
        last = min(self.offset, len(self.chunk)) - 1
        dist = np.linalg.norm(self.chunk[last:] - np.asarray(executed, self.chunk.dtype), axis=1)
        skip = int(np.argmin(dist))
        self.offset += skip
        return skip

    def window(self) -> np.ndarray:
        """ã [C, A] at the current row: the plan's next C rows, its last row repeated past its end."""
        if self.chunk is None:
            raise RuntimeError("ReferencePlan.window() before the first decide()")
        rows = self.chunk[self.offset: self.offset + self.chunk_size]
        if len(rows) < self.chunk_size:
            rows = np.concatenate([rows, np.repeat(self.chunk[-1:], self.chunk_size - len(rows), axis=0)])
        return rows

    def step(self, rows: int = 1) -> None:
        """``rows`` control steps were executed."""
        self.offset += rows


def rows_elapsed(observation_stamp: float, now: float, step_dt: float) -> int:
    """Whole control steps between an observation's stamp and ``now`` (0 when the stamp is in the future)."""
    if not step_dt > 0:
        raise ValueError(f"rows_elapsed: step_dt must be > 0, got {step_dt}")
    return max(0, int(np.floor((now - observation_stamp) / step_dt + 1e-6)))
