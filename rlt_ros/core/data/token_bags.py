"""The RL-token stream and the episode events as a ROS 2 (MCAP) bag, written and read without rclpy.

On a robot: ``ros2 bag record -s mcap /rlt/token /rlt/events`` while the operator practises (vla_node
publishes a token for every observation, approach included; reward_node the presses). In simulation,
``rlt sim-train --record-tokens DIR`` writes the same topics with :class:`TokenBagWriter`. Both are read
back by :func:`read_labelled_episodes` into the training data of the handover switch (``rlt train-switch``)
and of the success detector (``rlt train-detector``): per episode, the token stream, the stamp of the
operator's first handover press (a HANDOVER, or an INTERVENTION_START before it, from a human; a detector's
handover, or a press made because the switch was late, is no label) and the operator's success/failure mark (a HUMAN SUCCESS or FAILURE; a TIMEOUT or a
detector's mark is no label).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rlt_ros.core.data.bag_io import mcap_path, write_metadata
from rlt_ros.core.data.ros_msgdefs import full_definition
from rlt_ros.core.interfaces import LATE_SWITCH, EpisodeEventPacket, EventSource, EventType, Phase, TokenPacket
from rlt_ros.core.rlt.token_classifier import LabelledEpisode

TOKEN_TOPIC = "/rlt/token"
EVENTS_TOPIC = "/rlt/events"
TOPIC_TYPES = {TOKEN_TOPIC: "rlt_ros/msg/RLToken", EVENTS_TOPIC: "rlt_ros/msg/EpisodeEvent"}


def _header(stamp: float) -> dict:
    ns = int(round(stamp * 1e9))
    return {"stamp": {"sec": ns // 1_000_000_000, "nanosec": ns % 1_000_000_000}, "frame_id": ""}


class TokenBagWriter:
    """Write /rlt/token and /rlt/events into one rosbag2-style MCAP bag folder (a context manager)."""

    def __init__(self, bag_dir: str | Path):
        from mcap_ros2.writer import Writer

        self.bag_dir = Path(bag_dir)
        if self.bag_dir.exists() and any(self.bag_dir.iterdir()):
            raise ValueError(f"bag folder {self.bag_dir} exists and is not empty; choose a new one")
        self.bag_dir.mkdir(parents=True, exist_ok=True)
        self.file_name = f"{self.bag_dir.name}_0.mcap"
        self._file = open(self.bag_dir / self.file_name, "wb")
        self._writer = Writer(self._file)
        self._schemas = {t: self._writer.register_msgdef(ty, full_definition(ty)) for t, ty in TOPIC_TYPES.items()}
        self._counts = {t: 0 for t in TOPIC_TYPES}
        self._first_ns: int | None = None
        self._last_ns = 0

    def _write(self, topic: str, message: dict, stamp: float) -> None:
        ns = int(round(stamp * 1e9))
        self._writer.write_message(topic, self._schemas[topic], message, log_time=ns, publish_time=ns,
                                   sequence=self._counts[topic])
        self._counts[topic] += 1
        self._first_ns = ns if self._first_ns is None else min(self._first_ns, ns)
        self._last_ns = max(self._last_ns, ns)

    def write_token(self, packet: TokenPacket) -> None:
        rows, cols = packet.reference_chunk.shape
        self._write(TOKEN_TOPIC, {
            "header": _header(packet.stamp), "episode_id": packet.episode_id, "phase": int(packet.phase),
            "token": packet.token.astype(np.float32).tolist(), "proprio": packet.proprio.astype(np.float32).tolist(),
            "joint_names": list(packet.joint_names),
            "reference_chunk": packet.reference_chunk.astype(np.float32).ravel().tolist(),
            "chunk_rows": rows, "chunk_cols": cols, "step_dt": packet.step_dt}, packet.stamp)

    def write_event(self, event: EpisodeEventPacket) -> None:
        self._write(EVENTS_TOPIC, {"header": _header(event.stamp), "episode_id": event.episode_id,
                                   "type": int(event.type), "source": int(event.source), "reward": event.reward,
                                   "note": event.note}, event.stamp)

    def close(self) -> Path:
        if self._file.closed:
            return self.bag_dir
        self._writer.finish()
        self._file.close()
        write_metadata(self.bag_dir, self.file_name, TOPIC_TYPES, self._counts, self._first_ns or 0, self._last_ns)
        return self.bag_dir

    def __enter__(self) -> "TokenBagWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def find_bags(paths: list[str | Path]) -> list[Path]:
    """The bags among ``paths``: .mcap files, bag folders, or folders holding bag folders."""
    found = []
    for path in map(Path, paths):
        if path.is_file() or (path.is_dir() and (any(path.glob("*.mcap")) or (path / "metadata.yaml").is_file())):
            found.append(path)
        elif path.is_dir():
            found += sorted(p for p in path.iterdir() if p.is_dir() and any(p.glob("*.mcap")))
        else:
            raise ValueError(f"{path} does not exist (expected a bag folder, an .mcap file or a folder of bags)")
    if not found:
        raise ValueError(f"no bag in {[str(p) for p in paths]} (record one with `ros2 bag record -s mcap "
                         f"{TOKEN_TOPIC} {EVENTS_TOPIC}` or `rlt sim-train --record-tokens DIR`)")
    return found


def _stamp(msg) -> float:
    return int(msg.header.stamp.sec) + int(msg.header.stamp.nanosec) * 1e-9


def read_labelled_episodes(bags: list[str | Path]) -> list[LabelledEpisode]:
    """Every episode of the bags that began (START) inside them: its tokens from START to its end, the
    operator's handover press (None when nobody pressed: the episode never reached the critical phase,
    or a detector handed over) and the operator's outcome mark (None when nobody marked it)."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    episodes = []
    for bag in find_bags(bags):
        tokens: dict[int, list] = {}
        events: dict[int, list] = {}
        with open(mcap_path(bag), "rb") as f:
            reader = make_reader(f, decoder_factories=[DecoderFactory()])
            for _, channel, _, msg in reader.iter_decoded_messages(topics=list(TOPIC_TYPES)):
                if channel.topic == TOKEN_TOPIC and msg.phase != Phase.IDLE:
                    tokens.setdefault(int(msg.episode_id), []).append(
                        (_stamp(msg), np.asarray(msg.token, np.float32), np.asarray(msg.proprio, np.float32)))
                elif channel.topic == EVENTS_TOPIC:
                    source = EventSource(msg.source)
                    if source == EventSource.HUMAN and msg.note == LATE_SWITCH:
                        source = EventSource.DETECTOR  # when the operator waited for the switch: no label
                    events.setdefault(int(msg.episode_id), []).append((_stamp(msg), EventType(msg.type), source))
        for episode_id, evs in sorted(events.items()):
            episode = _episode(episode_id, sorted(evs, key=lambda e: e[0]), tokens.get(episode_id, []))
            if episode is not None:
                episodes.append(episode)
    return episodes


