"""`catalog history NAME`: every recorded change of one entry and of its default deployment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from catalog.db import rows
from catalog.db.records import Record
from catalog.errors import UnknownNameError

if TYPE_CHECKING:
    from catalog.db.connection import CatalogConnection


@dataclass(frozen=True)
class HistoryEntry(Record):
    """One change: of the entry (`table` models, deployments, tokenizers, pins or settings;
    `change` added, removed or changed) or of its default deployment (`table` defaults,
    `change` the policy: first, last or in_force)."""

    event_id: int
    event_kind: str
    occurred_at: str
    sync_id: int | None
    table: str
    change: str
    before: Any
    after: Any


class UnknownEntryError(UnknownNameError):
    kind = "model, deployment or tokenizer (in the catalog or its history)"


def entry_history(connection: CatalogConnection, name: str) -> list[HistoryEntry]:
    """Oldest first; the entry's own changes before its default changes of the same event.
    Changes of place alone (`moved`) are left out: they change no answer by themselves."""
    with connection.read():
        changes = connection.execute(
            "SELECT c.event_id, e.kind, e.occurred_at, e.sync_id, c.table_name, c.change, "
            "c.before, c.after, c.id FROM change_log AS c JOIN events AS e ON e.id = c.event_id "
            "WHERE c.name = ? AND c.change != 'moved'",
            (name,),
        ).fetchall()
        defaults = connection.execute(
            "SELECT d.event_id, e.kind, e.occurred_at, e.sync_id, 'defaults', d.policy, "
            "d.before, d.after, 0 FROM default_change_log AS d "
            "JOIN events AS e ON e.id = d.event_id WHERE d.model = ?",
            (name,),
        ).fetchall()
        if not changes and not defaults:
            known = [
                row[0]
                for row in connection.execute(
                    "SELECT name FROM models UNION SELECT name FROM deployments "
                    "UNION SELECT name FROM tokenizers UNION SELECT name FROM change_log"
                )
            ]
            if name not in known:
                raise UnknownEntryError(name, known)
    entries = []
    for event_id, kind, at, sync_id, table, change, before, after, order in sorted(
        [*changes, *defaults], key=lambda row: (row[0], row[4] == "defaults", row[8], row[5])
    ):
        del order
        if table != "defaults":
            before = rows.decode_json(before)
            after = rows.decode_json(after)
        entries.append(HistoryEntry(event_id, kind, str(at), sync_id, table, change, before, after))
    return entries
