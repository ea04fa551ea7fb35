"""Benchmark what history costs: database growth per sync, and answers as of an earlier sync.

    python scripts/bench_history.py [--syncs 100] [--models 600] [--runs 7]

Two replays, each into a fresh catalog: the transitions between the real HELM snapshots in
../shared/helm-configs (2023-11-17-pr1903 -> v0.5.0 -> v0.5.12), then synthetic syncs of a
catalog of N models (and as many deployments), each changing 5% of the rows (a description, a
deprecated flag). Reported per sync: how much the history grew in the database file (its
tables and indexes, measured with SQLite's dbstat), against the size of the changed rows as JSON
(target: at most 2x). Then `resolve 'model=text'` as of a sync in the middle
of the history against the same on the current catalog, each on a freshly opened catalog
(interleaved rounds, medians; target: at most 5x). Exit status 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from catalog import Catalog
from catalog.db.records import jsonable

REPO_ROOT = Path(__file__).resolve().parent.parent
SNAPSHOTS = REPO_ROOT.parent / "shared" / "helm-configs"
GROWTH_TARGET = 2.0
AS_OF_TARGET = 5.0


HISTORY_TABLES = ("events", "change_log", "default_change_log")


def history_size(catalog: Catalog) -> int:
    """Bytes the history takes in the file: its tables and their indexes (SQLite's dbstat)."""
    raw = catalog.connection.raw
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    marks = ", ".join("?" for _ in HISTORY_TABLES)
    (size,) = raw.execute(
        "SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name IN "
        f"(SELECT name FROM sqlite_master WHERE tbl_name IN ({marks}))",
        HISTORY_TABLES,
    ).fetchone()
    return int(size)


def changed_rows_json(catalog: Catalog, sync_id: int) -> int:
    """Bytes of the rows a sync added, removed or changed, each whole, as JSON."""
    total = 0
    rows = catalog.sql(
        "SELECT table_name, name, change FROM changes WHERE sync_id = ? AND change != 'moved'",
        [sync_id],
    )
    for row in rows:
        table, name = row["table_name"], row["name"]
        if row["change"] == "removed":
            found = catalog.sql("SELECT before FROM changes WHERE sync_id = ? AND name = ? AND "
                                "table_name = ?", [sync_id, name, table])  # fmt: skip
            total += len(found[0]["before"])
            continue
        lookup = {"models": catalog.model, "deployments": catalog.deployment,
                  "tokenizers": catalog.tokenizer}.get(table)  # fmt: skip
        record = lookup(name).to_json() if lookup else {"name": name}
        total += len(json.dumps(jsonable(record)))
    return total


def synthetic_sources(directory: Path, models: int, step: int, rng: random.Random) -> Path:
    """A catalog of `models` models and deployments; each step changes 5% of them."""
    directory.mkdir(parents=True, exist_ok=True)
    state_file = directory.parent / "state.json"
    state: dict[str, Any] = (
        json.loads(state_file.read_text()) if state_file.exists() else {"desc": {}, "dep": {}}
    )
    if step > 0:
        for index in rng.sample(range(models), max(1, models // 20)):
            if rng.random() < 0.5:
                state["desc"][str(index)] = f"revision {step}"
            else:
                state["dep"][str(index)] = not state["dep"].get(str(index), False)
    state_file.write_text(json.dumps(state))
    model_entries = [
        {
            "name": f"org{i % 40}/model-{i}",
            "display_name": f"Model {i}",
            "description": f"Model {i}, {state['desc'].get(str(i), 'first release')}.",
            "creator_organization_name": f"Org {i % 40}",
            "access": "open",
            "release_date": "2025-01-01",
            "tags": ["TEXT_MODEL_TAG", "FULL_FUNCTIONALITY_TEXT_MODEL_TAG"],
        }
        for i in range(models)
    ]
    deployment_entries = [
        {
            "name": f"host{i % 7}/model-{i}",
            "model_name": f"org{i % 40}/model-{i}",
            "max_sequence_length": 4096,
            "client_spec": {"class_name": "helm.clients.simple_client.SimpleClient"},
            **({"deprecated": True} if state["dep"].get(str(i)) else {}),
        }
        for i in range(models)
    ]
    for name, key, entries in (
        ("model_metadata.yaml", "models", model_entries),
        ("model_deployments.yaml", "model_deployments", deployment_entries),
        ("tokenizer_configs.yaml", "tokenizer_configs", []),
    ):
        (directory / name).write_text(yaml.safe_dump({key: entries}, sort_keys=False))
    return directory


def replay(catalog: Catalog, sources: list[Path]) -> list[tuple[int, int]]:
    """Sync each source in turn: (history growth, changed rows as JSON), in bytes, per sync."""
    figures = []
    size = history_size(catalog)
    for source in sources:
        catalog.sync([source])
        (sync_id,) = catalog.connection.execute("SELECT max(id) FROM syncs").fetchone()
        grown = history_size(catalog)
        figures.append((grown - size, changed_rows_json(catalog, sync_id)))
        size = grown
    return figures


def time_resolve(db: Path, as_of: int | None) -> float:
    start = time.perf_counter()
    with Catalog.open(db) as catalog:
        answering = catalog.at(as_of) if as_of is not None else catalog
        answering.resolve("model=text")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--syncs", type=int, default=100)
    parser.add_argument("--models", type=int, default=600)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    missed = False
    with tempfile.TemporaryDirectory(prefix="bench-history-") as scratch_dir:
        scratch = Path(scratch_dir)
        real = [SNAPSHOTS / name for name in ("2023-11-17-pr1903", "v0.5.0", "v0.5.12")]
        with Catalog.open(scratch / "real.db") as catalog:
            real_figures = replay(catalog, real)
        print("real HELM transitions (growth of the history / changed rows as JSON):")
        for source, (growth, changed) in zip(real, real_figures, strict=True):
            print(f"  -> {source.name:<20} {growth / 1024:9.1f} KiB / {changed / 1024:9.1f} KiB "
                  f"= {growth / max(changed, 1):5.2f}x")  # fmt: skip

        rng = random.Random(7)
        db = scratch / "synthetic.db"
        # One directory, rewritten before each sync, as a user edits their config files.
        source = scratch / "synthetic"
        with Catalog.open(db) as catalog:
            catalog.sync([synthetic_sources(source, args.models, 0, rng)])
            figures = []
            for step in range(1, args.syncs + 1):
                figures += replay(catalog, [synthetic_sources(source, args.models, step, rng)])
        growth = sum(g for g, _ in figures)
        changed = sum(c for _, c in figures)
        ratio = growth / max(changed, 1)
        verdict = "ok" if ratio <= GROWTH_TARGET else "MISSED"
        missed = missed or ratio > GROWTH_TARGET
        print(f"\nsynthetic: {args.syncs} syncs of {args.models} models, 5% of rows changed each")
        print(f"  history growth / sync  {growth / len(figures) / 1024:8.1f} KiB")
        print(f"  changed rows as JSON   {changed / len(figures) / 1024:8.1f} KiB per sync")
        print(f"  ratio                  {ratio:8.2f}x (target <= {GROWTH_TARGET}x: {verdict})")

        middle = 1 + args.syncs // 2
        current, past = [], []
        time_resolve(db, None), time_resolve(db, middle)  # warm-up
        for _ in range(args.runs):
            current.append(time_resolve(db, None))
            past.append(time_resolve(db, middle))
        now, then = statistics.median(current), statistics.median(past)
        ratio = then / now
        verdict = "ok" if ratio <= AS_OF_TARGET else "MISSED"
        missed = missed or ratio > AS_OF_TARGET
        print(f"\nresolve 'model=text', catalog opened fresh each time, median of {args.runs}:")
        print(f"  current                {now * 1000:8.1f} ms")
        print(f"  as of sync {middle:<11} {then * 1000:8.1f} ms = {ratio:5.2f}x current "
              f"(target <= {AS_OF_TARGET}x: {verdict})")  # fmt: skip
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
