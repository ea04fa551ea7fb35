"""Move HELM response-cache entries from creator-named shards to host-named shards.

Crash safety comes from the order of the steps, not from any record of progress: entries are
copied into their target in committed transactions, read back and compared, and only then is a
source shard renamed to `<shard>.sqlite.pre-migration` (or, with prune, its verified copies
deleted). Re-running repeats the same steps on the same data, and an identical entry already in
its target counts as present, so a run killed at any moment and run again ends where an
uninterrupted run ends.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast

from catalog.cache_routing import Outcome, Router, catalog_router
from catalog.cache_store import (
    CONFLICT_POLICIES,
    SHARD_SUFFIX,
    CacheStore,
    ConflictPolicy,
    Entry,
    PutCounts,
    ShardCopy,
    ShardProblem,
    SqliteDirectoryStore,
    SqlValue,
    TargetConflictError,
    entry_size,
    same_value,
)
from catalog.database import failure_hint
from catalog.errors import CacheMigrationError

EXAMPLES_PER_SHARD: Final = 5
# Entries are written to a target in transactions of up to this many bytes or rows; the
# buffers of all targets together stay under BUFFER_BUDGET.
FLUSH_BYTES = 16 * 2**20
FLUSH_ROWS = 20_000
BUFFER_BUDGET = 32 * 2**20
SQLITE_HEAP_LIMIT = 48 * 2**20
ProgressCallback = Callable[[int, int], None]
# Chooses, from an entry's outcome, the shard it is written to in this pass (None: skip).
_Choose = Callable[[Outcome], str | None]


@dataclass(frozen=True)
class UnroutedExample:
    key: str
    reason: str


@dataclass(frozen=True)
class ShardPlan:
    """Where the entries of one source shard go, by the catalog's current hosts."""

    shard: str
    entries: int
    moves: Mapping[str, int]
    stays: int
    unrouted: int
    unrouted_reasons: Mapping[str, int]
    unrouted_examples: tuple[UnroutedExample, ...]
    has_candidates: bool

    @property
    def leaving(self) -> int:
        return sum(self.moves.values())

    @property
    def single_host(self) -> str | None:
        """The host that receives every entry, if there is one."""
        if len(self.moves) == 1 and self.stays == self.unrouted == 0:
            return next(iter(self.moves))
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "shard": self.shard,
            "entries": self.entries,
            "moves": dict(self.moves),
            "stays": self.stays,
            "unrouted": self.unrouted,
            "unrouted_reasons": dict(self.unrouted_reasons),
            "unrouted_examples": [
                {"key": e.key, "reason": e.reason} for e in self.unrouted_examples
            ],
            "has_candidates": self.has_candidates,
        }


@dataclass(frozen=True)
class CachePlan:
    """`catalog cache plan`: what a migration would do; nothing is written."""

    cache_dir: Path
    policy: str
    shards: tuple[ShardPlan, ...]
    problems: tuple[ShardProblem, ...]
    ignored_files: tuple[str, ...]

    @property
    def totals(self) -> dict[str, Any]:
        moves: Counter[str] = Counter()
        for shard in self.shards:
            moves.update(shard.moves)
        return {
            "entries": sum(s.entries for s in self.shards),
            "moves": dict(sorted(moves.items())),
            "stays": sum(s.stays for s in self.shards),
            "unrouted": sum(s.unrouted for s in self.shards),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "cache_dir": str(self.cache_dir),
            "policy": self.policy,
            "shards": [s.to_json() for s in self.shards],
            "totals": self.totals,
            "problems": [{"file": p.file, "message": p.message} for p in self.problems],
            "ignored_files": list(self.ignored_files),
        }


@dataclass(frozen=True)
class ConflictCounts:
    kept_target: int = 0
    took_source: int = 0


