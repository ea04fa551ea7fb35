"""A migration killed with SIGKILL at any moment, then run again, ends as an uninterrupted one.

The child process is the real migration with one function of the module wrapped to kill the
process at its Nth call (before or after the call), or killed from outside after a delay.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cache_helpers import key, state, write_raw

from catalog import Catalog

# Every case kills a child process with SIGKILL (the reference runs are the same child).
pytestmark = pytest.mark.slow

CHILD = r"""
import importlib, json, os, signal, sys, threading, time
from catalog import Catalog
import catalog.cache.migrate as cache_migration
import catalog.cache.sqlite_store as cache_store

db, cache, mode, spec = sys.argv[1:5]
# Small chunks and batches: many transactions, so many moments to be killed at.
cache_store.CHUNK_ROWS = 7
cache_store.FETCH_ROWS = 3
cache_migration.FLUSH_ROWS = 5
counts = {}
counting = threading.Lock()

def wrap(dotted, nth, when):
    module_name, *path, name = dotted.split(".")
    owner = importlib.import_module("catalog.cache." + module_name)
    for part in path:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    def wrapper(*args, **kwargs):
        # The writer threads call concurrently: each call takes its own number under the lock,
        # so the nth call is killed whichever thread makes it.
        with counting:
            counts[dotted] = number = counts.get(dotted, 0) + 1
        if number == nth and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = original(*args, **kwargs)
        if number == nth and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    setattr(owner, name, wrapper)

def report_progress(done, total):
    print(f"{done} {total}", flush=True)

progress = None
for item in spec.split(","):
    if item == "progress":
        progress = report_progress
    elif item.startswith("batch="):
        cache_migration.FLUSH_ROWS = int(item.removeprefix("batch="))
    elif item:
        dotted, nth, when = item.split(":")
        wrap(dotted, int(nth), when)
with Catalog.open(db) as catalog:
    options = {"in_place": True, "prune": True} if mode == "in-place" else {"out": mode}
    options["progress"] = progress
    print("migrating", flush=True)
    started = time.monotonic()
    report = catalog.migrate_cache(cache, **options)
print(json.dumps({"counts": counts, "seconds": time.monotonic() - started}))
"""

CRASH_POINTS = (
    "sqlite_store.SqliteDirectoryStore.copy_entries",
    "sqlite_store.SqliteDirectoryStore._settle_conflicts",
    "sqlite_store.SqliteDirectoryStore._verify",
    "sqlite_store.SqliteDirectoryStore._publish_empty_shard",
    "sqlite_store.SqliteDirectoryStore.prune_entries",
    "sqlite_store.SqliteDirectoryStore.retire",
    "sqlite_store._StagedCopy.prepare",
    "sqlite_store._StagedCopy.publish",
    "sqlite_store._StagedRelocation.prepare",
    "sqlite_store._StagedRelocation.publish",
    "sqlite_store._rename_noreplace",
    "sqlite_store._fsync_directory",
)
# Only a migration in place deletes, renames or relocates sources; only --out copies a file.
IN_PLACE_ONLY = (
    "SqliteDirectoryStore.prune_entries",
    "SqliteDirectoryStore.retire",
    "_StagedRelocation.prepare",
    "_StagedRelocation.publish",
    "_rename_noreplace",
)
OUT_ONLY = ("_StagedCopy.prepare", "_StagedCopy.publish")


def run_child(db: Path, cache: Path, mode: str, spec: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(db), str(cache), mode, spec],
        capture_output=True,
        text=True,
        timeout=300,
    )


def build_cache(directory: Path, per_model: int, value_size: int) -> None:
    """meta splits across hosts and keeps a tokenizer entry; two creators move whole to
    huggingface (absent, then present); together already holds some of meta's keys."""
    rng = random.Random(per_model)

    def value() -> bytes:
        return rng.randbytes(value_size)

    directory.mkdir(parents=True)
    meta_models = ["meta/llama-7b", "meta/opt-175b", "meta/llama-3.1-70b-instruct"]
    meta = {key(model=m, prompt=n): value() for m in meta_models for n in range(per_model)}
    meta[key(tokenizer="meta-llama/Llama-2-7b-hf", text="t")] = value()
    write_raw(directory / "meta.sqlite", meta)
    for creator, model in (("aisingapore", "sea-lion-7b-instruct"), ("ibm-granite", "x")):
        write_raw(
            directory / f"{creator}.sqlite",
            {key(model=f"{creator}/{model}", prompt=n): value() for n in range(per_model)},
        )
    llama = [k for k in meta if "llama-7b" in k][:4]
    together = {llama[0]: meta[llama[0]], llama[1]: b"a different value"}
    together[key(model="together/bloom", prompt="own")] = value()
    write_raw(directory / "together.sqlite", together)
    write_raw(
        directory / "openai.sqlite", {key(engine="davinci", prompt=n): value() for n in range(5)}
    )


