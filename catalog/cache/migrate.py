"""`catalog cache migrate`: HELM response-cache entries from creator-named shards to host-named
shards, each move by its cheapest correct method.

Each source shard is read once: its keys, in key order, with their positions, held still by a
read transaction while the shard is migrated. Routing the keys gives, per destination, the
positions of the entries that go there. The moves themselves are the store's: a whole shard
into an absent target is one file (copied, cloned or, in place, renamed after its backup was
made), anything else is inserted in key order, by position, in large transactions, then read
back and compared. Inserts start while the keys are still being routed, on a writer thread of
their own (SQLite and the kernel do the copying without Python's lock), and a whole-shard
file copy starts before the routing ends when the shard's rules predict one destination.

Crash safety comes from the order of the steps, not from any record of progress: entries are
copied into their target in committed transactions, read back and compared, and only then is a
source shard renamed to `<shard>.sqlite.pre-migration` (or, with prune, its verified copies
deleted); a whole file is published under its name only once complete and compared. Re-running
repeats the same steps on the same data, and an identical entry already in its target counts as
present, so a run killed at any moment and run again ends where an uninterrupted run ends.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

from catalog.cache.lock import directory_lock
from catalog.cache.plan import Tally, require_directory, require_shards, unreadable
from catalog.cache.report import (
    CacheMigrationReport,
    ConflictCounts,
    MoveMigration,
    ShardMigration,
    ShardPlan,
)
from catalog.cache.routing import Outcome, Router, catalog_router
from catalog.cache.sqlite_store import SqliteDirectoryStore
from catalog.cache.store import (
    CONFLICT_POLICIES,
    FILE_COPY,
    KEY_ORDER_INSERTS,
    RENAME_BACKUP_COPY,
    CacheStore,
    ConflictPolicy,
    PutCounts,
    ShardProblem,
    ShardSnapshot,
    StagedMove,
    TargetConflictError,
)
from catalog.db.failures import failure_hint
from catalog.errors import CacheMigrationError

if TYPE_CHECKING:
    from catalog.db.connection import CatalogConnection
    from catalog.resolve.engine import ResolutionEngine

# Entries inserted into a target per transaction: large, so that commits (and their fsyncs)
# are few, and bounded, so that the writers start while the keys are still being routed and a
# kill loses little work.
FLUSH_ROWS = 10_000
# Threads writing targets. Each destination stays on one of them (its writes keep their
# order), so two targets of a routed shard are written at once while the keys are routed.
WRITERS = 2
SQLITE_HEAP_LIMIT = 48 * 2**20
WHOLE_SHARD = "whole shard"
ROUTED = "routed"
ProgressCallback = Callable[[int, int], None]


@dataclass
class _Move:
    """What went from one source shard to one target shard, and how."""

    target: str
    positions: array[int] = field(default_factory=lambda: array("q"))
    submitted: int = 0
    # The positions' count once they are dropped (all written): memory stays one shard's.
    entries: int = 0
    method: str = ""
    seconds: float = 0.0
    error: str | None = None
    refused: bool = False  # --on-conflict fail: the target holds another value of a key

    @property
    def count(self) -> int:
        return max(self.entries, len(self.positions))

    def drop_positions(self) -> None:
        """Forget the positions once every one of them was handed over and written."""
        if self.positions and self.submitted >= len(self.positions):
            self.entries = len(self.positions)
            self.positions = array("q")


@dataclass
class _Run:
    """The mutable record of one source shard while it is migrated."""

    shard: str
    write: bool
    tally: Tally = field(default_factory=Tally)
    moves: dict[str, _Move] = field(default_factory=dict)
    plan: ShardPlan | None = None
    moved: Counter[str] = field(default_factory=Counter)
    copied: int = 0
    already_present: int = 0
    kept_target: int = 0
    took_source: int = 0
    failed: int = 0
    backup: str | None = None
    pruned: int = 0
    # In place: entries earlier shards of this run had moved into this one when it was read.
    received: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # The writers update the counts from their own threads.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def move(self, target: str) -> _Move:
        found = self.moves.get(target)
        if found is None:
            found = self.moves[target] = _Move(target)
        return found

    def add(self, destination: str, counts: PutCounts) -> None:
        with self.lock:
            if destination == self.shard:
                self.copied += counts.inserted
            else:
                self.moved[destination] += counts.inserted
            self.already_present += counts.already_present
            self.kept_target += counts.kept_target
            self.took_source += counts.took_source

    def fail(self, move: _Move, message: str, entries: int) -> None:
        """The move cannot be made: its remaining entries stay where they are."""
        with self.lock:
            if move.error is None:
                move.error = message
                self.errors.append(message)
            self.failed += entries

    def error(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)

    def pruned_more(self, count: int) -> None:
        with self.lock:
            self.pruned += count

    @property
    def clean(self) -> bool:
        """Nothing failed: every entry meant to move is verified in its target."""
        return not (self.failed or self.errors)

    def freeze(self, router: Router) -> ShardMigration:
        plan = self.plan or self.tally.plan(self.shard, router)
        moves = tuple(
            MoveMigration(
                target=move.target,
                kind=WHOLE_SHARD if move.count == plan.entries else ROUTED,
                method=move.method,
                entries=move.count,
                seconds=move.seconds,
                refused=move.refused,
            )
            for move in self.moves.values()
            if move.count
        )
        methods = list(dict.fromkeys(move.method for move in moves if move.method))
        return ShardMigration(
            shard=self.shard,
            entries=plan.entries - self.received,
            routed=dict(plan.moves),
            moved=dict(sorted((h, n) for h, n in self.moved.items() if n)),
            received=self.received,
            stayed=plan.stays - self.received,
            unrouted=plan.unrouted,
            copied=self.copied,
            already_present=self.already_present,
            conflicts=ConflictCounts(self.kept_target, self.took_source),
            failed=self.failed,
            backup=self.backup,
            pruned=self.pruned,
            verified=self.write and self.clean,
            method=", ".join(methods) or "nothing to move",
            moves=moves,
            errors=tuple(self.errors),
            unrouted_reasons=dict(plan.unrouted_reasons),
            unrouted_examples=plan.unrouted_examples,
            seconds=self.seconds,
        )


class _Progress:
    def __init__(self, callback: ProgressCallback | None, total: int) -> None:
        self._callback = callback
        self._lock = threading.Lock()
        self.total = total
        self.done = 0

    def advance(self, count: int) -> None:
        if self._callback is None or not count:
            return
        with self._lock:
            self.done += count
            # In place, a shard may have grown since it was counted: never report past 100%.
            self.total = max(self.total, self.done)
            self._callback(self.done, self.total)


@dataclass(frozen=True)
class _Options:
    on_conflict: ConflictPolicy
    write: bool
    prune: bool
    in_place: bool


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
    options = _Options(
        cast(ConflictPolicy, on_conflict), write=not dry_run, prune=prune, in_place=in_place
    )
    source = SqliteDirectoryStore(cache_dir, readonly=dry_run or not in_place)
    target_dir = cache_dir if out is None else out
    target = source if in_place else SqliteDirectoryStore(target_dir, readonly=dry_run)
    router, chosen = catalog_router(
        connection,
        engine,
        policy=policy,
        aliases=aliases,
        name_problem=target.shard_name_problem,
    )
    require_shards(cache_dir, source.list_shards())  # before an output directory is made
    with ExitStack() as held:
        # The cache first, so that a run stopped by another leaves no output directory made.
        held.enter_context(directory_lock(cache_dir, exclusive=in_place and options.write))
        if options.write:
            _require_writable(target_dir, created=out is not None)
            if out is not None:
                held.enter_context(directory_lock(out, exclusive=True))
            target.prepare_for_writing()  # only now: a running migration's temporary files
        listing = require_shards(cache_dir, source.list_shards())
        problems = list(listing.problems)
        total = _count_all(source, listing.shards) if progress is not None else 0
        writers = _Writers(target_dir, readonly=dry_run, count=WRITERS)
        migration = _Migration(
            source, target, writers, router, options, problems, _Progress(progress, total)
        )
        try:
            with _sqlite_heap_limit(SQLITE_HEAP_LIMIT):
                runs = migration.run(listing.shards)
        finally:
            migration.close()
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


class _Writers:
    """The threads that write targets, each with a store of its own (a store's connections
    belong to one thread). A destination keeps its thread until the next barrier, so its
    writes are made in the order they were handed over; a new destination goes to the thread
    given the fewest entries since the last barrier."""

    def __init__(self, directory: Path, *, readonly: bool, count: int) -> None:
        self._stores = [SqliteDirectoryStore(directory, readonly=readonly) for _ in range(count)]
        self._threads = [
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"cache-writer-{number}")
            for number in range(count)
        ]
        self._lanes: dict[str, int] = {}
        self._load = [0] * count
        self._pending: list[Future[None]] = []

    def submit(
        self, destination: str, entries: int, job: Callable[[SqliteDirectoryStore], None]
    ) -> None:
        lane = self._lanes.get(destination)
        if lane is None:
            lane = self._lanes[destination] = self._load.index(min(self._load))
        self._load[lane] += entries
        self._pending.append(self._threads[lane].submit(job, self._stores[lane]))

    def barrier(self) -> None:
        """Wait for every job handed over; a job's own errors are in its run."""
        pending, self._pending = self._pending, []
        try:
            for future in pending:
                future.result()
        finally:
            for future in pending:
                future.cancel()
        self._lanes.clear()
        self._load = [0] * len(self._load)

    def release(self) -> None:
        """Close the writers' connections (between barriers only: they are idle then)."""
        for store in self._stores:
            store.release()

    def close(self) -> None:
        try:
            self.barrier()
        finally:
            for thread in self._threads:
                thread.shutdown(wait=True)
            self.release()


