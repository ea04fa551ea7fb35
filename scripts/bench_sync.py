"""Benchmark `catalog sync` against parsing the same YAML with PyYAML's C loader alone.

    python scripts/bench_sync.py [--source DIR] [--runs N]

Each round times, in turn: the baseline (the three files read and loaded with
yaml.CSafeLoader), a full sync into a fresh database (created before the clock starts), and a
no-op re-sync of the same files. Rounds are interleaved so that all three see the same machine
state; the medians are compared. Targets: full sync <= 2x the parse, no-op re-sync <= 0.1x.
Exit status 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from catalog import Catalog

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "helm-configs" / "v0.5.12"
FILE_NAMES = ("model_metadata.yaml", "model_deployments.yaml", "tokenizer_configs.yaml")
FULL_SYNC_TARGET = 2.0
NOOP_SYNC_TARGET = 0.1


def parse_only(source: Path) -> None:
    for name in FILE_NAMES:
        yaml.load((source / name).read_bytes(), Loader=yaml.CSafeLoader)


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def run_round(source: Path, scratch: Path, index: int) -> tuple[float, float, float, float]:
    """One interleaved round: parse, create+sync, sync into fresh, no-op re-sync (seconds)."""
    parse_seconds = timed(lambda: parse_only(source))

    def create_and_sync() -> None:
        with Catalog.open(scratch / f"created-{index}.db") as catalog:
            catalog.sync([source])

    create_and_sync_seconds = timed(create_and_sync)

    with Catalog.open(scratch / f"fresh-{index}.db") as catalog:
        full_seconds = timed(lambda: catalog.sync([source]))
        reports: list[bool] = []
        noop_seconds = timed(lambda: reports.append(catalog.sync([source]).skipped_unchanged))
        if reports != [True]:
            raise SystemExit("the re-sync was not recognised as unchanged")
    return parse_seconds, full_seconds, noop_seconds, create_and_sync_seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--runs", type=int, default=7, help="timed rounds (at least 5)")
    args = parser.parse_args(argv)
    if args.runs < 5:
        parser.error("--runs must be at least 5")
    source: Path = args.source.resolve()
    missing = [name for name in FILE_NAMES if not (source / name).is_file()]
    if missing:
        parser.error(f"{source} lacks {', '.join(missing)}")

    with tempfile.TemporaryDirectory(prefix="bench-sync-") as scratch_dir:
        scratch = Path(scratch_dir)
        run_round(source, scratch, -1)  # warm-up: imports, page cache
        rounds = [run_round(source, scratch, index) for index in range(args.runs)]

    parse, full, noop, create_and_sync = (
        statistics.median(column) for column in zip(*rounds, strict=True)
    )
    size = sum((source / name).stat().st_size for name in FILE_NAMES)
    print(f"source: {source} ({size / 1024:.0f} KiB in 3 files), {args.runs} rounds, medians")
    print(f"baseline  parse with yaml.CSafeLoader        {parse * 1000:8.1f} ms")
    results = [
        ("full sync, fresh database, history on", full, FULL_SYNC_TARGET),
        ("no-op re-sync, history on", noop, NOOP_SYNC_TARGET),
    ]
    missed = False
    for label, seconds, target in results:
        ratio = seconds / parse
        verdict = "ok" if ratio <= target else "MISSED"
        missed = missed or ratio > target
        print(
            f"{label:<42} {seconds * 1000:8.1f} ms = {ratio:6.3f} x baseline "
            f"(target <= {target}x: {verdict})"
        )
    print(
        f"{'(info) create the database + full sync':<42} {create_and_sync * 1000:8.1f} ms = "
        f"{create_and_sync / parse:6.3f} x baseline"
    )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
