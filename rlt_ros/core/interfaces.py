"""Pure-Python mirrors of rlt_ros's ROS interfaces (msg/*.msg), validated on construction.

Nodes never read message fields directly: ``rlt_ros.ros.conversions`` turns each message into one
of these dataclasses (and back), and the ``from_fields`` constructors below are the single place
where a malformed message is rejected (``MessageError`` naming the field). Enum values equal the
constants of the .msg files (checked by test/test_interfaces.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

import numpy as np

from rlt_ros.core import validation as v

if TYPE_CHECKING:  # the replay pulls in torch, which nodes without a learner side need not load
    from rlt_ros.core.rlt.replay import Transition


class Phase(IntEnum):
    """RLToken.PHASE_*: who drives the arm."""

    IDLE = 0
    VLA = 1
    RL = 2
    INTERVENTION = 3


class ChunkSource(IntEnum):
    """ActionChunk.SOURCE_*: where an executed chunk came from."""

    VLA = 0
    ACTOR = 1
    HUMAN = 2
    HOLD = 3


class EventType(IntEnum):
    """EpisodeEvent types."""

    START = 0
    HANDOVER = 1
    INTERVENTION_START = 2
    INTERVENTION_END = 3
    SUCCESS = 4
    FAILURE = 5
    TIMEOUT = 6
    RESET = 7

    @property
    def terminal(self) -> bool:
        return self in (EventType.SUCCESS, EventType.FAILURE, EventType.TIMEOUT)


class EventSource(IntEnum):
    """EpisodeEvent.SOURCE_*: who caused an event."""

    HUMAN = 0
    DETECTOR = 1
    TIMEOUT = 2
    SYSTEM = 3


def _enum(enum_cls, value, field: str):
    return enum_cls(v.choice(value, field, {m.value: m.name for m in enum_cls}))


@dataclass(frozen=True)
class TokenPacket:
    """One decision point (RLToken.msg): z_rl [token_dim], proprio [P], reference chunk ã [H, A]."""

    stamp: float
    episode_id: int
    phase: Phase
    token: np.ndarray
    proprio: np.ndarray
    joint_names: tuple[str, ...]
    reference_chunk: np.ndarray
    step_dt: float

    @classmethod
    def from_fields(cls, *, stamp, episode_id, phase, token, proprio, joint_names, reference_chunk,
                    chunk_rows, chunk_cols, step_dt, token_dim=None, proprio_dim=None,
                    expected_joints=None) -> "TokenPacket":
        names = v.names(joint_names, "joint_names", expected_joints)
        chunk = v.matrix(reference_chunk, chunk_rows, chunk_cols, "reference_chunk")
        if chunk_cols != len(names):
            raise v.MessageError(f"chunk_cols: {chunk_cols} columns but {len(names)} joint_names")
        if not (np.isfinite(step_dt) and step_dt > 0):
            raise v.MessageError(f"step_dt: must be > 0 seconds, got {step_dt}")
        return cls(
            stamp=float(stamp), episode_id=int(episode_id), phase=_enum(Phase, phase, "phase"),
            token=v.vector(token, "token", token_dim), proprio=v.vector(proprio, "proprio", proprio_dim),
            joint_names=names, reference_chunk=chunk, step_dt=float(step_dt))


@dataclass(frozen=True)
class ChunkPacket:
    """An executed chunk (ActionChunk.msg): actions [rows, cols] of absolute joint positions."""

    stamp: float
    episode_id: int
    source: ChunkSource
    joint_names: tuple[str, ...]
    actions: np.ndarray
    step_dt: float

    @classmethod
    def from_fields(cls, *, stamp, episode_id, source, joint_names, actions, rows, cols, step_dt,
                    expected_joints=None) -> "ChunkPacket":
        names = v.names(joint_names, "joint_names", expected_joints)
        chunk = v.matrix(actions, rows, cols, "actions")
        if cols != len(names):
            raise v.MessageError(f"cols: {cols} columns but {len(names)} joint_names")
        return cls(float(stamp), int(episode_id), _enum(ChunkSource, source, "source"), names, chunk,
                   float(step_dt))


def transition_from_fields(*, episode_id, index, steps, token, proprio, reference, action, rows, cols, rewards,
                           done, next_token, next_proprio, next_reference, intervention, source,
                           token_dim=None, proprio_dim=None, chunk=None, action_dim=None) -> Transition:
    """A Transition.msg's fields -> the replay's ``Transition`` (chunk rows = C, cols = A), validated."""
    from rlt_ros.core.rlt.replay import SOURCES, Transition

    if chunk is not None and rows != chunk:
        raise v.MessageError(f"rows: expected the actor's chunk length C = {chunk}, got {rows}")
    if action_dim is not None and cols != action_dim:
        raise v.MessageError(f"cols: expected action_dim = {action_dim}, got {cols}")
    v.integer(episode_id, "episode_id", 1, v.MAX_EPISODE_ID)
    v.integer(index, "index", 0, v.MAX_INDEX)
    if not 0 <= int(steps) <= rows:
        raise v.MessageError(f"steps: {steps} is not within 0..{rows}")
    return Transition(
        episode_id=int(episode_id), index=int(index), steps=int(steps),
        token=v.vector(token, "token", token_dim), proprio=v.vector(proprio, "proprio", proprio_dim),
        reference=v.matrix(reference, rows, cols, "reference"), action=v.matrix(action, rows, cols, "action"),
        rewards=v.vector(rewards, "rewards", rows), done=bool(done),
        next_token=v.vector(next_token, "next_token", token_dim),
        next_proprio=v.vector(next_proprio, "next_proprio", proprio_dim),
        next_reference=v.matrix(next_reference, rows, cols, "next_reference"),
        intervention=bool(intervention), source=v.choice(source, "source", SOURCES))


LATE_SWITCH = "late switch"  # the note of an operator's handover press made because the learned switch had not
# handed over: its timing says how long the operator waited, not where the critical phase began, so it trains no
# switch (core.data.token_bags); a switch trained on such presses would learn to fire later with every version


@dataclass(frozen=True)
class EpisodeEventPacket:
    """An episode event (EpisodeEvent.msg)."""

    stamp: float
    episode_id: int
    type: EventType
    source: EventSource
    reward: float = 0.0
    note: str = ""

    @classmethod
    def from_fields(cls, *, stamp, episode_id, type, source, reward=0.0, note="") -> "EpisodeEventPacket":
        kind = _enum(EventType, type, "type")
        v.integer(episode_id, "episode_id", 1, v.MAX_EPISODE_ID)
        if len(str(note)) > v.MAX_NOTE:
            raise v.MessageError(f"note: {len(str(note))} characters, at most {v.MAX_NOTE}")
        expected = 1.0 if kind == EventType.SUCCESS else 0.0
        if not np.isfinite(reward) or float(reward) != expected:
            raise v.MessageError(f"reward: a {kind.name} event carries reward {expected}, got {reward}")
        return cls(float(stamp), int(episode_id), kind, _enum(EventSource, source, "source"), float(reward),
                   str(note))