@dataclass
class _Staging:
    """A whole-shard file move started on the writer while the keys are routed."""

    move: StagedMove
    destination: str
    failure: BaseException | None = None
    seconds: float = 0.0

    def prepare(self) -> None:
        started = time.perf_counter()
        try:
            self.move.prepare()
        except (OSError, CacheMigrationError) as error:
            self.failure = error
        self.seconds += time.perf_counter() - started


class _Migration:
    """The shards in name order, each routed on this thread while its moves are made on the
    writer thread; each shard's moves are finished before the next shard is read.

    With `--out`, a host's own (staying) entries must be the content of its new shard before
    another shard's entries arrive, as they are in place, so that conflicts are decided the
    same way in both modes: moves into a host that is itself a source shard not yet migrated
    wait, as positions, until that shard has been.
    """

    def __init__(
        self,
        source: SqliteDirectoryStore,
        target: SqliteDirectoryStore,
        writers: _Writers,
        router: Router,
        options: _Options,
        problems: list[ShardProblem],
        progress: _Progress,
    ) -> None:
        self.source = source
        self.target = target
        self.writers = writers
        self.router = router
        self.options = options
        self.problems = problems
        self.progress = progress
        self._sources: set[str] = set()
        self._current: str | None = None
        self._opened: set[str] = set()
        self._touched: set[str] = set()
        self._waiting: dict[str, list[tuple[_Run, _Move]]] = {}

    def close(self) -> None:
        try:
            self.writers.close()
        finally:
            self.source.release()
            self.target.release()

    def run(self, shards: Sequence[str]) -> list[_Run]:
        self._sources = set(shards)
        runs: list[_Run] = []
        for shard in shards:
            started = time.perf_counter()
            self._current = shard
            run = _Run(shard, self.options.write)
            try:
                snapshot = self.source.snapshot(shard)
            except sqlite3.DatabaseError as error:
                self.problems.append(unreadable(shard, error))
                self._open(shard)
                continue
            runs.append(run)
            if self.options.in_place:
                # Every earlier shard's writes are done (barrier): what they moved here is in
                # this snapshot, and routes here again; the report counts it once.
                run.received = sum(done.moved.get(shard, 0) for done in runs)
            try:
                self._migrate_shard(run, snapshot)
            finally:
                snapshot.close()
                self._barrier()
                self.writers.release()
                self.source.release()
            for done in runs:
                for move in done.moves.values():
                    move.drop_positions()
            self._open(shard)
            run.seconds += time.perf_counter() - started
        self._current = None
        for destination in list(self._waiting):
            self._open(destination)
        self._barrier()
        return runs

    # One shard ------------------------------------------------------------------------------

    def _migrate_shard(self, run: _Run, snapshot: ShardSnapshot) -> None:
        shard = run.shard
        staging = self._stage(run, self._predicted(shard))
        streaming = staging is None and self.options.on_conflict != "fail"
        try:
            self._route(run, snapshot, streaming=streaming)
        except sqlite3.DatabaseError as error:
            self._barrier()
            if staging is not None:
                staging.move.discard()
            run.errors.append(_with_hint(f"{self.source.describe(shard)}: {error}", error))
            return
        plan = run.plan = run.tally.plan(shard, self.router)
        sole = self._sole_destination(run, plan)
        if staging is not None and staging.destination != sole:
            self._barrier()
            staging.move.discard()
            staging = None
        if staging is None and sole is not None and run.moves[sole].submitted == 0:
            # Routing found one destination that the rules did not predict.
            staging = self._stage(run, sole)
            if not self.options.write:
                self._note_dry_run_method(run, sole)
        if staging is not None and self._publish(run, staging):
            return
        for move in run.moves.values():
            self._submit_rest(run, move)
        if self.options.in_place:
            self._barrier()
            snapshot.close()
            self._finish_in_place(run, plan)

    def _predicted(self, shard: str) -> str | None:
        outcome = self.router.routing(shard).likely_outcome()
        return None if outcome is None else self._destination(shard, outcome)

    def _stage(self, run: _Run, destination: str | None) -> _Staging | None:
        """Start a whole-shard file move into `destination` on the writer, if nothing has
        been written there in this run and the store has such a way (the target is absent)."""
        if destination is None or not self._stageable(destination):
            return None
        try:
            if self.options.in_place:
                staged = self.target.stage_relocation(run.shard, destination)
            else:
                staged = self.target.stage_copy(self.source, run.shard, destination)
        except (sqlite3.DatabaseError, OSError, CacheMigrationError):
            return None  # the inserts will meet the problem and report it
        if staged is None:
            return None
        staging = _Staging(staged, destination)
        self._touched.add(destination)
        self.writers.submit(destination, 0, lambda _store: staging.prepare())
        return staging

    def _stageable(self, destination: str) -> bool:
        return self.options.write and destination not in self._touched and self._ready(destination)

    def _note_dry_run_method(self, run: _Run, destination: str) -> None:
        """A dry run names the method a run would use for a whole-shard move."""
        if destination in self._touched or not self._ready(destination):
            return
        with suppress(sqlite3.DatabaseError, OSError, CacheMigrationError):
            if not self.target.exists(destination) and self.source.is_plain_cache_file(run.shard):
                run.move(destination).method = (
                    RENAME_BACKUP_COPY if self.options.in_place else FILE_COPY
                )

    def _publish(self, run: _Run, staging: _Staging) -> bool:
        """After routing confirmed a whole-shard move: publish the file prepared meanwhile.
        False if a file appeared under its name meanwhile (the entries are inserted instead)."""
        self._barrier()
        move = run.move(staging.destination)
        entries = len(move.positions)
        started = time.perf_counter()
        try:
            if staging.failure is not None:
                raise staging.failure
            if not staging.move.publish():
                return False
        except (OSError, CacheMigrationError) as error:
            staging.move.discard()
            message = _message(error, self.target, staging.destination)
            run.fail(move, _with_hint(message, error), entries)
        else:
            move.method = staging.move.method
            run.add(staging.destination, PutCounts(inserted=entries))
            run.backup = staging.move.backup
        move.submitted = entries
        move.seconds += staging.seconds + time.perf_counter() - started
        self.progress.advance(entries)
        return True

    def _route(self, run: _Run, snapshot: ShardSnapshot, *, streaming: bool) -> None:
        """Route every key; note each entry's position under its destination, and hand the
        writer a batch as soon as a destination has FLUSH_ROWS of them."""
        shard, route = run.shard, self.router.route
        count, destination_of = run.tally.count, self._destination
        positions: dict[str, array[int]] = {}
        destinations: dict[Outcome, str | None] = {}
        for chunk in snapshot.positioned_keys():
            staying = 0
            for position, key in chunk:
                outcome = route(shard, key)
                count(key, outcome)
                try:
                    destination = destinations[outcome]
                except KeyError:
                    destination = destinations[outcome] = destination_of(shard, outcome)
                if destination is None:
                    staying += 1
                    continue
                found = positions.get(destination)
                if found is None:
                    found = positions[destination] = run.move(destination).positions
                found.append(position)
            self.progress.advance(staying)
            if streaming:
                for destination, found in positions.items():
                    move = run.moves[destination]
                    if len(found) - move.submitted >= FLUSH_ROWS and self._ready(destination):
                        self._submit_batches(run, move, whole_only=True)

    def _sole_destination(self, run: _Run, plan: ShardPlan) -> str | None:
        """The one destination of every entry of the shard, if there is one."""
        moves = [move for move in run.moves.values() if move.positions]
        if len(moves) == 1 and len(moves[0].positions) == plan.entries:
            return moves[0].target
        return None

    def _finish_in_place(self, run: _Run, plan: ShardPlan) -> None:
        """Prune the verified copies from a shard that keeps entries, or set aside a shard all
        of whose entries left (only now: every move is verified)."""
        if not (self.options.write and plan.moves) or run.backup is not None:
            return
        if plan.stays or plan.unrouted:
            if self.options.prune:
                for move in run.moves.values():
                    if move.error is None:
                        self._submit_prune(run, move)
                self._barrier()
            return
        if run.clean:
            self.writers.release()
            self.source.release()
            with _shard_errors(run, self.source, run.shard):
                run.backup = self.source.retire(run.shard)

    def _destination(self, shard: str, outcome: Outcome) -> str | None:
        """Where an entry goes in this run: its host's shard; with --out, an entry that
        stays goes to its own shard of the new layout; in place it is not touched."""
        if outcome.kind == "move":
            return outcome.host
        return None if self.options.in_place else shard

    # The writer -----------------------------------------------------------------------------

    def _ready(self, destination: str) -> bool:
        """Can entries go into `destination` now (see the class docstring)?"""
        if self.options.in_place or destination not in self._sources:
            return True
        return destination in self._opened or destination == self._current

    def _barrier(self) -> None:
        self.writers.barrier()

    def _submit_rest(self, run: _Run, move: _Move) -> None:
        """Every position of `move` not handed over yet, or, if its destination cannot take
        them yet, the move waits for it."""
        if move.submitted >= len(move.positions):
            return
        if not self._ready(move.target):
            self._waiting.setdefault(move.target, []).append((run, move))
            return
        if self.options.on_conflict == "fail" and move.submitted == 0:
            self.writers.submit(
                move.target, 0, lambda store: self._check_conflicts(store, run, move)
            )
        self._submit_batches(run, move, whole_only=False)

    def _submit_batches(self, run: _Run, move: _Move, *, whole_only: bool) -> None:
        self._touched.add(move.target)
        end = len(move.positions)
        while move.submitted < end and (not whole_only or end - move.submitted >= FLUSH_ROWS):
            start, move.submitted = move.submitted, min(move.submitted + FLUSH_ROWS, end)
            self._submit_batch(run, move, move.positions[start : move.submitted])

    def _open(self, shard: str) -> None:
        """`shard`'s own entries are in its new shard (--out): what waited for it may go."""
        self._opened.add(shard)
        for run, move in self._waiting.pop(shard, []):
            self._submit_rest(run, move)

    def _check_conflicts(self, store: SqliteDirectoryStore, run: _Run, move: _Move) -> None:
        """`--on-conflict fail`: a target that would conflict is left untouched as a whole."""
        with _move_errors(run, move, store, 0):
            conflicts = store.count_conflicts(self.source, run.shard, move.positions, move.target)
            if conflicts:
                raise TargetConflictError(store.describe(move.target), conflicts)

    def _submit_batch(self, run: _Run, move: _Move, batch: array[int]) -> None:
        def copy(store: SqliteDirectoryStore) -> None:
            started = time.perf_counter()
            if move.error is not None:
                run.fail(move, move.error, len(batch))
            else:
                with _move_errors(run, move, store, len(batch)):
                    counts = store.copy_entries(
                        self.source,
                        run.shard,
                        batch,
                        move.target,
                        self.options.on_conflict,
                        write=self.options.write,
                    )
                    run.add(move.target, counts)
                    move.method = move.method or KEY_ORDER_INSERTS
            move.seconds += time.perf_counter() - started
            self.progress.advance(len(batch))

        self.writers.submit(move.target, len(batch), copy)

    def _submit_prune(self, run: _Run, move: _Move) -> None:
        for start in range(0, len(move.positions), FLUSH_ROWS):
            batch = move.positions[start : start + FLUSH_ROWS]

            def prune(store: SqliteDirectoryStore, batch: array[int] = batch) -> None:
                with _shard_errors(run, store, run.shard):
                    run.pruned_more(store.prune_entries(run.shard, batch, store, move.target))

            self.writers.submit(move.target, len(batch), prune)


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


def _message(error: BaseException, store: CacheStore, shard: str) -> str:
    if isinstance(error, CacheMigrationError):
        return str(error)
    if isinstance(error, OSError):
        return f"{error.filename or store.describe(shard)}: {error.strerror or error}"
    return f"{store.describe(shard)}: {error}"


@contextmanager
def _move_errors(run: _Run, move: _Move, store: CacheStore, entries: int) -> Iterator[None]:
    """An error stops this move only (its other batches are skipped): reported, and the
    entries stay where they are."""
    try:
        yield
    except (sqlite3.DatabaseError, OSError, CacheMigrationError) as error:
        move.refused = move.refused or isinstance(error, TargetConflictError)
        run.fail(move, _with_hint(_message(error, store, move.target), error), entries)


@contextmanager
def _shard_errors(run: _Run, store: CacheStore, shard: str) -> Iterator[None]:
    """An error stops this step of this shard only; it is reported and the run goes on."""
    try:
        yield
    except (sqlite3.DatabaseError, OSError, CacheMigrationError) as error:
        run.error(_with_hint(_message(error, store, shard), error))


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
