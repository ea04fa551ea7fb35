"""Connections to the catalog, and the one way to run a transaction on one.

Every module that touches the catalog goes through `CatalogConnection`: statements with `?`
placeholders, `read()` for a multi-query read that must see one state of the catalog, `write()`
for a change that applies completely or not at all. SQLite specifics (pragmas, BEGIN IMMEDIATE,
`data_version`, its error codes) stay in this package, so a second backend is a second
implementation here, not a change elsewhere.

Reads and writes use the standard library's sqlite3: importing SQLAlchemy costs more than a
whole lookup. Only schema changes (Alembic) go through a SQLAlchemy engine, built here with the
same settings.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from catalog.db import failures
from catalog.db.location import POSTGRESQL, DatabaseLocation
from catalog.db.revisions import KNOWN_REVISIONS
from catalog.errors import (
    CatalogError,
    DatabaseBusyError,
    DatabaseError,
    IntegrityViolationError,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

BUSY_TIMEOUT_MS = failures.BUSY_TIMEOUT_MS


class Rows(Protocol):
    """What a statement returns: the part of a DB-API cursor the package uses."""

    @property
    def description(self) -> Any: ...

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class CatalogConnection:
    """An open catalog database: statements, read snapshots and write transactions.

    `execute` and `executemany` take SQL with `?` placeholders. On SQLite they are the driver's
    own methods, so a lookup pays nothing for this layer.
    """

    dialect = "sqlite"
    raw: Any
    """The driver's connection (sqlite3's here, psycopg's for PostgreSQL)."""
    execute: Callable[..., Rows]
    executemany: Callable[[str, Iterable[Sequence[Any]]], Rows]

    def __init__(self, raw: sqlite3.Connection, location: DatabaseLocation) -> None:
        self.raw = raw
        self.location = location
        self.execute = raw.execute
        self.executemany = raw.executemany

    @property
    def in_transaction(self) -> bool:
        return bool(self.raw.in_transaction)

    def data_version(self) -> tuple[int, int]:
        """Changes whenever the catalog may have changed: a commit by any connection (SQLite's
        data_version moves for the others' commits, total_changes for this one's)."""
        return self.raw.execute("PRAGMA data_version").fetchone()[0], self.raw.total_changes

    @contextmanager
    def read(self) -> Iterator[None]:
        """One read transaction around a multi-query read, so a concurrent sync is seen whole.

        Inside a caller's transaction the caller's view is already consistent: nothing to do.
        """
        if self.raw.in_transaction:
            yield
            return
        self.raw.execute("BEGIN")
        try:
            yield
        finally:
            if self.raw.in_transaction:
                self.raw.execute("COMMIT")

    @contextmanager
    def write(self, what: str = "the change", *, commit: bool = True) -> Iterator[None]:
        """One write transaction: it takes the write lock at its start (a second writer queues
        for up to the busy timeout), commits when the block ends (rolls back instead if not
        `commit`, as a dry run does), and rolls back on any error.

        SQLite's failures become errors that say what to do: locked, read-only, disk full, a
        broken constraint. Either way the database is as it was.
        """
        try:
            self.raw.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                if self.raw.in_transaction:
                    self.raw.execute("ROLLBACK")
                raise
            if commit:
                self.raw.execute("COMMIT")
            else:
                self.raw.execute("ROLLBACK")
        except sqlite3.Error as error:
            if self.raw.in_transaction:
                self.raw.execute("ROLLBACK")
            raise write_failure(self.location, what, error) from error

    def reset_sequences(self, columns: Sequence[tuple[str, str]]) -> None:
        """After rows were inserted with their ids: nothing to do, SQLite continues from the
        largest id."""

    def table_names(self) -> set[str]:
        """The database's tables (not views)."""
        return table_names(self.raw)

    def equals_ignoring_case(self, column: str) -> str:
        """SQL that compares `column` with the next `?` parameter, ignoring ASCII case."""
        return f"{column} = ? COLLATE NOCASE"

    def foreign_key_violations(self) -> list[tuple[str, int | None, str, int]]:
        """Rows whose reference points at nothing: (table, rowid, parent table, key id)."""
        return [tuple(row) for row in self.raw.execute("PRAGMA foreign_key_check").fetchall()]

    def foreign_key_columns(self, table: str, key_id: int) -> list[str]:
        """The columns of one foreign key of `table` (names from SQLite's own schema)."""
        quoted = '"' + table.replace('"', '""') + '"'
        return [
            row[3]
            for row in self.raw.execute(f"PRAGMA foreign_key_list({quoted})")
            if row[0] == key_id
        ]

    def close(self) -> None:
        self.raw.close()


