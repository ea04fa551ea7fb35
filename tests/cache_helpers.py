"""Building old HELM caches with sqlitedict, and reading back what a migration left."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from conftest import SHARED_DIR, require_shared
from sqlitedict import SqliteDict

LEGACY_NAMES = SHARED_DIR / "helm-configs" / "legacy-model-names-pre-pr1903.txt"
BACKUP = ".pre-migration"


def key(**request: Any) -> str:
    """A cache key as HELM writes it."""
    return json.dumps(request, sort_keys=True)


def response(text: str) -> dict[str, Any]:
    return {"completions": [{"text": text, "logprob": -1.0}], "cached": True}


def write_shard(directory: Path, shard: str, entries: Mapping[str, Any]) -> Path:
    """A shard written the way HELM writes it: sqlitedict, pickled values."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{shard}.sqlite"
    with SqliteDict(str(path), tablename="unnamed", autocommit=False) as db:
        db.update(entries)  # the statement `db[k] = v` runs, for all entries in one call
        db.commit()
    return path


def write_raw(path: Path, entries: Mapping[str, bytes]) -> None:
    """Values stored as given (not pickled by us), in sqlitedict's table."""
    connection = sqlite3.connect(path)
    with connection:
        connection.execute(
            'CREATE TABLE IF NOT EXISTS "unnamed" (key TEXT PRIMARY KEY, value BLOB)'
        )
        connection.executemany('INSERT INTO "unnamed" VALUES (?, ?)', entries.items())
    connection.close()


def read_shard(path: Path) -> dict[str, Any]:
    """Read back with sqlitedict, as HELM does (only for shards of trusted test values)."""
    with SqliteDict(str(path), tablename="unnamed", flag="r") as db:
        return dict(db.items())


def raw_entries(path: Path) -> dict[str, Any]:
    """key -> value bytes, never unpickled."""
    connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return dict(connection.execute('SELECT key, value FROM "unnamed"').fetchall())
    finally:
        connection.close()


def state(directory: Path) -> dict[str, dict[str, Any]]:
    """Every shard's and backup's key -> value bytes: what "the same final state" compares."""
    found = {}
    for path in sorted(directory.iterdir()):
        if path.name.endswith(".sqlite") or BACKUP in path.name:
            found[path.name] = raw_entries(path)
    return found


def file_bytes(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def shards(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def legacy_names() -> list[str]:
    return require_shared(LEGACY_NAMES).read_text().split()


def legacy_cache(directory: Path, names: Iterable[str], per_model: int = 3) -> dict[str, int]:
    """An old cache: one shard per creator prefix, a few entries per model; entries by shard."""
    by_shard: dict[str, dict[str, Any]] = {}
    for name in names:
        prefix = name.partition("/")[0]
        entries = by_shard.setdefault(prefix, {})
        for number in range(per_model):
            entries[key(model=name, prompt=f"question {number}", temperature=0.0)] = response(
                f"{name} answer {number}"
            )
    for shard, entries in by_shard.items():
        write_shard(directory, shard, entries)
    return {shard: len(entries) for shard, entries in by_shard.items()}
