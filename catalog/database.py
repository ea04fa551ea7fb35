"""Opening catalog databases: every connection gets foreign keys, WAL and a busy timeout.

Reads use the standard library's sqlite3 (importing SQLAlchemy costs more than a whole lookup);
writes and migrations use a SQLAlchemy engine built here with the same settings.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from catalog.errors import DatabaseError, NotACatalogError, UnsupportedDatabaseError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

DEFAULT_DB = "catalog.db"
DB_ENV_VAR = "CATALOG_DB"
BUSY_TIMEOUT_MS = 30_000


@dataclass(frozen=True)
class DatabaseLocation:
    """Where a catalog lives; only SQLite files are served by this version."""

    path: Path

    @property
    def url(self) -> str:
        """A `sqlite:///` URL that parse() reads back to the same path (it is percent-encoded)."""
        return f"sqlite:///{quote(str(self.path))}"

    @classmethod
    def parse(cls, path_or_url: str | os.PathLike[str] | None = None) -> DatabaseLocation:
        """A path, a `sqlite:///` URL, or None (then $CATALOG_DB, else ./catalog.db)."""
        if path_or_url is None:
            path_or_url = os.environ.get(DB_ENV_VAR) or DEFAULT_DB
        text = os.fspath(path_or_url)
        if "://" in text:
            scheme, _, rest = text.partition("://")
            if scheme.split("+")[0] != "sqlite":
                raise UnsupportedDatabaseError(
                    f"{scheme}:// databases are not supported yet: give a SQLite path or a "
                    "sqlite:///PATH URL"
                )
            rest = rest.split("?")[0]
            if rest in ("", "/", "/:memory:"):
                raise UnsupportedDatabaseError(
                    "an in-memory catalog cannot be shared between connections: give a file path"
                )
            # sqlite:///relative.db and sqlite:////absolute.db, as SQLAlchemy reads them.
            text = unquote(rest[1:] if rest.startswith("/") else rest)
        if text == "" or text == ":memory:":
            raise UnsupportedDatabaseError(
                "the catalog needs a file path, not an in-memory database"
            )
        return cls(Path(text).expanduser().absolute())


def apply_connection_pragmas(connection: Any, *, writable: bool = True) -> None:
    """Foreign keys on, a busy timeout, and WAL so readers never block the writer.

    WAL is a lasting property of the file, so it is not set on another application's database:
    opening one must leave it byte for byte as it was (the schema check then refuses it).
    """
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    connection.execute("PRAGMA foreign_keys = ON")
    if writable:
        mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() != "wal" and not _belongs_to_another_application(connection):
            connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")


def _belongs_to_another_application(connection: Any) -> bool:
    """Tables, but no Alembic version table: not a catalog, nor a new database."""
    names = {
        row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    return bool(names) and "alembic_version" not in names


def connect(location: DatabaseLocation, *, readonly: bool = False) -> sqlite3.Connection:
    """A sqlite3 connection in autocommit mode (transactions are begun explicitly)."""
    if readonly:
        uri = location.path.as_uri() + "?mode=ro"
        connection = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    else:
        connection = sqlite3.connect(location.path, isolation_level=None, check_same_thread=False)
    try:
        apply_connection_pragmas(connection, writable=not readonly)
    except sqlite3.DatabaseError as error:
        connection.close()
        if getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_NOTADB:
            raise NotACatalogError(
                f"{location.path} is not an SQLite database, so not a model-catalog database; "
                "give another --db path, or move this file away"
            ) from error
        raise DatabaseError(
            f"{location.path}: cannot open the catalog database: {error}"
        ) from error
    return connection


def create_engine(location: DatabaseLocation) -> Engine:
    """A SQLAlchemy engine whose transactions take the write lock at BEGIN.

    pysqlite's own transaction handling is turned off so that BEGIN IMMEDIATE is ours: two
    syncs at once then queue on the busy timeout instead of failing halfway.
    """
    from sqlalchemy import create_engine as sa_create_engine
    from sqlalchemy import event
    from sqlalchemy.engine import URL
    from sqlalchemy.pool import NullPool

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
