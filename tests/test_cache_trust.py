"""Cache commands at the edges a new user met: exit codes, an empty or wrong directory, two
migrations at once, totals that count each entry once, and what `--on-conflict fail` did."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cache_helpers import BACKUP, file_bytes, key, response, write_shard
from conftest import run_cli

LLAMA = {key(model="meta/llama-3-8b", prompt=str(n)): response(str(n)) for n in range(1000)}
TOGETHER = {key(model="meta/llama-2-7b", prompt=str(n)): response(str(n)) for n in range(500)}
GPT2 = {key(model="openai/gpt2", prompt=str(n)): response(str(n)) for n in range(500)}


@pytest.fixture
def db(v0512_template: Path, tmp_path: Path) -> Path:
    path = tmp_path / "catalog.db"
    shutil.copyfile(v0512_template, path)
    return path


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    """meta's entries go to the existing together shard, openai's to a new huggingface one."""
    directory = tmp_path / "cache"
    write_shard(directory, "meta", LLAMA)
    write_shard(directory, "together", TOGETHER)
    write_shard(directory, "openai", GPT2)
    return directory


# 10 ----------------------------------------------------------------------------------------


def test_plan_exits_1_when_a_shard_cannot_be_read(db: Path, cache: Path) -> None:
    (cache / "broken.sqlite").write_bytes(b"garbage" * 100)
    before = file_bytes(cache)
    for extra in ((), ("--json",)):
        result = run_cli("cache", "plan", cache, *extra, db=db)
        assert result.returncode == 1
        assert f"error: {cache / 'broken.sqlite'}: is not a SQLite database" in result.stderr
        assert "together" in result.stdout  # the readable shards are still planned
    assert json.loads(run_cli("cache", "plan", cache, "--json", db=db).stdout)["shards"]
    assert file_bytes(cache) == before


# 11 ----------------------------------------------------------------------------------------


def test_a_directory_without_shards_is_an_error_naming_its_subdirectories(
    db: Path, cache: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    parent = cache.parent  # holds cache/ and, beside it, the catalog
    for directory, hint in (
        (empty, None),
        (parent, f"subdirectories are not read: cache/ (3 shards inside), empty/ (0 shards "
                  f"inside); did you mean {cache}?"),
    ):  # fmt: skip
        for command in (
            ("plan",),
            ("migrate", "--in-place"),
            ("migrate", "--out", tmp_path / "new"),
            ("migrate", "--in-place", "--dry-run"),
        ):
            result = run_cli("cache", *command, directory, db=db)
            assert result.returncode == 1, command
            assert f"error: no cache shards (*.sqlite) in {directory}" in result.stderr
            if hint is not None:
                assert f"hint: {hint}" in result.stderr
            assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in empty.iterdir()) == []


# 12 ----------------------------------------------------------------------------------------

_HOLDER = """
import sys, time
from pathlib import Path
from catalog.cache.lock import directory_lock
with directory_lock(Path(sys.argv[1]), exclusive=sys.argv[2] == "exclusive"):
    print("locked", flush=True)
    time.sleep(600)
"""


def _holding(directory: Path, mode: str) -> subprocess.Popen[str]:
    """A process that holds a migration's lock on `directory`, as a running migration does."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(directory), mode],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    return holder


@pytest.mark.slow  # a process of its own holds the lock
def test_a_second_migration_stops_at_once_naming_the_first_and_changes_nothing(
    db: Path, cache: Path, tmp_path: Path
) -> None:
    before = file_bytes(cache)
    out = tmp_path / "by-host"
    holder = _holding(cache, "exclusive")  # an in-place migration of the cache
    try:
        for command in (("--in-place",), ("--out", out), ("--in-place", "--dry-run")):
            result = run_cli("cache", "migrate", cache, *command, db=db)
            assert result.returncode == 1, command
            assert (
                f"error: {cache}: another migration is running (pid {holder.pid}); "
                "nothing was changed" in result.stderr
            )
            assert "No such file" not in result.stderr
        assert file_bytes(cache) == before
        assert not out.exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # A killed migration leaves no lock behind.
    assert run_cli("cache", "migrate", cache, "--in-place", db=db).returncode == 0


@pytest.mark.slow  # a process of its own holds the lock
def test_migrations_that_only_read_a_cache_run_together_and_not_into_one_output(
    db: Path, cache: Path, tmp_path: Path
) -> None:
    holder = _holding(cache, "shared")  # a --out migration reading the cache
    try:
        assert run_cli("cache", "migrate", cache, "--out", tmp_path / "a", db=db).returncode == 0
        refused = run_cli("cache", "migrate", cache, "--in-place", db=db)
        assert refused.returncode == 1 and "another migration is running" in refused.stderr
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    (tmp_path / "b").mkdir()
    holder = _holding(tmp_path / "b", "exclusive")  # a --out migration writing b
    try:
        result = run_cli("cache", "migrate", cache, "--out", tmp_path / "b", db=db)
        assert result.returncode == 1
        assert f"error: {tmp_path / 'b'}: another migration is running" in result.stderr
        assert os.listdir(tmp_path / "b") == []
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


# 13 ----------------------------------------------------------------------------------------


def test_in_place_totals_count_each_entry_once_and_a_plan_after_routes_every_one(
    db: Path, cache: Path
) -> None:
    entries = len(LLAMA) + len(TOGETHER) + len(GPT2)
    result = run_cli("cache", "migrate", cache, "--in-place", "--json", db=db)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    totals = report["totals"]
    assert totals["entries"] == entries
    assert sum(totals["moved"].values()) + totals["stayed"] + totals["unrouted"] == entries
    together = next(s for s in report["shards"] if s["shard"] == "together")
    assert (together["entries"], together["received"], together["stayed"]) == (500, 1000, 500)
    text = run_cli("cache", "migrate", cache, "--in-place", db=db).stdout
    assert "nothing changed" in text
    plan = json.loads(run_cli("cache", "plan", cache, "--json", db=db).stdout)
    assert plan["totals"]["entries"] == entries
    assert plan["totals"]["unrouted"] == 0
    assert {s["shard"] for s in plan["shards"]} == {"together", "huggingface"}
    assert sorted(p.name for p in cache.iterdir() if BACKUP in p.name) == [
        "meta.sqlite.pre-migration",
        "openai.sqlite.pre-migration",
    ]


# 14 ----------------------------------------------------------------------------------------


def test_on_conflict_fail_names_the_targets_left_untouched_and_those_that_received(
    db: Path, cache: Path, tmp_path: Path
) -> None:
    write_shard(cache, "together", {next(iter(LLAMA)): response("another value")})
    together = (cache / "together.sqlite").read_bytes()
    result = run_cli("cache", "migrate", cache, "--in-place", "--on-conflict", "fail", db=db)
    assert result.returncode == 1
    assert (
        f"error: --on-conflict fail: left untouched: {cache / 'together.sqlite'} (1000 entries "
        "of meta.sqlite meant for it stayed where they were). Targets that received entries: "
        f"{cache / 'huggingface.sqlite'} (500)." in result.stderr
    )
    assert (cache / "together.sqlite").read_bytes() == together
    assert (cache / "meta.sqlite").exists()
    report = json.loads(
        run_cli(
            "cache", "migrate", cache, "--in-place", "--on-conflict", "fail", "--json", db=db
        ).stdout
    )
    meta = next(s for s in report["shards"] if s["shard"] == "meta")
    assert [(m["target"], m["refused"]) for m in meta["moves"]] == [("together", True)]
    assert "No target received entries" in report["errors"][-1]
