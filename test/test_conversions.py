"""Message <-> array conversions: exact round trips and clear errors on malformed fields."""

import numpy as np
import pytest

from rlt_ros.core.arm import ArmConfig, clamp_chunk
from rlt_ros.core.interfaces import (ChunkPacket, ChunkSource, EpisodeEventPacket, EventSource, EventType, Phase,
                                     TokenPacket)
from rlt_ros.core.validation import MessageError
from rlt_ros.ros import conversions as cv

JOINTS = ("j1", "j2", "j3")
rng = np.random.default_rng(0)


def token_packet(**over):
    fields = dict(stamp=3.25, episode_id=4, phase=Phase.VLA, token=rng.normal(size=16).astype(np.float32),
                  proprio=rng.normal(size=6).astype(np.float32), joint_names=JOINTS,
                  reference_chunk=rng.normal(size=(50, 3)).astype(np.float32), step_dt=0.02)
    fields.update(over)
    return TokenPacket(**fields)


def test_token_round_trip():
    p = token_packet()
    q = cv.token_from_msg(cv.token_to_msg(p), token_dim=16, proprio_dim=6, expected_joints=JOINTS)
    np.testing.assert_array_equal(q.reference_chunk, p.reference_chunk)
    np.testing.assert_array_equal(q.token, p.token)
    assert (q.stamp, q.episode_id, q.phase, q.joint_names) == (3.25, 4, Phase.VLA, JOINTS)


@pytest.mark.parametrize("mutate, expected", [
    (lambda m: setattr(m, "chunk_rows", 10), "rows x cols = 10 x 3"),
    (lambda m: setattr(m, "token", [0.0] * 15), "token: expected 16 values, got 15"),
    (lambda m: m.proprio.__setitem__(2, float("nan")), "proprio: non-finite value nan at index 2"),
    (lambda m: setattr(m, "joint_names", ["j1", "j2", "elbow"]), "unknown ['elbow']"),
    (lambda m: setattr(m, "phase", 9), "phase: 9 is not one of"),
    (lambda m: setattr(m, "step_dt", 0.0), "step_dt"),
])
def test_token_rejects_malformed(mutate, expected):
    msg = cv.token_to_msg(token_packet())
    mutate(msg)
    with pytest.raises(MessageError, match=None) as info:
        cv.token_from_msg(msg, token_dim=16, proprio_dim=6, expected_joints=JOINTS)
    assert expected in str(info.value)


def test_chunk_transition_event_round_trip():
    chunk = ChunkPacket(1.5, 2, ChunkSource.ACTOR, JOINTS, rng.normal(size=(10, 3)).astype(np.float32), 0.02)
    back = cv.chunk_from_msg(cv.chunk_to_msg(chunk), expected_joints=JOINTS)
    np.testing.assert_array_equal(back.actions, chunk.actions)
    assert back.source == ChunkSource.ACTOR

    from rlt_ros.core.rlt.replay import Transition
    r = lambda *shape: rng.normal(size=shape).astype(np.float32)  # noqa: E731
    t = Transition(episode_id=3, index=4, token=r(16), proprio=r(6), reference=r(10, 3), action=r(10, 3),
                   rewards=np.eye(10, dtype=np.float32)[6], done=True, next_token=r(16), next_proprio=r(6),
                   next_reference=r(10, 3), intervention=True, source=2, steps=7)
    back = cv.transition_from_msg(cv.transition_to_msg(t), token_dim=16, proprio_dim=6, chunk=10, action_dim=3)
    for name in ("token", "proprio", "reference", "action", "rewards", "next_token", "next_proprio",
                 "next_reference"):
        np.testing.assert_array_equal(getattr(back, name), getattr(t, name))
    assert (back.intervention, back.index, back.steps, back.done, back.source) == (True, 4, 7, True, 2)
    with pytest.raises(MessageError, match="chunk length C = 5"):
        cv.transition_from_msg(cv.transition_to_msg(t), chunk=5)
    bad = cv.transition_to_msg(t)
    bad.next_token[3] = float("inf")
    with pytest.raises(MessageError, match="next_token: non-finite"):
        cv.transition_from_msg(bad)

    e = EpisodeEventPacket(9.0, 3, EventType.SUCCESS, EventSource.HUMAN, 1.0, "clean insert")
    assert cv.event_from_msg(cv.event_to_msg(e)) == e
    bad = cv.event_to_msg(e)
    bad.reward = 0.0
    with pytest.raises(MessageError, match="SUCCESS event carries reward 1.0"):
        cv.event_from_msg(bad)


