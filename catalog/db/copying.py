"""`catalog copy`: a whole catalog, from one database to another, verified.

Every table is copied row for row (entries, pins, settings, syncs and their files, the history),
ids kept, in foreign-key order and in one transaction on the target; then each table is compared
on both sides by its row count and a hash of its rows, so a personal SQLite catalog moves to the
team's PostgreSQL server (and a snapshot comes home) with nothing lost or changed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from catalog.db import rows
from catalog.db.records import Record, jsonable
from catalog.db.schema import MODELS, PINS, SETTINGS, SYNCS, TABLES, Table
from catalog.errors import DatabaseError

if TYPE_CHECKING:
    from catalog.db.connection import CatalogConnection

# Every table; the schema lists parents before children.
COPIED_TABLES: tuple[Table, ...] = TABLES


@dataclass(frozen=True)
class TableCopy(Record):
    table: str
    rows: int
    sha256: str
    verified: bool


@dataclass(frozen=True)
class CopyReport(Record):
    source: str
    target: str
    tables: tuple[TableCopy, ...]

    @property
    def verified(self) -> bool:
        return all(t.verified for t in self.tables)

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "verified": self.verified}


def _ordered_rows(connection: CatalogConnection, table: Table) -> list[dict[str, Any]]:
    reader = rows.RecordReader[Any](table)
    order = ", ".join(table.primary_key)
    found = connection.execute(
        f"SELECT {rows.column_list(table)} FROM {table.name} ORDER BY {order}"
    )
    return [reader.values(row) for row in found]


def table_digest(connection: CatalogConnection, table: Table) -> tuple[int, str]:
    """(rows, sha256 of the rows as canonical JSON, in key order): equal on two backends
    exactly when they hold the same values."""
    digest = hashlib.sha256()
    count = 0
    for values in _ordered_rows(connection, table):
        digest.update(json.dumps(jsonable(values), sort_keys=True).encode())
        digest.update(b"\n")
        count += 1
    return count, digest.hexdigest()


def holds_data(connection: CatalogConnection) -> bool:
    """Anything but the empty history a new catalog starts with."""
    for table in (MODELS, SYNCS, PINS, SETTINGS):
        if connection.execute(f"SELECT 1 FROM {table.name} LIMIT 1").fetchone() is not None:
            return True
    return (
        connection.execute("SELECT 1 FROM events WHERE kind != 'baseline' LIMIT 1").fetchone()
        is not None
    )


def copy_catalog(
    source: CatalogConnection, target: CatalogConnection, *, force: bool = False
) -> CopyReport:
    """Make `target` hold exactly what `source` holds; refused if `target` holds a catalog
    already, unless `force` (its rows are then replaced)."""
    if holds_data(target) and not force:
        raise DatabaseError(
            f"{target.location.display} already holds a catalog; nothing was copied",
            hint="copy into a new or empty database, or give --force to replace what it holds",
        )
    with source.read():
        content = {table.name: _ordered_rows(source, table) for table in COPIED_TABLES}
        expected = {table.name: table_digest(source, table) for table in COPIED_TABLES}
    with target.write("the copy"):
        for table in reversed(COPIED_TABLES):
            target.execute(f"DELETE FROM {table.name}")
        for table in COPIED_TABLES:
            batch = [rows.encode_row(table, values) for values in content[table.name]]
            if batch:
                target.executemany(rows.insert_sql(table), batch)
        target.reset_sequences([(t.name, c.name) for t in COPIED_TABLES for c in t.columns
                                if c.autoincrement])  # fmt: skip
    copies = []
    with target.read():
        for table in COPIED_TABLES:
            count, sha = table_digest(target, table)
            copies.append(TableCopy(table.name, count, sha, (count, sha) == expected[table.name]))
    report = CopyReport(source.location.display, target.location.display, tuple(copies))
    if not report.verified:
        wrong = [t.table for t in copies if not t.verified]
        raise DatabaseError(
            f"{target.location.display}: the copy differs from the source in {', '.join(wrong)}"
        )
    return report
