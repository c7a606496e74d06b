"""Introspection of the core's configuration dataclasses: the documentation of their fields.

Every component has one dataclass whose fields carry a trailing ``# comment`` giving meaning and
unit. ``field_docs`` reads those comments so that ROS parameter descriptors, ``--help`` texts and
the README's parameter table all come from the dataclass itself (one source of truth).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
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
