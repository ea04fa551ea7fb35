#!/usr/bin/env python
"""Benchmark `catalog cache migrate` against a raw SQLite copy and a naive sqlitedict loop.

Generates an old, creator-named HELM cache of N entries (keys about 1 KB of request JSON,
values about 2 KB of pickled response) in three shards chosen from the catalog:
- a whole-shard move into an absent target (every model of the creator on one host),
- a whole-shard move into the same target, then existing,
- a routed shard whose models are served by several hosts (entry by entry).
and measures, in the same run:
(a) the migration (in a child process, --out then --in-place): entries/s for the whole-shard
    moves and for the routed shard, overall entries/s, and the child's peak RSS;
(b) the physical baseline: ATTACH + INSERT ... SELECT of the same rows into a fresh file;
(c) the naive baseline: every entry of a sample put through sqlitedict with a commit each.

    .venv/bin/python scripts/bench_cache_migration.py                 # 300,000 entries
    .venv/bin/python scripts/bench_cache_migration.py --entries 1000000
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import pickle
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from catalog.cache.sqlite_store import WRITE_CACHE_KIB  # noqa: E402

SHARED_V0512 = REPO.parent / "shared" / "helm-configs" / "v0.5.12"
CREATE_TABLE = 'CREATE TABLE IF NOT EXISTS "unnamed" (key TEXT PRIMARY KEY, value BLOB)'
TARGETS = {"whole": 0.8, "routed": 0.5, "naive": 10.0, "rss_mb": 200.0}
SHARE = {"whole_absent": 0.3, "whole_existing": 0.2, "routed": 0.5}


@dataclass(frozen=True)
class Layout:
    whole_absent: str
    whole_existing: str
    whole_host: str
    routed: str
    models: dict[str, list[str]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=300_000)
    parser.add_argument("--sample", type=int, default=20_000, help="naive baseline sample")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temp directory")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--child", choices=["out", "in-place"], help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return run_child(args.child, args.db, args.cache, args.out)
    workdir = Path(tempfile.mkdtemp(prefix="bench-cache-", dir=args.workdir))
    try:
        return run(args.entries, args.sample, workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def run(entries: int, sample: int, workdir: Path) -> int:
    db = workdir / "catalog.db"
    source = SHARED_V0512 if SHARED_V0512.is_dir() else None
    sync_catalog(db, source)
    layout = choose_layout(db)
    cache = workdir / "cache"
    cache.mkdir()
    counts = {
        layout.whole_absent: int(entries * SHARE["whole_absent"]),
        layout.whole_existing: int(entries * SHARE["whole_existing"]),
    }
    counts[layout.routed] = entries - sum(counts.values())
    started = time.perf_counter()
    for shard, n in counts.items():
        generate_shard(cache / f"{shard}.sqlite", layout.models[shard], n, seed=shard)
    size = sum(p.stat().st_size for p in cache.iterdir()) / 2**20
    print(f"catalog: {source or 'bundled configs/'}")
    print(
        f"generated {entries:,} entries in {time.perf_counter() - started:.1f} s "
        f"({size:,.0f} MiB): {layout.whole_absent} -> {layout.whole_host} (whole, absent "
        f"target), {layout.whole_existing} -> {layout.whole_host} (whole, existing target), "
        f"{layout.routed} -> several hosts (routed)"
    )

    raw = {shard: raw_copy_seconds(cache / f"{shard}.sqlite", workdir) for shard in counts}
    naive_rate = naive_rate_per_second(cache / f"{layout.routed}.sqlite", workdir, sample)

    results = {}
    for mode in ("out", "in-place"):
        out = workdir / "out"
        results[mode] = run_migration_child(mode, db, cache, out)
        shutil.rmtree(out, ignore_errors=True)

    whole = [layout.whole_absent, layout.whole_existing]
    raw_whole = sum(counts[s] for s in whole) / sum(raw[s] for s in whole)
    raw_routed = counts[layout.routed] / raw[layout.routed]
    print()
    print("(b) raw copy (ATTACH + INSERT ... SELECT into a fresh file):")
    for shard in counts:
        print(
            f"    {shard:<16} {counts[shard]:>9,} entries  {counts[shard] / raw[shard]:>9,.0f} /s"
        )
    print(f"(c) naive sqlitedict put + commit each ({sample:,} sample): {naive_rate:,.0f} /s")
    failures = 0
    for mode, result in results.items():
        shards = {s["shard"]: s for s in result["report"]["shards"]}
        whole_rate = sum(shards[s]["entries"] for s in whole) / sum(
            shards[s]["seconds"] for s in whole
        )
        routed_rate = shards[layout.routed]["entries"] / shards[layout.routed]["seconds"]
        overall = entries / result["seconds"]
        rss = result["max_rss_mb"]
        print(f"\n(a) migrate --{mode}: {result['seconds']:.1f} s, verified={result['verified']}")
        for shard in counts:
            s = shards[shard]
            print(
                f"    {shard:<16} {s['entries']:>9,} entries  "
                f"{s['entries'] / s['seconds']:>9,.0f} /s  ({s['method']})"
            )
        checks = [
            ("whole-shard moves", whole_rate, raw_whole, TARGETS["whole"], "x raw copy"),
            ("routed shard", routed_rate, raw_routed, TARGETS["routed"], "x raw copy"),
            ("overall", overall, naive_rate, TARGETS["naive"], "x naive"),
        ]
        for label, rate, baseline, target, unit in checks:
            ratio = rate / baseline
            ok = ratio >= target
            failures += not ok
            print(
                f"    {label:<18} {rate:>9,.0f} /s vs {baseline:>9,.0f} /s = {ratio:5.2f}{unit}"
                f"  (target >= {target}{unit}) {'ok' if ok else 'MISSED'}"
            )
        ok = rss <= TARGETS["rss_mb"]
        failures += not ok
        print(
            f"    peak RSS of the migrating process: {rss:.0f} MB "
            f"(target <= {TARGETS['rss_mb']:.0f} MB) {'ok' if ok else 'MISSED'}"
        )
        failures += not result["verified"]
    return 1 if failures else 0


def sync_catalog(db: Path, source: Path | None) -> None:
    from catalog import Catalog

    with Catalog.open(db) as catalog:
        catalog.sync([source] if source is not None else [])


def choose_layout(db: Path) -> Layout:
    """Two creators whose models all live on one host, and one split across hosts."""
    connection = sqlite3.connect(db)
    try:
        rows = connection.execute(
            """
            SELECT m.creator_prefix, m.name, v.default_host_organization
            FROM model_default_deployments AS v JOIN models AS m ON m.name = v.model
            WHERE v.default_host_organization IS NOT NULL
            ORDER BY m.creator_prefix, m.position
            """
        ).fetchall()
        own = {
            host
            for (host,) in connection.execute("SELECT DISTINCT host_organization FROM deployments")
        }
    finally:
        connection.close()
    models: dict[str, list[str]] = {}
    hosts: dict[str, set[str]] = {}
    for prefix, name, host in rows:
        models.setdefault(prefix, []).append(name)
        hosts.setdefault(prefix, set()).add(host)
    single: dict[str, list[str]] = {}
    for prefix, found in hosts.items():
        (host,) = found if len(found) == 1 else (None,)
        if host is not None and host != prefix and prefix not in own:
            single.setdefault(host, []).append(prefix)
    host, prefixes = max(single.items(), key=lambda item: len(item[1]))
    whole_absent, whole_existing = sorted(prefixes, key=lambda p: -len(models[p]))[:2]
    whole_absent, whole_existing = sorted([whole_absent, whole_existing])
    routed = max(
        (p for p in hosts if len(hosts[p]) > 2 and p > whole_existing),
        key=lambda p: len(hosts[p]),
    )
    return Layout(whole_absent, whole_existing, host, routed, models)


def generate_shard(path: Path, models: list[str], count: int, seed: str) -> None:
    """sqlitedict's file format, written directly (sqlitedict itself would take minutes)."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute(CREATE_TABLE)
    connection.execute("BEGIN")
    batch: list[tuple[str, bytes]] = []
    for number in range(count):
        request = {
            "model": models[number % len(models)],
            "prompt": f"{seed}:{number}:" + base64.b64encode(os.urandom(660)).decode(),
            "temperature": 0.0,
            "num_completions": 1,
            "top_k_per_token": 1,
            "max_tokens": 100,
            "stop_sequences": ["\n"],
            "echo_prompt": False,
            "top_p": 1,
            "presence_penalty": 0,
            "frequency_penalty": 0,
        }
        response = {
            "completions": [{"text": base64.b64encode(os.urandom(1400)).decode(), "logprob": -1.5}],
            "cached": False,
            "request_time": 1.25,
            "request_datetime": 1_700_000_000 + number,
        }
        batch.append((json.dumps(request, sort_keys=True), pickle.dumps(response, protocol=4)))
        if len(batch) == 5_000:
            connection.executemany('INSERT INTO "unnamed" VALUES (?, ?)', batch)
            batch.clear()
    connection.executemany('INSERT INTO "unnamed" VALUES (?, ?)', batch)
    connection.execute("COMMIT")
    connection.close()


