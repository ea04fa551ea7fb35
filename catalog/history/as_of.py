"""The catalog as of an earlier event: its entries, pins and policy of that moment.

The current state is read and every change made after the event is undone, newest first (an
addition removed, a removal restored, a change set back to its values before). The result is an
in-memory catalog, so every read (show, list, explain, resolve, search) answers as it would have
then, with the same code. The cost follows the number of entries changed since the event: each
entry is written once, by its net undo, in statements grouped by shape.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

from catalog.db import rows
from catalog.db.memory import copy_of, new_empty
from catalog.db.schema import EVENTS, TABLES_BY_NAME, EventInfo
from catalog.db.search import rebuilt_once_after
from catalog.errors import HistoryError
from catalog.history.state import CatalogState, read_state, write_state

if TYPE_CHECKING:
    from catalog.db.connection import CatalogConnection

Point = int | str | dt.date | dt.datetime
_EVENT = rows.RecordReader[EventInfo](EVENTS)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _first_event(connection: CatalogConnection) -> EventInfo | None:
    row = connection.execute(rows.select_sql(EVENTS, "e") + " ORDER BY e.id LIMIT 1").fetchone()
    return None if row is None else _EVENT(row)


def _before_history(connection: CatalogConnection, what: str) -> HistoryError:
    first = _first_event(connection)
    start = f"at {first.occurred_at} UTC" if first else "with its next sync"
    return HistoryError(
        f"nothing is known of the catalog {what}: its history starts {start}",
        hint="`catalog query 'SELECT * FROM events'` lists every recorded event",
    )


def parse_point(text: str) -> int | dt.date | dt.datetime:
    """A sync id (`12`), a date (`2026-03-01`: the end of that day, UTC) or a date and time."""
    text = text.strip().removeprefix("@")
    if text.isdigit():
        return int(text)
    if _DATE.fullmatch(text):
        return dt.date.fromisoformat(text)
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise HistoryError(
            f"{text!r} is neither a sync id nor a date",
            hint="give a sync id (12), a date (2026-03-01) or a date and time (2026-03-01T14:00)",
        ) from None


def event_at(connection: CatalogConnection, point: Point) -> EventInfo:
    """The last event at `point`: the event of sync `point` (an int), or the last event at or
    before a date (its end, UTC) or a date and time (naive: UTC)."""
    if isinstance(point, str):
        point = parse_point(point)
    if isinstance(point, bool):
        raise HistoryError(f"{point!r} is not a sync id or a date")
    if isinstance(point, int):
        row = connection.execute(
            rows.select_sql(EVENTS, "e") + " WHERE e.kind = 'sync' AND e.sync_id = ?", (point,)
        ).fetchone()
        if row is not None:
            return _EVENT(row)
        exists = connection.execute("SELECT 1 FROM syncs WHERE id = ?", (point,)).fetchone()
        if exists is None:
            raise HistoryError(
                f"there is no sync {point}",
                hint="`catalog query 'SELECT id, finished_at FROM syncs'` lists the syncs",
            )
        raise _before_history(connection, f"right after sync {point}")
    if isinstance(point, dt.datetime):
        if point.tzinfo is not None:
            point = point.astimezone(dt.UTC).replace(tzinfo=None)
        limit = point.strftime("%Y-%m-%d %H:%M:%S.%f")
    else:
        limit = f"{point.isoformat()} 23:59:59.999999"
    row = connection.execute(
        rows.select_sql(EVENTS, "e") + " WHERE e.occurred_at <= ? ORDER BY e.id DESC LIMIT 1",
        (limit,),
    ).fetchone()
    if row is None:
        raise _before_history(connection, f"as of {point}")
    return _EVENT(row)


def state_at(connection: CatalogConnection, event: EventInfo) -> CatalogState:
    """What the catalog said right after `event`, entry by entry."""
    with connection.read():
        state = read_state(connection)
        later = _later_changes(connection, event)
    for (table, name), (kind, values) in _net_undo(later).items():
        entries = state[table]
        if kind == "absent":
            entries.pop(name, None)
        elif kind == "row":
            entries[name] = values
        else:
            entries.setdefault(name, {}).update(values)
    return state


def _later_changes(
    connection: CatalogConnection, event: EventInfo
) -> list[tuple[str, str, str, Any]]:
    """Every change made after `event`, newest first."""
    found = connection.execute(
        "SELECT table_name, name, change, before FROM change_log WHERE event_id > ? "
        "ORDER BY id DESC",
        (event.id,),
    ).fetchall()
    return [
        (table, name, change, rows.decode_json(before)) for table, name, change, before in found
    ]


_KEYS = {"models": "name", "deployments": "name", "tokenizers": "name", "pins": "model_name",
         "settings": "key"}  # fmt: skip


def _net_undo(changes: list[tuple[str, str, str, Any]]) -> dict[tuple[str, str], tuple[str, Any]]:
    """What undoing `changes` (newest first) comes to for each entry, so that each entry is
    written once: ("absent", None), ("row", its whole row then) or ("update", the fields to set
    back). An older change's values win over a newer one's, as they would if undone in turn."""
    net: dict[tuple[str, str], tuple[str, Any]] = {}
    for table, name, change, before in changes:
        kind, values = net.get((table, name), ("update", {}))
        if change == "added":
            net[table, name] = ("absent", None)
        elif change == "removed":
            net[table, name] = ("row", dict(before))
        elif kind != "absent":  # a change to an entry absent then: nothing to set back
            net[table, name] = (kind, {**values, **(before or {})})
    return net


def _undo_in_place(memory: CatalogConnection, changes: list[tuple[str, str, str, Any]]) -> None:
    """Undo `changes` (newest first) on a copy of the catalog: each entry's net undo, the
    statements of one shape run together."""
    deletes: dict[str, list[tuple[str]]] = {}
    writes: dict[tuple[str, str, tuple[str, ...]], list[list[Any]]] = {}
    tags_of: dict[str, list[str]] = {}
    for (table, name), (kind, before) in _net_undo(changes).items():
        key = _KEYS[table]
        if kind in ("absent", "row"):
            deletes.setdefault(table, []).append((name,))
            if table == "models":
                tags_of.setdefault(name, [])
            if kind == "absent":
                continue
        values = dict(before)
        tags = values.pop("tags", None)
        if table == "models" and tags is not None:
            tags_of[name] = list(tags)
        if kind == "row":
            values.setdefault(key, name)  # a pin or a setting keeps its key outside its values
        present = [c for c in TABLES_BY_NAME[table].columns if c.name in values]
        if not present:
            continue
        encoded = [rows.encode_value(c.type, values[c.name]) for c in present]
        writes.setdefault((table, kind, tuple(c.name for c in present)), []).append(
            encoded if kind == "row" else [*encoded, name]
        )
    for table, keys in deletes.items():
        memory.executemany(f"DELETE FROM {table} WHERE {_KEYS[table]} = ?", keys)
    for (table, kind, columns), parameters in writes.items():
        if kind == "row":
            memory.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' for _ in columns)})",
                parameters,
            )
        else:
            memory.executemany(
                f"UPDATE {table} SET {', '.join(f'{c} = ?' for c in columns)} "
                f"WHERE {_KEYS[table]} = ?",
                parameters,
            )
    memory.executemany("DELETE FROM model_tags WHERE model_name = ?", [(name,) for name in tags_of])
    memory.executemany(
        "INSERT INTO model_tags (model_name, tag_name, position) VALUES (?, ?, ?)",
        [(name, tag, at) for name, tags in tags_of.items() for at, tag in enumerate(tags)],
    )
    memory.executemany(
        "INSERT OR IGNORE INTO tags (name) VALUES (?)",
        [(tag,) for tag in sorted({tag for tags in tags_of.values() for tag in tags})],
    )
    memory.execute("DELETE FROM tags WHERE name NOT IN (SELECT tag_name FROM model_tags)")


def catalog_at(connection: CatalogConnection, point: Point) -> tuple[EventInfo, CatalogConnection]:
    """The event at `point` and an in-memory catalog holding the state right after it.

    On SQLite the catalog is copied into memory page by page and only the later changes are
    undone there, so the cost follows the changes since the event, not the catalog's size.
    """
    event = event_at(connection, point)
    label = f"{connection.location.display} as of event {event.id}"
    if connection.dialect != "sqlite":
        # No page copy across backends: the state is rebuilt entry by entry in memory.
        memory = new_empty(label)
        write_state(memory, state_at(connection, event))
        return event, memory
    with connection.read():
        memory = copy_of(connection, label)
        later = _later_changes(connection, event)
    memory.raw.execute("PRAGMA foreign_keys = OFF")
    with memory.write("the catalog as of an earlier event"), rebuilt_once_after(memory):
        _undo_in_place(memory, later)
        # Earlier copies of redefined deployments are kept for the present only.
        memory.execute("DELETE FROM shadowed_deployments")
    memory.raw.execute("PRAGMA foreign_keys = ON")
    return event, memory