def write_failure(location: DatabaseLocation, what: str, error: sqlite3.Error) -> CatalogError:
    """The project's error for a failed write transaction."""
    hint = failures.failure_hint(error)
    message = f"{location.display}: {what} was not written ({error}); the database is unchanged"
    if isinstance(error, sqlite3.IntegrityError):
        return IntegrityViolationError(message, hint=hint)
    if failures.sqlite_code(error) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return DatabaseBusyError(message, hint=hint)
    return DatabaseError(message, hint=hint)


def apply_connection_pragmas(connection: Any, *, writable: bool = True) -> None:
    """Foreign keys on, a busy timeout, and WAL so readers never block the writer.

    WAL is a lasting property of the file, so it is set only on a new database or a catalog at
    a revision this version knows: another application's database, or one made by a newer
    model-catalog, must stay byte for byte as it was (the schema check then refuses it).
    """
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    connection.execute("PRAGMA foreign_keys = ON")
    if writable:
        mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() != "wal" and _is_ours_to_change(connection):
            connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")


def _is_ours_to_change(connection: Any) -> bool:
    """A database without tables, or a catalog at a revision this version knows (or at base)."""
    names = {
        row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    if not names:
        return True
    if "alembic_version" not in names:
        return False
    row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    return row is None or row[0] in KNOWN_REVISIONS


def connect_raw(
    location: DatabaseLocation, *, readonly: bool = False, inspect: bool = False
) -> sqlite3.Connection:
    """A sqlite3 connection in autocommit mode (transactions are begun explicitly).

    `readonly` opens the file with SQLite's `mode=ro`. `inspect` is for a quick look at a file
    that may not be ours: it is never created, its journal mode is left as it is, and as the
    last connection to close it removes the -wal and -shm files (a `mode=ro` one cannot).
    """
    if readonly or inspect:
        uri = location.path.as_uri() + ("?mode=ro" if readonly else "?mode=rw")
        connection = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    else:
        connection = sqlite3.connect(location.path, isolation_level=None, check_same_thread=False)
    try:
        apply_connection_pragmas(connection, writable=not (readonly or inspect))
    except sqlite3.DatabaseError as error:
        connection.close()
        raise failures.open_failure(location, error) from error
    return connection


def connect(location: DatabaseLocation) -> CatalogConnection:
    """The catalog's connection for reading and writing, on its backend."""
    if location.dialect == POSTGRESQL:
        from catalog.db.postgres import connect_postgres

        return connect_postgres(location)
    return CatalogConnection(connect_raw(location), location)


def table_names(raw: Any) -> set[str]:
    """The tables of a database (not views), from SQLite's own schema table."""
    return {row[0] for row in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def is_empty(raw: Any) -> bool:
    return int(raw.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]) == 0


def create_engine(location: DatabaseLocation) -> Engine:
    """A SQLAlchemy engine (for Alembic) whose transactions take the write lock at BEGIN.

    pysqlite's own transaction handling is turned off so that BEGIN IMMEDIATE is ours: a schema
    change then queues behind a running sync instead of failing halfway. (On PostgreSQL the
    migration takes the catalog's advisory write lock itself.)
    """
    from sqlalchemy import create_engine as sa_create_engine
    from sqlalchemy import event
    from sqlalchemy.engine import URL
    from sqlalchemy.pool import NullPool

    if location.dialect == POSTGRESQL:
        return sa_create_engine(location.url, poolclass=NullPool)

    # Built from parts, not parsed from a string: a path may hold '?', '#' or '%'.
    url = URL.create("sqlite", database=str(location.path))
    engine = sa_create_engine(url, poolclass=NullPool)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        apply_connection_pragmas(dbapi_connection)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


__all__ = [
    "BUSY_TIMEOUT_MS",
    "CatalogConnection",
    "DatabaseError",
    "Rows",
    "connect",
    "connect_raw",
    "create_engine",
    "write_failure",
]
