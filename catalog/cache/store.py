"""HELM response caches behind the few operations a migration needs.

The migration speaks only to `CacheStore`. `SqliteDirectoryStore` (catalog.cache.sqlite_store)
serves HELM's default layout, one sqlitedict file per shard; HELM's MongoDB backend (one
collection per shard, same keys) would be a second implementation, and the routing would not
change.

Values are never decoded: they are moved as the bytes SQLite holds, so a value that is not a
valid pickle, or one whose unpickling would run code, moves unchanged and harmlessly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from catalog.errors import CacheMigrationError

# What a cache value can be as SQLite returns it (sqlitedict always writes BLOBs).
SqlValue = bytes | str | int | float | None
Entry = tuple[str, SqlValue]
ConflictPolicy = Literal["keep-target", "keep-source", "fail"]
CONFLICT_POLICIES: Final = ("keep-target", "keep-source", "fail")


@dataclass(frozen=True)
class PutCounts:
    """What writing a batch of entries into a shard did to each of them."""

    inserted: int = 0
    already_present: int = 0
    kept_target: int = 0
    took_source: int = 0

    def __add__(self, other: PutCounts) -> PutCounts:
        return PutCounts(
            self.inserted + other.inserted,
            self.already_present + other.already_present,
            self.kept_target + other.kept_target,
            self.took_source + other.took_source,
        )

    @property
    def total(self) -> int:
        return self.inserted + self.already_present + self.kept_target + self.took_source


@dataclass(frozen=True)
class Matching:
    """How many entries a shard holds under the same key, and with the same value too."""

    present: int
    identical: int


@dataclass(frozen=True)
class ShardCopy:
    """The result of copying a whole shard at once; `verified` after the read-back check."""

    counts: PutCounts
    verified: bool
    method: str


@dataclass(frozen=True)
class ShardProblem:
    """A file that looks like a shard but cannot be used; nothing is written for it."""

    file: str
    message: str


@dataclass(frozen=True)
class ShardListing:
    shards: tuple[str, ...]
    problems: tuple[ShardProblem, ...]
    ignored: tuple[str, ...]


class TargetConflictError(CacheMigrationError):
    """`--on-conflict fail` met a key whose value differs; the target was left untouched."""

    def __init__(self, target: str, conflicts: int) -> None:
        super().__init__(
            f"{target}: {conflicts} key(s) already hold a different value; with "
            "--on-conflict fail this target was left untouched (use keep-target or keep-source)"
        )
        self.target = target
        self.conflicts = conflicts


class TargetRefusedError(CacheMigrationError):
    """A target shard that must not be written (unsafe name, symlink, not a cache)."""


class CacheStore(ABC):
    """A set of named shards, each a key -> value table with unique keys."""

    @abstractmethod
    def describe(self, shard: str) -> str:
        """How to name `shard` in a message (a path, a collection)."""

    @abstractmethod
    def list_shards(self) -> ShardListing:
        """The usable shards, the unusable ones with why, and everything else present."""

    @abstractmethod
    def shard_name_problem(self, shard: str) -> str | None:
        """Why this store cannot hold a shard of that name, or None."""

    @abstractmethod
    def exists(self, shard: str) -> bool: ...

    @abstractmethod
    def count(self, shard: str) -> int: ...

    @abstractmethod
    def iter_keys(self, shard: str) -> Iterator[list[str]]:
        """Every key, in chunks; cheaper than entries where the store can skip the values."""

    @abstractmethod
    def iter_entries(self, shard: str) -> Iterator[list[Entry]]:
        """Every entry, in chunks of bounded size; the shard may be changed between chunks."""

    @abstractmethod
    def get_many(self, shard: str, keys: Sequence[str]) -> dict[str, SqlValue]:
        """The entries of `keys` present in the shard (an absent shard holds none)."""

    def count_matching(self, shard: str, entries: Sequence[Entry]) -> Matching:
        """How many of `entries` the shard holds, by key and by key and identical value."""
        found = self.get_many(shard, [key for key, _ in entries])
        identical = sum(
            1 for key, value in entries if key in found and same_value(found[key], value)
        )
        return Matching(len(found), identical)

    @abstractmethod
    def put_many(
        self, shard: str, entries: Sequence[Entry], on_conflict: ConflictPolicy
    ) -> PutCounts:
        """Write `entries` in one transaction, creating the shard if absent.

        An identical entry is already present; a different value under the same key follows
        `on_conflict`, and `fail` raises TargetConflictError with the shard unchanged.
        """

    @abstractmethod
    def delete_many(self, shard: str, keys: Sequence[str]) -> int: ...

    @abstractmethod
    def retire(self, shard: str) -> str:
        """Set the whole shard aside under a backup name (never deleted); returns that name."""

    def copy_shard(
        self,
        source: CacheStore,
        source_shard: str,
        target_shard: str,
        on_conflict: ConflictPolicy,
        *,
        write: bool,
    ) -> ShardCopy | None:
        """Copy every entry of a shard at once, verified; None if this store has no fast way."""
        return None

    @abstractmethod
    def prepare_for_writing(self) -> None:
        """Clear what an interrupted run left behind (only what this store itself creates)."""

    @abstractmethod
    def release(self) -> None:
        """Close what is open; the store can be used again afterwards."""


def same_value(left: SqlValue, right: SqlValue) -> bool:
    """Equality as SQLite's IS sees it: b'1' and '1' differ, 1 and 1.0 do not."""
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        return left == right
    return type(left) is type(right) and left == right


def entry_size(key: str, value: SqlValue) -> int:
    """About the bytes an entry takes in memory, for the budgets of chunks and batches."""
    return len(key) + (len(value) if isinstance(value, (bytes, str)) else 8)
