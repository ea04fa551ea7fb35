#!/usr/bin/env python
"""Benchmark `catalog cache migrate` against raw SQLite copies, a file copy and a naive loop.

Generates an old, creator-named HELM cache of N entries (keys about 1 KB of request JSON whose
prompt starts with random text, so that key order is not insertion order, as in a real cache;
values about 2 KB of pickled response) in three shards chosen from the catalog:
- a whole-shard move into an absent target (every model of the creator on one host),
- a whole-shard move into the same target, by then existing,
- a routed shard whose models are served by several hosts.
and measures, in the same run, each step starting alike (dirty pages flushed, sources read
once so that every step finds them in the page cache):
(b) per shard, three baselines copying the same rows into a fresh file: the raw
    `ATTACH` + `INSERT ... SELECT`, the same `ORDER BY key`, and a plain copy of the file
    (`shutil.copyfile` + fsync);
(c) the naive baseline: a sample put through sqlitedict with a commit after each entry;
(d) `catalog cache scan` of the same cache, in a child process (peak RSS reported);
(a) the migration, in a child process (--out, then --in-place): entries/s per kind of move
    and overall, each against the baselines of the same shards, and the child's peak RSS.

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
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from catalog.cache.sqlite_store import WRITE_CACHE_KIB  # noqa: E402

SHARED_V0512 = REPO.parent / "shared" / "helm-configs" / "v0.5.12"
CREATE_TABLE = 'CREATE TABLE IF NOT EXISTS "unnamed" (key TEXT PRIMARY KEY, value BLOB)'
# Targets of issue 14: ratios of entries/s, and megabytes.
TARGETS = {"whole": 2.0, "routed": 1.0, "naive": 10.0, "rss_mb": 200.0, "scan": 5.0}
SHARE = {"whole_absent": 0.3, "whole_existing": 0.2, "routed": 0.5}
BASELINES = ("raw", "raw_ordered", "file_copy")
BASELINE_NAMES = {
    "raw": "INSERT ... SELECT",
    "raw_ordered": "INSERT ... SELECT ORDER BY key",
    "file_copy": "file copy",
}


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
    parser.add_argument("--child", choices=["out", "in-place", "scan"], help=argparse.SUPPRESS)
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
    print(f"catalog: {source or 'bundled configs/'}; load average {os.getloadavg()[0]:.2f}")
    print(
        f"generated {entries:,} entries in {time.perf_counter() - started:.1f} s "
        f"({size:,.0f} MiB): {layout.whole_absent} -> {layout.whole_host} (whole, absent "
        f"target), {layout.whole_existing} -> {layout.whole_host} (whole, existing target), "
        f"{layout.routed} -> several hosts (routed)"
    )

    seconds: dict[str, dict[str, float]] = {name: {} for name in BASELINES}
    for shard in counts:
        path = cache / f"{shard}.sqlite"
        seconds["raw"][shard] = timed(path, lambda p=path: raw_copy(p, workdir, ordered=False))
        seconds["raw_ordered"][shard] = timed(
            path, lambda p=path: raw_copy(p, workdir, ordered=True)
        )
        seconds["file_copy"][shard] = timed(path, lambda p=path: file_copy(p, workdir))
    naive_rate = naive_rate_per_second(cache / f"{layout.routed}.sqlite", workdir, sample)

    print()
    print("(b) baselines, per shard, into a fresh file (entries/s):")
    print(
        f"    {'shard':<14} {'entries':>9}"
        + "".join(f" {BASELINE_NAMES[b]:>31}" for b in BASELINES)
    )
    for shard, n in counts.items():
        rates = "".join(f" {n / seconds[b][shard]:>31,.0f}" for b in BASELINES)
        print(f"    {shard:<14} {n:>9,}{rates}")
    print(f"(c) naive sqlitedict put + commit each ({sample:,} sample): {naive_rate:,.0f} /s")

    scan = run_child_process("scan", db, cache, workdir / "out")
    scan_rate = entries / scan["seconds"]
    print(
        f"(d) catalog cache scan: {scan['seconds']:.1f} s, {scan_rate:,.0f} entries/s, "
        f"peak RSS {scan['max_rss_mb']:.0f} MB (a worker process at most "
        f"{scan['children_max_rss_mb']:.0f} MB, counting the pages it shares with its parent), "
        f"counted {scan['entries']:,} entries"
    )

    kinds = {
        "whole shard, absent target": [layout.whole_absent],
        "whole shard, existing target": [layout.whole_existing],
        "whole-shard moves": [layout.whole_absent, layout.whole_existing],
        "routed shard": [layout.routed],
        "overall": list(counts),
    }
    failures = 0
    for mode in ("out", "in-place"):
        out = workdir / "out"
        result = run_child_process(mode, db, cache, out)
        shutil.rmtree(out, ignore_errors=True)
        shards = {s["shard"]: s for s in result["report"]["shards"]}
        print(
            f"\n(a) migrate --{mode}: {result['seconds']:.1f} s, verified={result['verified']}, "
            f"load average {result['load']:.2f}"
        )
        print(
            f"    {'move kind':<29} {'entries':>9} {'entries/s':>9}"
            f" {'x raw':>6} {'x ordered':>9} {'x file':>6} {'x naive':>7}  method"
        )
        for kind, members in kinds.items():
            n = sum(counts[s] for s in members)
            taken = (
                result["seconds"]
                if kind == "overall"
                else sum(shards[s]["seconds"] for s in members)
            )
            rate = n / taken
            ratios = {b: rate / (n / sum(seconds[b][s] for s in members)) for b in BASELINES}
            methods = "; ".join(shards[s]["method"] for s in members) if len(members) < 3 else ""
            print(
                f"    {kind:<29} {n:>9,} {rate:>9,.0f} {ratios['raw']:>6.2f}"
                f" {ratios['raw_ordered']:>9.2f} {ratios['file_copy']:>6.2f}"
                f" {rate / naive_rate:>7.1f}  {methods}"
            )
            target = {"whole-shard moves": "whole", "routed shard": "routed"}.get(kind)
            if target is not None:
                failures += check(kind, ratios["raw"], TARGETS[target], "x the raw copy")
            if kind == "overall":
                failures += check(kind, rate / naive_rate, TARGETS["naive"], "x the naive loop")
                failures += check(
                    "scan", scan_rate / rate, TARGETS["scan"], "x this migration's entries/s"
                )
        failures += check("peak RSS", result["max_rss_mb"], TARGETS["rss_mb"], " MB", at_most=True)
        failures += not result["verified"]
    return 1 if failures else 0


def check(label: str, value: float, target: float, unit: str, *, at_most: bool = False) -> int:
    ok = value <= target if at_most else value >= target
    sign = "<=" if at_most else ">="
    print(
        f"      {label}: {value:.2f}{unit} (target {sign} {target:g}{unit}) "
        f"{'ok' if ok else 'MISSED'}"
    )
    return 0 if ok else 1


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
            "prompt": base64.b64encode(os.urandom(660)).decode() + f" ({seed} {number})",
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


def timed(shard: Path, step: Callable[[], None]) -> float:
    settle(shard)
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def raw_copy(shard: Path, workdir: Path, *, ordered: bool) -> None:
    """The rows of `shard` into a fresh file by one `INSERT ... SELECT`, as SQLite does it."""
    target = workdir / "raw-copy.sqlite"
    target.unlink(missing_ok=True)
    connection = sqlite3.connect(target, isolation_level=None)
    # The page cache the migration gives its writers, so that both copy alike.
    connection.execute(f"PRAGMA cache_size = -{WRITE_CACHE_KIB}")
    connection.execute(CREATE_TABLE)
    connection.execute("ATTACH DATABASE ? AS source", (str(shard),))
    connection.execute("BEGIN")
    order = " ORDER BY key" if ordered else ""
    connection.execute(f'INSERT INTO main."unnamed" SELECT key, value FROM source."unnamed"{order}')
    connection.execute("COMMIT")
    connection.execute("DETACH DATABASE source")
    connection.close()
    target.unlink()


def file_copy(shard: Path, workdir: Path) -> None:
    """A plain copy of the file, made durable as the migration makes its copies."""
    target = workdir / "file-copy.sqlite"
    target.unlink(missing_ok=True)
    shutil.copyfile(shard, target)
    descriptor = os.open(target, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    target.unlink()


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


def run_child_process(mode: str, db: Path, cache: Path, out: Path) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", mode, "--db", str(db), "--cache", str(cache)]
    if mode == "out":
        command += ["--out", str(out)]
    settle(*sorted(cache.iterdir()))
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"{mode} child failed:\n{completed.stderr}")
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def run_child(mode: str, db: Path, cache: Path, out: Path | None) -> int:
    from catalog import Catalog

    with Catalog.open(db) as catalog:
        started = time.perf_counter()
        if mode == "scan":
            scanned = catalog.scan_cache(cache)
            seconds = time.perf_counter() - started
            summary: dict[str, Any] = {"entries": scanned.totals["entries"], "ok": scanned.ok}
        else:
            report = catalog.migrate_cache(
                cache, out=out if mode == "out" else None, in_place=mode == "in-place"
            )
            seconds = time.perf_counter() - started
            summary = {
                "verified": report.verified,
                "errors": report.errors,
                "report": report.to_json(),
                "ok": report.ok,
            }
    children_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    summary.update(
        seconds=seconds,
        max_rss_mb=peak_rss_kb() / 1024,
        children_max_rss_mb=children_kb / 1024,
        load=os.getloadavg()[0],
    )
    print(json.dumps(summary))
    return 0 if summary["ok"] else 1


def peak_rss_kb() -> int:
    """This process's peak resident memory. Linux's VmHWM belongs to the process's own memory
    since its exec; getrusage's ru_maxrss would also count the parent's peak before the exec
    (the benchmark itself, which has just read whole shards)."""
    with suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


if __name__ == "__main__":
    sys.exit(main())
