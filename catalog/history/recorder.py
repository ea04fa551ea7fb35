"""Recording an event: the entries it changed and the defaults it moved, in the event's own
transaction, so that a change and its history row are committed together or not at all."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from catalog import __version__
from catalog.db import rows
from catalog.db.records import jsonable
from catalog.db.schema import CHANGE_LOG, DEFAULT_CHANGE_LOG, EVENTS, PLACE_COLUMNS
from catalog.history.changes import ChangeSet, Values, compare_defaults

if TYPE_CHECKING:
    from catalog.db.connection import CatalogConnection

DEFAULT_POLICIES = ("first", "last", "in_force")
_PROVENANCE = frozenset({"source_file", "source_line"})
Defaults = Mapping[str, Mapping[str, str | None]]
"""policy -> model -> default deployment: what `Snapshot.defaults()` answers."""


def _json(values: Mapping[str, Any] | None) -> str | None:
    return None if values is None else json.dumps(jsonable(values))


@dataclass
class EventRecorder:
    """What the code making an event's changes reports to it; see `recorded_event`."""

    sync_id: int | None = None
    row_changes: list[tuple[str, str, str, Values | None, Values | None]] = field(
        default_factory=list
    )
    changes: ChangeSet = field(default_factory=ChangeSet)

    def rows(self, table: str, before: Mapping[str, Values], after: Mapping[str, Values]) -> None:
        """Every entry of `table` that was added, removed or changed, by name.

        Where an entry was written (its source file and line) is not history: a line shifted
        by an edit above it changes no answer, and recording it would swell every sync.
        """
        for name, values in after.items():
            old = before.get(name)
            if old is None:
                self.row_changes.append((table, name, "added", None, values))
                continue
            differing = [
                key
                for key, value in values.items()
                if key not in _PROVENANCE and old.get(key) != value
            ]
            if not differing:
                continue
            kind = "moved" if set(differing) <= PLACE_COLUMNS else "changed"
            self.row_changes.append(
                (
                    table,
                    name,
                    kind,
                    {key: old.get(key) for key in differing},
                    {key: values[key] for key in differing},
                )
            )
        for name, values in before.items():
            if name not in after:
                self.row_changes.append((table, name, "removed", values, None))


@contextmanager
def recorded_event(
    connection: CatalogConnection,
    kind: str,
    summary: str,
    read_defaults: Callable[[], Defaults],
    *,
    record: bool = True,
) -> Iterator[EventRecorder]:
    """Around the changes of one event, inside its write transaction: the defaults before and
    after (`read_defaults`, read through the same transaction) are compared, and the event, its
    row changes and its default changes are written (unless `record` is false: a dry run only
    fills `recorder.changes`)."""
    before = read_defaults()
    recorder = EventRecorder()
    yield recorder
    after = read_defaults()
    for policy in DEFAULT_POLICIES:
        compare_defaults(recorder.changes, policy, before[policy], after[policy])
    if not record:
        return
    occurred_at = rows.now_text()
    event_id = int(
        connection.execute(
            f"INSERT INTO {EVENTS.name} (kind, occurred_at, sync_id, summary, tool_version) "
            "VALUES (?, ?, ?, ?, ?) RETURNING id",
            (kind, occurred_at, recorder.sync_id, summary, __version__),
        ).fetchone()[0]
    )
    if recorder.row_changes:
        connection.executemany(
            f"INSERT INTO {CHANGE_LOG.name} (event_id, table_name, name, change, before, after) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [
                (event_id, table, name, change, _json(old), _json(new))
                for table, name, change, old, new in recorder.row_changes
            ],
        )
    moved = [
        (event_id, policy, change.model, change.before, change.after)
        for policy, changes in recorder.changes.default_changes.items()
        for change in changes
    ]
    if moved:
        connection.executemany(
            f"INSERT INTO {DEFAULT_CHANGE_LOG.name} (event_id, policy, model, before, after) "
            "VALUES (?, ?, ?, ?, ?)",
            moved,
        )
