"""`catalog cache scan`: what a HELM cache holds, counted read-only and recorded in the catalog;
`explain` and `list deployments --cached` read it; revision 0004_cache_scan."""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from cache_helpers import file_bytes, key, response, write_raw, write_shard
from conftest import run_cli
from sqlitedict import SqliteDict

from catalog import Catalog
from catalog.cache import scan as cache_scan
from catalog.db import migrations
from catalog.db.location import DatabaseLocation
from catalog.db.revisions import HEAD_REVISION

# v0.5.12: meta/llama-7b runs on together (together/llama-7b); aisingapore's models on
# huggingface.
LLAMA = {key(model="meta/llama-7b", prompt=str(n)): response(f"llama {n}") for n in range(7)}
OPT = {key(model="meta/opt-175b", prompt=str(n)): response(f"opt {n}") for n in range(3)}
TOKENIZE = {key(tokenizer="meta-llama/Llama-2-7b-hf", text="t"): {"tokens": [1]}}
NOTHING = {key(prompt="no model at all"): response("?")}
SEA_LION = {
    key(model="aisingapore/sea-lion-7b-instruct", prompt=str(n)): response(str(n)) for n in range(4)
}


def _direct(path: Path) -> tuple[int, int]:
    """(entries, bytes of keys and values) counted by plain sqlite3, independently."""
    connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        found = connection.execute('SELECT key, value FROM "unnamed"').fetchall()
    finally:
        connection.close()
    return len(found), sum(len(k.encode()) + len(v) for k, v in found)


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    directory = tmp_path / "cache"
    write_shard(directory, "meta", {**LLAMA, **OPT, **TOKENIZE, **NOTHING})
    write_shard(directory, "aisingapore", SEA_LION)
    (directory / "notes.txt").write_text("not a shard")
    return directory


def test_scan_totals_equal_a_direct_count_and_name_what_the_keys_name(
    v0512: Catalog, cache: Path
) -> None:
    before = file_bytes(cache)
    result = v0512.scan_cache(cache)
    assert result.ok and result.ignored_files == ("notes.txt",)
    by_shard = {s.shard: s for s in result.shards}
    for shard, scanned in by_shard.items():
        assert (scanned.entries, scanned.bytes) == _direct(cache / f"{shard}.sqlite")
    assert result.totals["entries"] == sum(_direct(p)[0] for p in cache.glob("*.sqlite"))
    meta = {(n.kind, n.name): n.entries for n in by_shard["meta"].names}
    assert meta == {
        ("model", "meta/llama-7b"): 7,
        ("model", "meta/opt-175b"): 3,
        ("tokenizer", ""): 1,
        ("none", ""): 1,
    }
    # The scan only read: every file as it was, and no journal, -wal or -shm made.
    assert file_bytes(cache) == before


def test_the_scan_is_recorded_and_replaces_the_last_scan_of_the_directory(
    v0512: Catalog, cache: Path, tmp_path: Path
) -> None:
    v0512.scan_cache(cache)
    other = tmp_path / "other"
    write_shard(other, "meta", OPT)
    v0512.scan_cache(other)
    write_shard(cache, "meta", {key(model="meta/llama-7b", prompt="new"): response("new")})
    v0512.scan_cache(cache)
    rows = v0512.sql(
        "SELECT cache_dir, shard, kind, name, entries FROM cache_scan ORDER BY 1, 2, 3, 4"
    )
    recorded = {
        (Path(r["cache_dir"]).name, r["shard"], r["kind"], r["name"]): r["entries"] for r in rows
    }
    assert recorded[("cache", "meta", "model", "meta/llama-7b")] == 8
    assert recorded[("other", "meta", "model", "meta/opt-175b")] == 3
    assert len([r for r in rows if Path(r["cache_dir"]).name == "cache"]) == 5


def test_cached_responses_count_for_the_deployment_helm_reads_them_for(
    v0512: Catalog, cache: Path, tmp_path: Path
) -> None:
    """Before migrating, llama's entries name the model in meta's shard, which HELM no longer
    reads for it; after, they are in together's shard and count for together/llama-7b."""
    v0512.scan_cache(cache)
    before = v0512.cached_counts("meta/llama-7b")
    assert (before.deployments, before.model_only) == ({}, 7)
    assert v0512.deployments(cached=True) == []
    v0512.migrate_cache(cache, in_place=True, prune=True)
    v0512.scan_cache(cache)
    after = v0512.cached_counts("meta/llama-7b")
    assert after.deployments == {"together/llama-7b": 7} and after.model_only == 0
    cached = {d.name for d in v0512.deployments(cached=True)}
    assert {"together/llama-7b", "huggingface/sea-lion-7b-instruct"} <= cached
    view = v0512.sql(
        "SELECT model, deployment, host_organization, entries FROM cached_responses "
        "WHERE deployment = 'together/llama-7b'"
    )
    assert view == [
        {"model": "meta/llama-7b", "deployment": "together/llama-7b",
         "host_organization": "together", "entries": 7}
    ]  # fmt: skip


