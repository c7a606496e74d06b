"""The core's configuration dataclasses: JSON round trip, field validation and field documentation.

Every component has one flat dataclass of simple types (int, float, str, bool, tuples or lists of
those), so that ROS nodes can declare one parameter per field:

- ``ConfigMixin`` gives it ``to_dict``/``from_dict`` (unknown keys are an error naming the valid ones),
  ``to_json``/``from_json`` and ``save``/``load``;
- ``check_int``/``check_float``/``check_choice``/``check_int_tuple`` validate fields in ``__post_init__``;
- every field carries a trailing ``# comment`` giving meaning and unit; ``field_docs`` reads those
  comments so that ROS parameter descriptors, ``--help`` texts and docs/parameters.md all
  come from the dataclass itself (one source of truth).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import re
from dataclasses import asdict, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

_FIELD_LINE = re.compile(r"^\s+(\w+)\s*:\s*[^=#]+(?:=[^#]*)?#\s*(.+)$")


@lru_cache(maxsize=None)
def field_docs(cls: type) -> dict[str, str]:
    """Field name -> its one-line comment, for a dataclass and its dataclass bases."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        for line in source.splitlines():
            match = _FIELD_LINE.match(line)
            if match:
                docs[match.group(1)] = match.group(2).strip()
    return docs


T = TypeVar("T", bound="ConfigMixin")


class ConfigMixin:
    """JSON round trip for a flat dataclass (lists become tuples where the field default is a tuple)."""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)  # type: ignore[call-overload]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        if not isinstance(data, dict):
            raise ValueError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
        known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
        data = drop_removed_fields(cls, data)
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; valid fields: {sorted(known)}")
        kwargs = {}
        for key, value in data.items():
            tuple_field = isinstance(known[key].default, tuple)
            kwargs[key] = tuple(value) if tuple_field and isinstance(value, list) else value
        return cls(**kwargs)

    @classmethod
    def removed_field_message(cls, key: str) -> str | None:
        """Why ``key`` is no longer a field and what replaced it (None for a name that never was one)."""
        removed = getattr(cls, "REMOVED_FIELDS", {})
        return f"{cls.__name__}.{key} was removed: {removed[key][1]}" if key in removed else None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls: type[T], text: str) -> T:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{cls.__name__}: invalid JSON ({err})") from err
        return cls.from_dict(data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n")

    @classmethod
    def load(cls: type[T], path: str | Path) -> T:
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"{cls.__name__}: config file {path} does not exist")
        return cls.from_json(path.read_text())


def drop_removed_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without the class's ``REMOVED_FIELDS`` that hold the value meaning today's behaviour (a run
    stored before the removal resumes unchanged); any other value of a removed field is an error naming
    what replaced it, raised before anything is touched."""
    removed = getattr(cls, "REMOVED_FIELDS", {})
    for key in set(data) & set(removed):
        if data[key] != removed[key][0]:
            raise ValueError(f"{cls.removed_field_message(key)}; {key}={data[key]!r} is no longer possible "
                             f"(only {removed[key][0]!r}, today's behaviour). Remove it from the configuration; "
                             "nothing stored was changed")
    return {k: v for k, v in data.items() if k not in removed}


def check_int(obj: object, name: str, lo: int | None = None, hi: int | None = None) -> None:
    """Raise ValueError unless ``obj.name`` is an int (not bool) within [lo, hi]."""
    v = getattr(obj, name)
    if not isinstance(v, int) or isinstance(v, bool):
        raise ValueError(f"{type(obj).__name__}.{name} must be an int, got {v!r}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ValueError(f"{type(obj).__name__}.{name} must be in [{lo}, {hi}], got {v}")


def check_float(obj: object, name: str, lo: float | None = None, hi: float | None = None,
                lo_open: bool = False, hi_open: bool = False) -> None:
    """Raise ValueError unless ``obj.name`` is a finite number within the bounds; stores it as float."""
    v = getattr(obj, name)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{type(obj).__name__}.{name} must be a finite number, got {v!r}")
    bad = (lo is not None and (v <= lo if lo_open else v < lo)) or (
        hi is not None and (v >= hi if hi_open else v > hi))
    if bad:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        raise ValueError(f"{type(obj).__name__}.{name} must be in {left}{lo}, {hi}{right}, got {v}")
    object.__setattr__(obj, name, float(v))


def check_choice(obj: object, name: str, choices: tuple[str, ...]) -> None:
    v = getattr(obj, name)
    if v not in choices:
        raise ValueError(f"{type(obj).__name__}.{name} must be one of {list(choices)}, got {v!r}")


def check_int_tuple(obj: object, name: str, lo: int = 1, allow_empty: bool = False) -> None:
    """Raise ValueError unless ``obj.name`` is a sequence of ints >= lo; stores it as a tuple."""
    v = getattr(obj, name)
    try:
        t = tuple(v)
    except TypeError as err:
        raise ValueError(f"{type(obj).__name__}.{name} must be a list of ints, got {v!r}") from err
    if (not t and not allow_empty) or any(not isinstance(x, int) or isinstance(x, bool) or x < lo for x in t):
        raise ValueError(f"{type(obj).__name__}.{name} must be a non-empty list of ints >= {lo}, got {v!r}")
    object.__setattr__(obj, name, t)
