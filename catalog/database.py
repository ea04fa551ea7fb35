"""Opening catalog databases: every connection gets foreign keys, WAL and a busy timeout.

Reads use the standard library's sqlite3 (importing SQLAlchemy costs more than a whole lookup);
writes and migrations use a SQLAlchemy engine built here with the same settings.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from catalog.errors import DatabaseError, NotACatalogError, UnsupportedDatabaseError
from catalog.revisions import KNOWN_REVISIONS

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


def connect(
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
        raise open_failure(location, error) from error
    return connection


def open_failure(location: DatabaseLocation, error: sqlite3.Error) -> DatabaseError:
    """Why SQLite could not open the catalog, in terms of what the user can change."""
    path = location.path
    code = (getattr(error, "sqlite_errorcode", None) or 0) & 0xFF
    if code == sqlite3.SQLITE_NOTADB:
        return NotACatalogError(
            f"{path} is not an SQLite database, so not a model-catalog database; "
            "give another --db path, or move this file away"
        )
    if code == sqlite3.SQLITE_CANTOPEN:
        if path.is_dir():
            return DatabaseError(f"{path} is a directory: give the path of a catalog file")
        if not path.parent.is_dir():
            return DatabaseError(f"{path}: its directory {path.parent} does not exist")
        if path.exists() and not os.access(path.parent, os.W_OK):
            return DatabaseError(
                f"{path}: cannot open the catalog: its directory is read-only, and SQLite must "
                f"create {path.name}-shm beside a catalog (it is in WAL mode) even to read it; "
                "copy the catalog to a writable directory and give that --db"
            )
        if path.exists() and not os.access(path, os.R_OK):
            return DatabaseError(f"{path}: cannot open the catalog: permission denied")
    return DatabaseError(f"{path}: cannot open the catalog database: {error}")


def sqlite_error_behind(error: BaseException) -> sqlite3.Error | None:
    """The sqlite3 error an exception stands for: itself, SQLAlchemy's `.orig`, or a cause."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sqlite3.Error):
            return current
        original = getattr(current, "orig", None)
        if isinstance(original, sqlite3.Error):
            return original
        current = current.__cause__ or current.__context__
    return None


_BUSY_HINT = (
    "another process is writing the catalog and kept it locked for longer than the "
    f"{BUSY_TIMEOUT_MS // 1000} s this command waits: run it again once that one has finished"
)
# By SQLite's primary result code: what the user can do about it.
_HINTS: dict[int, str] = {
    sqlite3.SQLITE_BUSY: _BUSY_HINT,
    sqlite3.SQLITE_LOCKED: _BUSY_HINT,
    sqlite3.SQLITE_FULL: "the disk is full: free some space and run the same command again",
    sqlite3.SQLITE_IOERR: (
        "writing or reading the file failed: the disk may be full, over quota or past a "
        "file-size limit (or failing); fix that and run the same command again"
    ),
    sqlite3.SQLITE_READONLY: (
        "the database file or its directory cannot be written (a read-only file system, an "
        "immutable file, or permissions): reading still works; to write, copy the catalog to a "
        "writable place and give that --db"
    ),
    sqlite3.SQLITE_CORRUPT: (
        "the database file is damaged: restore it from a backup, or move it away and run "
        "`catalog sync` to build the catalog again from its YAML files"
    ),
    sqlite3.SQLITE_NOTADB: (
        "the file is not an SQLite database: give another --db path, or move this file away"
    ),
    sqlite3.SQLITE_CANTOPEN: (
        "SQLite cannot open the file: check that its directory exists and can be written (a "
        "catalog keeps its -wal and -shm files beside it, so even reading needs a writable "
        "directory); or copy the catalog to a writable place and give that --db"
    ),
}


_NO_SPACE_HINT = (
    "the disk is full, over quota or past a file-size limit: free some space and run the same "
    "command again"
)
_UNWRITABLE_HINT = (
    "the file or its directory cannot be written (a read-only file system, an immutable "
    "file, or permissions)"
)
_OS_HINTS: dict[int, str] = {
    errno.ENOSPC: _NO_SPACE_HINT,
    errno.EDQUOT: _NO_SPACE_HINT,
    errno.EFBIG: _NO_SPACE_HINT,
    errno.EROFS: _UNWRITABLE_HINT,
    errno.EACCES: _UNWRITABLE_HINT,
    errno.EPERM: _UNWRITABLE_HINT,
}


# For files other than the catalog (cache shards): only what any file can suffer.
_STORAGE_HINTS: dict[int, str] = {
    sqlite3.SQLITE_FULL: _HINTS[sqlite3.SQLITE_FULL],
    sqlite3.SQLITE_IOERR: _HINTS[sqlite3.SQLITE_IOERR],
    sqlite3.SQLITE_READONLY: _UNWRITABLE_HINT,
}


def failure_hint(error: BaseException, *, catalog: bool = True) -> str | None:
    """What to do about an error of SQLite or of the file system, or None for other errors.

    `catalog`: the error is about the catalog database (else about another SQLite file).
    """
    found = sqlite_error_behind(error)
    code = getattr(found, "sqlite_errorcode", None)
    if code is not None:
        return (_HINTS if catalog else _STORAGE_HINTS).get(code & 0xFF)
    current: BaseException | None = error
    for _ in range(8):  # the error itself or what caused it
        if current is None:
            break
        if isinstance(current, OSError) and current.errno in _OS_HINTS:
            return _OS_HINTS[current.errno]
        current = current.__cause__ or current.__context__
    return None


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
