"""monitor_node's logic (rlt_ros.core.monitor) and its MarkerArray conversion, without DDS."""

from __future__ import annotations

import numpy as np
import pytest

from rlt_ros.core.interfaces import (ChunkPacket, ChunkSource, EpisodeEventPacket, EventSource, EventType, Phase,
                                     TokenPacket)
from rlt_ros.core.kinematics import SerialChain
from rlt_ros.core.monitor import (EXECUTED_RGBA, REFERENCE_RGBA, ChunkMonitor, MarkerSet, MonitorConfig, PathMarker,
                                  TextMarker)

JOINTS = ("j1", "j2")
# a planar arm: joint 1 about z at the base, joint 2 about z 0.3 m along x, the tool 0.2 m further
CHAIN = SerialChain.from_flat([0, 0, 0, 0, 0, 0, 0.3, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 1], (0.2, 0, 0))


def token(rows, episode_id=1):
    return TokenPacket(stamp=0.0, episode_id=episode_id, phase=Phase.VLA, token=np.zeros(4, np.float32),
                       proprio=np.zeros(4, np.float32), joint_names=JOINTS,
                       reference_chunk=np.asarray(rows, np.float32), step_dt=0.02)


def chunk(rows, source=ChunkSource.ACTOR, episode_id=1):
    return ChunkPacket(0.0, episode_id, source, JOINTS, np.asarray(rows, np.float32), 0.02)


def event(kind, stamp, episode_id=1):
    return EpisodeEventPacket(stamp, episode_id, kind, EventSource.HUMAN)


def ramp(n, start=0.0, stop=1.0):
    return np.stack([np.linspace(start, stop, n), np.zeros(n)], axis=1)


def monitor(chain=CHAIN, **config):
    return ChunkMonitor(MonitorConfig(**config), chain, "world", JOINTS, stats_window=10)


def test_reference_and_refined_chunks_become_two_paths():
    m = monitor()
    m.set_reference(token(ramp(20)), now=10.0)
    m.set_chunk(chunk(ramp(10, 0.0, 0.5)), now=10.1)
    out = m.build(now=10.2)
    assert out.frame_id == "world" and out.hidden == ()
    reference, executed = out.paths
    assert (reference.ns, reference.rgba) == ("reference", REFERENCE_RGBA)
    assert (executed.ns, executed.rgba) == ("executed", EXECUTED_RGBA[ChunkSource.ACTOR])
    assert REFERENCE_RGBA != EXECUTED_RGBA[ChunkSource.ACTOR] != EXECUTED_RGBA[ChunkSource.HUMAN]
    np.testing.assert_allclose(reference.points, CHAIN.fk(ramp(20).astype(np.float32)))
    assert reference.points.shape == (20, 3) and executed.points.shape == (10, 3)
    np.testing.assert_allclose(np.linalg.norm(reference.points[0]), 0.5, atol=1e-9)  # stretched out: 0.3 + 0.2 m


def test_stale_hold_and_no_kinematics_hide_the_paths():
    m = monitor(max_age_s=1.0)
    m.set_reference(token(ramp(20)), now=0.0)
    m.set_chunk(chunk(ramp(10)), now=0.5)
    assert m.build(now=1.2).hidden == ("reference",)  # 1.2 s old, the executed chunk only 0.7 s
    m.set_chunk(chunk(ramp(1), ChunkSource.HOLD), now=1.3)
    assert m.build(now=1.4).hidden == ("reference", "executed")
    blind = monitor(chain=None)
    blind.set_reference(token(ramp(20)), now=0.0)
    out = blind.build(now=0.1)
    assert out.paths == () and out.hidden == ("reference", "executed") and len(out.texts) == 1


