"""`catalog cache migrate`: HELM response-cache entries from creator-named shards to host-named
shards.

Crash safety comes from the order of the steps, not from any record of progress: entries are
copied into their target in committed transactions, read back and compared, and only then is a
source shard renamed to `<shard>.sqlite.pre-migration` (or, with prune, its verified copies
deleted). Re-running repeats the same steps on the same data, and an identical entry already in
its target counts as present, so a run killed at any moment and run again ends where an
uninterrupted run ends.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

from catalog.cache.plan import Tally, probe, require_directory, unreadable
from catalog.cache.report import CacheMigrationReport, ConflictCounts, ShardMigration, ShardPlan
from catalog.cache.routing import Outcome, Router, catalog_router
from catalog.cache.sqlite_store import SqliteDirectoryStore
from catalog.cache.store import (
    CONFLICT_POLICIES,
    CacheStore,
    ConflictPolicy,
    Entry,
    PutCounts,
    ShardCopy,
    ShardProblem,
    SqlValue,
    TargetConflictError,
    entry_size,
    same_value,
)
from catalog.db.failures import failure_hint
from catalog.errors import CacheMigrationError

if TYPE_CHECKING:
    from catalog.db.connection import CatalogConnection
    from catalog.resolve.engine import ResolutionEngine

# Entries are written to a target in transactions of up to this many bytes or rows; the
# buffers of all targets together stay under BUFFER_BUDGET.
FLUSH_BYTES = 16 * 2**20
FLUSH_ROWS = 20_000
BUFFER_BUDGET = 32 * 2**20
SQLITE_HEAP_LIMIT = 48 * 2**20
ProgressCallback = Callable[[int, int], None]
# Chooses, from an entry's outcome, the shard it is written to in this pass (None: skip).
_Choose = Callable[[Outcome], str | None]


@dataclass
class _Run:
    """The mutable record of one source shard while it is migrated.

    `known_plan` comes from a pass over the keys; when that pass stopped early (the entries go
    to several places), the entry-by-entry pass counts the plan into `tally`.
    """

    shard: str
    known_plan: ShardPlan | None
    write: bool
    tally: Tally = field(default_factory=Tally)
    moved: Counter[str] = field(default_factory=Counter)
    copied: int = 0
    already_present: int = 0
    kept_target: int = 0
    took_source: int = 0
    failed: int = 0
    backup: str | None = None
    pruned: int = 0
    verification_failed: bool = False
    methods: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def plan(self, router: Router) -> ShardPlan:
        return self.known_plan or self.tally.plan(self.shard, router)

    def add(self, destination: str, counts: PutCounts) -> None:
        if destination == self.shard:
            self.copied += counts.inserted
        else:
            self.moved[destination] += counts.inserted
        self.already_present += counts.already_present
        self.kept_target += counts.kept_target
        self.took_source += counts.took_source

    def add_copy(self, destination: str, copy: ShardCopy) -> None:
        self.add(destination, copy.counts)
        self.method(copy.method)
        if self.write and not copy.verified:
            self.verification_failed = True

    @property
    def clean(self) -> bool:
        """Nothing failed: every entry meant to move is verified in its target."""
        return not (self.failed or self.errors or self.verification_failed)

    def method(self, name: str) -> None:
        if name not in self.methods:
            self.methods.append(name)

    def freeze(self, router: Router) -> ShardMigration:
        plan = self.plan(router)
        return ShardMigration(
            shard=self.shard,
            entries=plan.entries,
            routed=dict(plan.moves),
            moved=dict(sorted((h, n) for h, n in self.moved.items() if n)),
            stayed=plan.stays,
            unrouted=plan.unrouted,
            copied=self.copied,
            already_present=self.already_present,
            conflicts=ConflictCounts(self.kept_target, self.took_source),
            failed=self.failed,
            backup=self.backup,
            pruned=self.pruned,
            verified=self.write and self.clean,
            method=", ".join(self.methods) or "nothing to move",
            errors=tuple(self.errors),
            unrouted_reasons=dict(plan.unrouted_reasons),
            unrouted_examples=plan.unrouted_examples,
            seconds=self.seconds,
        )


class _Progress:
    def __init__(self, callback: ProgressCallback | None, total: int) -> None:
        self._callback = callback
        self.total = total
        self.done = 0

    def advance(self, count: int) -> None:
        if self._callback is not None and count:
            self.done += count
            # In place, a shard may have grown since it was counted: never report past 100%.
            self.total = max(self.total, self.done)
            self._callback(self.done, self.total)


@dataclass(frozen=True)
class _Options:
    on_conflict: ConflictPolicy
    write: bool
    prune: bool


@dataclass(frozen=True)
class _Pass:
    """One read of a source shard: which entries go where, and what else it records."""

    choose: _Choose
    tally: Tally | None = None
    advance_all: bool = False
    prune: bool = False


def _moving(outcome: Outcome) -> str | None:
    return outcome.host if outcome.kind == "move" else None


def migrate(
    connection: CatalogConnection,
    engine: ResolutionEngine,
    cache_dir: Path,
    *,
    out: Path | None = None,
    in_place: bool = False,
    on_conflict: str = "keep-target",
    prune: bool = False,
    dry_run: bool = False,
    aliases: str | os.PathLike[str] | None = None,
    policy: str | None = None,
    progress: ProgressCallback | None = None,
) -> CacheMigrationReport:
    """Move every routed entry to its host shard, in place or into a new directory.

    `progress`, if given, is called with (entries done, entries in all) as the run advances.
    """
    require_directory(cache_dir, "the cache directory")
    if (out is None) == (not in_place):
        raise CacheMigrationError("give exactly one of an output directory (--out) or --in-place")
    if on_conflict not in CONFLICT_POLICIES:
        raise CacheMigrationError(
            f"unknown conflict policy {on_conflict!r}: use one of {', '.join(CONFLICT_POLICIES)}"
        )
    if prune and not in_place:
        raise CacheMigrationError(
            "--prune applies to --in-place only: --out never changes the cache"
        )
    if out is not None:
        if out.exists() and not out.is_dir():
            raise CacheMigrationError(f"{out}: the output directory is a file")
        if out.resolve() == cache_dir.resolve():
            raise CacheMigrationError(
                f"{out}: the output directory is the cache directory; use --in-place"
            )
    options = _Options(cast(ConflictPolicy, on_conflict), write=not dry_run, prune=prune)
    source = SqliteDirectoryStore(cache_dir, readonly=dry_run or not in_place)
    if in_place:
        target: SqliteDirectoryStore = source
    else:
        assert out is not None
        target = SqliteDirectoryStore(out, readonly=dry_run)
    router, chosen = catalog_router(
        connection,
        engine,
        policy=policy,
        aliases=aliases,
        name_problem=target.shard_name_problem,
    )
    if options.write:
        _require_writable(out if out is not None else cache_dir, created=out is not None)
        target.prepare_for_writing()
    listing = source.list_shards()
    problems = list(listing.problems)
    try:
        with _sqlite_heap_limit(SQLITE_HEAP_LIMIT):
            if in_place:
                runs = _migrate_in_place(
                    source, listing.shards, router, options, problems, progress
                )
            else:
                runs = _migrate_to_out(
                    source, target, listing.shards, router, options, problems, progress
                )
    finally:
        source.release()
        target.release()
    shards = tuple(run.freeze(router) for run in runs)
    return CacheMigrationReport(
        cache_dir=cache_dir,
        out_dir=out,
        in_place=in_place,
        dry_run=dry_run,
        on_conflict=on_conflict,
        prune=prune,
        policy=chosen,
        shards=shards,
        problems=tuple(problems),
        ignored_files=listing.ignored,
        verified=options.write and all(s.verified for s in shards),
    )


def _migrate_in_place(
    store: SqliteDirectoryStore,
    shards: Sequence[str],
    router: Router,
    options: _Options,
    problems: list[ShardProblem],
    callback: ProgressCallback | None,
) -> list[_Run]:
    """Each shard is read just before it is migrated: earlier shards may have added to it."""
    progress = _Progress(callback, _count_all(store, shards) if callback is not None else 0)
    store.release()
    runs: list[_Run] = []
    for shard in shards:
        started = time.perf_counter()
        try:
            # Pruning needs the whole plan first: only a shard that keeps entries is pruned.
            known = probe(store, shard, router, complete=options.prune)
        except sqlite3.DatabaseError as error:
            problems.append(unreadable(shard, error))
            store.release()
            continue
        run = _Run(shard, known, options.write)
        runs.append(run)
        with _shard_errors(run, store, shard):
            _move_entries(run, store, store, router, options, progress, in_place=True)
        plan = run.plan(router)
        all_left = plan.stays == plan.unrouted == 0
        if options.write and plan.moves and all_left and run.clean:
            store.release()
            with _shard_errors(run, store, shard):
                run.backup = store.retire(shard)
        store.release()
        run.seconds += time.perf_counter() - started
    return runs


def _migrate_to_out(
    source: SqliteDirectoryStore,
    target: SqliteDirectoryStore,
    shards: Sequence[str],
    router: Router,
    options: _Options,
    problems: list[ShardProblem],
    callback: ProgressCallback | None,
) -> list[_Run]:
    """Staying entries first, for every shard, then the moves.

    So a host's own entries are already the target's content when another shard's entries
    arrive, as they are in place, and conflicts are decided the same way.
    """
    runs: list[_Run] = []
    for shard in shards:
        started = time.perf_counter()
        try:
            # The whole plan first: a shard with nothing staying needs no staying pass.
            run = _Run(shard, probe(source, shard, router, complete=True), options.write)
        except sqlite3.DatabaseError as error:
            problems.append(unreadable(shard, error))
            continue
        finally:
            source.release()
        run.seconds += time.perf_counter() - started
        runs.append(run)
    total = 0
    if callback is not None:
        total = sum(run.known_plan.entries for run in runs if run.known_plan is not None)
        total += _count_all(source, [run.shard for run in runs if run.known_plan is None])
    progress = _Progress(callback, total)
    for run in runs:
        started = time.perf_counter()
        with _shard_errors(run, target, run.shard):
            _copy_staying(run, source, target, router, options, progress)
        source.release()
        target.release()
        run.seconds += time.perf_counter() - started
    for run in runs:
        started = time.perf_counter()
        if not run.errors:
            with _shard_errors(run, target, run.shard):
                _move_entries(run, source, target, router, options, progress, in_place=False)
        source.release()
        target.release()
        run.seconds += time.perf_counter() - started
    return runs


def _count_all(store: CacheStore, shards: Sequence[str]) -> int:
    """Entries in all `shards`, for the progress bar (an unreadable shard counts none)."""
    total = 0
    for shard in shards:
        with suppress(sqlite3.DatabaseError):
            total += store.count(shard)
    store.release()
    return total


@contextmanager
def _sqlite_heap_limit(limit: int) -> Iterator[None]:
    """Cap SQLite's memory (its page caches) for this process while the migration runs.

    Each target connection may cache WRITE_CACHE_KIB; a shard with many hosts opens many. The
    limit is the process's, so any sqlite3 connection sets it.
    """
    connection = sqlite3.connect(":memory:")
    try:
        previous = int(connection.execute("PRAGMA soft_heap_limit").fetchone()[0])
        if 0 < previous <= limit:
            yield
            return
        connection.execute(f"PRAGMA soft_heap_limit = {int(limit)}")
        try:
            yield
        finally:
            connection.execute(f"PRAGMA soft_heap_limit = {previous}")
    finally:
        connection.close()


@contextmanager
def _shard_errors(run: _Run, store: CacheStore, shard: str) -> Iterator[None]:
    """An error stops this step of this shard only; it is reported and the run goes on."""
    try:
        yield
    except sqlite3.DatabaseError as error:
        run.errors.append(_with_hint(f"{store.describe(shard)}: {error}", error))
    except OSError as error:
        where = error.filename or store.describe(shard)
        run.errors.append(_with_hint(f"{where}: {error.strerror or error}", error))
    except CacheMigrationError as error:
        run.errors.append(_with_hint(str(error), error))


def _copy_staying(
    run: _Run,
    source: CacheStore,
    target: CacheStore,
    router: Router,
    options: _Options,
    progress: _Progress,
) -> None:
    """`--out`: the entries that stay (and unrouted ones) into the same shard of the new layout.

    Without a plan yet, this pass also counts it.
    """
    shard, known = run.shard, run.known_plan
    if known is not None and not (known.stays or known.unrouted):
        return
    if known is not None and not known.moves:
        copy = target.copy_shard(source, shard, shard, options.on_conflict, write=options.write)
        if copy is not None:
            run.add_copy(shard, copy)
            progress.advance(known.entries)
            return
    staying = _Pass(
        choose=lambda outcome: shard if outcome.kind != "move" else None,
        tally=run.tally if known is None else None,
    )
    _copy_routed(run, source, target, router, staying, options, progress)


def _move_entries(
    run: _Run,
    source: CacheStore,
    target: CacheStore,
    router: Router,
    options: _Options,
    progress: _Progress,
    *,
    in_place: bool,
) -> None:
    """The entries that leave the shard: all at once if they share one host, else one by one."""
    shard, known = run.shard, run.known_plan
    if known is not None:
        if not known.moves:
            if in_place:
                progress.advance(known.entries)
            return
        if known.single_host is not None:
            try:
                copy = target.copy_shard(
                    source, shard, known.single_host, options.on_conflict, write=options.write
                )
            except CacheMigrationError:
                run.failed += known.entries
                raise
            if copy is not None:
                run.add_copy(known.single_host, copy)
                progress.advance(known.entries)
                return
    # In place, this pass reads every entry; with --out the staying pass counted the plan.
    moving = _Pass(
        choose=_moving,
        tally=run.tally if known is None and in_place else None,
        advance_all=in_place,
        prune=options.prune and known is not None and bool(known.stays or known.unrouted),
    )
    _copy_routed(run, source, target, router, moving, options, progress)


def _copy_routed(
    run: _Run,
    source: CacheStore,
    target: CacheStore,
    router: Router,
    how: _Pass,
    options: _Options,
    progress: _Progress,
) -> None:
    """Entry by entry. With `--on-conflict fail`, a read-only pass first finds the targets that
    would conflict, so that they are left untouched while the others receive their entries."""
    excluded: dict[str, str] = {}
    if options.on_conflict == "fail" and options.write:
        check = _Pass(choose=how.choose)
        scratch = _Run(run.shard, None, write=False)
        _copy_pass(scratch, source, target, router, check, options, excluded, None, write=False)
    method = "per entry" if options.write else "per entry (dry run)"
    run.method(method)
    _copy_pass(run, source, target, router, how, options, excluded, progress, write=options.write)
    run.errors.extend(excluded.values())


class _Batches:
    """Entries waiting for their target, by target, so that each transaction is large.

    Bounded in bytes: a target's batch is written when it is full, and the fullest batch
    whenever all of them together pass BUFFER_BUDGET.
    """

    def __init__(self, write: Callable[[str, list[Entry]], None]) -> None:
        self._write = write
        self._entries: dict[str, list[Entry]] = {}
        self._sizes: dict[str, int] = {}
        self._total = 0

    def add(self, destination: str, entries: list[Entry]) -> None:
        added = sum(entry_size(key, value) for key, value in entries)
        batch = self._entries.setdefault(destination, [])
        batch += entries
        size = self._sizes[destination] = self._sizes.get(destination, 0) + added
        self._total += added
        if size >= FLUSH_BYTES or len(batch) >= FLUSH_ROWS:
            self.flush(destination)

    def fit_budget(self) -> None:
        while self._total > BUFFER_BUDGET and self._sizes:
            self.flush(max(self._sizes, key=self._sizes.__getitem__))

    def flush(self, destination: str) -> None:
        self._total -= self._sizes.pop(destination, 0)
        entries = self._entries.pop(destination, [])
        if entries:
            entries.sort(key=_entry_key)
            self._write(destination, entries)

    def flush_all(self) -> None:
        for destination in list(self._entries):
            self.flush(destination)


class _Writer:
    """Writes batches one at a time, on a background thread if asked.

    SQLite releases the GIL while it works, so the next batch is read and routed while the
    previous one is written and verified. One batch at most is in flight, and batches are
    written in the order they were handed over: the result is the same as writing in line.
    """

    def __init__(self, write: Callable[[str, list[Entry]], None], *, background: bool) -> None:
        self._write = write
        self._executor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="cache-writer")
            if background
            else None
        )
        self._in_flight: Future[None] | None = None

    def __call__(self, destination: str, entries: list[Entry]) -> None:
        if self._executor is None:
            self._write(destination, entries)
            return
        self.wait()
        self._in_flight = self._executor.submit(self._write, destination, entries)

    def wait(self) -> None:
        """Block until the batch in flight is written; its error, if any, is raised here."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            in_flight.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)


