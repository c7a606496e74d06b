"""monitor_node over real DDS: an RL token, an executed chunk and episode events in, RViz markers out."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import yaml

from ros_harness import wait_for

pytestmark = [pytest.mark.ros, pytest.mark.timeout(120)]


def test_monitor_draws_reference_and_refined_paths(processes, ros_node, tmp_path):
    from visualization_msgs.msg import Marker, MarkerArray

    from rlt_ros import graph
    from rlt_ros.core.arm import ArmConfig
    from rlt_ros.core.interfaces import ChunkPacket, ChunkSource, EpisodeEventPacket, EventSource, EventType, Phase
    from rlt_ros.core.interfaces import TokenPacket
    from rlt_ros.msg import ActionChunk, EpisodeEvent, RLToken
    from rlt_ros.ros import qos
    from rlt_ros.ros.conversions import chunk_to_msg, event_to_msg, token_to_msg

    # the monitor of the simulated arm's graph, on the wall clock (no /clock here), publishing fast
    spec = next(s for s in graph.graph("train", "sim", {"monitor": {"use_sim_time": False, "monitor.rate_hz": 20.0}})
                if s.name == "monitor")
    proc = processes.start("monitor", [sys.executable, "-m", spec.module,
                                       *graph.ros_args(spec, graph.write_overrides(spec, tmp_path))])
    arm = ArmConfig(**yaml.safe_load((graph.config_dir() / "arms" / "sim.yaml").read_text())["/**"]
                    ["ros__parameters"]["arm"])
    chain = arm.chain()

    received = []
    ros_node.create_subscription(MarkerArray, "/rlt/markers", received.append, qos.STREAM)
    events = ros_node.create_publisher(EpisodeEvent, "/rlt/events", qos.EVENTS)
    tokens = ros_node.create_publisher(RLToken, "/rlt/token", qos.STREAM)
    chunks = ros_node.create_publisher(ActionChunk, "/rlt/action_chunk", qos.STREAM)
    now = ros_node.get_clock().now().nanoseconds * 1e-9
    for kind in (EventType.START, EventType.HANDOVER):  # transient local: the monitor sees them whenever it joins
        events.publish(event_to_msg(EpisodeEventPacket(now, 3, kind, EventSource.HUMAN)))

    home = (np.asarray(arm.position_lower) + np.asarray(arm.position_upper)) / 2
    reference = (home + np.linspace(0.0, 0.3, 50)[:, None] * [1, 0, 0, 0, 0]).astype(np.float32)  # a base_yaw sweep
    refined = (reference[:10] + [0, 0.05, 0, 0, 0]).astype(np.float32)
    sent_token = TokenPacket(0.0, 3, Phase.RL, np.zeros(64, np.float32), np.zeros(17, np.float32), arm.joint_names,
                             reference, arm.dt)
    sent_chunk = ChunkPacket(0.0, 3, ChunkSource.ACTOR, arm.joint_names, refined, arm.dt)

    def by_ns(msg):
        return {m.ns: m for m in msg.markers}

    def both_paths():
        assert proc.poll() is None, processes.log(proc)
        tokens.publish(token_to_msg(sent_token))
        chunks.publish(chunk_to_msg(sent_chunk))
        for _ in range(4):
            ros_node.spin_once(0.05)
        latest = by_ns(received[-1]) if received else {}
        return all(ns in latest and latest[ns].action == Marker.ADD for ns in ("reference", "executed", "status"))

    wait_for(both_paths, 60, what="markers with the reference and the refined path")
    markers = by_ns(received[-1])
    reference_line, refined_line, status = markers["reference"], markers["executed"], markers["status"]
    assert {m.header.frame_id for m in markers.values()} == {"world"}
    assert reference_line.type == refined_line.type == Marker.LINE_STRIP and status.type == Marker.TEXT_VIEW_FACING
    points = lambda m: np.array([[p.x, p.y, p.z] for p in m.points])  # noqa: E731
    np.testing.assert_allclose(points(reference_line), chain.fk(reference), atol=1e-9)  # the plug tip, m
    np.testing.assert_allclose(points(refined_line), chain.fk(refined), atol=1e-9)
    assert (reference_line.color.b, refined_line.color.r) == (1.0, 1.0)  # blue reference, orange actor
    assert status.text.startswith("episode 3 | RL | success 0/0 (-) | critical ") and " s (median -)" in status.text

    # a chunk of another arm's joints is refused, logged, and changes nothing
    wrong = chunk_to_msg(ChunkPacket(0.0, 3, ChunkSource.HUMAN, ("a", "b"), np.zeros((2, 2), np.float32), arm.dt))
    chunks.publish(wrong)
    wait_for(lambda: "rejected chunk" in processes.log(proc), 20, ros_node.spin_once, "the rejection in the log")
    assert processes.stop(proc) == 0, processes.log(proc)
