"""The one place where ROS messages become arrays and core packets, and back.

Every ``*_from_msg`` validates through ``rlt_ros.core.interfaces`` / ``rlt_ros.core.validation`` and
raises ``MessageError`` naming the field; every ``*_to_msg`` is its exact inverse (round-trip
tested in test/test_conversions.py). No cv_bridge: images are converted with numpy. The RViz markers
go one way only (``markers_to_msg``: nothing in rlt_ros reads them back).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import Point, Pose, Vector3
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import ColorRGBA, Header
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
from visualization_msgs.msg import Marker, MarkerArray

from rlt_ros.core import validation as v
from rlt_ros.core.interfaces import ChunkPacket, EpisodeEventPacket, TokenPacket, transition_from_fields
from rlt_ros.core.monitor import MarkerSet
from rlt_ros.core.rlt.replay import Transition
from rlt_ros.msg import ActionChunk, EpisodeEvent, RLToken
from rlt_ros.msg import Transition as TransitionMsg

MessageError = v.MessageError


# --- time -----------------------------------------------------------------------------------------
def to_seconds(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def to_stamp(seconds: float) -> Time:
    sec = int(np.floor(seconds))
    return Time(sec=sec, nanosec=min(int(round((seconds - sec) * 1e9)), 999_999_999))


def to_duration(seconds: float) -> Duration:
    sec = int(np.floor(seconds))
    return Duration(sec=sec, nanosec=min(int(round((seconds - sec) * 1e9)), 999_999_999))


def header(seconds: float, frame_id: str = "") -> Header:
    return Header(stamp=to_stamp(seconds), frame_id=frame_id)


def _flat(array: np.ndarray) -> list[float]:
    return np.ascontiguousarray(array, dtype=np.float32).ravel().tolist()


# --- images ---------------------------------------------------------------------------------------
def image_from_msg(msg: Image, field: str = "image") -> np.ndarray:
    """sensor_msgs/Image (rgb8 or bgr8) -> uint8 [H, W, 3] RGB."""
    return v.image(msg.data, msg.height, msg.width, msg.encoding, msg.step, field)


def image_to_msg(image: np.ndarray, stamp: float = 0.0, frame_id: str = "") -> Image:
    """uint8 [H, W, 3] RGB -> sensor_msgs/Image rgb8."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise MessageError(f"image: expected uint8 [H, W, 3], got {image.dtype} {image.shape}")
    h, w, _ = image.shape
    return Image(header=header(stamp, frame_id), height=h, width=w, encoding="rgb8", is_bigendian=0,
                 step=w * 3, data=np.ascontiguousarray(image).tobytes())


