"""Demonstrations as ROS 2 bags (MCAP storage, rosbag2 layout), written and read without rclpy.

A bag is a folder ``<name>/`` holding ``<name>_0.mcap`` and ``metadata.yaml``, like ``ros2 bag
record -s mcap`` makes. Topics (CDR-serialised, ``ros2msg`` schemas with full dependency text):

  /joint_states                                   sensor_msgs/msg/JointState   (positions, velocities)
  /camera/<cam>/image_raw                         sensor_msgs/msg/Image        (rgb8)
  /joint_trajectory_controller/joint_trajectory   trajectory_msgs/msg/JointTrajectory (one point = the action)
  /rlt/events                                     std_msgs/msg/String          JSON episode markers

Event JSON: {"event": "episode_start" | "critical_phase_start" | "success" | "failure", "episode": i, ...}.

:func:`read_episodes` turns a bag (ours or a real teleop bag with those topics) back into per-step
:class:`Episode` arrays, aligning each step to the latest joint state and camera frame by header stamp.
"""

from __future__ import annotations

import json
import time
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import yaml

from rlt_ros.core.data.ros_msgdefs import full_definition

JOINT_STATES_TOPIC = "/joint_states"
ACTION_TOPIC = "/joint_trajectory_controller/joint_trajectory"
EVENTS_TOPIC = "/rlt/events"


def image_topic(camera: str) -> str:
    return f"/camera/{camera}/image_raw"


TOPIC_TYPES = {
    JOINT_STATES_TOPIC: "sensor_msgs/msg/JointState",
    ACTION_TOPIC: "trajectory_msgs/msg/JointTrajectory",
    EVENTS_TOPIC: "std_msgs/msg/String",
}
IMAGE_TYPE = "sensor_msgs/msg/Image"


