"""HELM's SQLite cache directory as a `CacheStore`: `<directory>/<shard>.sqlite`, sqlitedict's
table `unnamed`.

Every move is made by the cheapest method that is correct for it:

- a whole shard into an absent target is a file: cloned (reflink) where the file system can,
  else copied by the kernel into a file whose space is reserved first, compared byte for
  byte, and published under its name in one step (`StagedMove`);
- in place, such a shard keeps its file and only changes its name (an atomic rename that
  never replaces a file), after its backup was copied beside it and verified;
- anything else (a whole shard into an existing target, some entries of a shard) is inserted
  in key order, by rowid, from the source attached to the target: the key index of the target
  then fills along its edge instead of at random, no value passes through Python, and the
  rows are read back and compared in the same way after each transaction.

Values are never decoded: they are moved as the bytes SQLite holds, so a value that is not a
valid pickle, or one whose unpickling would run code, moves unchanged and harmlessly.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from queue import Full, Queue
from typing import Any, BinaryIO, Final, TypeVar

from catalog.cache.store import (
    FILE_COPY,
    REFLINK,
    RENAME_BACKUP_COPY,
    RENAME_BACKUP_REFLINK,
    CacheStore,
    ConflictPolicy,
    Position,
    PutCounts,
    ShardListing,
    ShardProblem,
    ShardSnapshot,
    StagedMove,
    TargetConflictError,
    TargetRefusedError,
)
from catalog.errors import CacheMigrationError

T = TypeVar("T")
SHARD_SUFFIX: Final = ".sqlite"
BACKUP_SUFFIX: Final = ".pre-migration"
TEMP_SUFFIX: Final = ".migrating-tmp"
TABLE: Final = "unnamed"
# sqlitedict 2.1's table, byte for byte: HELM finds a shard we create exactly as one it made.
CREATE_TABLE_SQL: Final = f'CREATE TABLE IF NOT EXISTS "{TABLE}" (key TEXT PRIMARY KEY, value BLOB)'

# Keys read at a time when a shard's keys are routed.
CHUNK_ROWS = 2_000
# A writer's page cache. Larger caches measured no faster for inserts in key order (the
# index is written along its edge); SQLite's own default (2 MB) is about 40% slower for
# inserts at random.
WRITE_CACHE_KIB = 8 * 1024
BUSY_TIMEOUT_SECONDS = 30.0
# Chunks of keys read ahead of the routing (each CHUNK_ROWS keys, about 2 MB of 1 KB keys).
READ_AHEAD_CHUNKS = 4
_COMPARE_BLOCK = 8 * 2**20
# A copy is made and compared this much at a time (see _clone_or_copy).
_COPY_CHUNK = 64 * 2**20
_SQLITE_MAGIC = b"SQLite format 3\x00"
_SQLITE_COMPANIONS = (f"{SHARD_SUFFIX}-journal", f"{SHARD_SUFFIX}-wal", f"{SHARD_SUFFIX}-shm")
_MAX_NAME_BYTES = 200
# Linux's ioctl to clone a file's extents (reflink), and renameat2's flag not to replace.
_FICLONE: Final = 0x40049409
_RENAME_NOREPLACE: Final = 1
_AT_FDCWD: Final = -100

# The source's entries named by a JSON array of rowids, in the array's order: json_each runs
# the outer loop, so each row is fetched by rowid and inserted in the order given (key order).
_SELECTED: Final = (
    f'FROM json_each(:positions) AS m CROSS JOIN source."{TABLE}" AS s ON s.rowid = m.value'
)
_INSERT_SELECTED: Final = (
    f'INSERT INTO main."{TABLE}" (key, value) SELECT s.key, s.value {_SELECTED} '
    "WHERE true ON CONFLICT (key) DO NOTHING"
)
# (found in the source, of them present in the target, of those with the same value)
_COMPARE_BY_KEY: Final = (
    "SELECT count(*), count(t.key), count(CASE WHEN t.value IS s.value THEN 1 END) "
    f'{_SELECTED} LEFT JOIN main."{TABLE}" AS t ON t.key = s.key'
)
# Rows inserted by one statement into a table take consecutive rowids after the largest: the
# n-th source row must then be the row `first + n` of the target, key and value.
_COMPARE_BY_ROWID: Final = (
    f'SELECT count(*) {_SELECTED} CROSS JOIN main."{TABLE}" AS t ON t.rowid = :first + m.key '
    "WHERE t.key IS s.key AND t.value IS s.value"
)
_COUNT_CONFLICTS: Final = (
    f'SELECT count(*) {_SELECTED} JOIN main."{TABLE}" AS t ON t.key = s.key '
    "WHERE t.value IS NOT s.value"
)
_TAKE_SOURCE: Final = (
    f'UPDATE main."{TABLE}" AS t SET value = s.value FROM (SELECT s.key, s.value {_SELECTED}) '
    "AS s WHERE t.key = s.key AND t.value IS NOT s.value"
)
_PRUNE: Final = (
    f'DELETE FROM main."{TABLE}" WHERE rowid IN (SELECT s.rowid FROM json_each(:positions) AS m '
    f'CROSS JOIN main."{TABLE}" AS s ON s.rowid = m.value '
    f'JOIN dest."{TABLE}" AS t ON t.key = s.key AND t.value IS s.value)'
)


def shard_name_problem(name: str) -> str | None:
    """Why `name` cannot be a shard file name in a directory, or None if it can."""
    if name == "":
        return "the name is empty"
    if name in (".", ".."):
        return f"{name!r} names a directory"
    if "/" in name or "\\" in name or (os.altsep is not None and os.altsep in name):
        return f"{name!r} contains a path separator"
    if name.startswith("."):
        return f"{name!r} starts with a dot"
    if "\x00" in name:
        return f"{name!r} contains a NUL character"
    if len(name.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES:
        return f"{name[:40]!r}... is too long for a file name"
    return None


class SqliteDirectoryStore(CacheStore):
    """HELM's SQLite cache directory: `<directory>/<shard>.sqlite`, table `unnamed`.

    Read-only stores open every file with SQLite's `mode=ro` (never `immutable`, which would
    ignore another process's writes), so the directory is never changed: no journal, -wal or
    -shm file is created. Files in WAL mode are refused for that reason (sqlitedict never
    writes them). One instance belongs to one thread at a time: a migration that writes on a
    thread of its own gives that thread its own instance.

    `writers_welcome` is for readers that never hold a shard still (a scan): a shard with a
    journal, which another process is writing, is then not a problem but a shard to read.
    """

    def __init__(self, directory: Path, *, readonly: bool, writers_welcome: bool = False) -> None:
        self.directory = directory.absolute()
        self.readonly = readonly
        self.writers_welcome = writers_welcome
        self._connections: dict[str, sqlite3.Connection] = {}

    # Naming and listing ---------------------------------------------------------------------

    def describe(self, shard: str) -> str:
        return str(self.directory / f"{shard}{SHARD_SUFFIX}")

    def shard_name_problem(self, shard: str) -> str | None:
        return shard_name_problem(shard)

    def path_of(self, shard: str) -> Path:
        problem = shard_name_problem(shard)
        if problem is not None:
            raise TargetRefusedError(f"refusing shard name {shard!r}: {problem}")
        return self.directory / f"{shard}{SHARD_SUFFIX}"

    def list_shards(self) -> ShardListing:
        shards: list[str] = []
        problems: list[ShardProblem] = []
        ignored: list[str] = []
        with os.scandir(self.directory) as scan:
            names = sorted((entry.name, entry) for entry in scan)
        for name, entry in names:
            shard = name[: -len(SHARD_SUFFIX)]
            if name.endswith(_SQLITE_COMPANIONS):
                continue  # a shard's own journal: SQLite's business, not another file
            if not name.endswith(SHARD_SUFFIX) or shard_name_problem(shard) is not None:
                ignored.append(name)
            elif entry.is_symlink():
                problems.append(ShardProblem(name, "is a symbolic link; not followed"))
            elif not entry.is_file():
                problems.append(ShardProblem(name, "is not a regular file"))
            else:
                problem = self._shard_problem(shard)
                if problem is None:
                    shards.append(shard)
                else:
                    problems.append(ShardProblem(name, problem))
        return ShardListing(tuple(shards), tuple(problems), tuple(ignored))

    def _shard_problem(self, shard: str) -> str | None:
        """Why an existing file is not a sqlitedict cache this store can use, or None."""
        path = self.path_of(shard)
        linked = _linked_companion(path)
        if linked is not None:
            return linked
        with path.open("rb") as file:
            header = file.read(100)
        if header == b"":
            return f"is empty: not a sqlitedict cache (no {TABLE!r} table)"
        if not header.startswith(_SQLITE_MAGIC) or len(header) < 100:
            return "is not a SQLite database"
        journal = path.with_name(path.name + "-journal")
        busy = journal.exists() and journal.stat().st_size > 0
        if self.readonly and busy and not self.writers_welcome:
            return (
                f"has a journal ({journal.name}): another process is writing it, or one was "
                "killed mid-transaction; a read-only run cannot roll that back. Run again when "
                "HELM is not running, or open the file once with sqlite3 to roll it back"
            )
        if header[18] == 2 or header[19] == 2:
            return (
                "is in WAL journal mode, which sqlitedict never writes; reading it could create "
                "-wal/-shm files: convert it first with "
                f"sqlite3 {path} 'PRAGMA journal_mode=DELETE'"
            )
        try:
            connection = self._open(path, create=False)
            try:
                columns = connection.execute(f'PRAGMA table_info("{TABLE}")').fetchall()
                if not columns:
                    return f"has no {TABLE!r} table: not a sqlitedict cache"
                key_is_pk = any(c[1] == "key" and c[5] == 1 for c in columns)
                if not key_is_pk or {c[1] for c in columns} != {"key", "value"}:
                    return f"table {TABLE!r} is not sqlitedict's (key TEXT PRIMARY KEY, value BLOB)"
                connection.execute(f'SELECT rowid FROM "{TABLE}" LIMIT 1').fetchall()
            finally:
                connection.close()
        except sqlite3.DatabaseError as error:
            return f"cannot be read as a SQLite database: {error}"
        return None

    # Connections ----------------------------------------------------------------------------

    def _open(self, path: Path, *, create: bool) -> sqlite3.Connection:
        mode = "ro" if self.readonly else ("rwc" if create else "rw")
        connection = sqlite3.connect(
            f"{path.as_uri()}?mode={mode}",
            uri=True,
            isolation_level=None,
            timeout=BUSY_TIMEOUT_SECONDS,
            check_same_thread=False,
        )
        return connection

    def _connection(self, shard: str, *, create: bool = False) -> sqlite3.Connection:
        connection = self._connections.get(shard)
        if connection is None:
            path = self.path_of(shard)
            if path.is_symlink():
                raise TargetRefusedError(f"{path}: is a symbolic link; not followed")
            if create and not path.exists():
                if self.readonly:
                    raise TargetRefusedError(f"{path}: the store is read-only")
                linked = _linked_companion(path)
                if linked is not None:
                    raise TargetRefusedError(f"{path}: {linked}")
                self._publish_empty_shard(path)
            elif not path.exists():
                raise FileNotFoundError(2, "no such shard", str(path))
            else:
                problem = self._shard_problem(shard)
                if problem is not None:
                    raise TargetRefusedError(f"{path}: {problem}")
            connection = self._open(path, create=create)
            if create:
                connection.execute(CREATE_TABLE_SQL)
                connection.execute(f"PRAGMA cache_size = -{WRITE_CACHE_KIB}")
            self._connections[shard] = connection
        return connection

    def _publish_empty_shard(self, path: Path) -> None:
        """Create a shard with sqlitedict's table beside it, then give it its name.

        A reader (HELM, or sqlitedict opened read-only) that opens the name then finds the
        table, never an empty file. Should the name appear meanwhile, that file is used.
        """
        temporary = path.with_name(path.name + TEMP_SUFFIX)
        temporary.unlink(missing_ok=True)
        connection = sqlite3.connect(
            f"{temporary.as_uri()}?mode=rwc", uri=True, isolation_level=None
        )
        try:
            connection.execute(CREATE_TABLE_SQL)
        finally:
            connection.close()
        try:
            with suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
        _fsync_directory(self.directory)

    def _writable(self, shard: str) -> sqlite3.Connection:
        if self.readonly:
            raise TargetRefusedError(f"{self.describe(shard)}: the cache is opened read-only")
        return self._connection(shard, create=True)

    def release(self) -> None:
        connections, self._connections = self._connections, {}
        for connection in connections.values():
            connection.close()

    def release_shard(self, shard: str) -> None:
        connection = self._connections.pop(shard, None)
        if connection is not None:
            connection.close()

    def prepare_for_writing(self) -> None:
        if self.readonly or not self.directory.is_dir():
            return
        for pattern in (f"*{SHARD_SUFFIX}{TEMP_SUFFIX}", f"*{BACKUP_SUFFIX}*{TEMP_SUFFIX}"):
            for path in self.directory.glob(pattern):
                if path.is_file() and not path.is_symlink():
                    path.unlink()

    # Reading --------------------------------------------------------------------------------

    def exists(self, shard: str) -> bool:
        path = self.path_of(shard)
        return path.exists() or path.is_symlink()

    def count(self, shard: str) -> int:
        row = self._connection(shard).execute(f'SELECT count(*) FROM "{TABLE}"').fetchone()
        return int(row[0])

    def snapshot(self, shard: str) -> ShardSnapshot:
        return _Snapshot(self._open(self.path_of(shard), create=False))

    # Moving entries by position -------------------------------------------------------------

    def copy_entries(
        self,
        source: CacheStore,
        source_shard: str,
        positions: Sequence[Position],
        target_shard: str,
        on_conflict: ConflictPolicy,
        *,
        write: bool,
    ) -> PutCounts:
        wanted = len(positions)
        if not wanted:
            return PutCounts()
        marks = _positions_json(positions)
        source_uri = _uri(source, source_shard)
        if not write:
            if not self.exists(target_shard):
                return PutCounts(inserted=wanted)
            connection = self._connection(target_shard)
            with _attached(connection, source_uri, "source"):
                _, present, identical = connection.execute(
                    _COMPARE_BY_KEY, {"positions": marks}
                ).fetchone()
            return _would_put(self.describe(target_shard), wanted, present, identical, on_conflict)
        connection = self._writable(target_shard)
        with _attached(connection, source_uri, "source"):
            connection.execute("BEGIN IMMEDIATE")
            try:
                inserted = connection.execute(_INSERT_SELECTED, {"positions": marks}).rowcount
                last = int(connection.execute("SELECT last_insert_rowid()").fetchone()[0])
                counts = PutCounts(inserted=inserted)
                if inserted < wanted:
                    counts = self._settle_conflicts(
                        connection, marks, wanted, inserted, on_conflict, target_shard
                    )
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            self._verify(
                connection, marks, wanted, counts, last, target_shard, source, source_shard
            )
        return counts

    def _settle_conflicts(
        self,
        connection: sqlite3.Connection,
        marks: str,
        wanted: int,
        inserted: int,
        on_conflict: ConflictPolicy,
        target_shard: str,
    ) -> PutCounts:
        """After an insert that skipped keys already there: how many were identical, and what
        `on_conflict` does with the others (inside the insert's transaction)."""
        found, present, identical = connection.execute(
            _COMPARE_BY_KEY, {"positions": marks}
        ).fetchone()
        if found != wanted:
            raise CacheMigrationError(
                f"{self.describe(target_shard)}: {wanted - found} entries of the source "
                "changed while it was migrated (is HELM writing to it?); nothing was written "
                "for them: run the migration again"
            )
        differing = present - identical
        if differing and on_conflict == "fail":
            raise TargetConflictError(self.describe(target_shard), differing)
        if differing and on_conflict == "keep-source":
            connection.execute(_TAKE_SOURCE, {"positions": marks})
            return PutCounts(inserted, identical - inserted, 0, differing)
        return PutCounts(inserted, identical - inserted, differing, 0)

    def _verify(
        self,
        connection: sqlite3.Connection,
        marks: str,
        wanted: int,
        counts: PutCounts,
        last: int,
        target_shard: str,
        source: CacheStore,
        source_shard: str,
    ) -> None:
        """Read back what was just committed: every entry there, with the source's value
        (except the target's own, kept in a conflict)."""
        if counts.inserted == wanted:
            first = last - wanted + 1
            same = connection.execute(
                _COMPARE_BY_ROWID, {"positions": marks, "first": first}
            ).fetchone()[0]
            if same == wanted:
                return
        found, present, identical = connection.execute(
            _COMPARE_BY_KEY, {"positions": marks}
        ).fetchone()
        if found == present == wanted and identical == wanted - counts.kept_target:
            return
        raise CacheMigrationError(
            f"{self.describe(target_shard)}: verification failed after copying from "
            f"{source.describe(source_shard)}: {wanted - present} entries missing and "
            f"{present - identical - counts.kept_target} different after writing; the source "
            "is kept"
        )

    def count_conflicts(
        self,
        source: CacheStore,
        source_shard: str,
        positions: Sequence[Position],
        target_shard: str,
    ) -> int:
        if not positions or not self.exists(target_shard):
            return 0
        connection = self._connection(target_shard)
        with _attached(connection, _uri(source, source_shard), "source"):
            row = connection.execute(
                _COUNT_CONFLICTS, {"positions": _positions_json(positions)}
            ).fetchone()
        return int(row[0])

    def prune_entries(
        self, shard: str, positions: Sequence[Position], target: CacheStore, target_shard: str
    ) -> int:
        if not positions or not target.exists(target_shard):
            return 0
        connection = self._writable(shard)
        with _attached(connection, _uri(target, target_shard), "dest"):
            connection.execute("BEGIN IMMEDIATE")
            try:
                deleted = connection.execute(
                    _PRUNE, {"positions": _positions_json(positions)}
                ).rowcount
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
        return deleted

    # Whole shards ---------------------------------------------------------------------------

    def is_plain_cache_file(self, shard: str) -> bool:
        """True if the file holds sqlitedict's table and nothing else: a file copy is exact."""
        connection = self._open(self.path_of(shard), create=False)
        try:
            rows = connection.execute("SELECT type, name FROM sqlite_master").fetchall()
        finally:
            connection.close()
        return sorted(rows) == [("index", f"sqlite_autoindex_{TABLE}_1"), ("table", TABLE)]

    def stage_copy(
        self, source: CacheStore, source_shard: str, target_shard: str
    ) -> StagedMove | None:
        if not isinstance(source, SqliteDirectoryStore) or self.readonly:
            return None
        target = self.path_of(target_shard)
        if self.exists(target_shard) or not source.is_plain_cache_file(source_shard):
            return None
        linked = _linked_companion(target)
        if linked is not None:
            raise TargetRefusedError(f"{target}: {linked}")
        return _StagedCopy(source.path_of(source_shard), target)

    def stage_relocation(self, shard: str, target_shard: str) -> StagedMove | None:
        if self.readonly:
            return None
        source, target = self.path_of(shard), self.path_of(target_shard)
        left_linked = target.exists() and os.path.samefile(source, target)
        if (self.exists(target_shard) and not left_linked) or not self.is_plain_cache_file(shard):
            return None
        linked = _linked_companion(target)
        if linked is not None:
            raise TargetRefusedError(f"{target}: {linked}")
        return _StagedRelocation(source, target)

    def retire(self, shard: str) -> str:
        if self.readonly:
            raise TargetRefusedError(f"{self.describe(shard)}: the cache is opened read-only")
        self.release_shard(shard)
        path = self.path_of(shard)
        _refuse_if_being_written(path, "renamed")
        backup = next(name for name in _backup_names(path) if not _occupied(name))
        os.rename(path, backup)
        _fsync_directory(self.directory)
        return backup.name


class _Snapshot(ShardSnapshot):
    """A read transaction held on its own connection: the SHARED lock it keeps makes every
    other writer wait, so positions stay valid and the file stays as it was read."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection
        try:
            connection.execute("BEGIN")
            connection.execute(f'SELECT 1 FROM "{TABLE}" LIMIT 1').fetchall()
        except BaseException:
            connection.close()
            raise

    def positioned_keys(self) -> Iterator[list[tuple[Position, str]]]:
        return read_ahead(self._keys())

    def _keys(self) -> Iterator[list[tuple[Position, str]]]:
        # The primary-key index covers this query: the values are not read at all, and the
        # keys come in key order, which is the order every copy inserts them in.
        cursor = self._connection.execute(f'SELECT rowid, key FROM "{TABLE}" ORDER BY key')
        try:
            while rows := cursor.fetchmany(CHUNK_ROWS):
                yield rows
        finally:
            cursor.close()

    def close(self) -> None:
        with suppress(sqlite3.Error):
            if self._connection.in_transaction:
                self._connection.execute("COMMIT")
        self._connection.close()


class _StagedCopy(StagedMove):
    """A whole shard copied to `<target>.migrating-tmp`, compared, then hard-linked to its name:
    the target appears complete or not at all, and a file that appeared meanwhile under that
    name is never overwritten. The caller holds the source's snapshot throughout."""

    def __init__(self, source: Path, target: Path) -> None:
        self._source = source
        self._target = target
        self._temporary = target.with_name(target.name + TEMP_SUFFIX)
        self._method = FILE_COPY

    @property
    def method(self) -> str:
        return self._method

    def prepare(self) -> None:
        cloned = _copy_verified(self._source, self._temporary, self._target)
        self._method = REFLINK if cloned else FILE_COPY

    def publish(self) -> bool:
        try:
            os.link(self._temporary, self._target)
        except FileExistsError:
            return False
        finally:
            self._temporary.unlink(missing_ok=True)
        _fsync_directory(self._target.parent)
        return True

    def discard(self) -> None:
        self._temporary.unlink(missing_ok=True)


class _StagedRelocation(StagedMove):
    """In place, a whole shard into an absent target: the file itself is the target.

    `prepare` makes the backup: a verified copy (or clone) beside the shard, under a
    temporary name, or an existing backup that is already byte-identical (left by a run
    killed after publishing it). `publish` links the backup to its name, then renames the
    shard to its target with renameat2(RENAME_NOREPLACE): at every moment each entry is in
    the shard under its old name or its new one, a target that appeared is never replaced,
    and a kill leaves either the shard and its backup (the next run keeps that backup and
    renames) or the finished move.
    """

    def __init__(self, source: Path, target: Path) -> None:
        self._source = source
        self._target = target
        self._backup: Path | None = None
        self._temporary: Path | None = None
        self._method = RENAME_BACKUP_COPY

    @property
    def method(self) -> str:
        return self._method

    @property
    def backup(self) -> str | None:
        return self._backup.name if self._backup is not None else None

    def prepare(self) -> None:
        _refuse_if_being_written(self._source, "renamed")
        for candidate in _backup_names(self._source):
            if not _occupied(candidate):
                temporary = candidate.with_name(candidate.name + TEMP_SUFFIX)
                cloned = _copy_verified(self._source, temporary, candidate)
                self._method = RENAME_BACKUP_REFLINK if cloned else RENAME_BACKUP_COPY
                self._backup, self._temporary = candidate, temporary
                return
            if _is_regular(candidate) and _same_bytes(self._source, candidate):
                self._backup = candidate
                return

    def publish(self) -> bool:
        assert self._backup is not None, "prepare() first"
        created = self._temporary is not None
        if self._temporary is not None:
            try:
                os.link(self._temporary, self._backup)
            except FileExistsError:
                return False
            finally:
                self._temporary.unlink(missing_ok=True)
                self._temporary = None
            _fsync_directory(self._source.parent)
        _refuse_if_being_written(self._source, "renamed")
        if self._target.exists() and os.path.samefile(self._source, self._target):
            # A run killed inside the link-and-unlink fallback of the rename: finish it.
            os.unlink(self._source)
        else:
            try:
                _rename_noreplace(self._source, self._target)
            except FileExistsError:
                if created:
                    self._backup.unlink()
                self._backup = None
                return False
        _fsync_directory(self._source.parent)
        return True

    def discard(self) -> None:
        if self._temporary is not None:
            self._temporary.unlink(missing_ok=True)


def read_ahead(chunks: Iterator[T], depth: int = READ_AHEAD_CHUNKS) -> Iterator[T]:
    """The chunks of `chunks`, read by a thread of their own up to `depth` chunks ahead.

    The caller's work on each chunk (routing keys: Python, under its lock) then overlaps the
    reading of the next ones (SQLite releases the lock while it reads), which matters for a
    shard not in the page cache: reading and routing the keys of a cold 8 GB shard took 12.9 s
    instead of 14.3 s on the development machine.
    """
    queue: Queue[tuple[bool, Any]] = Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: tuple[bool, Any]) -> bool:
        """Queue `item` unless the caller stopped reading; False if it did."""
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for chunk in chunks:
                if not offer((True, chunk)):
                    return
            offer((False, None))
        except BaseException as error:  # handed to the caller, raised there
            offer((False, error))
        finally:
            # The source's own cleanup (closing its cursor) runs on the thread that read it.
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    reader = threading.Thread(target=produce, name="cache-read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            more, item = queue.get()
            if not more:
                if item is not None:
                    raise item
                return
            yield item
    finally:
        stop.set()
        reader.join()


def _uri(store: CacheStore, shard: str) -> str:
    if not isinstance(store, SqliteDirectoryStore):
        raise TypeError(f"a SQLite directory store cannot read {type(store).__name__}")
    return f"{store.path_of(shard).as_uri()}?mode=ro"


@contextmanager
def _attached(connection: sqlite3.Connection, uri: str, name: str) -> Iterator[None]:
    connection.execute(f"ATTACH DATABASE ? AS {name}", (uri,))
    try:
        yield
    finally:
        connection.execute(f"DETACH DATABASE {name}")


def _positions_json(positions: Sequence[Position]) -> str:
    return "[" + ",".join(map(str, positions)) + "]"


def _would_put(
    target: str, wanted: int, present: int, identical: int, on_conflict: ConflictPolicy
) -> PutCounts:
    """What copy_entries would do, from a comparison only (dry runs)."""
    differing = present - identical
    if differing and on_conflict == "fail":
        raise TargetConflictError(target, differing)
    return PutCounts(
        inserted=wanted - present,
        already_present=identical,
        kept_target=differing if on_conflict == "keep-target" else 0,
        took_source=differing if on_conflict == "keep-source" else 0,
    )


def _backup_names(path: Path) -> Iterator[Path]:
    """`<shard>.sqlite.pre-migration`, then `.pre-migration.2`, `.3`, ... in turn."""
    yield path.with_name(path.name + BACKUP_SUFFIX)
    number = 2
    while True:
        yield path.with_name(f"{path.name}{BACKUP_SUFFIX}.{number}")
        number += 1


def _occupied(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _is_regular(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def _refuse_if_being_written(path: Path, what: str) -> None:
    if (
        path.with_name(path.name + "-journal").exists()
        or path.with_name(path.name + "-wal").exists()
    ):
        raise CacheMigrationError(
            f"{path}: another process is writing it (a journal file is present); "
            f"it was not {what}: run the migration again when HELM is not running"
        )


def _linked_companion(path: Path) -> str | None:
    """A journal, -wal or -shm file of `path` that is a symbolic link: SQLite would write
    through it, outside the directory, so the shard is not touched at all."""
    for suffix in ("-journal", "-wal", "-shm"):
        companion = path.with_name(path.name + suffix)
        if companion.is_symlink():
            return (
                f"its {suffix[1:]} file {companion.name} is a symbolic link; not followed "
                "(remove the link to use this shard)"
            )
    return None


def _copy_verified(source: Path, temporary: Path, target: Path) -> bool:
    """Copy `source` to `temporary`, compared byte for byte and durable; True if cloned.

    A partial or differing copy is removed: it is no use to anyone, and on a full disk it
    holds the space.
    """
    temporary.unlink(missing_ok=True)
    try:
        cloned, same = _clone_or_copy(source, temporary)
    except OSError as error:
        with suppress(OSError):
            temporary.unlink()
        raise CacheMigrationError(
            f"{target}: the copy of {source} could not be written: "
            f"{error.strerror or error}; nothing was published"
        ) from error
    if not same:
        temporary.unlink()
        raise CacheMigrationError(
            f"{target}: the copy of {source} differs from it; nothing was published"
        )
    return cloned


def _clone_or_copy(source: Path, destination: Path) -> tuple[bool, bool]:
    """A reflink where the file system has them (instant, no space used), else a copy made by
    the kernel into space reserved first (so a full disk fails before anything is written, and
    the file is allocated in one piece). Returns (cloned, identical to the source).

    A copy is compared piece by piece as it is made, each piece while the page cache still
    holds both sides of it: comparing after the whole copy would read a shard larger than
    memory twice more from the disk.
    """
    with source.open("rb") as reader, destination.open("x+b") as writer:
        cloned = _reflink(reader, writer)
        if cloned:
            same = _same_range(reader.fileno(), writer.fileno(), 0, None)
        else:
            size = os.fstat(reader.fileno()).st_size
            _reserve(writer, size)
            copied, same = _copy_range(reader, writer)
            if copied != size:
                writer.truncate(copied)
        writer.flush()
        os.fsync(writer.fileno())
        same = same and os.fstat(reader.fileno()).st_size == os.fstat(writer.fileno()).st_size
    return cloned, same


def _reflink(reader: BinaryIO, writer: BinaryIO) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    import fcntl

    try:
        fcntl.ioctl(writer.fileno(), _FICLONE, reader.fileno())
    except OSError:
        return False  # not supported here (ext4, tmpfs, another file system): copy instead
    return True


def _reserve(writer: BinaryIO, size: int) -> None:
    if size == 0 or not hasattr(os, "posix_fallocate"):
        return
    try:
        os.posix_fallocate(writer.fileno(), 0, size)
    except OSError as error:
        if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise


def _copy_range(reader: BinaryIO, writer: BinaryIO) -> tuple[int, bool]:
    """Every byte of `reader` into `writer` from offset 0, each piece compared once written:
    (bytes copied, whether every piece is identical)."""
    copied = 0
    source, target = reader.fileno(), writer.fileno()
    while hasattr(os, "copy_file_range"):
        try:
            count = os.copy_file_range(source, target, _COPY_CHUNK, copied, copied)
        except OSError as error:
            unsupported = (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF)
            if copied or error.errno not in unsupported:
                raise
            break  # not between these files: copy through memory instead
        if not count:
            return copied, True
        if not _same_range(source, target, copied, count):
            return copied + count, False
        copied += count
    while block := os.pread(source, _COMPARE_BLOCK, copied):
        os.pwrite(target, block, copied)
        if os.pread(target, len(block), copied) != block:
            return copied + len(block), False
        copied += len(block)
    return copied, True


def _same_range(left: int, right: int, offset: int, length: int | None) -> bool:
    """Whether two open files hold the same bytes from `offset` for `length` bytes (to the end
    of the longer one if None)."""
    end = None if length is None else offset + length
    while end is None or offset < end:
        size = _COMPARE_BLOCK if end is None else min(_COMPARE_BLOCK, end - offset)
        block = os.pread(left, size, offset)
        if block != os.pread(right, size, offset):
            return False
        if not block:
            return True
        offset += len(block)
    return True


def _same_bytes(left: Path, right: Path) -> bool:
    if left.stat().st_size != right.stat().st_size:
        return False
    with left.open("rb") as a, right.open("rb") as b:
        while True:
            block = a.read(_COMPARE_BLOCK)
            if block != b.read(_COMPARE_BLOCK):
                return False
            if not block:
                return True


def _rename_noreplace(source: Path, target: Path) -> None:
    """Rename `source` to `target` in one step, or raise FileExistsError if `target` exists.

    renameat2(RENAME_NOREPLACE) where the C library and the file system have it; else a hard
    link and an unlink, which leaves both names for a moment (a run killed then finishes it:
    `_StagedRelocation.publish`).
    """
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = getattr(libc, "renameat2", None)
        if renameat2 is not None:
            renameat2.argtypes = (
                ctypes.c_int,
                ctypes.c_char_p,
                ctypes.c_int,
                ctypes.c_char_p,
                ctypes.c_uint,
            )
            result = renameat2(
                _AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), _RENAME_NOREPLACE
            )
            if result == 0:
                return
            code = ctypes.get_errno()
            if code not in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise OSError(code, os.strerror(code), str(source), None, str(target))
    os.link(source, target)
    os.unlink(source)


def _fsync_directory(directory: Path) -> None:
    """Make a rename or link in `directory` durable."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
