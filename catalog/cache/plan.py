"""`catalog cache plan`: where each entry of each shard would go; nothing is written."""

from __future__ import annotations

import errno
import os
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final, cast

from catalog.cache.report import CachePlan, ShardPlan, UnroutedExample
from catalog.cache.routing import Outcome, Router, catalog_router
from catalog.cache.sqlite_store import SHARD_SUFFIX, SqliteDirectoryStore
from catalog.cache.store import CacheStore, ShardListing, ShardProblem
from catalog.errors import CacheMigrationError

if TYPE_CHECKING:
    from catalog.db.connection import CatalogConnection
    from catalog.resolve.engine import ResolutionEngine

EXAMPLES_PER_SHARD: Final = 5


def plan(
    connection: CatalogConnection,
    engine: ResolutionEngine,
    cache_dir: Path,
    *,
    aliases: str | os.PathLike[str] | None = None,
    policy: str | None = None,
) -> CachePlan:
    """Route every entry of every shard in `cache_dir` (opened read-only) without moving any."""
    require_directory(cache_dir, "the cache directory")
    store = SqliteDirectoryStore(cache_dir, readonly=True)
    router, chosen = catalog_router(
        connection, engine, policy=policy, aliases=aliases, name_problem=store.shard_name_problem
    )
    listing = require_shards(cache_dir, store.list_shards())
    plans: list[ShardPlan] = []
    problems = list(listing.problems)
    try:
        for shard in listing.shards:
            try:
                plans.append(plan_shard(store, shard, router))
            except sqlite3.DatabaseError as error:
                problems.append(unreadable(shard, error))
            finally:
                store.release()
    finally:
        store.release()
    return CachePlan(cache_dir, chosen, tuple(plans), tuple(problems), listing.ignored)


def plan_shard(store: CacheStore, shard: str, router: Router) -> ShardPlan:
    """One pass over the keys of `shard` (values are not read)."""
    tally = Tally()
    snapshot = store.snapshot(shard)
    try:
        for chunk in snapshot.positioned_keys():
            for _, key in chunk:
                tally.count(key, router.route(shard, key))
    finally:
        snapshot.close()
    return tally.plan(shard, router)


@dataclass
class Tally:
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


def unreadable(shard: str, error: Exception) -> ShardProblem:
    return ShardProblem(f"{shard}{SHARD_SUFFIX}", f"cannot be read: {error}")


def require_shards(cache_dir: Path, listing: ShardListing) -> ShardListing:
    """`listing`, unless `cache_dir` holds no shard at all: then an error naming the
    subdirectories it ignored (the cache is often one level down, in `cache/`)."""
    if listing.shards or listing.problems:
        return listing
    subdirectories = []
    for name in listing.ignored:
        path = cache_dir / name
        if path.is_dir() and not path.is_symlink():
            try:
                inside = sum(1 for child in path.iterdir() if child.name.endswith(SHARD_SUFFIX))
            except OSError:
                inside = 0
            subdirectories.append((name, inside))
    hint = None
    if subdirectories:
        listed = ", ".join(
            f"{name}/ ({inside} {'shard' if inside == 1 else 'shards'} inside)"
            for name, inside in subdirectories
        )
        best = max(subdirectories, key=lambda pair: pair[1])
        hint = f"subdirectories are not read: {listed}"
        if best[1]:
            hint += f"; did you mean {cache_dir / best[0]}?"
    raise CacheMigrationError(f"no cache shards (*{SHARD_SUFFIX}) in {cache_dir}", hint=hint)


def require_directory(path: Path, what: str) -> None:
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