def _stamp(ns: int) -> dict:
    return {"sec": int(ns // 1_000_000_000), "nanosec": int(ns % 1_000_000_000)}


def _stamp_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


# ---------------------------------------------------------------------- conversion (numpy <-> message dicts)
def image_to_msg(image: np.ndarray, stamp_ns: int, frame_id: str) -> dict:
    """uint8 [H, W, 3] RGB -> sensor_msgs/Image fields (rgb8)."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be uint8 [H, W, 3] RGB, got {image.dtype} {image.shape}")
    h, w, _ = image.shape
    return {
        "header": {"stamp": _stamp(stamp_ns), "frame_id": frame_id},
        "height": h,
        "width": w,
        "encoding": "rgb8",
        "is_bigendian": 0,
        "step": w * 3,
        "data": np.ascontiguousarray(image).tobytes(),
    }


def msg_to_image(msg) -> np.ndarray:
    """sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8, mono8) -> uint8 [H, W, 3] RGB."""
    channels = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
    enc = str(msg.encoding).lower()
    if enc not in channels:
        raise ValueError(f"unsupported image encoding {msg.encoding!r}; supported: {sorted(channels)}")
    c = channels[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    buf = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    if step < w * c or buf.size < step * h:
        raise ValueError(f"image data too short: {buf.size} bytes for {h}x{w} {enc} with step {step}")
    img = buf[: step * h].reshape(h, step)[:, : w * c].reshape(h, w, c)
    if enc == "mono8":
        img = np.repeat(img, 3, axis=2)
    elif enc.startswith("bgr"):
        img = img[:, :, 2::-1]
    else:
        img = img[:, :, :3]
    return np.ascontiguousarray(img)


# ---------------------------------------------------------------------- writing
class DemoBagWriter:
    """Write demonstration episodes into one rosbag2-style MCAP bag folder.

    Use as a context manager; ``close()`` writes ``metadata.yaml``. Stamps are nanoseconds; episodes
    recorded back to back from a simulator should pass ``stamp_ns = episode_offset + sim time``.
    """

    def __init__(self, bag_dir: str | Path, joint_names: Iterable[str], cameras: Iterable[str] = ("base", "wrist"),
                 overwrite: bool = False) -> None:
        from mcap_ros2.writer import Writer  # optional dependency of the core: only needed for bags

        self.bag_dir = Path(bag_dir)
        if self.bag_dir.exists() and any(self.bag_dir.iterdir()):
            if not overwrite:
                raise ValueError(f"bag folder {self.bag_dir} exists and is not empty; choose a new --out or pass overwrite")
            for p in self.bag_dir.iterdir():
                if p.is_file():
                    p.unlink()
        self.bag_dir.mkdir(parents=True, exist_ok=True)
        self.name = self.bag_dir.name
        self.file_name = f"{self.name}_0.mcap"
        self.joint_names = list(joint_names)
        self.cameras = list(cameras)
        self._file = open(self.bag_dir / self.file_name, "wb")
        self._writer = Writer(self._file)
        self._schemas = {}
        self._topics = dict(TOPIC_TYPES)
        for cam in self.cameras:
            self._topics[image_topic(cam)] = IMAGE_TYPE
        self._counts = {t: 0 for t in self._topics}
        self._first_ns: int | None = None
        self._last_ns = 0
        self._closed = False

    def _write(self, topic: str, message: dict, stamp_ns: int) -> None:
        datatype = self._topics[topic]
        if datatype not in self._schemas:
            self._schemas[datatype] = self._writer.register_msgdef(datatype, full_definition(datatype))
        self._writer.write_message(topic, self._schemas[datatype], message, log_time=stamp_ns,
                                   publish_time=stamp_ns, sequence=self._counts[topic])
        self._counts[topic] += 1
        self._first_ns = stamp_ns if self._first_ns is None else min(self._first_ns, stamp_ns)
        self._last_ns = max(self._last_ns, stamp_ns)

    def write_event(self, event: dict, stamp_ns: int) -> None:
        """A JSON episode marker on /rlt/events (must contain "event")."""
        if "event" not in event:
            raise ValueError(f"event dict needs an 'event' key, got {event}")
        self._write(EVENTS_TOPIC, {"data": json.dumps(event, sort_keys=True)}, stamp_ns)

    def write_joint_state(self, position, velocity, stamp_ns: int) -> None:
        position = np.asarray(position, dtype=np.float64).ravel()
        velocity = np.asarray(velocity, dtype=np.float64).ravel()
        if position.shape != (len(self.joint_names),) or velocity.shape != position.shape:
            raise ValueError(f"joint state must have {len(self.joint_names)} positions and velocities, got {position.shape} {velocity.shape}")
        self._write(JOINT_STATES_TOPIC, {
            "header": {"stamp": _stamp(stamp_ns), "frame_id": ""},
            "name": self.joint_names, "position": position.tolist(), "velocity": velocity.tolist(), "effort": [],
        }, stamp_ns)

    def write_image(self, camera: str, image: np.ndarray, stamp_ns: int) -> None:
        if camera not in self.cameras:
            raise ValueError(f"camera {camera!r} not among this bag's cameras {self.cameras}")
        self._write(image_topic(camera), image_to_msg(image, stamp_ns, f"{camera}_camera"), stamp_ns)

    def write_action(self, action, stamp_ns: int, dt: float) -> None:
        """Absolute joint-position targets [n] as a one-point JointTrajectory reached after ``dt`` s."""
        action = np.asarray(action, dtype=np.float64).ravel()
        if action.shape != (len(self.joint_names),):
            raise ValueError(f"action must have {len(self.joint_names)} values, got {action.shape}")
        self._write(ACTION_TOPIC, {
            "header": {"stamp": _stamp(stamp_ns), "frame_id": ""},
            "joint_names": self.joint_names,
            "points": [{"positions": action.tolist(), "velocities": [], "accelerations": [], "effort": [],
                        "time_from_start": _stamp(int(round(dt * 1e9)))}],
        }, stamp_ns)

    def write_step(self, obs: dict, action, stamp_ns: int, dt: float) -> None:
        """One control step: joint state and camera frames of ``obs`` (those present), and the action."""
        self.write_joint_state(obs["joint_pos"], obs["joint_vel"], stamp_ns)
        for cam, img in obs.get("images", {}).items():
            if cam in self.cameras:
                self.write_image(cam, img, stamp_ns)
        self.write_action(action, stamp_ns, dt)

    def close(self) -> Path:
        """Finish the MCAP file and write metadata.yaml; returns the bag folder."""
        if self._closed:
            return self.bag_dir
        self._writer.finish()
        self._file.close()
        self._closed = True
        write_metadata(self.bag_dir, self.file_name, self._topics, self._counts, self._first_ns or 0, self._last_ns)
        return self.bag_dir

    def __enter__(self) -> "DemoBagWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_metadata(bag_dir: Path, file_name: str, topics: dict[str, str], counts: dict[str, int],
                   first_ns: int, last_ns: int) -> None:
    """rosbag2 ``metadata.yaml`` (format version 5, storage mcap)."""
    total = int(sum(counts.values()))
    duration = int(max(0, last_ns - first_ns))
    info = {
        "rosbag2_bagfile_information": {
            "version": 5,
            "storage_identifier": "mcap",
            "duration": {"nanoseconds": duration},
            "starting_time": {"nanoseconds_since_epoch": int(first_ns)},
            "message_count": total,
            "topics_with_message_count": [
                {"topic_metadata": {"name": t, "type": ty, "serialization_format": "cdr", "offered_qos_profiles": ""},
                 "message_count": int(counts.get(t, 0))}
                for t, ty in topics.items()
            ],
            "compression_format": "",
            "compression_mode": "",
            "relative_file_paths": [file_name],
            "files": [{"path": file_name, "starting_time": {"nanoseconds_since_epoch": int(first_ns)},
                       "duration": {"nanoseconds": duration}, "message_count": total}],
        }
    }
    (Path(bag_dir) / "metadata.yaml").write_text(yaml.safe_dump(info, sort_keys=False))


# ---------------------------------------------------------------------- reading
@dataclass
class Episode:
    """One demonstration as per-step arrays (T steps, n joints).

    times: float64 [T] seconds since the episode start; joint_pos, joint_vel: float32 [T, n];
    actions: float32 [T, n] absolute joint targets commanded at each step; images: camera ->
    uint8 [T, H, W, 3] (latest frame at or before each step); success: episode outcome (None if unknown).
    """

    times: np.ndarray
    joint_pos: np.ndarray
    joint_vel: np.ndarray
    actions: np.ndarray
    images: dict[str, np.ndarray]
    joint_names: list[str]
    success: bool | None = None
    critical_phase_start: float | None = None  # s since the episode start, if marked
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.times.shape[0])


def mcap_path(bag: str | Path) -> Path:
    bag = Path(bag)
    if bag.is_file():
        return bag
    if not bag.is_dir():
        raise ValueError(f"bag {bag} does not exist (expected a rosbag2 folder or an .mcap file)")
    meta = bag / "metadata.yaml"
    if meta.exists():
        files = yaml.safe_load(meta.read_text())["rosbag2_bagfile_information"].get("relative_file_paths", [])
        mcaps = [bag / f for f in files if str(f).endswith(".mcap")]
        if len(mcaps) > 1:
            raise ValueError(f"bag {bag} is split into {len(mcaps)} files; merge it first (only single-file bags are read)")
        if mcaps:
            return mcaps[0]
    found = sorted(bag.glob("*.mcap"))
    if not found:
        raise ValueError(f"no .mcap file in {bag}")
    return found[0]


def _latest_index(stamps: list[int], t: int) -> int:
    """Index of the last stamp <= t (or 0 when all are later)."""
    return max(0, bisect_right(stamps, t) - 1)


def read_episodes(bag: str | Path, cameras: Iterable[str] | None = None, gap_s: float = 1.0,
                  max_image_age_s: float = 0.5) -> list[Episode]:
    """Read a demonstration bag back into :class:`Episode` objects.

    Episode boundaries come from /rlt/events ``episode_start`` markers; without them, a gap longer
    than ``gap_s`` between actions starts a new episode. The step grid is the action topic; a bag
    with no actions (plain teleop recording of joint states) uses the joint states as the grid and
    the next joint position as the action. Raises ValueError when a step has no camera frame
    within ``max_image_age_s``.
    """
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    path = mcap_path(bag)
    js: list[tuple[int, Any]] = []
    acts: list[tuple[int, Any]] = []
    events: list[tuple[int, dict]] = []
    imgs: dict[str, list[tuple[int, np.ndarray]]] = {}
    want = None if cameras is None else set(cameras)
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        for _schema, channel, message, ros_msg in reader.iter_decoded_messages():
            topic = channel.topic
            if topic == JOINT_STATES_TOPIC:
                js.append((_stamp_ns(ros_msg.header.stamp) or message.log_time, ros_msg))
            elif topic == ACTION_TOPIC:
                acts.append((_stamp_ns(ros_msg.header.stamp) or message.log_time, ros_msg))
            elif topic == EVENTS_TOPIC:
                try:
                    events.append((message.log_time, json.loads(ros_msg.data)))
                except json.JSONDecodeError:
                    continue
            elif topic.startswith("/camera/") and topic.endswith("/image_raw"):
                cam = topic[len("/camera/"): -len("/image_raw")]
                if want is None or cam in want:
                    imgs.setdefault(cam, []).append((_stamp_ns(ros_msg.header.stamp) or message.log_time, msg_to_image(ros_msg)))
    if not js:
        raise ValueError(f"bag {path} has no {JOINT_STATES_TOPIC} messages")
    if want is not None and want - set(imgs):
        raise ValueError(f"bag {path} has no images for camera(s) {sorted(want - set(imgs))}; found {sorted(imgs)}")
    js.sort(key=lambda x: x[0])
    acts.sort(key=lambda x: x[0])
    events.sort(key=lambda x: x[0])
    for cam in imgs:
        imgs[cam].sort(key=lambda x: x[0])
    joint_names = list(js[0][1].name)

    if acts:
        grid = [t for t, _ in acts]
        names = list(acts[0][1].joint_names) or joint_names
        order = [names.index(n) for n in joint_names] if set(names) >= set(joint_names) else list(range(len(names)))
        actions = np.array([[m.points[0].positions[i] for i in order] if m.points else [np.nan] * len(order)
                            for _, m in acts], dtype=np.float32)
    else:  # teleop recording without commands: the action of a step is the next measured position
        grid = [t for t, _ in js]
        actions = np.array([m.position for _, m in js[1:]] + [js[-1][1].position], dtype=np.float32)

    # episode boundaries
    starts = [t for t, e in events if e.get("event") == "episode_start"]
    if starts:
        bounds = starts[1:] + [np.iinfo(np.int64).max]
        groups = [[i for i, t in enumerate(grid) if s <= t < e] for s, e in zip(starts, bounds)]
        start_events = [e for _, e in events if e.get("event") == "episode_start"]
    else:
        groups, cur = [], [0]
        for i in range(1, len(grid)):
            if (grid[i] - grid[i - 1]) / 1e9 > gap_s:
                groups.append(cur)
                cur = []
            cur.append(i)
        groups.append(cur)
        start_events = [{} for _ in groups]
        starts = [grid[g[0]] if g else 0 for g in groups]

    if not acts:  # the last step of each episode has no next position
        groups = [g[:-1] for g in groups]
    js_t = [t for t, _ in js]
    img_t = {cam: [t for t, _ in frames] for cam, frames in imgs.items()}
    episodes = []
    for k, idx in enumerate(groups):
        if not idx:
            continue
        t0 = grid[idx[0]]
        t_end = starts[k + 1] if k + 1 < len(starts) else np.iinfo(np.int64).max
        ep_events = [e for t, e in events if starts[k] <= t < t_end]
        jp, jv = [], []
        for i in idx:
            m = js[_latest_index(js_t, grid[i])][1]
            jp.append(list(m.position))
            jv.append(list(m.velocity) if len(m.velocity) else [0.0] * len(m.position))
        ep_imgs = {}
        for cam, frames in imgs.items():
            sel = []
            for i in idx:
                j = _latest_index(img_t[cam], grid[i])
                age = abs(grid[i] - img_t[cam][j]) / 1e9
                if age > max_image_age_s:
                    raise ValueError(f"episode {k}: no {cam} frame within {max_image_age_s} s of step at {grid[i] / 1e9:.3f} s")
                sel.append(frames[j][1])
            ep_imgs[cam] = np.stack(sel)
        outcome = [e["event"] for e in ep_events if e.get("event") in ("success", "failure")]
        crit_t = [t for t, e in events if starts[k] <= t < t_end and e.get("event") == "critical_phase_start"]
        episodes.append(Episode(
            times=(np.array([grid[i] for i in idx], dtype=np.float64) - t0) / 1e9,
            joint_pos=np.array(jp, dtype=np.float32),
            joint_vel=np.array(jv, dtype=np.float32),
            actions=actions[idx],
            images=ep_imgs,
            joint_names=joint_names,
            success=(outcome[-1] == "success") if outcome else None,
            critical_phase_start=((crit_t[0] - t0) / 1e9) if crit_t else None,
            meta={**start_events[k], "events": ep_events},
        ))
    return episodes


def make_action_chunks(actions: np.ndarray, horizon: int) -> np.ndarray:
    """Action-chunk targets for imitation: float32 [T, H, A], chunk t = actions[t : t + H], padded
    by repeating the last action past the end of the episode."""
    actions = np.asarray(actions, dtype=np.float32)
    if actions.ndim != 2 or actions.shape[0] == 0:
        raise ValueError(f"actions must be [T, A] with T > 0, got {actions.shape}")
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    t = actions.shape[0]
    idx = np.minimum(np.arange(t)[:, None] + np.arange(horizon)[None, :], t - 1)
    return actions[idx]


def default_bag_name() -> str:
    """rosbag2's default folder name: rosbag2_YYYY_MM_DD-HH_MM_SS."""
    return time.strftime("rosbag2_%Y_%m_%d-%H_%M_%S")