def test_explain_and_list_deployments_cached(
    v0512_template: Path, cache: Path, tmp_path: Path
) -> None:
    db = tmp_path / "catalog.db"
    db.write_bytes(v0512_template.read_bytes())
    assert "cached responses" not in run_cli("explain", "meta/llama-7b", db=db).stdout
    as_json = json.loads(run_cli("explain", "meta/llama-7b", "--json", db=db).stdout)
    assert as_json["cached_responses"] is None
    assert run_cli("cache", "migrate", cache, "--in-place", "-q", db=db).returncode == 0
    scanned = run_cli("cache", "scan", cache, db=db)
    assert scanned.returncode == 0, scanned.stderr
    assert (
        "together" in scanned.stdout and "meta/llama-7b" not in scanned.stdout.split("(total)")[1]
    )
    explained = run_cli("explain", "meta/llama-7b", db=db).stdout
    assert "cached responses (catalog cache scan of" in explained
    assert "  together/llama-7b: 7" in explained
    as_json = json.loads(run_cli("explain", "meta/llama-7b", "--json", db=db).stdout)
    assert as_json["cached_responses"]["deployments"] == {"together/llama-7b": 7}
    listed = run_cli("list", "deployments", "--cached", "--json", db=db)
    assert listed.returncode == 0, listed.stderr
    names = {d["name"] for d in json.loads(listed.stdout)}
    assert "together/llama-7b" in names and "huggingface/llama-7b" not in names
    every = json.loads(run_cli("list", "deployments", "--json", db=db).stdout)
    assert len(names) < len(every)


def test_scan_json_and_a_shard_that_cannot_be_read(
    v0512_template: Path, cache: Path, tmp_path: Path
) -> None:
    db = tmp_path / "catalog.db"
    db.write_bytes(v0512_template.read_bytes())
    (cache / "broken.sqlite").write_bytes(b"not a database at all" * 10)
    result = run_cli("cache", "scan", cache, "--json", db=db)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["totals"]["entries"] == 16 and report["totals"]["shards"] == 2
    assert any("broken.sqlite" in error for error in report["errors"])


def test_a_large_cache_is_read_by_several_processes_alike(
    v0512: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ranges of rowids read by worker processes add up to what one process counts."""
    cache = tmp_path / "cache"
    cache.mkdir()
    write_raw(
        cache / "meta.sqlite",
        {
            key(model=("meta/llama-7b", "meta/opt-175b")[n % 2], prompt=n): b"v" * (n % 7)
            for n in range(500)
        },
    )
    alone = v0512.scan_cache(cache)
    monkeypatch.setattr(cache_scan, "PARALLEL_FROM", 1)
    monkeypatch.setattr(cache_scan, "TASK_ROWIDS", 60)
    together = v0512.scan_cache(cache)
    assert together.shards[0].names == alone.shards[0].names
    assert (together.totals["entries"], alone.totals["entries"]) == (500, 500)


def test_a_scan_while_helm_writes_neither_fails_nor_blocks_the_writer(
    v0512: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sqlitedict (HELM's writer) commits on a thread all through the scan: the scan holds no
    lock beyond one short statement, so the writer's commits land while the shard is read."""
    cache = tmp_path / "cache"
    cache.mkdir()
    shard = cache / "meta.sqlite"
    write_raw(shard, {key(model="meta/llama-7b", prompt=n): b"x" * 2000 for n in range(20_000)})
    monkeypatch.setattr(cache_scan, "SCAN_ROWS", 20)
    commits: list[float] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def write() -> None:
        try:
            with SqliteDict(str(shard), tablename="unnamed", autocommit=False, timeout=30) as db:
                number = 0
                while not (stop.is_set() and number >= 5):
                    db[key(model="meta/llama-7b", prompt=f"written {number}")] = {"n": number}
                    db.commit()
                    commits.append(time.monotonic())
                    number += 1
        except BaseException as error:
            failures.append(error)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while not commits and writer.is_alive():
            time.sleep(0.001)  # the writer is at work
        started = time.monotonic()
        result = v0512.scan_cache(cache)
        ended = time.monotonic()
    finally:
        stop.set()
        writer.join(timeout=120)
    assert not failures and not writer.is_alive()
    assert result.ok and result.totals["entries"] >= 20_000
    # Commits went on all through the scan: never a wait like the reading of the whole shard.
    during = [started] + [t for t in commits if started < t < ended] + [ended]
    longest_wait = max(b - a for a, b in itertools.pairwise(during))
    assert len(during) >= 5 and longest_wait < (ended - started) / 4, (during, longest_wait)


# Revision 0004_cache_scan --------------------------------------------------------------------


def _objects(path: Path) -> set[str]:
    connection = sqlite3.connect(path)
    try:
        return {name for (name,) in connection.execute("SELECT name FROM sqlite_master")}
    finally:
        connection.close()


def test_0004_upgrades_a_filled_catalog_and_downgrades_back(
    v0512_template: Path, cache: Path, tmp_path: Path
) -> None:
    db = tmp_path / "catalog.db"
    db.write_bytes(v0512_template.read_bytes())
    location = DatabaseLocation.parse(db)

    def content() -> dict[str, Any]:
        connection = sqlite3.connect(db)
        try:
            return {
                table: connection.execute(f"SELECT {columns} FROM {table} ORDER BY 1").fetchall()
                for table, columns in (
                    ("models", "*"),
                    ("deployments", "*"),
                    ("tokenizers", "*"),
                    ("events", "*"),
                    # A later revision adds syncs.helm_rule; the columns 0004 knows stay.
                    ("syncs", "id, started_at, finished_at, row_counts, helm_version"),
                )
            }
        finally:
            connection.close()

    rows = content()
    migrations.downgrade(location, "0003_history")
    assert migrations.stamped_revision(location) == "0003_history"
    assert not {"cache_scan", "cached_responses", "ix_cache_scan_kind_name"} & _objects(db)
    assert content() == rows
    migrations.upgrade(location)
    assert migrations.stamped_revision(location) == HEAD_REVISION
    assert {"cache_scan", "cached_responses", "ix_cache_scan_kind_name"} <= _objects(db)
    assert content() == rows
    with Catalog.open(db) as catalog:
        catalog.scan_cache(cache)
        assert catalog.cached_counts("meta/llama-7b").model_only == 7
    # Downgrading drops the scans (a scan brings them back) and nothing else.
    migrations.downgrade(location, "0003_history")
    assert content() == rows
