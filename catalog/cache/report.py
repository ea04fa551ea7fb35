"""What `catalog cache plan` and `catalog cache migrate` report, shard by shard and in total."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.cache.sqlite_store import SHARD_SUFFIX
from catalog.cache.store import ShardProblem
from catalog.db.records import Record


def summed(items: Iterable[Any], *names: str) -> dict[str, int]:
    """The sum of each named field over `items`."""
    listed = list(items)
    return {name: sum(getattr(item, name) for item in listed) for name in names}


def merged_counts(counts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """Per-host counts added up over shards, hosts in name order."""
    total: Counter[str] = Counter()
    for mapping in counts:
        total.update(mapping)
    return dict(sorted(total.items()))


@dataclass(frozen=True)
class UnroutedExample(Record):
    key: str
    reason: str


@dataclass(frozen=True)
class ShardPlan(Record):
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


@dataclass(frozen=True)
class CachePlan(Record):
    """`catalog cache plan`: what a migration would do; nothing is written."""

    cache_dir: Path
    policy: str
    shards: tuple[ShardPlan, ...]
    problems: tuple[ShardProblem, ...]
    ignored_files: tuple[str, ...]

    @property
    def totals(self) -> dict[str, Any]:
        return {
            **summed(self.shards, "entries"),
            "moves": merged_counts(s.moves for s in self.shards),
            **summed(self.shards, "stays", "unrouted"),
        }

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "totals": self.totals}


@dataclass(frozen=True)
class ConflictCounts(Record):
    kept_target: int = 0
    took_source: int = 0


@dataclass(frozen=True)
class MoveMigration(Record):
    """One move: the entries of a source shard that went to one target shard, and how.

    `kind` is `whole shard` (every entry of the source went there) or `routed` (some of
    them); `method` is how the move was made: `reflink` or `file copy` (a whole shard into
    an absent target, published when complete), `rename, backup by file copy` or `rename,
    backup by reflink` (the same in place: the shard's own file takes the target's name once
    its backup is made), `inserts in key order` (into an existing target, or part of a
    shard); empty if nothing was done. `seconds` is the time spent writing and verifying it.
    `refused` is true when `--on-conflict fail` found a key of the target holding another
    value: nothing of this move was written, the target was left untouched.
    """

    target: str
    kind: str
    method: str
    entries: int
    seconds: float
    refused: bool = False

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class ShardMigration(Record):
    """What the migration did with one source shard.

    `moved` counts entries newly written into each host shard; `already_present` and the
    conflicts count every entry the run wrote or found (with `--out`, the staying entries copied
    into the new layout too). `failed` entries were not moved (a refused or failing target).
    `moves` says, per target, how the move was made; `method` lists those methods.
    In place, `received` counts the entries earlier shards of the run moved into this one; they
    are not counted again in its `entries` and `stayed`, so the totals are the cache's entries.
    """

    shard: str
    entries: int
    routed: Mapping[str, int]
    moved: Mapping[str, int]
    received: int
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
    moves: tuple[MoveMigration, ...]
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
        return {**super().to_json(), "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class CacheMigrationReport(Record):
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
        summary = self.conflict_summary
        if summary is not None:
            found.append(summary)
        return found

    @property
    def conflict_summary(self) -> str | None:
        """With `--on-conflict fail` and a target refused: which targets were left untouched
        (and whose entries stayed where they were), and which received entries all the same."""
        refused: dict[str, list[str]] = {}
        for shard in self.shards:
            for move in shard.moves:
                if move.refused:
                    refused.setdefault(move.target, []).append(
                        f"{move.entries} entries of {shard.shard}{SHARD_SUFFIX}"
                    )
        if not refused:
            return None
        received: dict[str, int] = {}
        for shard in self.shards:
            for target, count in shard.moved.items():
                received[target] = received.get(target, 0) + count
            if shard.copied:
                received[shard.shard] = received.get(shard.shard, 0) + shard.copied
        untouched = "; ".join(
            f"{self._target(target)} ({', '.join(sources)} meant for it stayed where they were)"
            for target, sources in sorted(refused.items())
        )
        written = ", ".join(
            f"{self._target(target)} ({count})"
            for target, count in sorted(received.items())
            if count
        )
        verb = "would have received" if self.dry_run else "received"
        return (
            f"--on-conflict fail: left untouched: {untouched}. "
            + (
                f"Targets that {verb} entries: {written}."
                if written
                else "No target received entries."
            )
            + " Run again with --on-conflict keep-target or keep-source to move the rest."
        )

    def _target(self, shard: str) -> Path:
        return (self.out_dir or self.cache_dir) / f"{shard}{SHARD_SUFFIX}"

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
        shards = self.shards
        conflicts = [s.conflicts for s in shards]
        return {
            **summed(shards, "entries"),
            "moved": merged_counts(s.moved for s in shards),
            **summed(shards, "stayed", "unrouted", "copied", "already_present"),
            "conflicts": summed(conflicts, "kept_target", "took_source"),
            **summed(shards, "failed"),
            "backups": sum(1 for s in shards if s.backup),
            **summed(shards, "pruned"),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            **super().to_json(),
            "totals": self.totals,
            "changed": self.changed,
            "errors": self.errors,
        }
