"""HELM's SQLite cache directory as a `CacheStore`: `<directory>/<shard>.sqlite`, sqlitedict's
table `unnamed`.

Values are never decoded: they are moved as the bytes SQLite holds, so a value that is not a
valid pickle, or one whose unpickling would run code, moves unchanged and harmlessly.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Final

from catalog.cache.store import (
    CacheStore,
    ConflictPolicy,
    Entry,
    Matching,
    PutCounts,
    ShardCopy,
    ShardListing,
    ShardProblem,
    SqlValue,
    TargetConflictError,
    TargetRefusedError,
    entry_size,
    same_value,
)
from catalog.errors import CacheMigrationError

SHARD_SUFFIX: Final = ".sqlite"
BACKUP_SUFFIX: Final = ".pre-migration"
TEMP_SUFFIX: Final = ".migrating-tmp"
TABLE: Final = "unnamed"
# sqlitedict 2.1's table, byte for byte: HELM finds a shard we create exactly as one it made.
CREATE_TABLE_SQL: Final = f'CREATE TABLE IF NOT EXISTS "{TABLE}" (key TEXT PRIMARY KEY, value BLOB)'

CHUNK_ROWS = 2_000
CHUNK_BYTES = 8 * 2**20
# Rows fetched at a time within a chunk (a chunk can pass CHUNK_BYTES by this many values).
FETCH_ROWS = 64
# A writer's page cache: random inserts into the key index stay mostly in memory. SQLite's
# own default (2 MB) makes inserts of ~1 KB keys about 40% slower.
WRITE_CACHE_KIB = 8 * 1024
# Under SQLite's historical limit of 999 bound parameters per statement.
LOOKUP_BATCH = 900
BUSY_TIMEOUT_SECONDS = 30.0
_COPY_BLOCK = 2**20
_SQLITE_MAGIC = b"SQLite format 3\x00"
_SQLITE_COMPANIONS = (f"{SHARD_SUFFIX}-journal", f"{SHARD_SUFFIX}-wal", f"{SHARD_SUFFIX}-shm")
_MAX_NAME_BYTES = 200


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
    writes them).
    """

    def __init__(self, directory: Path, *, readonly: bool) -> None:
        self.directory = directory.absolute()
        self.readonly = readonly
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
        if self.readonly and journal.exists() and journal.stat().st_size > 0:
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
        for path in self.directory.glob(f"*{SHARD_SUFFIX}{TEMP_SUFFIX}"):
            if path.is_file() and not path.is_symlink():
                path.unlink()

    # Reading --------------------------------------------------------------------------------

    def exists(self, shard: str) -> bool:
        path = self.path_of(shard)
        return path.exists() or path.is_symlink()

    def count(self, shard: str) -> int:
        row = self._connection(shard).execute(f'SELECT count(*) FROM "{TABLE}"').fetchone()
        return int(row[0])

    def iter_keys(self, shard: str) -> Iterator[list[str]]:
        # The primary-key index covers this query: the values are not read at all.
        cursor = self._connection(shard).execute(f'SELECT key FROM "{TABLE}"')
        try:
            while rows := cursor.fetchmany(CHUNK_ROWS):
                yield [row[0] for row in rows]
        finally:
            cursor.close()

    def iter_entries(self, shard: str) -> Iterator[list[Entry]]:
        # Keyset pagination on rowid: no statement stays open between chunks, so the caller
        # may delete what it has handled; a chunk stops near CHUNK_BYTES whatever the values.
        connection = self._connection(shard)
        last_rowid: int | None = None
        while True:
            if last_rowid is None:
                cursor = connection.execute(
                    f'SELECT rowid, key, value FROM "{TABLE}" ORDER BY rowid'
                )
            else:
                cursor = connection.execute(
                    f'SELECT rowid, key, value FROM "{TABLE}" WHERE rowid > ? ORDER BY rowid',
                    (last_rowid,),
                )
            chunk: list[Entry] = []
            size = 0
            exhausted = False
            try:
                while len(chunk) < CHUNK_ROWS and size < CHUNK_BYTES:
                    rows = cursor.fetchmany(FETCH_ROWS)
                    if not rows:
                        exhausted = True
                        break
                    last_rowid = rows[-1][0]
                    chunk += [(key, value) for _, key, value in rows]
                    size += sum(entry_size(key, value) for _, key, value in rows)
            finally:
                cursor.close()
            if chunk:
                yield chunk
            if exhausted:
                return

    def get_many(self, shard: str, keys: Sequence[str]) -> dict[str, SqlValue]:
        if shard not in self._connections and not self.exists(shard):
            return {}
        return _lookup(self._connection(shard), keys)

    def count_matching(self, shard: str, entries: Sequence[Entry]) -> Matching:
        # Compared inside SQLite: no value is copied back into Python.
        if shard not in self._connections and not self.exists(shard):
            return Matching(0, 0)
        connection = self._connection(shard)
        present = identical = 0
        step = LOOKUP_BATCH // 2
        for start in range(0, len(entries), step):
            batch = entries[start : start + step]
            rows = ",".join("(?, ?)" for _ in batch)
            found, same = connection.execute(
                f"SELECT count(t.key), count(CASE WHEN t.value IS v.column2 THEN 1 END) "
                f'FROM (VALUES {rows}) AS v LEFT JOIN "{TABLE}" AS t ON t.key = v.column1',
                [item for entry in batch for item in entry],
            ).fetchone()
            present += found
            identical += same
        return Matching(present, identical)

    # Writing --------------------------------------------------------------------------------

    def _writable(self, shard: str) -> sqlite3.Connection:
        if self.readonly:
            raise TargetRefusedError(f"{self.describe(shard)}: the cache is opened read-only")
        return self._connection(shard, create=True)

    def put_many(
        self, shard: str, entries: Sequence[Entry], on_conflict: ConflictPolicy
    ) -> PutCounts:
        # Insert first: into a fresh target every row is new, and no lookup is needed at all.
        # In key order, consecutive inserts walk the key index along instead of at random.
        in_order: list[Entry] = sorted(entries, key=_by_key)
        connection = self._writable(shard)
        connection.execute("BEGIN IMMEDIATE")
        try:
            inserted = connection.executemany(
                f'INSERT INTO "{TABLE}" (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING',
                in_order,
            ).rowcount
            present = kept = replaced = 0
            if inserted < len(entries):
                present, differing = _already_there(connection, entries, inserted)
                if differing and on_conflict == "fail":
                    raise TargetConflictError(self.describe(shard), len(differing))
                if on_conflict == "keep-source":
                    # UPDATE, not INSERT OR REPLACE: the row keeps its rowid and its place.
                    connection.executemany(
                        f'UPDATE "{TABLE}" SET value = ? WHERE key = ?', differing
                    )
                    replaced = len(differing)
                else:
                    kept = len(differing)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        return PutCounts(inserted, present, kept, replaced)

    def delete_many(self, shard: str, keys: Sequence[str]) -> int:
        connection = self._writable(shard)
        deleted = 0
        connection.execute("BEGIN IMMEDIATE")
        try:
            for start in range(0, len(keys), LOOKUP_BATCH):
                batch = keys[start : start + LOOKUP_BATCH]
                marks = ",".join("?" * len(batch))
                cursor = connection.execute(f'DELETE FROM "{TABLE}" WHERE key IN ({marks})', batch)
                deleted += cursor.rowcount
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        return deleted

    def retire(self, shard: str) -> str:
        if self.readonly:
            raise TargetRefusedError(f"{self.describe(shard)}: the cache is opened read-only")
        self.release_shard(shard)
        path = self.path_of(shard)
        journal = path.with_name(path.name + "-journal")
        if journal.exists() or path.with_name(path.name + "-wal").exists():
            raise CacheMigrationError(
                f"{path}: another process is writing it (a journal file is present); "
                "it was not renamed: run the migration again when HELM is not running"
            )
        backup = path.with_name(path.name + BACKUP_SUFFIX)
        number = 1
        while backup.exists() or backup.is_symlink():
            number += 1
            backup = path.with_name(f"{path.name}{BACKUP_SUFFIX}.{number}")
        os.rename(path, backup)
        _fsync_directory(self.directory)
        return backup.name

    # Whole-shard fast paths -----------------------------------------------------------------

    def copy_shard(
        self,
        source: CacheStore,
        source_shard: str,
        target_shard: str,
        on_conflict: ConflictPolicy,
        *,
        write: bool,
    ) -> ShardCopy | None:
        if not isinstance(source, SqliteDirectoryStore):
            return None
        if not self.exists(target_shard):
            if not write:
                return ShardCopy(PutCounts(inserted=source.count(source_shard)), False, "file copy")
            if source.is_plain_cache_file(source_shard):
                copied = self._copy_file(source, source_shard, target_shard)
                if copied is not None:
                    return copied
        return self._merge(source, source_shard, target_shard, on_conflict, write=write)

    def is_plain_cache_file(self, shard: str) -> bool:
        """True if the file holds sqlitedict's table and nothing else: a file copy is exact."""
        rows = self._connection(shard).execute("SELECT type, name FROM sqlite_master").fetchall()
        return sorted(rows) == [("index", f"sqlite_autoindex_{TABLE}_1"), ("table", TABLE)]

    def _copy_file(
        self, source: SqliteDirectoryStore, source_shard: str, target_shard: str
    ) -> ShardCopy | None:
        """Copy the file under a read lock, compare it byte for byte, then publish it.

        Publishing is a hard link of the finished temporary file, so the target name appears
        complete or not at all, and a target that appeared meanwhile is never overwritten.
        """
        target = self.path_of(target_shard)
        linked = _linked_companion(target)
        if linked is not None:
            raise TargetRefusedError(f"{target}: {linked}")
        temporary = target.with_name(target.name + TEMP_SUFFIX)
        source_path = source.path_of(source_shard)
        lock = source._connection(source_shard)
        lock.execute("BEGIN")
        try:
            # The shared lock taken by this read keeps writers out until COMMIT below.
            entries = int(lock.execute(f'SELECT count(*) FROM "{TABLE}"').fetchone()[0])
            temporary.unlink(missing_ok=True)
            try:
                with source_path.open("rb") as reader, temporary.open("xb") as writer:
                    while block := reader.read(_COPY_BLOCK):
                        writer.write(block)
                    writer.flush()
                    os.fsync(writer.fileno())
            except OSError as error:
                # A partial copy is no use to anyone, and on a full disk it holds the space.
                with suppress(OSError):
                    temporary.unlink()
                raise CacheMigrationError(
                    f"{target}: the copy of {source_path} could not be written: "
                    f"{error.strerror or error}; nothing was published"
                ) from error
            if not _same_bytes(source_path, temporary):
                temporary.unlink()
                raise CacheMigrationError(
                    f"{target}: the copy of {source_path} differs from it; nothing was published"
                )
            try:
                os.link(temporary, target)
            except FileExistsError:
                temporary.unlink()
                return None
            temporary.unlink()
            _fsync_directory(self.directory)
        finally:
            lock.execute("COMMIT")
        return ShardCopy(PutCounts(inserted=entries), True, "file copy")

    def _merge(
        self,
        source: SqliteDirectoryStore,
        source_shard: str,
        target_shard: str,
        on_conflict: ConflictPolicy,
        *,
        write: bool,
    ) -> ShardCopy:
        """All of a source shard into a target shard with ATTACH and INSERT ... SELECT."""
        source_uri = f"{source.path_of(source_shard).as_uri()}?mode=ro"
        if not write:
            if not self.exists(target_shard):
                return ShardCopy(PutCounts(inserted=source.count(source_shard)), False, "merge")
            connection = self._connection(target_shard)
        else:
            connection = self._writable(target_shard)
        connection.execute("ATTACH DATABASE ? AS source", (source_uri,))
        try:
            connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                total, present, differing = _compare_attached(connection)
                counts = PutCounts(
                    inserted=total - present,
                    already_present=present - differing,
                    kept_target=differing if on_conflict == "keep-target" else 0,
                    took_source=differing if on_conflict == "keep-source" else 0,
                )
                if differing and on_conflict == "fail":
                    raise TargetConflictError(self.describe(target_shard), differing)
                if write:
                    connection.execute(
                        f'INSERT INTO main."{TABLE}" (key, value) '
                        f'SELECT key, value FROM source."{TABLE}" WHERE true '
                        "ON CONFLICT (key) DO NOTHING"
                    )
                    if on_conflict == "keep-source" and differing:
                        connection.execute(
                            f'UPDATE main."{TABLE}" AS t SET value = s.value '
                            f'FROM source."{TABLE}" AS s '
                            "WHERE s.key = t.key AND t.value IS NOT s.value"
                        )
                    connection.execute("COMMIT")
            finally:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
            verified = False
            if write:
                after_total, after_present, after_differing = _compare_attached(connection)
                expected_differing = differing if on_conflict == "keep-target" else 0
                verified = (
                    after_total == after_present == total and after_differing == expected_differing
                )
                if not verified:
                    raise CacheMigrationError(
                        f"{self.describe(target_shard)}: verification failed after copying "
                        f"{source.describe(source_shard)}: {after_total - after_present} "
                        f"entries missing, {after_differing - expected_differing} different"
                    )
        finally:
            connection.execute("DETACH DATABASE source")
        return ShardCopy(counts, verified, "merge")


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


