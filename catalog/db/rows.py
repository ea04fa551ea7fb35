"""Rows of the catalog's tables as records and records as rows: the one mapping, from the schema.

Column lists, SELECT/INSERT/UPDATE statements and the conversion of each column's stored form
(0/1 booleans, ISO dates, JSON text) are all derived from catalog.db.schema, so every reader
and the sync writer agree on every table's shape without repeating it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from catalog.db.failures import DAMAGED_HINT
from catalog.db.schema import PLACE_COLUMNS, ColumnType, Table
from catalog.errors import DatabaseError, preview

_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def column_list(table: Table, alias: str | None = None) -> str:
    """`a.c1, a.c2, ...`: every column of `table`, in record order."""
    prefix = f"{alias}." if alias else ""
    return ", ".join(prefix + name for name in table.column_names)


def select_sql(table: Table, alias: str) -> str:
    """`SELECT <every column> FROM table AS alias`; append WHERE / ORDER BY as needed."""
    return f"SELECT {column_list(table, alias)} FROM {table.name} AS {alias}"


def _damaged(kind: str, value: Any) -> DatabaseError:
    return DatabaseError(f"a {kind} column holds {preview(value)}", hint=DAMAGED_HINT)


def decode_json(value: Any) -> Any:
    """A JSON column's value: SQLite hands over its text, psycopg the parsed value."""
    return _decode_json(value)


def _decode_json(value: Any) -> Any:
    if value is None or not isinstance(value, (str, bytes)):
        return value
    try:
        return json.loads(value)
    except ValueError as error:
        raise _damaged("JSON", value) from error


def _decode_date(value: Any) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value.date() if isinstance(value, dt.datetime) else value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError as error:
        raise _damaged("date", value) from error


def _decode_datetime(value: Any) -> str | None:
    if isinstance(value, dt.datetime):
        return value.strftime(_DATETIME_FORMAT)
    return None if value is None else str(value)


_DECODERS: dict[ColumnType, Callable[[Any], Any]] = {
    ColumnType.BOOLEAN: bool,
    ColumnType.DATE: _decode_date,
    ColumnType.DATETIME: _decode_datetime,
    ColumnType.JSON: _decode_json,
}


def encode_value(kind: ColumnType, value: Any) -> Any:
    """A column value as the database stores it."""
    if value is None:
        return None
    if kind is ColumnType.BOOLEAN:
        return bool(value)  # sqlite3 stores 1 or 0; PostgreSQL wants a boolean
    if kind is ColumnType.DATE:
        return value.isoformat() if isinstance(value, dt.date) else value
    if kind is ColumnType.DATETIME:
        return value.strftime(_DATETIME_FORMAT) if isinstance(value, dt.datetime) else value
    if kind is ColumnType.JSON:
        return json.dumps(value)
    return value


def now_text() -> str:
    """The current UTC time as a DATETIME column holds it."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None).strftime(_DATETIME_FORMAT)


R = TypeVar("R")


class RecordReader(Generic[R]):
    """Turns a row of every column of `table` (in record order) into the table's record.

    Declare what it returns: `RecordReader[ModelInfo](MODELS)`.
    """

    def __init__(self, table: Table) -> None:
        self.table = table
        self._record: Callable[..., R] = table.record  # type: ignore[assignment]
        self._names = table.column_names
        self._decoders = [
            (index, _DECODERS[column.type])
            for index, column in enumerate(table.columns)
            if column.type in _DECODERS
        ]

    def values(self, row: Sequence[Any]) -> dict[str, Any]:
        """The row's values by column name, decoded."""
        values = list(row)
        for index, decode in self._decoders:
            values[index] = decode(values[index])
        return dict(zip(self._names, values, strict=True))

    def __call__(self, row: Sequence[Any], **related: Any) -> R:
        return self._record(**self.values(row), **related)


def record_values(record: Any) -> dict[str, Any]:
    """Every field of a record, by name."""
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}


def content_of(record: Any) -> dict[str, Any]:
    """What an entry says: every field but those of PLACE_COLUMNS."""
    return {
        f.name: getattr(record, f.name)
        for f in dataclasses.fields(record)
        if f.name not in PLACE_COLUMNS
    }


def encode_row(table: Table, values: Mapping[str, Any] | Any) -> tuple[Any, ...]:
    """A record (or a mapping with every column) as stored values, in column order."""
    if not isinstance(values, Mapping):
        values = record_values(values)
    return tuple(encode_value(c.type, values[c.name]) for c in table.columns)


def insert_sql(table: Table) -> str:
    marks = ", ".join("?" for _ in table.columns)
    return f"INSERT INTO {table.name} ({column_list(table)}) VALUES ({marks})"


def update_sql(table: Table) -> str:
    """UPDATE of every non-key column by primary key; parameters: `update_params`."""
    keys = table.primary_key
    assignments = ", ".join(f"{name} = ?" for name in table.column_names if name not in keys)
    where = " AND ".join(f"{name} = ?" for name in keys)
    return f"UPDATE {table.name} SET {assignments} WHERE {where}"


def update_params(table: Table, values: Mapping[str, Any] | Any) -> tuple[Any, ...]:
    encoded = dict(zip(table.column_names, encode_row(table, values), strict=True))
    keys = table.primary_key
    return tuple(encoded[n] for n in table.column_names if n not in keys) + tuple(
        encoded[n] for n in keys
    )


def delete_sql(table: Table) -> str:
    """DELETE by primary key; parameters: the key values in key order."""
    where = " AND ".join(f"{name} = ?" for name in table.primary_key)
    return f"DELETE FROM {table.name} WHERE {where}"


def key_of(table: Table, values: Mapping[str, Any] | Any) -> Any:
    """A row's primary key: the value, or a tuple for a composite key."""
    if not isinstance(values, Mapping):
        values = record_values(values)
    keys = table.primary_key
    return values[keys[0]] if len(keys) == 1 else tuple(values[k] for k in keys)
