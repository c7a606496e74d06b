"""What monitor_node shows on /rlt/markers (its logic, pure): chunks as end-effector paths, and a status line.

Inputs are the packets the graph already publishes: the VLA's reference chunk ã from each RL token, the
chunk actor_node executes (with its source: the VLA's chunk, the actor's refined chunk a_1:C, a human's
teleoperation targets, or a hold), and the episode events. ``ChunkMonitor.build(now)`` turns the newest
of them into a :class:`MarkerSet` of plain data (paths as [N, 3] points in the arm's base frame, a text
line); ``rlt_ros.ros.conversions.markers_to_msg`` makes the visualization_msgs/MarkerArray of it.

Paths need the arm's kinematic chain (``arm.kinematics_*``); without one only the status line is shown.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rlt_ros.core.episode import EpisodeStats, PhaseTracker
from rlt_ros.core.interfaces import ChunkPacket, ChunkSource, EpisodeEventPacket, Phase, TokenPacket
from rlt_ros.core.kinematics import SerialChain

RGBA = tuple[float, float, float, float]
REFERENCE_RGBA: RGBA = (0.2, 0.5, 1.0, 1.0)  # blue: the VLA's reference chunk ã
EXECUTED_RGBA: dict[ChunkSource, RGBA] = {
    ChunkSource.VLA: (0.6, 0.9, 1.0, 0.9),  # pale blue: the VLA's chunk executed as is (approach, warm-up)
    ChunkSource.ACTOR: (1.0, 0.5, 0.0, 1.0),  # orange: the RL actor's refined chunk
    ChunkSource.HUMAN: (0.9, 0.2, 0.8, 1.0),  # magenta: a human's teleoperation targets
}
TEXT_RGBA: RGBA = (1.0, 1.0, 1.0, 1.0)
PATH_NAMESPACES = ("reference", "executed")  # RViz marker namespaces of the two paths (one marker each)
TEXT_NAMESPACE = "status"


@dataclass
class MonitorConfig:
    rate_hz: float = 5.0  # how often /rlt/markers is published [Hz]
    max_age_s: float = 2.0  # a path whose chunk was not renewed within this time is hidden [s]
    line_width_m: float = 0.004  # width of the path lines [m]
    text_height_m: float = 0.03  # height of the status text's capital letters [m]
    text_position: tuple[float, ...] = (0.0, 0.0, 0.5)  # where the status text floats: x y z in arm.base_frame [m]
    human_trail: int = 50  # teleoperation targets (one per control step) drawn as the human's path

    def __post_init__(self):
        self.text_position = tuple(float(v) for v in self.text_position)
        if self.rate_hz <= 0 or self.max_age_s <= 0:
            raise ValueError("monitor.rate_hz and monitor.max_age_s must be > 0")
        if self.line_width_m <= 0 or self.text_height_m <= 0:
            raise ValueError("monitor.line_width_m and monitor.text_height_m must be > 0")
        if len(self.text_position) != 3:
            raise ValueError(f"monitor.text_position: need x y z, got {list(self.text_position)}")
        if self.human_trail < 2:
            raise ValueError("monitor.human_trail must be >= 2 (a path needs two points)")

    @property
    def lifetime_s(self) -> float:
        """Markers vanish in RViz this long after the last publication (3 periods: the monitor stopped)."""
        return 3.0 / self.rate_hz


@dataclass(frozen=True)
class PathMarker:
    ns: str  # one of PATH_NAMESPACES
    points: np.ndarray  # float64 [N >= 2, 3] tool positions in the base frame, m
    rgba: RGBA
    width: float  # line width, m


@dataclass(frozen=True)
class TextMarker:
    ns: str
    text: str
    position: tuple[float, float, float]  # m, base frame
    rgba: RGBA
    height: float  # m


@dataclass(frozen=True)
class MarkerSet:
    """One publication: what to draw, and which path namespaces to clear."""

    frame_id: str
    lifetime_s: float
    paths: tuple[PathMarker, ...]
    texts: tuple[TextMarker, ...]
    hidden: tuple[str, ...]  # path namespaces with nothing to draw (stale, holding, no kinematics)


@dataclass
class _Chunk:
    rows: np.ndarray  # [N, A] joint positions, the arm's joint order
    received: float  # monitor time of arrival, s
    episode_id: int
    source: ChunkSource | None = None  # None for the reference


class ChunkMonitor:
    """The newest reference and executed chunks and the episode statistics, rendered by ``build``."""

    def __init__(self, config: MonitorConfig, chain: SerialChain | None, frame_id: str,
                 joint_names: Sequence[str], stats_window: int = 20):
        if chain is not None and chain.n_joints > len(joint_names):
            raise ValueError(f"kinematic chain of {chain.n_joints} joints for an arm of {len(joint_names)} joints")
        self.config, self.chain, self.frame_id = config, chain, frame_id
        self.joint_names = tuple(joint_names)
        self.tracker = PhaseTracker()
        self.stats = EpisodeStats(stats_window)
        self._reference: _Chunk | None = None
        self._executed: _Chunk | None = None

    # --- inputs (packets already validated against the arm's joints by the conversions) -------------
    def set_reference(self, packet: TokenPacket, now: float) -> None:
        self._check_joints(packet.joint_names)
        self._reference = _Chunk(np.asarray(packet.reference_chunk, np.float64), now, packet.episode_id)

    def set_chunk(self, packet: ChunkPacket, now: float) -> None:
        self._check_joints(packet.joint_names)
        rows, last = np.asarray(packet.actions, np.float64), self._executed
        if (packet.source == ChunkSource.HUMAN and last is not None and last.source == ChunkSource.HUMAN
                and last.episode_id == packet.episode_id):  # teleoperation: one target per tick, keep a trail
            rows = np.concatenate([last.rows, rows])[-self.config.human_trail:]
        self._executed = _Chunk(rows, now, packet.episode_id, packet.source)

    def on_event(self, event: EpisodeEventPacket) -> None:
        self.tracker.apply(event)
        self.stats.apply(event)

    def _check_joints(self, names: Sequence[str]) -> None:
        if tuple(names) != self.joint_names:
            raise ValueError(f"joint_names {list(names)} differ from the arm's {list(self.joint_names)}")

    # --- output ----------------------------------------------------------------------------------------
    def build(self, now: float) -> MarkerSet:
        c = self.config
        paths, hidden = [], []
        for ns, chunk in zip(PATH_NAMESPACES, (self._reference, self._executed)):
            path = self._path(ns, chunk, now)
            if path is None:
                hidden.append(ns)
            else:
                paths.append(path)
        text = TextMarker(TEXT_NAMESPACE, self.status_line(now), c.text_position, TEXT_RGBA, c.text_height_m)
        return MarkerSet(self.frame_id, c.lifetime_s, tuple(paths), (text,), tuple(hidden))

    def _path(self, ns: str, chunk: _Chunk | None, now: float) -> PathMarker | None:
        if (self.chain is None or chunk is None or now - chunk.received > self.config.max_age_s
                or chunk.source == ChunkSource.HOLD or len(chunk.rows) < 2):
            return None
        rgba = REFERENCE_RGBA if chunk.source is None else EXECUTED_RGBA[chunk.source]
        return PathMarker(ns, self.chain.fk(chunk.rows), rgba, self.config.line_width_m)

    def status_line(self, now: float) -> str:
        """``episode N | PHASE | success k/n (x%) | critical t s (median m s)`` over the stats window."""
        episode = self.tracker.episode_id
        successes, finished = self.stats.successes()
        rate = f"{100.0 * successes / finished:.0f}%" if finished else "-"
        elapsed = self.stats.critical_elapsed_s(episode, now) if self.tracker.phase != Phase.IDLE else None
        median = self.stats.median_critical_s()
        return (f"episode {episode if episode else '-'} | {self.tracker.phase.name} | "
                f"success {successes}/{finished} ({rate}) | "
                f"critical {_seconds(elapsed)} (median {_seconds(median)})")


def _seconds(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.1f} s"
