"""`catalog cache plan | migrate`, run as a user runs them."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cache_helpers import (
    file_bytes,
    key,
    read_shard,
    response,
    write_shard,
)
from conftest import run_cli

META = {key(model="meta/llama-7b", prompt=str(n)): response(str(n)) for n in range(3)}
OPENAI = {
    key(engine="davinci", prompt="a"): response("a"),
    key(model="text-unheard-of", prompt="b"): response("b"),
}


@pytest.fixture
def db(pr1903_template: Path, tmp_path: Path) -> Path:
    path = tmp_path / "catalog.db"
    shutil.copyfile(pr1903_template, path)
    return path


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    directory = tmp_path / "cache"
    write_shard(directory, "meta", META)
    write_shard(directory, "openai", OPENAI)
    return directory


def test_plan_prints_a_table_and_the_unrouted_examples(db: Path, cache: Path) -> None:
    result = run_cli("cache", "plan", cache, db=db)
    assert result.returncode == 0, result.stderr
    assert "together: 3" in result.stdout
    assert "unrouted in openai:" in result.stdout
    assert "text-unheard-of" in result.stdout
    assert result.stderr == ""


def test_plan_json(db: Path, cache: Path) -> None:
    result = run_cli("cache", "plan", cache, "--json", "--policy", "last", db=db)
    plan = json.loads(result.stdout)
    assert plan["policy"] == "last"
    meta = next(s for s in plan["shards"] if s["shard"] == "meta")
    assert (meta["entries"], meta["moves"], meta["stays"]) == (3, {"together": 3}, 0)
    assert plan["totals"]["unrouted"] == 1


def test_migrate_out_json_report(db: Path, cache: Path, tmp_path: Path) -> None:
    before = file_bytes(cache)
    result = run_cli("cache", "migrate", cache, "--out", tmp_path / "out", "--json", db=db)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    meta = next(s for s in report["shards"] if s["shard"] == "meta")
    assert {k: meta[k] for k in ("shard", "entries", "moved", "stayed", "unrouted")} == {
        "shard": "meta",
        "entries": 3,
        "moved": {"together": 3},
        "stayed": 0,
        "unrouted": 0,
    }
    assert meta["already_present"] == 0
    assert meta["conflicts"] == {"kept_target": 0, "took_source": 0}
    assert report["verified"] is True
    assert report["totals"]["moved"] == {"together": 3}
    assert result.stderr == ""
    assert file_bytes(cache) == before
    assert read_shard(tmp_path / "out" / "together.sqlite") == META


def test_migrate_in_place_then_again_says_nothing_changed(db: Path, cache: Path) -> None:
    first = run_cli("cache", "migrate", cache, "--in-place", db=db)
    assert first.returncode == 0, first.stderr
    assert "renamed to meta.sqlite.pre-migration" in first.stdout
    assert "verified" in first.stdout
    second = run_cli("cache", "migrate", cache, "--in-place", db=db)
    assert second.returncode == 0
    assert "nothing changed" in second.stdout
    assert read_shard(cache / "together.sqlite") == META


def test_quiet_prints_only_the_totals(db: Path, cache: Path) -> None:
    result = run_cli("cache", "migrate", cache, "--in-place", "--quiet", "--dry-run", db=db)
    assert result.returncode == 0
    assert result.stdout.splitlines()[0].startswith("dry run: would have moved 3 entries")
    assert "shard" not in result.stdout


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((), "exactly one of --out OUT_DIR and --in-place"),
        (("--in-place", "--out", "x"), "exactly one of"),
        (("--out", "x", "--prune"), "--prune applies to --in-place only"),
        (("--in-place", "--on-conflict", "merge"), "'merge' is not one of"),
        (("--in-place", "--policy", "middle"), "'middle' is not one of"),
    ],
)
def test_usage_errors_exit_2(
    db: Path, cache: Path, arguments: tuple[str, ...], message: str
) -> None:
    result = run_cli("cache", "migrate", cache, *arguments, db=db)
    assert result.returncode == 2
    assert message in result.stderr


def test_a_bad_shard_is_named_and_the_others_proceed(db: Path, cache: Path) -> None:
    (cache / "broken.sqlite").write_bytes(b"garbage" * 100)
    result = run_cli("cache", "migrate", cache, "--in-place", db=db)
    assert result.returncode == 1
    assert f"error: {cache / 'broken.sqlite'}: is not a SQLite database" in result.stderr
    assert read_shard(cache / "together.sqlite") == META


def test_on_conflict_fail_exits_1(db: Path, cache: Path) -> None:
    write_shard(cache, "together", {next(iter(META)): response("different")})
    result = run_cli(
        "cache", "migrate", cache, "--in-place", "--on-conflict", "fail", "--json", db=db
    )
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert any("--on-conflict fail" in e for e in report["errors"])
    assert (cache / "meta.sqlite").exists()


def test_an_aliases_file_routes_private_identifiers(db: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    write_shard(cache, "openai", {key(model="house-model", prompt="x"): response("x")})
    aliases = tmp_path / "aliases.yaml"
    aliases.write_text("house-model: openai/gpt2\n")
    result = run_cli("cache", "plan", cache, "--aliases", aliases, "--json", db=db)
    (shard,) = json.loads(result.stdout)["shards"]
    assert shard["moves"] == {"huggingface": 1}


def test_a_missing_cache_directory_is_an_error(db: Path, tmp_path: Path) -> None:
    result = run_cli("cache", "plan", tmp_path / "nowhere", db=db)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    assert "does not exist" in result.stderr


def _run_with_terminal_stderr(db: Path, *arguments: str | Path) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal, as in an interactive shell."""
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "catalog.cli", "--db", str(db), *map(str, arguments)],
        stdout=subprocess.DEVNULL,
        stderr=secondary,
    )
    os.close(secondary)
    seen = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(primary)
    return process.wait(timeout=120), seen.decode(errors="replace")


@pytest.mark.slow  # a child process whose stderr is a pseudo-terminal
def test_a_progress_bar_on_a_terminal_only(db: Path, cache: Path, tmp_path: Path) -> None:
    code, terminal = _run_with_terminal_stderr(
        db, "cache", "migrate", cache, "--out", tmp_path / "a"
    )
    assert code == 0 and "migrating" in terminal
    code, terminal = _run_with_terminal_stderr(
        db, "cache", "migrate", cache, "--out", tmp_path / "b", "--quiet"
    )
    assert code == 0 and "migrating" not in terminal
    code, terminal = _run_with_terminal_stderr(
        db, "cache", "migrate", cache, "--out", tmp_path / "c", "--json"
    )
    assert code == 0 and "migrating" not in terminal
    piped = run_cli("cache", "migrate", cache, "--out", tmp_path / "d", db=db)
    assert piped.returncode == 0 and piped.stderr == ""
