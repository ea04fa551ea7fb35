"""HELM response caches behind the few operations a migration needs.

The migration speaks only to `CacheStore`. `SqliteDirectoryStore` (catalog.cache.sqlite_store)
serves HELM's default layout, one sqlitedict file per shard; HELM's MongoDB backend (one
collection per shard, same keys) would be a second implementation, and the routing would not
change.

A migration reads each shard's keys once, with the position of each entry, routes them, and
then asks the store to move entries by position: the values never pass through Python, so
the store can copy them in bulk, in key order, and compare them where they lie. Values are
never decoded: they are moved as the bytes the store holds, so a value that is not a valid
pickle, or one whose unpickling would run code, moves unchanged and harmlessly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from catalog.errors import CacheMigrationError

# What a cache value or key can be as SQLite returns it (sqlitedict always writes BLOB values).
SqlValue = bytes | str | int | float | None
# Where an entry lies in its shard (for SQLite, its rowid); valid while the shard is read.
Position = int
ConflictPolicy = Literal["keep-target", "keep-source", "fail"]
CONFLICT_POLICIES: Final = ("keep-target", "keep-source", "fail")

# The ways a move is made, as the report names them ("method" of each move).
REFLINK: Final = "reflink"
FILE_COPY: Final = "file copy"
RENAME_BACKUP_REFLINK: Final = "rename, backup by reflink"
RENAME_BACKUP_COPY: Final = "rename, backup by file copy"
KEY_ORDER_INSERTS: Final = "inserts in key order"


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


class ShardSnapshot(ABC):
    """One shard held still while it is migrated: nobody else can change it until `close`.

    So the positions its keys were read with still name the same entries when they are moved,
    and a whole-shard copy made meanwhile holds exactly the entries that were routed.
    """

    @abstractmethod
    def positioned_keys(self) -> Iterator[list[tuple[Position, str]]]:
        """Every (position, key), in key order, in chunks of bounded size."""

    @abstractmethod
    def close(self) -> None: ...


class StagedMove(ABC):
    """A whole shard made ready under a name nobody reads, then published in one step.

    `prepare` does the slow part (copy and verify) and may run on another thread while the
    shard's keys are routed; `publish` makes it visible atomically, or returns False if a file
    appeared meanwhile under the name it needs (then nothing is published); `discard` undoes
    `prepare`. Nothing is published by `prepare`, so a kill at any moment leaves only a
    temporary file that the next run removes.
    """

    @property
    @abstractmethod
    def method(self) -> str:
        """How the move is made: one of the method names above (known after `prepare`)."""

    @property
    def backup(self) -> str | None:
        """The name of the backup the move keeps of its source, if it keeps one."""
        return None

    @abstractmethod
    def prepare(self) -> None: ...

    @abstractmethod
    def publish(self) -> bool: ...

    @abstractmethod
    def discard(self) -> None: ...


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
    def snapshot(self, shard: str) -> ShardSnapshot:
        """Hold `shard` still (no other writer can commit) and read its keys with positions."""

    @abstractmethod
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
        """Copy the entries at `positions` (given in key order) into `target_shard` of this
        store in one transaction, creating the shard if absent, then read them back.

        An identical entry is already present; a different value under the same key follows
        `on_conflict`, and `fail` raises TargetConflictError with the shard unchanged. Raises
        CacheMigrationError if the read-back differs (the transaction stays committed: the
        source is then neither renamed nor pruned). Without `write`, counts what it would do.
        """

    @abstractmethod
    def count_conflicts(
        self,
        source: CacheStore,
        source_shard: str,
        positions: Sequence[Position],
        target_shard: str,
    ) -> int:
        """How many of the entries at `positions` have their key in the target with another
        value; nothing is written."""

    @abstractmethod
    def prune_entries(
        self, shard: str, positions: Sequence[Position], target: CacheStore, target_shard: str
    ) -> int:
        """Delete the entries at `positions` that `target_shard` holds identically; returns
        how many were deleted. An entry the target lacks or holds otherwise stays."""

    @abstractmethod
    def stage_copy(
        self, source: CacheStore, source_shard: str, target_shard: str
    ) -> StagedMove | None:
        """Copy a whole shard into this store as a new shard; None if there is no such way
        (the target exists, or the source holds more than the cache table)."""

    @abstractmethod
    def stage_relocation(self, shard: str, target_shard: str) -> StagedMove | None:
        """Give a whole shard the name `target_shard`, keeping a verified backup of it under
        the backup name; None if there is no such way (the target exists)."""

    @abstractmethod
    def retire(self, shard: str) -> str:
        """Set the whole shard aside under a backup name (never deleted); returns that name."""

    @abstractmethod
    def prepare_for_writing(self) -> None:
        """Clear what an interrupted run left behind (only what this store itself creates)."""

    @abstractmethod
    def release(self) -> None:
        """Close what is open; the store can be used again afterwards."""