def _compare_attached(connection: sqlite3.Connection) -> tuple[int, int, int]:
    """(source entries, of them present in the target, of those with a different value)."""
    total = int(connection.execute(f'SELECT count(*) FROM source."{TABLE}"').fetchone()[0])
    present, differing = connection.execute(
        f'SELECT count(*), coalesce(sum(t.value IS NOT s.value), 0) FROM source."{TABLE}" AS s '
        f'JOIN main."{TABLE}" AS t ON t.key = s.key'
    ).fetchone()
    return total, int(present), int(differing)


def _already_there(
    connection: sqlite3.Connection, entries: Sequence[Entry], inserted: int
) -> tuple[int, list[tuple[SqlValue, str]]]:
    """After an insert that skipped existing keys: how many of those were identical, and the
    (source value, key) of those that differ."""
    found = _lookup(connection, [key for key, _ in entries])
    identical = 0
    differing: list[tuple[SqlValue, str]] = []
    for key, value in entries:
        if same_value(found[key], value):
            identical += 1
        else:
            differing.append((value, key))
    # The rows just inserted are found with the source's value: they are not "present".
    return identical - inserted, differing


def _lookup(connection: sqlite3.Connection, keys: Sequence[str]) -> dict[str, SqlValue]:
    found: dict[str, SqlValue] = {}
    for start in range(0, len(keys), LOOKUP_BATCH):
        batch = keys[start : start + LOOKUP_BATCH]
        marks = ",".join("?" * len(batch))
        found.update(
            connection.execute(
                f'SELECT key, value FROM "{TABLE}" WHERE key IN ({marks})', batch
            ).fetchall()
        )
    return found


def _same_bytes(left: Path, right: Path) -> bool:
    if left.stat().st_size != right.stat().st_size:
        return False
    with left.open("rb") as a, right.open("rb") as b:
        while True:
            block = a.read(_COPY_BLOCK)
            if block != b.read(_COPY_BLOCK):
                return False
            if not block:
                return True


def _fsync_directory(directory: Path) -> None:
    """Make a rename or link in `directory` durable."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _by_key(entry: Entry) -> str:
    return entry[0]
