"""Introspection of the core's configuration dataclasses: field docs, flat dicts, JSON round trip.

Every component has one dataclass whose fields carry a trailing ``# comment`` giving meaning and
unit. ``field_docs`` reads those comments so that ROS parameter descriptors, ``--help`` texts and
the README's parameter table all come from the dataclass itself (one source of truth).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import typing
from functools import lru_cache

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


def to_dict(config) -> dict:
    """A dataclass instance as a JSON-compatible dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def from_dict(cls: type, data: dict, strict: bool = True):
    """Build ``cls`` from a dict; unknown keys are an error when ``strict`` (listing the valid ones)."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown and strict:
        raise ValueError(f"{cls.__name__}: unknown fields {unknown}; valid fields: {sorted(names)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            continue
        if isinstance(value, list) and typing.get_origin(hints.get(key)) is tuple:
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)
