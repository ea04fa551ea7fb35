"""`catalog cache scan`: what a HELM cache holds, per shard and per model or deployment its keys
name, recorded in the catalog (table `cache_scan`, view `cached_responses`).

An entry is named by the routing rules' identifiers: its key's `model` and `engine` strings,
matched against the models and deployments named after its shard (catalog.cache.routing), so
a scan and a migration read a key alike. Of several matches, those whose name is an identifier
itself win, then a single deployment (the more precise: the one HELM runs on that host), then
a single model; otherwise the entry counts as `several`.

A scan never changes the cache and never holds it still: each shard is opened read-only
(`mode=ro`) and read in short statements of SCAN_ROWS rows by rowid, each its own read
transaction, so a HELM process writing the shard meanwhile waits at most for one of them.
Values are never read into Python (their length comes from SQLite), so memory stays flat
whatever the size of the cache.
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from catalog.cache.plan import require_directory, unreadable
from catalog.cache.routing import (
    Candidate,
    KeyIdentifiers,
    ShardRouting,
    catalog_router,
    key_identifiers,
)
from catalog.cache.sqlite_store import (
    BUSY_TIMEOUT_SECONDS,
    SHARD_SUFFIX,
    TABLE,
    SqliteDirectoryStore,
    read_ahead,
    shard_name_problem,
)
from catalog.cache.store import ShardProblem
from catalog.db import rows
from catalog.db.records import Record
from catalog.db.schema import CACHE_SCAN, CacheScanInfo

if TYPE_CHECKING:
    from catalog.db.connection import CatalogConnection
    from catalog.resolve.engine import ResolutionEngine

# Rows read per statement: each statement is a read transaction of its own, short enough that
# a writer waiting behind it does not notice.
SCAN_ROWS = 2_000
_READ: Final = (
    "SELECT rowid, key, length(CAST(key AS BLOB)) + coalesce(CASE typeof(value) "
    "WHEN 'text' THEN length(CAST(value AS BLOB)) ELSE length(value) END, 0) "
    f'FROM "{TABLE}" WHERE rowid BETWEEN ? AND ? ORDER BY rowid LIMIT ?'
)
# Rowids per task; caches spanning fewer rowids in all are read in the calling process, where
# starting processes would cost more than it saves.
TASK_ROWIDS = 100_000
PARALLEL_FROM = 150_000
_NOTHING: Final = ("none", "")
_TOKENIZER: Final = ("tokenizer", "")
_SEVERAL: Final = ("several", "")


@dataclass(frozen=True)
class NamedCount(Record):
    """The entries of one shard whose keys name one model or deployment (or no single one)."""

    kind: str
    name: str
    entries: int
    bytes: int


@dataclass(frozen=True)
class ShardScan(Record):
    shard: str
    entries: int
    bytes: int
    names: tuple[NamedCount, ...]
    scanned_at: str
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class CacheScan(Record):
    """`catalog cache scan`: what each shard holds; recorded in the catalog."""

    cache_dir: Path
    shards: tuple[ShardScan, ...]
    problems: tuple[ShardProblem, ...]
    ignored_files: tuple[str, ...]

    @property
    def totals(self) -> dict[str, int]:
        return {
            "shards": len(self.shards),
            "entries": sum(s.entries for s in self.shards),
            "bytes": sum(s.bytes for s in self.shards),
        }

    @property
    def errors(self) -> list[str]:
        return [f"{self.cache_dir / p.file}: {p.message}" for p in self.problems]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "totals": self.totals, "errors": self.errors}


@dataclass(frozen=True)
class CachedResponses(Record):
    """A row of the view `cached_responses`: entries of a scanned shard, with the deployment
    and model they count for (`deployment` is null for entries HELM does not read from that
    shard: a model's entries in its creator's shard, before `catalog cache migrate`)."""

    cache_dir: str
    shard: str
    kind: str
    name: str
    model: str | None
    deployment: str | None
    host_organization: str | None
    entries: int
    bytes: int
    scanned_at: str


def scan(
    connection: CatalogConnection,
    engine: ResolutionEngine,
    cache_dir: Path,
    *,
    aliases: str | os.PathLike[str] | None = None,
) -> CacheScan:
    """Count every shard's entries by the model or deployment they name, and record the
    counts in the catalog in place of the last scan of the same directory.

    A large cache is read by one process per processor, each a range of rowids of a shard at
    a time (parsing keys is Python's work, so threads would take turns); a small one here.
    """
    require_directory(cache_dir, "the cache directory")
    directory = cache_dir.absolute()
    # A shard HELM is writing has a journal: that is the writer's, not a problem for a scan.
    store = SqliteDirectoryStore(directory, readonly=True, writers_welcome=True)
    router, _policy = catalog_router(
        connection, engine, aliases=aliases, name_problem=shard_name_problem
    )
    listing = store.list_shards()
    problems = list(listing.problems)
    parts: list[_Part] = []
    for shard in listing.shards:
        try:
            parts += _parts(store.path_of(shard), shard, router.routing(shard))
        except sqlite3.DatabaseError as error:
            problems.append(unreadable(shard, error))
    counted = _count(parts)
    scanned: list[ShardScan] = []
    for shard in listing.shards:
        if shard in counted:
            counts, seconds, failure = counted[shard]
            if failure is None:
                scanned.append(_shard_scan(shard, counts, seconds))
            else:
                problems.append(
                    ShardProblem(f"{shard}{SHARD_SUFFIX}", f"cannot be read: {failure}")
                )
    result = CacheScan(cache_dir, tuple(scanned), tuple(problems), listing.ignored)
    _record(connection, str(directory), result)
    return result


@dataclass(frozen=True)
class _Part:
    """A range of rowids of one shard, read by one task (picklable: it goes to a process)."""

    path: Path
    shard: str
    routing: ShardRouting
    first: int
    last: int


_Counts = dict[tuple[str, str], list[int]]


def _parts(path: Path, shard: str, routing: ShardRouting) -> list[_Part]:
    connection = _connect(path)
    try:
        # Two statements: SQLite reads one end of the b-tree for a lone min() or max(), but
        # the whole table for both in one.
        (low,) = connection.execute(f'SELECT min(rowid) FROM "{TABLE}"').fetchone()
        (high,) = connection.execute(f'SELECT max(rowid) FROM "{TABLE}"').fetchone()
    finally:
        connection.close()
    if low is None:
        return [_Part(path, shard, routing, 0, -1)]
    return [
        _Part(path, shard, routing, first, min(first + TASK_ROWIDS - 1, high))
        for first in range(low, high + 1, TASK_ROWIDS)
    ]


def _count(parts: list[_Part]) -> dict[str, tuple[_Counts, float, str | None]]:
    """Each shard's counts, the seconds spent on it and, if a part failed, why."""
    span = sum(part.last - part.first + 1 for part in parts)
    workers = min(os.cpu_count() or 1, len(parts))
    # Forked, not spawned: a spawned worker imports the caller's main module again, which
    # fails for `python -c`, notebooks and embedded interpreters. A forked worker runs only
    # this module's code on its own connections and leaves by os._exit, so it closes none of
    # the caller's (which would drop the caller's SQLite locks).
    if span < PARALLEL_FROM or workers < 2 or not sys.platform.startswith("linux"):
        results: Iterator[tuple[_Counts, float, str | None]] = map(_count_part, parts)
        return _merge(parts, results)
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        return _merge(parts, pool.map(_count_part, parts))


def _merge(
    parts: list[_Part], results: Iterator[tuple[_Counts, float, str | None]]
) -> dict[str, tuple[_Counts, float, str | None]]:
    merged: dict[str, tuple[_Counts, float, str | None]] = {}
    for part, (counts, seconds, failure) in zip(parts, results, strict=True):
        total, spent, failed = merged.get(part.shard, ({}, 0.0, None))
        for group, (entries, size) in counts.items():
            found = total.setdefault(group, [0, 0])
            found[0] += entries
            found[1] += size
        merged[part.shard] = (total, spent + seconds, failed or failure)
    return merged


def _count_part(part: _Part) -> tuple[_Counts, float, str | None]:
    """The entries of one range of rowids by (kind, name); a read error is returned, not
    raised, so that it stops only its shard."""
    started = time.perf_counter()
    counts: _Counts = {}
    named: dict[KeyIdentifiers, tuple[str, str]] = {}
    try:
        for chunk in read_ahead(_read(part.path, part.first, part.last)):
            for _rowid, key, size in chunk:
                identifiers = key_identifiers(key)
                group = named.get(identifiers)
                if group is None:
                    group = named[identifiers] = _name_of(part.routing, identifiers)
                found = counts.get(group)
                if found is None:
                    counts[group] = [1, size]
                else:
                    found[0] += 1
                    found[1] += size
    except sqlite3.DatabaseError as error:
        return counts, time.perf_counter() - started, str(error)
    return counts, time.perf_counter() - started, None


def _shard_scan(shard: str, counts: _Counts, seconds: float) -> ShardScan:
    names = tuple(
        NamedCount(kind, name, entries, size)
        for (kind, name), (entries, size) in sorted(counts.items())
    )
    return ShardScan(
        shard=shard,
        entries=sum(n.entries for n in names),
        bytes=sum(n.bytes for n in names),
        names=names,
        scanned_at=rows.now_text(),
        seconds=seconds,
    )


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(
        f"{path.as_uri()}?mode=ro", uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_SECONDS
    )


def _read(path: Path, first: int, last: int) -> Iterator[list[tuple[int, str, int]]]:
    """(rowid, key, bytes) of the entries from rowid `first` to `last`, SCAN_ROWS at a time,
    each read a statement of its own (so no lock outlives it)."""
    connection = _connect(path)
    try:
        start = first
        while chunk := connection.execute(_READ, (start, last, SCAN_ROWS)).fetchall():
            yield chunk
            if chunk[-1][0] >= last:
                return
            start = chunk[-1][0] + 1
    finally:
        connection.close()


def _name_of(routing: ShardRouting, key: KeyIdentifiers) -> tuple[str, str]:
    """What an entry counts for: (kind, name) of the one candidate it names, or no one."""
    if key.has_tokenizer:
        return _TOKENIZER
    found = routing.matches(key)
    exact = [c for c in found if c.name.casefold() in {i.casefold() for i in key.identifiers}]
    for pool in (exact, found):
        chosen = _single(pool)
        if chosen is not None:
            return chosen.kind, chosen.name
    return _SEVERAL if found else _NOTHING


def _single(candidates: list[Candidate]) -> Candidate | None:
    if len(candidates) == 1:
        return candidates[0]
    for kind in ("deployment", "model"):
        of_kind = [c for c in candidates if c.kind == kind]
        if len(of_kind) == 1:
            return of_kind[0]
    return None


def _record(connection: CatalogConnection, cache_dir: str, result: CacheScan) -> None:
    """The scan's rows, in one transaction, in place of the directory's earlier ones."""
    records = [
        CacheScanInfo(cache_dir, s.shard, n.kind, n.name, n.entries, n.bytes, s.scanned_at)
        for s in result.shards
        for n in s.names
    ]
    with connection.write("the cache scan"):
        connection.execute(f"DELETE FROM {CACHE_SCAN.name} WHERE cache_dir = ?", (cache_dir,))
        connection.executemany(
            rows.insert_sql(CACHE_SCAN), [rows.encode_row(CACHE_SCAN, r) for r in records]
        )


def cached_responses(
    connection: CatalogConnection, *, model: str | None = None
) -> list[CachedResponses]:
    """The rows of the view `cached_responses` (those counting for `model`, if given)."""
    where, params = ("WHERE model = ?", (model,)) if model is not None else ("", ())
    found = connection.execute(
        "SELECT cache_dir, shard, kind, name, model, deployment, host_organization, entries, "
        f"bytes, scanned_at FROM cached_responses {where}",
        params,
    ).fetchall()
    return [CachedResponses(*row) for row in found]


@dataclass(frozen=True)
class ScannedDirectory(Record):
    cache_dir: str
    scanned_at: str


@dataclass(frozen=True)
class CachedCounts(Record):
    """How many cached responses the scans found for a model: per deployment (those in the
    shard HELM reads for it), and those naming the model in a shard HELM does not read for
    it (a creator's shard before `catalog cache migrate`). `scans` are the directories
    scanned, each with the time of its last scan; none if nothing was ever scanned."""

    model: str
    deployments: Mapping[str, int]
    model_only: int
    scans: tuple[ScannedDirectory, ...]


def cached_counts(connection: CatalogConnection, model: str) -> CachedCounts:
    with connection.read():
        found = cached_responses(connection, model=model)
        scans = connection.execute(
            f"SELECT cache_dir, max(scanned_at) FROM {CACHE_SCAN.name} "
            "GROUP BY cache_dir ORDER BY cache_dir"
        ).fetchall()
    deployments: Counter[str] = Counter()
    for row in found:
        if row.deployment is not None:
            deployments[row.deployment] += row.entries
    return CachedCounts(
        model=model,
        deployments=dict(sorted(deployments.items())),
        model_only=sum(row.entries for row in found if row.deployment is None),
        scans=tuple(ScannedDirectory(str(d), str(at)) for d, at in scans),
    )
