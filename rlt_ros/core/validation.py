"""Validation of everything that enters rlt_ros from outside (messages, files, services).

One set of checks, used by every node through ``rlt_ros.core.interfaces`` (the pure mirrors of the
ROS messages) and by the core wherever data enters it. Each check raises ``MessageError`` (a
``ValueError``) whose text names the field and says what was expected.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class MessageError(ValueError):
    """A message or input field is malformed (wrong length, non-finite, unknown name, stale...)."""


MAX_ABS = 1e6  # no field of an rlt_ros message (joint angles, tokens, rewards) is anywhere near this large


MAX_EPISODE_ID = 2**63 - 1  # episode ids are stored as int64
MAX_INDEX = 2**31 - 1  # window start steps are stored as int32
MAX_NOTE = 1000  # characters of an episode event's note


def integer(value, field: str, lo: int, hi: int) -> int:
    """An integer field within [lo, hi] (the range its storage holds)."""
    try:
        out = int(value)
    except (TypeError, ValueError, OverflowError) as err:
        raise MessageError(f"{field}: not an integer ({value!r})") from err
    if not lo <= out <= hi:
        raise MessageError(f"{field}: {out} is not within {lo}..{hi}")
    return out


def vector(values, field: str, length: int | None = None, dtype=np.float32) -> np.ndarray:
    """``values`` as a finite 1-D array of ``dtype`` with |values| <= MAX_ABS (a finite 3e38 would overflow
    the first arithmetic it meets); ``length`` is checked when given."""
    try:
        array = np.asarray(values, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise MessageError(f"{field}: not a numeric vector ({err})") from err
    if array.ndim != 1:
        raise MessageError(f"{field}: expected a 1-D vector, got shape {array.shape}")
    if length is not None and array.shape[0] != length:
        raise MessageError(f"{field}: expected {length} values, got {array.shape[0]}")
    if not np.all(np.isfinite(array)):
        bad = int(np.flatnonzero(~np.isfinite(array))[0])
        raise MessageError(f"{field}: non-finite value {array[bad]} at index {bad}")
    if array.size and float(np.max(np.abs(array))) > MAX_ABS:
        bad = int(np.argmax(np.abs(array)))
        raise MessageError(f"{field}: value {array[bad]:.3g} at index {bad} is out of range (|x| <= {MAX_ABS:g})")
    return array


def matrix(flat, rows: int, cols: int, field: str, dtype=np.float32) -> np.ndarray:
    """A row-major flat array as a finite [rows, cols] matrix; its length must be rows * cols."""
    if rows <= 0 or cols <= 0:
        raise MessageError(f"{field}: shape {rows} x {cols} must be positive")
    array = vector(flat, field, dtype=dtype)
    if array.shape[0] != rows * cols:
        raise MessageError(
            f"{field}: has {array.shape[0]} values, expected rows x cols = {rows} x {cols} = {rows * cols}")
    return array.reshape(rows, cols)


def names(values: Sequence[str], field: str, expected: Sequence[str] | None = None) -> tuple[str, ...]:
    """Joint or camera names: non-empty, unique, and (when given) exactly ``expected`` in order."""
    out = tuple(str(v) for v in values)
    if not out:
        raise MessageError(f"{field}: empty")
    if len(set(out)) != len(out):
        raise MessageError(f"{field}: duplicate names in {list(out)}")
    if expected is not None and out != tuple(expected):
        unknown = sorted(set(out) - set(expected))
        missing = sorted(set(expected) - set(out))
        detail = []
        if unknown:
            detail.append(f"unknown {unknown}")
        if missing:
            detail.append(f"missing {missing}")
        if not detail:
            detail.append("different order")
        raise MessageError(f"{field}: {', '.join(detail)}; expected {list(expected)}, got {list(out)}")
    return out


def choice(value: int, field: str, valid: dict[int, str]) -> int:
    """An enum field: one of ``valid`` (value -> name)."""
    if int(value) not in valid:
        listed = ", ".join(f"{k}={v}" for k, v in sorted(valid.items()))
        raise MessageError(f"{field}: {value} is not one of {listed}")
    return int(value)


def fresh(stamp: float, now: float, max_age: float, field: str = "header.stamp") -> float:
    """A stamp no older than ``max_age`` seconds (and not more than ``max_age`` in the future)."""
    age = now - stamp
    if not np.isfinite(stamp) or stamp <= 0.0:
        raise MessageError(f"{field}: unset or invalid stamp {stamp}")
    if age > max_age:
        raise MessageError(f"{field}: stale, {age:.3f} s old (max age {max_age:.3f} s)")
    if age < -max_age:
        raise MessageError(f"{field}: {-age:.3f} s in the future (clocks out of sync?)")
    return stamp


def image(data, height: int, width: int, encoding: str, step: int | None = None,
          field: str = "image") -> np.ndarray:
    """A raw image buffer as uint8 [height, width, 3] RGB; accepts rgb8 and bgr8 and padded rows."""
    if encoding not in ("rgb8", "bgr8"):
        raise MessageError(f"{field}: encoding {encoding!r} is not supported; use rgb8 or bgr8")
    if height <= 0 or width <= 0:
        raise MessageError(f"{field}: invalid size {width}x{height}")
    step = width * 3 if step is None else int(step)
    if step < width * 3:
        raise MessageError(f"{field}: row step {step} is smaller than width x 3 = {width * 3}")
    buf = np.frombuffer(bytes(data), dtype=np.uint8)
    if buf.size != height * step:
        raise MessageError(f"{field}: {buf.size} bytes, expected height x step = {height} x {step} = {height * step}")
    img = buf.reshape(height, step)[:, : width * 3].reshape(height, width, 3)
    return img[..., ::-1].copy() if encoding == "bgr8" else img.copy()