@dataclass(frozen=True)
class ShardMigration:
    """What the migration did with one source shard.

    `moved` counts entries newly written into each host shard; `already_present` and the
    conflicts count every entry the run wrote or found (with `--out`, the staying entries copied
    into the new layout too). `failed` entries were not moved (a refused or failing target).
    """

    shard: str
    entries: int
    routed: Mapping[str, int]
    moved: Mapping[str, int]
    stayed: int
    unrouted: int
    copied: int
    already_present: int
    conflicts: ConflictCounts
    failed: int
    backup: str | None
    pruned: int
    verified: bool
    method: str
    errors: tuple[str, ...]
    unrouted_reasons: Mapping[str, int]
    unrouted_examples: tuple[UnroutedExample, ...]
    seconds: float

    @property
    def changed(self) -> bool:
        return bool(
            sum(self.moved.values())
            or self.copied
            or self.conflicts.took_source
            or self.backup
            or self.pruned
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "shard": self.shard,
            "entries": self.entries,
            "routed": dict(self.routed),
            "moved": dict(self.moved),
            "stayed": self.stayed,
            "unrouted": self.unrouted,
            "copied": self.copied,
            "already_present": self.already_present,
            "conflicts": {
                "kept_target": self.conflicts.kept_target,
                "took_source": self.conflicts.took_source,
            },
            "failed": self.failed,
            "backup": self.backup,
            "pruned": self.pruned,
            "verified": self.verified,
            "method": self.method,
            "errors": list(self.errors),
            "unrouted_reasons": dict(self.unrouted_reasons),
            "unrouted_examples": [
                {"key": e.key, "reason": e.reason} for e in self.unrouted_examples
            ],
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class CacheMigrationReport:
    """`catalog cache migrate`: per source shard what moved, and whether it was verified."""

    cache_dir: Path
    out_dir: Path | None
    in_place: bool
    dry_run: bool
    on_conflict: str
    prune: bool
    policy: str
    shards: tuple[ShardMigration, ...]
    problems: tuple[ShardProblem, ...]
    ignored_files: tuple[str, ...]
    verified: bool

    @property
    def errors(self) -> list[str]:
        found = [f"{self._path(p.file)}: {p.message}" for p in self.problems]
        for shard in self.shards:
            found.extend(shard.errors)
        return found

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def changed(self) -> bool:
        return any(s.changed for s in self.shards)

    def _path(self, file: str) -> Path:
        return self.cache_dir / file

    @property
    def totals(self) -> dict[str, Any]:
        moved: Counter[str] = Counter()
        for shard in self.shards:
            moved.update(shard.moved)
        return {
            "entries": sum(s.entries for s in self.shards),
            "moved": dict(sorted(moved.items())),
            "stayed": sum(s.stayed for s in self.shards),
            "unrouted": sum(s.unrouted for s in self.shards),
            "copied": sum(s.copied for s in self.shards),
            "already_present": sum(s.already_present for s in self.shards),
            "conflicts": {
                "kept_target": sum(s.conflicts.kept_target for s in self.shards),
                "took_source": sum(s.conflicts.took_source for s in self.shards),
            },
            "failed": sum(s.failed for s in self.shards),
            "backups": sum(1 for s in self.shards if s.backup),
            "pruned": sum(s.pruned for s in self.shards),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "cache_dir": str(self.cache_dir),
            "out_dir": str(self.out_dir) if self.out_dir is not None else None,
            "in_place": self.in_place,
            "dry_run": self.dry_run,
            "on_conflict": self.on_conflict,
            "prune": self.prune,
            "policy": self.policy,
            "shards": [s.to_json() for s in self.shards],
            "totals": self.totals,
            "verified": self.verified,
            "changed": self.changed,
            "errors": self.errors,
            "problems": [{"file": p.file, "message": p.message} for p in self.problems],
            "ignored_files": list(self.ignored_files),
        }


# Planning ---------------------------------------------------------------------------------------


def plan(
    connection: sqlite3.Connection,
    cache_dir: Path,
    *,
    aliases: str | os.PathLike[str] | None = None,
    policy: str | None = None,
) -> CachePlan:
    """Route every entry of every shard in `cache_dir` (opened read-only) without moving any."""
    _require_directory(cache_dir, "the cache directory")
    store = SqliteDirectoryStore(cache_dir, readonly=True)
    router, chosen = catalog_router(
        connection, policy=policy, aliases=aliases, name_problem=store.shard_name_problem
    )
    listing = store.list_shards()
    plans: list[ShardPlan] = []
    problems = list(listing.problems)
    try:
        for shard in listing.shards:
            try:
                plans.append(plan_shard(store, shard, router))
            except sqlite3.DatabaseError as error:
                problems.append(_unreadable(shard, error))
            finally:
                store.release()
    finally:
        store.release()
    return CachePlan(cache_dir, chosen, tuple(plans), tuple(problems), listing.ignored)


def plan_shard(store: CacheStore, shard: str, router: Router) -> ShardPlan:
    """One pass over the keys of `shard` (values are not read)."""
    found = _probe(store, shard, router, complete=True)
    assert found is not None
    return found


@dataclass
class _Tally:
    """Where the entries of a shard go, counted as they are routed."""

    moves: Counter[str] = field(default_factory=Counter)
    stays: int = 0
    unrouted: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    examples: list[UnroutedExample] = field(default_factory=list)

    def count(self, key: str, outcome: Outcome) -> None:
        if outcome.kind == "move":
            self.moves[cast(str, outcome.host)] += 1
        elif outcome.kind == "stay":
            self.stays += 1
        else:
            self.unrouted += 1
            self.reasons[outcome.reason] += 1
            if len(self.examples) < EXAMPLES_PER_SHARD:
                self.examples.append(UnroutedExample(key, outcome.reason))

    def plan(self, shard: str, router: Router) -> ShardPlan:
        return ShardPlan(
            shard=shard,
            entries=sum(self.moves.values()) + self.stays + self.unrouted,
            moves=dict(sorted(self.moves.items())),
            stays=self.stays,
            unrouted=self.unrouted,
            unrouted_reasons=dict(self.reasons.most_common()),
            unrouted_examples=tuple(self.examples),
            has_candidates=bool(router.routing(shard).candidates),
        )


def _probe(store: CacheStore, shard: str, router: Router, *, complete: bool) -> ShardPlan | None:
    """The shard's plan, from its keys alone.

    Unless `complete`, None as soon as entries are seen going to two places: such a shard is
    migrated entry by entry, and that pass counts the plan as it goes (one read, not two).
    """
    tally = _Tally()
    places: set[str | None] = set()
    for keys in store.iter_keys(shard):
        for key in keys:
            outcome = router.route(shard, key)
            tally.count(key, outcome)
            if not complete:
                places.add(outcome.host if outcome.kind == "move" else None)
                if len(places) > 1:
                    return None
    return tally.plan(shard, router)


def _unreadable(shard: str, error: Exception) -> ShardProblem:
    return ShardProblem(f"{shard}{SHARD_SUFFIX}", f"cannot be read: {error}")


# Migrating --------------------------------------------------------------------------------------


@dataclass
class _Run:
    """The mutable record of one source shard while it is migrated.

    `known_plan` comes from a pass over the keys; when that pass stopped early (the entries go
    to several places), the entry-by-entry pass counts the plan into `tally`.
    """

    shard: str
    known_plan: ShardPlan | None
    write: bool
    tally: _Tally = field(default_factory=_Tally)
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
    tally: _Tally | None = None
    advance_all: bool = False
    prune: bool = False


def _moving(outcome: Outcome) -> str | None:
    return outcome.host if outcome.kind == "move" else None


def migrate(
    connection: sqlite3.Connection,
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
    _require_directory(cache_dir, "the cache directory")
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
        connection, policy=policy, aliases=aliases, name_problem=target.shard_name_problem
    )
    if options.write:
        _require_writable(out if out is not None else cache_dir, created=out is not None)
        target.prepare_for_writing()
    listing = source.list_shards()
    problems = list(listing.problems)
    try:
        with _sqlite_heap_limit(connection, SQLITE_HEAP_LIMIT):
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
            known = _probe(store, shard, router, complete=options.prune)
        except sqlite3.DatabaseError as error:
            problems.append(_unreadable(shard, error))
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
            run = _Run(shard, _probe(source, shard, router, complete=True), options.write)
        except sqlite3.DatabaseError as error:
            problems.append(_unreadable(shard, error))
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
def _sqlite_heap_limit(connection: sqlite3.Connection, limit: int) -> Iterator[None]:
    """Cap SQLite's memory (its page caches) for this process while the migration runs.

    Each target connection may cache WRITE_CACHE_KIB; a shard with many hosts opens many.
    """
    previous = int(connection.execute("PRAGMA soft_heap_limit").fetchone()[0])
    if 0 < previous <= limit:
        yield
        return
    connection.execute(f"PRAGMA soft_heap_limit = {int(limit)}")
    try:
        yield
    finally:
        connection.execute(f"PRAGMA soft_heap_limit = {previous}")


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


def _require_directory(path: Path, what: str) -> None:
    try:
        if path.is_dir():
            return
        os.stat(path)
        problem = "is not a directory"
    except FileNotFoundError:
        problem = "does not exist"
    except OSError as error:
        looping = error.errno == errno.ELOOP
        problem = "is a symbolic link loop" if looping else f"cannot be read: {error.strerror}"
    raise CacheMigrationError(f"{path}: {what} {problem}")


def _entry_key(entry: Entry) -> str:
    """Batches are written and read back in key order: the key index is then walked in order."""
    return entry[0]