# --- joint states and trajectories ----------------------------------------------------------------
def joint_state_from_msg(msg: JointState, joint_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """JointState -> (positions, velocities) in ``joint_names`` order (extra joints are ignored).

    Velocities default to zero when the driver publishes none; a missing joint is an error.
    """
    index = {name: i for i, name in enumerate(msg.name)}
    missing = [n for n in joint_names if n not in index]
    if missing:
        raise MessageError(f"joint_states.name: missing joints {missing}; got {list(msg.name)}")
    if len(msg.position) != len(msg.name):
        raise MessageError(f"joint_states.position: {len(msg.position)} values for {len(msg.name)} names")
    if len(msg.velocity) not in (0, len(msg.name)):
        raise MessageError(f"joint_states.velocity: {len(msg.velocity)} values for {len(msg.name)} names")
    order = [index[n] for n in joint_names]
    pos = v.vector(np.asarray(msg.position, dtype=np.float64)[order], "joint_states.position", dtype=np.float64)
    vel = (v.vector(np.asarray(msg.velocity, dtype=np.float64)[order], "joint_states.velocity", dtype=np.float64)
           if len(msg.velocity) else np.zeros(len(joint_names)))
    return pos, vel


def joint_state_to_msg(joint_names: Sequence[str], position, velocity, stamp: float) -> JointState:
    return JointState(header=header(stamp), name=list(joint_names),
                      position=np.asarray(position, dtype=np.float64).tolist(),
                      velocity=np.asarray(velocity, dtype=np.float64).tolist(), effort=[])


def trajectory_to_msg(joint_names: Sequence[str], positions: np.ndarray, step_dt: float,
                      stamp: float = 0.0, velocities: np.ndarray | None = None) -> JointTrajectory:
    """Rows of absolute joint positions [N, A] -> JointTrajectory with points at (i + 1) * step_dt.

    A zero stamp means "start now" for joint_trajectory_controller.
    """
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim != 2 or positions.shape[1] != len(joint_names):
        raise MessageError(f"trajectory: expected [N, {len(joint_names)}] positions, got {positions.shape}")
    points = []
    for i, row in enumerate(positions):
        point = JointTrajectoryPoint(positions=row.tolist(), time_from_start=to_duration((i + 1) * step_dt))
        if velocities is not None:
            point.velocities = np.asarray(velocities[i], dtype=np.float64).tolist()
        points.append(point)
    return JointTrajectory(header=header(stamp), joint_names=list(joint_names), points=points)


def trajectory_from_msg(msg: JointTrajectory, joint_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """JointTrajectory -> (positions [N, A] in ``joint_names`` order, times_from_start [N] s)."""
    names = v.names(msg.joint_names, "joint_trajectory.joint_names")
    unknown = sorted(set(names) - set(joint_names))
    missing = sorted(set(joint_names) - set(names))
    if unknown or missing:
        raise MessageError(f"joint_trajectory.joint_names: unknown {unknown}, missing {missing}; "
                           f"expected {list(joint_names)}")
    if not msg.points:
        raise MessageError("joint_trajectory.points: empty")
    order = [names.index(n) for n in joint_names]
    rows, times = [], []
    for i, point in enumerate(msg.points):
        row = v.vector(point.positions, f"joint_trajectory.points[{i}].positions", len(names), np.float64)
        rows.append(row[order])
        times.append(point.time_from_start.sec + point.time_from_start.nanosec * 1e-9)
    times = np.asarray(times)
    if np.any(np.diff(times) <= 0):
        raise MessageError("joint_trajectory.points: time_from_start must increase strictly")
    return np.stack(rows), times


# --- rlt_ros interfaces ---------------------------------------------------------------------------
def token_from_msg(msg: RLToken, **expected) -> TokenPacket:
    """RLToken -> TokenPacket; ``expected`` = token_dim, proprio_dim, expected_joints (optional)."""
    return TokenPacket.from_fields(
        stamp=to_seconds(msg.header.stamp), episode_id=msg.episode_id, phase=msg.phase, token=msg.token,
        proprio=msg.proprio, joint_names=msg.joint_names, reference_chunk=msg.reference_chunk,
        chunk_rows=msg.chunk_rows, chunk_cols=msg.chunk_cols, step_dt=msg.step_dt, **expected)


def token_to_msg(p: TokenPacket) -> RLToken:
    rows, cols = p.reference_chunk.shape
    return RLToken(header=header(p.stamp), episode_id=p.episode_id, phase=int(p.phase), token=_flat(p.token),
                   proprio=_flat(p.proprio), joint_names=list(p.joint_names),
                   reference_chunk=_flat(p.reference_chunk), chunk_rows=rows, chunk_cols=cols,
                   step_dt=float(p.step_dt))


def chunk_from_msg(msg: ActionChunk, **expected) -> ChunkPacket:
    return ChunkPacket.from_fields(
        stamp=to_seconds(msg.header.stamp), episode_id=msg.episode_id, source=msg.source,
        joint_names=msg.joint_names, actions=msg.actions, rows=msg.rows, cols=msg.cols, step_dt=msg.step_dt,
        **expected)


def chunk_to_msg(p: ChunkPacket) -> ActionChunk:
    rows, cols = p.actions.shape
    return ActionChunk(header=header(p.stamp), episode_id=p.episode_id, source=int(p.source),
                       joint_names=list(p.joint_names), actions=_flat(p.actions), rows=rows, cols=cols,
                       step_dt=float(p.step_dt))


def transition_from_msg(msg: TransitionMsg, **expected) -> Transition:
    """Transition.msg -> replay Transition; ``expected`` = token_dim, proprio_dim, chunk, action_dim."""
    return transition_from_fields(
        episode_id=msg.episode_id, index=msg.index, steps=msg.steps, token=msg.token, proprio=msg.proprio,
        reference=msg.reference, action=msg.action, rows=msg.rows, cols=msg.cols, rewards=msg.rewards,
        done=msg.done, next_token=msg.next_token, next_proprio=msg.next_proprio,
        next_reference=msg.next_reference, intervention=msg.intervention, source=msg.source, **expected)


def transition_to_msg(t: Transition, stamp: float = 0.0) -> TransitionMsg:
    rows, cols = np.shape(t.action)
    return TransitionMsg(
        header=header(stamp), episode_id=t.episode_id, index=t.index, steps=t.steps or rows, token=_flat(t.token),
        proprio=_flat(t.proprio), reference=_flat(t.reference), action=_flat(t.action), rows=rows, cols=cols,
        rewards=_flat(t.rewards), done=bool(t.done), next_token=_flat(t.next_token),
        next_proprio=_flat(t.next_proprio), next_reference=_flat(t.next_reference),
        intervention=bool(t.intervention), source=int(t.source))


def event_from_msg(msg: EpisodeEvent) -> EpisodeEventPacket:
    return EpisodeEventPacket.from_fields(stamp=to_seconds(msg.header.stamp), episode_id=msg.episode_id,
                                          type=msg.type, source=msg.source, reward=msg.reward, note=msg.note)


def event_to_msg(p: EpisodeEventPacket) -> EpisodeEvent:
    return EpisodeEvent(header=header(p.stamp), episode_id=p.episode_id, type=int(p.type), source=int(p.source),
                        reward=float(p.reward), note=p.note)


# --- RViz markers (monitor_node -> /rlt/markers) -------------------------------------------------------
def _color(rgba) -> ColorRGBA:
    r, g, b, a = (float(c) for c in rgba)
    return ColorRGBA(r=r, g=g, b=b, a=a)


def markers_to_msg(markers: MarkerSet, stamp: float = 0.0) -> MarkerArray:
    """MarkerSet -> MarkerArray: a LINE_STRIP per path, a TEXT_VIEW_FACING per text (id 0 in its namespace),
    a DELETE per hidden namespace. Stamp 0 (default) lets RViz draw with the newest transform of the frame.
    """
    head = header(stamp, markers.frame_id)
    lifetime = to_duration(markers.lifetime_s)
    out = []
    for path in markers.paths:
        points = np.asarray(path.points, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 3 or len(points) < 2 or not np.all(np.isfinite(points)):
            raise MessageError(f"marker {path.ns!r}: expected finite points [N >= 2, 3], got shape {points.shape}")
        out.append(Marker(header=head, ns=path.ns, id=0, type=Marker.LINE_STRIP, action=Marker.ADD,
                          pose=Pose(), scale=Vector3(x=float(path.width)), color=_color(path.rgba),
                          lifetime=lifetime, points=[Point(x=x, y=y, z=z) for x, y, z in points.tolist()]))
    for text in markers.texts:
        x, y, z = (float(c) for c in text.position)
        pose = Pose()
        pose.position = Point(x=x, y=y, z=z)
        out.append(Marker(header=head, ns=text.ns, id=0, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD,
                          pose=pose, scale=Vector3(z=float(text.height)), color=_color(text.rgba),
                          lifetime=lifetime, text=text.text))
    out += [Marker(header=head, ns=ns, id=0, action=Marker.DELETE) for ns in markers.hidden]
    return MarkerArray(markers=out)