def _copy_pass(
    run: _Run,
    source: CacheStore,
    target: CacheStore,
    router: Router,
    how: _Pass,
    options: _Options,
    excluded: dict[str, str],
    progress: _Progress | None,
    *,
    write: bool,
) -> None:
    shard = run.shard

    def write_batch(destination: str, entries: list[Entry]) -> None:
        if destination in excluded:
            run.failed += len(entries)
            return
        try:
            identical = _write_verified(run, target, destination, entries, options, write=write)
        except CacheMigrationError as error:
            excluded[destination] = str(error)
            run.failed += len(entries)
            return
        if how.prune and identical:
            run.pruned += source.delete_many(shard, identical)

    # Pruning deletes from the shard being read: that stays on this thread.
    writer = _Writer(write_batch, background=write and not how.prune)
    batches = _Batches(writer)
    route, choose, tally = router.route, how.choose, how.tally
    try:
        for chunk in source.iter_entries(shard):
            by_destination: dict[str, list[Entry]] = {}
            for entry in chunk:
                outcome = route(shard, entry[0])
                if tally is not None:
                    tally.count(entry[0], outcome)
                destination = choose(outcome)
                if destination is not None:
                    by_destination.setdefault(destination, []).append(entry)
            for destination, entries in by_destination.items():
                batches.add(destination, entries)
            batches.fit_budget()
            if progress is not None:
                chosen = sum(len(entries) for entries in by_destination.values())
                progress.advance(len(chunk) if how.advance_all else chosen)
        batches.flush_all()
    finally:
        writer.close()