@pytest.fixture(scope="module")
def catalog_db(tmp_path_factory: pytest.TempPathFactory, v0512_template: Path) -> Path:
    """A copy of its own: the children opening it are killed."""
    return Path(shutil.copyfile(v0512_template, tmp_path_factory.mktemp("v0512") / "catalog.db"))


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory, catalog_db: Path) -> dict[str, Any]:
    """The pristine small cache, the state an uninterrupted run leaves, and the call counts."""
    root = tmp_path_factory.mktemp("small")
    pristine = root / "pristine"
    build_cache(pristine, per_model=12, value_size=200)
    expected = {}
    counts: dict[str, dict[str, int]] = {}
    for mode in ("in-place", "out"):
        work = root / f"reference-{mode}"
        shutil.copytree(pristine, work / "cache")
        target = "in-place" if mode == "in-place" else str(work / "out")
        completed = run_child(catalog_db, work / "cache", target, _counting_spec())
        assert completed.returncode == 0, completed.stderr
        counts[mode] = json.loads(completed.stdout.splitlines()[-1])["counts"]
        expected[mode] = _final_state(work, mode)
    return {"pristine": pristine, "expected": expected, "counts": counts}


def _counting_spec() -> str:
    return ",".join(f"{point}:0:never" for point in CRASH_POINTS)


def _final_state(work: Path, mode: str) -> dict[str, Any]:
    leftovers = [p.name for p in work.rglob("*") if p.name.endswith(".migrating-tmp")]
    assert not leftovers
    found = {"cache": state(work / "cache")}
    if mode != "in-place":
        found["out"] = state(work / "out")
    return found


def _crash_cases() -> list[tuple[str, str, str, str]]:
    variants = [("first", "before"), ("middle", "after"), ("last", "after")]
    cases = [
        ("in-place", point, which, when)
        for point in CRASH_POINTS
        if not point.endswith(OUT_ONLY)
        for which, when in variants
    ]
    cases += [
        ("out", point, which, when)
        for point in CRASH_POINTS
        if not point.endswith(IN_PLACE_ONLY)
        for which, when in variants[:2]
    ]
    return cases


def rerun(catalog_db: Path, work: Path, mode: str) -> None:
    with Catalog.open(catalog_db) as catalog:
        if mode == "in-place":
            report = catalog.migrate_cache(work / "cache", in_place=True, prune=True)
        else:
            report = catalog.migrate_cache(work / "cache", out=work / "out")
    assert report.ok and report.verified, report.errors


def test_every_crash_point_is_reached(small: dict[str, Any]) -> None:
    """The reference runs do go through each point, so the cases below do crash."""
    in_place, out = small["counts"]["in-place"], small["counts"]["out"]
    assert set(in_place) == {p for p in CRASH_POINTS if not p.endswith(OUT_ONLY)}
    assert set(out) == {p for p in CRASH_POINTS if not p.endswith(IN_PLACE_ONLY)}


@pytest.mark.parametrize(("mode", "point", "which", "when"), _crash_cases())
def test_killed_then_rerun_ends_as_an_uninterrupted_run(
    small: dict[str, Any],
    catalog_db: Path,
    tmp_path: Path,
    mode: str,
    point: str,
    which: str,
    when: str,
) -> None:
    calls = small["counts"][mode][point]
    nth = {"first": 1, "middle": max(1, calls // 2), "last": calls}[which]
    work = tmp_path / "work"
    shutil.copytree(small["pristine"], work / "cache")
    target = "in-place" if mode == "in-place" else str(work / "out")
    killed = run_child(catalog_db, work / "cache", target, f"{point}:{nth}:{when}")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    rerun(catalog_db, work, mode)
    assert _final_state(work, mode) == small["expected"][mode]


# Killed from outside, at random moments, on a cache that takes a second or two --------------


# Batches of 100 entries: hundreds of transactions in a run of a second or two.
LARGE_BATCH = "batch=100"


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory, catalog_db: Path) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("large")
    pristine = root / "pristine"
    build_cache(pristine, per_model=4_000, value_size=3_000)
    work = root / "reference"
    shutil.copytree(pristine, work / "cache")
    completed = run_child(catalog_db, work / "cache", "in-place", LARGE_BATCH)
    assert completed.returncode == 0, completed.stderr
    return {"pristine": pristine, "expected": _final_state(work, "in-place")}


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.45, 0.6, 0.8])
def test_killed_at_a_random_moment_then_rerun_ends_the_same(
    large: dict[str, Any], catalog_db: Path, tmp_path: Path, fraction: float
) -> None:
    """Killed from outside once about `fraction` of the entries are handled, give or take a
    few random milliseconds: anywhere in a transaction, a copy, a verification or a rename."""
    work = tmp_path / "work"
    shutil.copytree(large["pristine"], work / "cache")
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            str(catalog_db),
            str(work / "cache"),
            "in-place",
            f"progress,{LARGE_BATCH}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "migrating\n"
    for line in process.stdout:
        done, total = map(int, line.split())
        if done >= fraction * total:
            break
    time.sleep(random.uniform(0, 0.02))
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stdout.close()
    assert process.returncode == -signal.SIGKILL
    rerun(catalog_db, work, "in-place")
    assert _final_state(work, "in-place") == large["expected"]