def settle(*warm: Path) -> None:
    """Start each measured step alike: earlier writes flushed, the source files read once
    (so every step finds them in the page cache, whatever ran before it)."""
    os.sync()
    for path in warm:
        with path.open("rb") as file:
            while file.read(2**24):
                pass
    time.sleep(1)


def raw_copy_seconds(shard: Path, workdir: Path) -> float:
    target = workdir / "raw-copy.sqlite"
    target.unlink(missing_ok=True)
    settle(shard)
    started = time.perf_counter()
    connection = sqlite3.connect(target, isolation_level=None)
    # The page cache the migration gives its writers, so that both copy alike.
    connection.execute(f"PRAGMA cache_size = -{WRITE_CACHE_KIB}")
    connection.execute(CREATE_TABLE)
    connection.execute("ATTACH DATABASE ? AS source", (str(shard),))
    connection.execute("BEGIN")
    connection.execute('INSERT INTO main."unnamed" SELECT key, value FROM source."unnamed"')
    connection.execute("COMMIT")
    connection.execute("DETACH DATABASE source")
    connection.close()
    seconds = time.perf_counter() - started
    target.unlink()
    return seconds


def naive_rate_per_second(shard: Path, workdir: Path, sample: int) -> float:
    """HELM-style: read through sqlitedict (values unpickled), put and commit one by one."""
    from sqlitedict import SqliteDict  # type: ignore[import-untyped]

    sample_path = workdir / "naive-sample.sqlite"
    target_path = workdir / "naive-target.sqlite"
    connection = sqlite3.connect(sample_path, isolation_level=None)
    connection.execute(CREATE_TABLE)
    connection.execute("ATTACH DATABASE ? AS source", (str(shard),))
    connection.execute(
        'INSERT INTO main."unnamed" SELECT key, value FROM source."unnamed" LIMIT ?', (sample,)
    )
    connection.execute("DETACH DATABASE source")
    connection.close()
    settle(sample_path)
    started = time.perf_counter()
    moved = 0
    with (
        SqliteDict(str(sample_path), tablename="unnamed", flag="r") as source,
        SqliteDict(str(target_path), tablename="unnamed", autocommit=False) as target,
    ):
        for key, value in source.items():
            target[key] = value
            target.commit()
            moved += 1
    seconds = time.perf_counter() - started
    sample_path.unlink()
    target_path.unlink()
    return moved / seconds


def run_migration_child(mode: str, db: Path, cache: Path, out: Path) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", mode, "--db", str(db), "--cache", str(cache)]
    if mode == "out":
        command += ["--out", str(out)]
    settle(*sorted(cache.iterdir()))
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"migration child failed:\n{completed.stderr}")
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def run_child(mode: str, db: Path, cache: Path, out: Path | None) -> int:
    from catalog import Catalog

    with Catalog.open(db) as catalog:
        started = time.perf_counter()
        report = catalog.migrate_cache(
            cache, out=out if mode == "out" else None, in_place=mode == "in-place"
        )
        seconds = time.perf_counter() - started
    max_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "seconds": seconds,
                "verified": report.verified,
                "errors": report.errors,
                "max_rss_mb": max_rss_kb / 1024,
                "report": report.to_json(),
            }
        )
    )
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
