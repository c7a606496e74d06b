"""Demonstration bags: MCAP + metadata.yaml written like rosbag2, read back into per-step episodes."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from rlt_ros.core.data.bag_io import (
    ACTION_TOPIC, EVENTS_TOPIC, JOINT_STATES_TOPIC, DemoBagWriter, image_to_msg, make_action_chunks, msg_to_image,
    read_episodes,
)
from rlt_ros.core.data.ros_msgdefs import KNOWN_TYPES, full_definition

ROOT = Path(__file__).resolve().parents[1]

NAMES = ["j0", "j1", "j2", "j3", "j4"]
DT_NS = 20_000_000


def synthetic_episodes(n_eps=2, steps=30, size=8, seed=0):
    rng = np.random.default_rng(seed)
    eps = []
    for _ in range(n_eps):
        eps.append({
            "q": rng.normal(size=(steps, 5)), "qd": rng.normal(size=(steps, 5)), "a": rng.normal(size=(steps, 5)),
            "img": {c: rng.integers(0, 256, (steps, size, size, 3), dtype=np.uint8) for c in ("base", "wrist")},
        })
    return eps


def write_synthetic(bag_dir, eps, events=True, actions=True):
    t0 = 1_700_000_000_000_000_000
    with DemoBagWriter(bag_dir, NAMES) as w:
        offset = 0
        for k, ep in enumerate(eps):
            if events:
                w.write_event({"event": "episode_start", "episode": k, "seed": 100 + k}, t0 + offset)
            for i in range(len(ep["q"])):
                t = t0 + offset + i * DT_NS
                w.write_joint_state(ep["q"][i], ep["qd"][i], t)
                for c, imgs in ep["img"].items():
                    w.write_image(c, imgs[i], t)
                if actions:
                    w.write_action(ep["a"][i], t, 0.02)
                if events and i == 10:
                    w.write_event({"event": "critical_phase_start", "episode": k}, t)
            if events:
                w.write_event({"event": "success" if k % 2 == 0 else "failure", "episode": k}, t0 + offset + len(ep["q"]) * DT_NS)
            offset += (len(ep["q"]) + 100) * DT_NS  # 2 s gap
    return bag_dir


def test_round_trip_frames_actions_boundaries(tmp_path):
    eps = synthetic_episodes()
    bag = write_synthetic(tmp_path / "demo", eps)
    assert (bag / "demo_0.mcap").is_file()
    got = read_episodes(bag)
    assert len(got) == 2
    for ep, g in zip(eps, got):
        assert len(g) == 30 and g.joint_names == NAMES
        np.testing.assert_allclose(g.joint_pos, ep["q"].astype(np.float32))
        np.testing.assert_allclose(g.joint_vel, ep["qd"].astype(np.float32))
        np.testing.assert_allclose(g.actions, ep["a"].astype(np.float32))
        for c in ("base", "wrist"):
            assert np.array_equal(g.images[c], ep["img"][c])
        np.testing.assert_allclose(g.times, np.arange(30) * 0.02)
        assert g.critical_phase_start == pytest.approx(0.2)
    assert got[0].success is True and got[1].success is False
    assert got[1].meta["seed"] == 101


def test_metadata_yaml_like_rosbag2(tmp_path):
    bag = write_synthetic(tmp_path / "demo", synthetic_episodes(n_eps=1, steps=5))
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["storage_identifier"] == "mcap"
    assert meta["relative_file_paths"] == ["demo_0.mcap"]
    topics = {t["topic_metadata"]["name"]: (t["topic_metadata"]["type"], t["message_count"]) for t in meta["topics_with_message_count"]}
    assert topics[JOINT_STATES_TOPIC] == ("sensor_msgs/msg/JointState", 5)
    assert topics[ACTION_TOPIC] == ("trajectory_msgs/msg/JointTrajectory", 5)
    assert topics["/camera/base/image_raw"] == ("sensor_msgs/msg/Image", 5)
    assert topics[EVENTS_TOPIC][1] == 2  # start + outcome (no critical phase in 5 steps)
    assert meta["message_count"] == sum(c for _, c in topics.values())
    assert meta["duration"]["nanoseconds"] == 5 * DT_NS


def test_existing_bag_folder_is_not_overwritten(tmp_path):
    bag = write_synthetic(tmp_path / "demo", synthetic_episodes(n_eps=1, steps=3))
    with pytest.raises(ValueError, match="exists"):
        DemoBagWriter(bag, NAMES)


def test_teleop_bag_without_events_or_actions(tmp_path):
    """A plain recording (joint states + cameras): episodes split on time gaps, action = next position."""
    eps = synthetic_episodes(n_eps=2, steps=12)
    bag = write_synthetic(tmp_path / "teleop", eps, events=False, actions=False)
    got = read_episodes(bag, cameras=["wrist"])
    assert len(got) == 2 and set(got[0].images) == {"wrist"}
    assert len(got[0]) == 11
    np.testing.assert_allclose(got[0].joint_pos, eps[0]["q"][:11].astype(np.float32))
    np.testing.assert_allclose(got[0].actions, eps[0]["q"][1:12].astype(np.float32))
    assert got[0].success is None
    with pytest.raises(ValueError, match="no images"):
        read_episodes(bag, cameras=["top"])


def test_message_definitions_parse_like_ros(tmp_path):
    rosbags_typesys = pytest.importorskip("rosbags.typesys", reason="rosbags not installed (pip install rosbags)")
    store = rosbags_typesys.get_typestore(rosbags_typesys.Stores.ROS2_JAZZY)
    for datatype in KNOWN_TYPES:
        parsed = rosbags_typesys.get_types_from_msg(full_definition(datatype), datatype)
        for name, definition in parsed.items():
            if name.startswith("rlt_ros/"):  # rlt_ros's own: its .msg file, comments and all, is the reference
                text = (ROOT / "msg" / f"{name.split('/')[-1]}.msg").read_text()
                assert definition == rosbags_typesys.get_types_from_msg(text, name)[name], name
            else:
                assert definition[1] == store.fielddefs[name][1], name
    # an independent reader opens the whole bag folder
    from rosbags.highlevel import AnyReader
    bag = write_synthetic(tmp_path / "demo", synthetic_episodes(n_eps=1, steps=4))
    with AnyReader([bag]) as reader:
        msgs = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages()]
    images = [m for m in msgs if hasattr(m, "encoding")]
    assert len(images) == 8 and images[0].encoding == "rgb8"


def test_cdr_payload_decodes_with_rclpy(tmp_path):
    serialization = pytest.importorskip("rclpy.serialization", reason="rclpy not installed")
    sensor_msgs = pytest.importorskip("sensor_msgs.msg", reason="sensor_msgs not installed")
    trajectory_msgs = pytest.importorskip("trajectory_msgs.msg", reason="trajectory_msgs not installed")
    from mcap.reader import make_reader

    eps = synthetic_episodes(n_eps=1, steps=3)
    bag = write_synthetic(tmp_path / "demo", eps)
    types = {JOINT_STATES_TOPIC: sensor_msgs.JointState, ACTION_TOPIC: trajectory_msgs.JointTrajectory,
             "/camera/base/image_raw": sensor_msgs.Image}
    seen = {t: 0 for t in types}
    with open(bag / "demo_0.mcap", "rb") as f:
        for _, channel, message in make_reader(f).iter_messages():
            if channel.topic in types:
                msg = serialization.deserialize_message(message.data, types[channel.topic])
                i = seen[channel.topic]
                if channel.topic == JOINT_STATES_TOPIC:
                    np.testing.assert_allclose(msg.position, eps[0]["q"][i])
                elif channel.topic == ACTION_TOPIC:
                    np.testing.assert_allclose(msg.points[0].positions, eps[0]["a"][i])
                else:
                    assert np.array_equal(np.array(msg.data, dtype=np.uint8).reshape(8, 8, 3), eps[0]["img"]["base"][i])
                seen[channel.topic] += 1
    assert all(v == 3 for v in seen.values())


def test_image_conversion():
    img = np.random.default_rng(0).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    msg = SimpleNamespace(**image_to_msg(img, 0, "cam"))
    assert np.array_equal(msg_to_image(msg), img)
    bgr = SimpleNamespace(height=4, width=6, step=18, encoding="bgr8", data=img[:, :, ::-1].tobytes())
    assert np.array_equal(msg_to_image(bgr), img)
    mono = SimpleNamespace(height=4, width=6, step=6, encoding="mono8", data=img[:, :, 0].tobytes())
    assert np.array_equal(msg_to_image(mono)[:, :, 2], img[:, :, 0])
    with pytest.raises(ValueError, match="encoding"):
        msg_to_image(SimpleNamespace(height=1, width=1, step=2, encoding="16UC1", data=b"00"))
    with pytest.raises(ValueError, match="uint8"):
        image_to_msg(np.zeros((4, 4), np.float32), 0, "cam")


def test_make_action_chunks():
    actions = np.arange(12, dtype=np.float32).reshape(6, 2)
    chunks = make_action_chunks(actions, 4)
    assert chunks.shape == (6, 4, 2)
    np.testing.assert_array_equal(chunks[0], actions[:4])
    np.testing.assert_array_equal(chunks[4], actions[[4, 5, 5, 5]])
    with pytest.raises(ValueError):
        make_action_chunks(actions[0], 4)


def test_record_expert_demos_end_to_end(tmp_path):
    from rlt_ros.core.data.recording import record_expert_demos
    from rlt_ros.core.sim.configuration_sim import SimConfig

    summary = record_expert_demos(tmp_path / "demos", episodes=2, sim_config=SimConfig(image_size=16), seed=4,
                                  image_every=2, progress=False)
    assert summary.episodes == 2 and summary.successes == 2
    eps = read_episodes(summary.bag_dir)
    assert len(eps) == 2 and sum(len(e) for e in eps) == summary.steps
    for e in eps:
        assert e.success and e.images["base"].shape[1:] == (16, 16, 3)
        assert 0 < e.critical_phase_start < e.times[-1]
        assert json.dumps(e.meta["sim_config"])  # the episode's configuration travels with it
        # recorded actions drive the joints: the final position is close to the last target
        np.testing.assert_allclose(e.joint_pos[-1], e.actions[-2], atol=0.02)
    # as training demos, each starts its critical phase at the first step at or after the marked time
    from rlt_ros.core.vla.training_builtin import load_demo_episodes

    for e, demo in zip(eps, load_demo_episodes(summary.bag_dir.parent)):
        k = demo.critical_start
        assert 0 < k < len(e) and e.times[k - 1] < e.critical_phase_start <= e.times[k]