def _write_verified(
    run: _Run,
    target: CacheStore,
    destination: str,
    entries: Sequence[Entry],
    options: _Options,
    *,
    write: bool,
) -> list[str]:
    """Write one batch in one transaction, then read it back: the keys now identical there."""
    if not write:
        found = target.get_many(destination, [key for key, _ in entries])
        run.add(destination, _would_put(target, destination, entries, found, options.on_conflict))
        return []
    counts = target.put_many(destination, entries, options.on_conflict)
    matching = target.count_matching(destination, entries)
    if matching.present != len(entries) or matching.identical != len(entries) - counts.kept_target:
        run.verification_failed = True
        raise CacheMigrationError(
            f"{target.describe(destination)}: verification failed: "
            f"{len(entries) - matching.present} entries missing and "
            f"{matching.present - matching.identical - counts.kept_target} different after "
            "writing; the source is kept"
        )
    run.add(destination, counts)
    if not counts.kept_target:
        return [key for key, _ in entries]
    found = target.get_many(destination, [key for key, _ in entries])
    return [key for key, value in entries if key in found and same_value(found[key], value)]


def _would_put(
    target: CacheStore,
    shard: str,
    entries: Sequence[Entry],
    found: Mapping[str, SqlValue],
    on_conflict: ConflictPolicy,
) -> PutCounts:
    """What put_many would do, from a lookup only (dry runs and the `fail` pre-check)."""
    present = sum(1 for key, value in entries if key in found and same_value(found[key], value))
    differing = sum(
        1 for key, value in entries if key in found and not same_value(found[key], value)
    )
    if differing and on_conflict == "fail":
        raise TargetConflictError(target.describe(shard), differing)
    return PutCounts(
        inserted=len(entries) - present - differing,
        already_present=present,
        kept_target=differing if on_conflict == "keep-target" else 0,
        took_source=differing if on_conflict == "keep-source" else 0,
    )


def _require_writable(directory: Path, *, created: bool) -> None:
    """Refuse at the start, once, a directory this run could not write a single shard into."""
    if created:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CacheMigrationError(
                _with_hint(
                    f"{error.filename or directory}: the output directory cannot be created: "
                    f"{error.strerror or error}",
                    error,
                )
            ) from error
    if not os.access(directory, os.W_OK | os.X_OK):
        what = "output directory" if created else "cache directory"
        advice = (
            "give --out a directory that can be written"
            if created
            else "`--out OUT_DIR` writes the new layout elsewhere and leaves the cache as it is"
        )
        raise CacheMigrationError(
            f"{directory}: the {what} cannot be written (it is read-only: a read-only file "
            f"system, an immutable directory, or permissions); {advice}"
        )


def _with_hint(message: str, error: BaseException) -> str:
    """`message` and, for a full disk or an unwritable file, what to do about it."""
    hint = failure_hint(error, catalog=False)
    return message if hint is None or hint in message else f"{message} (hint: {hint})"


def _entry_key(entry: Entry) -> str:
    """Batches are written and read back in key order: the key index is then walked in order."""
    return entry[0]