def test_image_round_trip_and_errors():
    img = rng.integers(0, 255, size=(48, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(cv.image_from_msg(cv.image_to_msg(img)), img)
    msg = cv.image_to_msg(img)
    msg.encoding = "bgr8"
    np.testing.assert_array_equal(cv.image_from_msg(msg), img[..., ::-1])
    msg.encoding = "mono16"
    with pytest.raises(MessageError, match="encoding 'mono16' is not supported"):
        cv.image_from_msg(msg)
    msg = cv.image_to_msg(img)
    msg.height = 40
    with pytest.raises(MessageError, match="expected height x step"):
        cv.image_from_msg(msg)
    # padded rows (step > width * 3) are handled
    padded = np.zeros((48, 64 * 3 + 8), np.uint8)
    padded[:, :192] = img.reshape(48, 192)
    msg = cv.image_to_msg(img)
    msg.step, msg.data = 200, padded.tobytes()
    np.testing.assert_array_equal(cv.image_from_msg(msg), img)


def test_joint_state_and_trajectory():
    msg = cv.joint_state_to_msg(("j3", "j1", "j2", "gripper"), [3.0, 1.0, 2.0, 0.5], [0.3, 0.1, 0.2, 0.0], 4.0)
    pos, vel = cv.joint_state_from_msg(msg, JOINTS)
    np.testing.assert_allclose(pos, [1.0, 2.0, 3.0])
    np.testing.assert_allclose(vel, [0.1, 0.2, 0.3])
    with pytest.raises(MessageError, match="missing joints \\['j3'\\]"):
        cv.joint_state_from_msg(cv.joint_state_to_msg(("j1", "j2"), [0, 0], [0, 0], 1.0), JOINTS)

    rows = rng.normal(size=(10, 3))
    traj = cv.trajectory_to_msg(JOINTS, rows, 0.02)
    back, times = cv.trajectory_from_msg(traj, JOINTS)
    np.testing.assert_allclose(back, rows)
    np.testing.assert_allclose(times, 0.02 * np.arange(1, 11))
    traj.joint_names = ["j1", "j2", "wrist"]
    with pytest.raises(MessageError, match="unknown \\['wrist'\\]"):
        cv.trajectory_from_msg(traj, JOINTS)


def test_interface_constants_match_generated_messages():
    from rlt_ros.msg import ActionChunk, EpisodeEvent, RLToken
    for member in Phase:
        assert getattr(RLToken, f"PHASE_{member.name}") == member.value
    for member in ChunkSource:
        assert getattr(ActionChunk, f"SOURCE_{member.name}") == member.value
    for member in EventType:
        assert getattr(EpisodeEvent, member.name) == member.value
    for member in EventSource:
        assert getattr(EpisodeEvent, f"SOURCE_{member.name}") == member.value


def test_clamp_chunk_limits_positions_and_velocity():
    arm = ArmConfig(name="sim", joint_names=JOINTS, position_lower=(-1, -1, -1), position_upper=(1, 1, 1),
                    max_velocity=(1.0, 1.0, 1.0), control_hz=50)
    chunk = np.array([[0.5, 0.0, 2.0], [0.5, 0.0, 2.0]])
    out, report = clamp_chunk(chunk, np.zeros(3), arm)
    assert np.all(np.abs(np.diff(np.vstack([np.zeros(3), out]), axis=0)) <= 0.02 + 1e-12)
    assert np.all(out <= 1.0) and report.position_clamped == 2 and report.velocity_clamped > 0
    with pytest.raises(ValueError, match="unknown arm 'kuka'"):
        ArmConfig(name="kuka")
    with pytest.raises(ValueError, match="non-finite"):
        clamp_chunk(np.full((1, 3), np.nan), np.zeros(3), arm)


def test_integer_fields_out_of_storage_range_and_long_notes_are_rejected():
    """An episode id past int64, a window index past int32 or a note past MAX_NOTE is a MessageError,
    never an OverflowError in the replay or an unbounded string held by every node."""
    import numpy as np

    from rlt_ros.core.interfaces import EpisodeEventPacket, transition_from_fields
    from rlt_ros.core.validation import MAX_NOTE, MessageError

    c, a = 2, 1
    ok = dict(episode_id=1, index=0, steps=2, token=[0.0], proprio=[0.0], reference=np.zeros(c * a),
              action=np.zeros(c * a), rows=c, cols=a, rewards=[0.0, 0.0], done=False, next_token=[0.0],
              next_proprio=[0.0], next_reference=np.zeros(c * a), intervention=False, source=1)
    transition_from_fields(**ok)
    for field, value in (("episode_id", 2**64 - 1), ("index", 2**32 - 1), ("episode_id", 0)):
        with pytest.raises(MessageError, match=field):
            transition_from_fields(**{**ok, field: value})
    EpisodeEventPacket.from_fields(stamp=1.0, episode_id=3, type=0, source=3, note="x" * MAX_NOTE)
    with pytest.raises(MessageError, match="note"):
        EpisodeEventPacket.from_fields(stamp=1.0, episode_id=3, type=0, source=3, note="x" * (MAX_NOTE + 1))