def _episode(episode_id: int, events: list, tokens: list) -> LabelledEpisode | None:
    starts = [t for t, kind, _ in events if kind == EventType.START]
    if not starts:
        return None  # the recording began in the middle of this episode
    start = starts[0]
    end = next((t for t, kind, _ in events if kind.terminal and t >= start), np.inf)
    first = next(((t, source) for t, kind, source in events
                  if kind in (EventType.HANDOVER, EventType.INTERVENTION_START) and t >= start), None)
    press = first[0] if first is not None and first[1] == EventSource.HUMAN else None
    outcome = _operator_outcome(events, start)
    kept = sorted((tk for tk in tokens if start <= tk[0] <= end), key=lambda tk: tk[0])
    if not kept:
        return None
    return LabelledEpisode(episode_id, np.array([tk[0] for tk in kept]), np.stack([tk[1] for tk in kept]),
                           np.stack([tk[2] for tk in kept]), press, *outcome)


def _operator_outcome(events: list, start: float) -> tuple[bool | None, float | None]:
    """(success, stamp) of the operator's mark: the last HUMAN SUCCESS/FAILURE (an overrule of a detector's
    mark comes after it); (None, None) when no person marked the episode (a timeout, or a detector alone)."""
    marks = [(t, kind) for t, kind, source in events
             if t >= start and source == EventSource.HUMAN and kind in (EventType.SUCCESS, EventType.FAILURE)]
    if not marks:
        return None, None
    stamp, kind = marks[-1]
    return kind == EventType.SUCCESS, stamp
