"""What a failure of SQLite or of the file system means for the user, and what to do about it.

Errors reach users as `error: ...` with a `hint: ...` line; the hint comes from here, chosen by
SQLite's result code or the OS errno, so every command words the same failure the same way.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from typing import Any

from catalog.db.location import DatabaseLocation
from catalog.errors import DatabaseError, NotACatalogError

BUSY_TIMEOUT_MS = 30_000


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


def sqlite_code(error: BaseException | None) -> int:
    """SQLite's primary result code of an error (0 if it has none)."""
    return (getattr(error, "sqlite_errorcode", None) or 0) & 0xFF


BUSY_HINT = (
    "another process is writing the catalog and kept it locked for longer than the "
    f"{BUSY_TIMEOUT_MS // 1000} s this command waits: run it again once that one has finished"
)
INCONSISTENT_HINT = (
    "`catalog check` lists every such problem; `catalog sync` rebuilds the catalog from its sources"
)
DAMAGED_HINT = (
    "the database file is damaged: restore it from a backup, or move it away and run "
    "`catalog sync` to build the catalog again from its YAML files"
)
_NO_SPACE_HINT = (
    "the disk is full, over quota or past a file-size limit: free some space and run the same "
    "command again"
)
_UNWRITABLE_HINT = (
    "the file or its directory cannot be written (a read-only file system, an immutable "
    "file, or permissions)"
)
# By SQLite's primary result code: what the user can do about it.
_HINTS: dict[int, str] = {
    sqlite3.SQLITE_BUSY: BUSY_HINT,
    sqlite3.SQLITE_LOCKED: BUSY_HINT,
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
    sqlite3.SQLITE_CORRUPT: DAMAGED_HINT,
    sqlite3.SQLITE_NOTADB: (
        "the file is not an SQLite database: give another --db path, or move this file away"
    ),
    sqlite3.SQLITE_CANTOPEN: (
        "SQLite cannot open the file: check that its directory exists and can be written (a "
        "catalog keeps its -wal and -shm files beside it, so even reading needs a writable "
        "directory); or copy the catalog to a writable place and give that --db"
    ),
}
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
    if found is not None and getattr(found, "sqlite_errorcode", None) is not None:
        return (_HINTS if catalog else _STORAGE_HINTS).get(sqlite_code(found))
    current: BaseException | None = error
    for _ in range(8):  # the error itself or what caused it
        if current is None:
            break
        if isinstance(current, OSError) and current.errno in _OS_HINTS:
            return _OS_HINTS[current.errno]
        current = current.__cause__ or current.__context__
    return None


def open_failure(location: DatabaseLocation, error: sqlite3.Error) -> DatabaseError:
    """Why SQLite could not open the catalog, in terms of what the user can change."""
    path = location.path
    code = sqlite_code(error)
    if code == sqlite3.SQLITE_NOTADB:
        return NotACatalogError(
            f"{path} is not an SQLite database, so not a model-catalog database",
            hint="give another --db path, or move this file away",
        )
    if code == sqlite3.SQLITE_CANTOPEN:
        if path.is_dir():
            return DatabaseError(f"{path} is a directory: give the path of a catalog file")
        if not path.parent.is_dir():
            return DatabaseError(f"{path}: its directory {path.parent} does not exist")
        if path.exists() and not os.access(path.parent, os.W_OK):
            return DatabaseError(
                f"{path}: cannot open the catalog: its directory is read-only, and SQLite must "
                f"create {path.name}-shm beside a catalog (it is in WAL mode) even to read it",
                hint="copy the catalog to a writable directory and give that --db",
            )
        if path.exists() and not os.access(path, os.R_OK):
            return DatabaseError(f"{path}: cannot open the catalog: permission denied")
    return DatabaseError(f"{path}: cannot open the catalog database: {error}")


# The storage classes SQLite may hold for each kind of column (NULL where it is nullable).
_STORED_AS = {
    "string": "text",
    "text": "text",
    "date": "text",
    "datetime": "text",
    "json": "text",
    "integer": "integer",
    "big_integer": "integer",
    "boolean": "integer",
}


def wrong_values(connection: Any) -> list[str]:
    """Columns holding values of another type than the schema's, as sentences: what only a
    write around the tool (sqlite3 with a typo) can leave, and what no read expects."""
    from catalog.db.schema import TABLES  # the error path only: opening stays cheap

    found = []
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    for table in TABLES:
        if table.name not in tables:
            continue
        for column in table.columns:
            allowed = [_STORED_AS[column.type.value]] + (["null"] if column.nullable else [])
            marks = ", ".join("?" for _ in allowed)
            count, example = connection.execute(
                f"SELECT count(*), min(quote({column.name})) FROM {table.name} "
                f"WHERE typeof({column.name}) NOT IN ({marks})",
                allowed,
            ).fetchone()
            if count:
                found.append(
                    f"{table.name}.{column.name} holds {count} value(s) that are not "
                    f"{' or '.join(allowed)} (e.g. {str(example)[:40]})"
                )
    return found


def damage_report(location: DatabaseLocation) -> str | None:
    """What is wrong with the catalog file, or None if nothing: damage SQLite's quick_check
    finds, then rows that refer to missing rows, then values of the wrong type.

    Asked after an unexpected error: garbage handed over by a damaged or hand-edited file is
    the user's to fix, a bug is not, and only these checks tell the two apart.
    """
    if not location.path.is_file():
        return None
    try:
        connection = sqlite3.connect(f"{location.path.as_uri()}?mode=ro", uri=True)
        try:
            rows = connection.execute("PRAGMA quick_check(3)").fetchall()
            if rows == [("ok",)]:
                dangling = connection.execute("PRAGMA foreign_key_check").fetchall()
                if dangling:
                    table, _rowid, parent, _key = dangling[0]
                    return (
                        f"{location.path}: the catalog is inconsistent: {len(dangling)} row(s) "
                        f"refer to missing rows (first: a row of {table} refers to a missing "
                        f"row of {parent}); was it edited with foreign keys off?"
                    )
                wrong = wrong_values(connection)
                if wrong:
                    return f"{location.path}: the catalog is inconsistent: {'; '.join(wrong)}"
        finally:
            connection.close()
    except sqlite3.Error as error:
        if sqlite_code(error) not in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
            return None  # could not look: no reason to blame the file
        problem = str(error)
    else:
        if rows == [("ok",)]:
            return None
        problem = str(rows[0][0]).replace("\n", " ")[:200]
    return f"{location.path}: the database file is damaged ({problem})"