def test_human_targets_are_drawn_as_a_trail():
    m = monitor(human_trail=5)
    m.set_chunk(chunk(ramp(10)), now=0.0)
    for i in range(8):  # actor_node sends one teleoperation target per control tick
        m.set_chunk(chunk([[0.1 * i, 0.0]], ChunkSource.HUMAN), now=0.02 * i)
    path = m.build(now=0.2).paths[0]
    assert path.ns == "executed" and path.rgba == EXECUTED_RGBA[ChunkSource.HUMAN]
    np.testing.assert_allclose(path.points, CHAIN.fk(np.float32([[0.1 * i, 0.0] for i in range(3, 8)])))
    m.set_chunk(chunk([[0.0, 0.0]], ChunkSource.HUMAN, episode_id=2), now=0.3)  # a new episode starts a new trail
    assert m.build(now=0.3).hidden == ("reference", "executed")  # one point is no path yet


def test_status_line_follows_the_episodes():
    m = monitor()
    assert m.status_line(0.0) == "episode - | IDLE | success 0/0 (-) | critical - (median -)"
    m.on_event(event(EventType.START, 0.0, 1))
    m.on_event(event(EventType.HANDOVER, 2.0, 1))
    assert m.status_line(5.5) == "episode 1 | RL | success 0/0 (-) | critical 3.5 s (median -)"
    m.on_event(event(EventType.SUCCESS, 6.0, 1))
    m.on_event(event(EventType.START, 7.0, 2))
    assert m.status_line(7.5) == "episode 2 | VLA | success 1/1 (100%) | critical - (median 4.0 s)"
    m.on_event(event(EventType.FAILURE, 9.0, 2))
    m.on_event(event(EventType.START, 10.0, 3))
    assert m.build(10.0).texts[0].text == "episode 3 | VLA | success 1/2 (50%) | critical - (median 4.0 s)"


def test_chunks_of_other_joints_are_refused():
    m = monitor()
    bad = ChunkPacket(0.0, 1, ChunkSource.ACTOR, ("j2", "j1"), np.zeros((3, 2), np.float32), 0.02)
    with pytest.raises(ValueError, match="differ from the arm's"):
        m.set_chunk(bad, now=0.0)
    with pytest.raises(ValueError, match="chain of 3 joints"):
        ChunkMonitor(MonitorConfig(), SerialChain.from_flat([0.0] * 18, [0, 0, 1] * 3), "world", JOINTS)


@pytest.mark.parametrize("field, value", [("rate_hz", 0.0), ("max_age_s", -1.0), ("line_width_m", 0.0),
                                          ("text_position", (0.0, 1.0)), ("human_trail", 1)])
def test_config_validation(field, value):
    with pytest.raises(ValueError, match=f"monitor.{field}"):
        MonitorConfig(**{field: value})


# ------------------------------------------------------------------------------------- conversion
def test_markers_to_msg():
    from visualization_msgs.msg import Marker

    from rlt_ros.ros.conversions import MessageError, markers_to_msg

    points = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]])
    markers = MarkerSet("base_link", 0.6, (PathMarker("executed", points, (1.0, 0.5, 0.0, 1.0), 0.004),),
                        (TextMarker("status", "episode 3 | RL", (0.0, 0.0, 0.5), (1.0, 1.0, 1.0, 1.0), 0.03),),
                        ("reference",))
    msg = markers_to_msg(markers)
    line, text, delete = msg.markers
    assert [m.header.frame_id for m in msg.markers] == ["base_link"] * 3
    assert (line.ns, line.id, line.type, line.action) == ("executed", 0, Marker.LINE_STRIP, Marker.ADD)
    np.testing.assert_allclose([[p.x, p.y, p.z] for p in line.points], points)
    assert line.scale.x == pytest.approx(0.004) and (line.color.r, line.color.g, line.color.a) == (1.0, 0.5, 1.0)
    assert line.pose.orientation.w == 1.0 and line.lifetime.nanosec == 600_000_000
    assert (text.type, text.text, text.scale.z) == (Marker.TEXT_VIEW_FACING, "episode 3 | RL", pytest.approx(0.03))
    assert text.pose.position.z == pytest.approx(0.5)
    assert (delete.ns, delete.id, delete.action) == ("reference", 0, Marker.DELETE)
    broken = MarkerSet("world", 0.6, (PathMarker("reference", np.zeros((1, 3)), REFERENCE_RGBA, 0.004),), (), ())
    with pytest.raises(MessageError, match=r"marker 'reference': expected finite points \[N >= 2, 3\]"):
        markers_to_msg(broken)
