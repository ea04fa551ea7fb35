"""The base of every result record, and the one way a record becomes JSON.

Results leave the library as frozen dataclasses, never as rows or ORM objects tied to a
connection. `to_json()` is the same for all of them (dates as ISO strings, tuples as lists,
enums as their values), so the CLI's --json output and a script calling the API see the same
shape, and a new field needs no serialisation code.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import os
from collections.abc import Mapping
from typing import Any

_NOT_IN_JSON = "catalog.not_in_json"


def not_in_json(default: Any) -> Any:
    """A record field for Python callers only, left out of `to_json()`."""
    return dataclasses.field(default=default, metadata={_NOT_IN_JSON: True})


def jsonable(value: Any) -> Any:
    """`value` as plain JSON data: dataclasses by field, dates ISO, paths as text."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if isinstance(value, Record):
            return value.to_json()
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(item) for item in value]
    raise TypeError(f"cannot turn {type(value).__name__} into JSON")


class Record:
    """A frozen dataclass result; subclasses are `@dataclass(frozen=True)`."""

    __slots__ = ()

    def to_json(self) -> dict[str, Any]:
        """Every field, as plain JSON data."""
        assert dataclasses.is_dataclass(self)
        return {
            f.name: jsonable(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if not f.metadata.get(_NOT_IN_JSON)
        }
