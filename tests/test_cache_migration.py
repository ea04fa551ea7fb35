"""Migrating HELM caches built from the real catalogs, read back with sqlitedict."""

from __future__ import annotations

import os
import pickle
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cache_helpers import (
    file_bytes,
    key,
    legacy_cache,
    legacy_names,
    raw_entries,
    read_shard,
    response,
    shards,
    state,
    write_raw,
    write_shard,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlitedict import SqliteDict

from catalog import CacheMigrationError, Catalog, SettingError

META = {
    key(model="meta/llama-7b", prompt="a", temperature=0.0): response("a"),
    key(model="together/llama-7b", prompt="b", temperature=0.0): response("b"),
    key(model="huggyllama/llama-7b", prompt="c", temperature=0.0): response("c"),
    key(model="togethercomputer/llama-2-7b", prompt="d", temperature=0.0): response("d"),
}
OPENAI_STAYING = {
    key(engine="davinci", prompt="e", temperature=0.0): response("e"),
    key(model="gpt-3.5-turbo-0613", messages=[{"role": "user", "content": "f"}]): response("f"),
}
GPT2 = {key(model="gpt2", prompt="g", temperature=0.0): response("g")}
OPENAI_UNROUTED = {key(model="text-unheard-of", prompt="h"): response("h")}
TOKENIZER = {key(tokenizer="huggingface/gpt2", text="tokenize me"): {"tokens": [1, 2]}}
PALM = {key(model="google/palm", prompt="i"): response("i")}


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    """An old cache for the 2023-11-17 catalog: meta moves whole, openai mostly stays."""
    directory = tmp_path / "cache"
    write_shard(directory, "meta", META)
    write_shard(directory, "openai", {**OPENAI_STAYING, **GPT2, **OPENAI_UNROUTED})
    write_shard(directory, "huggingface", TOKENIZER)
    write_shard(directory, "google", PALM)
    write_shard(directory, "scale", {key(prompt="no model"): response("j")})
    (directory / "README.txt").write_text("not a shard")
    return directory


# Planning ----------------------------------------------------------------------------------------


def test_the_plan_counts_where_every_entry_goes(pr1903: Catalog, cache: Path) -> None:
    before = file_bytes(cache)
    plan = pr1903.plan_cache_migration(cache)
    by_shard = {s.shard: s for s in plan.shards}
    assert by_shard["meta"].moves == {"together": 4}
    assert (by_shard["meta"].stays, by_shard["meta"].unrouted) == (0, 0)
    openai = by_shard["openai"]
    assert (openai.moves, openai.stays, openai.unrouted) == ({"huggingface": 1}, 2, 1)
    assert openai.unrouted_examples[0].key == next(iter(OPENAI_UNROUTED))
    assert "several hosts" in openai.unrouted_examples[0].reason
    assert by_shard["huggingface"].stays == 1
    assert by_shard["google"].unrouted == 1
    assert not by_shard["scale"].has_candidates and by_shard["scale"].stays == 1
    assert plan.totals == {
        "entries": 11,
        "moves": {"huggingface": 1, "together": 4},
        "stays": 4,
        "unrouted": 2,
    }
    assert plan.ignored_files == ("README.txt",)
    assert plan.policy == "first"
    assert file_bytes(cache) == before


# Migrating ---------------------------------------------------------------------------------------


def test_in_place_moves_verifies_and_keeps_a_backup(pr1903: Catalog, cache: Path) -> None:
    report = pr1903.migrate_cache(cache, in_place=True)
    assert report.ok and report.verified and report.changed
    assert read_shard(cache / "together.sqlite") == META
    assert read_shard(cache / "meta.sqlite.pre-migration") == META
    assert not (cache / "meta.sqlite").exists()
    assert read_shard(cache / "openai.sqlite") == {**OPENAI_STAYING, **GPT2, **OPENAI_UNROUTED}
    assert read_shard(cache / "huggingface.sqlite") == {**TOKENIZER, **GPT2}
    by_shard = {s.shard: s for s in report.shards}
    assert by_shard["meta"].moved == {"together": 4}
    assert by_shard["meta"].backup == "meta.sqlite.pre-migration"
    assert by_shard["openai"].moved == {"huggingface": 1}
    assert by_shard["openai"].backup is None


def test_out_leaves_the_cache_untouched_and_writes_the_whole_layout(
    pr1903: Catalog, cache: Path, tmp_path: Path
) -> None:
    before = file_bytes(cache)
    out = tmp_path / "out"
    report = pr1903.migrate_cache(cache, out=out)
    assert report.ok and report.verified
    assert file_bytes(cache) == before
    assert shards(out) == sorted(
        ["together.sqlite", "openai.sqlite", "huggingface.sqlite", "google.sqlite", "scale.sqlite"]
    )
    assert read_shard(out / "together.sqlite") == META
    assert read_shard(out / "openai.sqlite") == {**OPENAI_STAYING, **OPENAI_UNROUTED}
    assert read_shard(out / "huggingface.sqlite") == {**TOKENIZER, **GPT2}
    assert read_shard(out / "scale.sqlite") == read_shard(cache / "scale.sqlite")
    assert read_shard(out / "google.sqlite") == PALM


def test_out_and_in_place_make_the_same_layout(
    pr1903: Catalog, cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    pr1903.migrate_cache(cache, out=out)
    pr1903.migrate_cache(cache, in_place=True, prune=True)
    in_place = {n: v for n, v in state(cache).items() if n.endswith(".sqlite")}
    assert in_place == state(out)


@pytest.mark.parametrize("mode", ["in-place", "out"])
def test_a_second_run_changes_nothing_and_says_so(
    pr1903: Catalog, cache: Path, tmp_path: Path, mode: str
) -> None:
    options: dict[str, Any] = {"in_place": True} if mode == "in-place" else {"out": tmp_path / "o"}
    assert pr1903.migrate_cache(cache, **options).changed
    directory = cache if mode == "in-place" else tmp_path / "o"
    first = state(directory)
    second = pr1903.migrate_cache(cache, **options)
    assert not second.changed and second.ok and second.verified
    assert second.totals["moved"] == {}
    assert state(directory) == first


def test_v0512_splits_meta_across_its_hosts(v0512: Catalog, tmp_path: Path) -> None:
    entries = {
        key(model=model, prompt="p"): response(model)
        for model in (
            "meta/llama-7b",
            "meta/opt-175b",
            "meta/llama-3.1-70b-instruct",
            "meta/amazon-llama3-8b-instruct-v1:0",
        )
    }
    cache = tmp_path / "cache"
    write_shard(cache, "meta", entries)
    report = v0512.migrate_cache(cache, in_place=True)
    assert report.shards[0].moved == {"amazon": 1, "google": 1, "huggingface": 1, "together": 1}
    assert report.shards[0].backup == "meta.sqlite.pre-migration"
    assert shards(cache) == [
        "amazon.sqlite",
        "google.sqlite",
        "huggingface.sqlite",
        "meta.sqlite.pre-migration",
        "together.sqlite",
    ]
    for host, model in (("amazon", "amazon-llama3"), ("google", "3.1-70b"), ("together", "7b")):
        (value,) = read_shard(cache / f"{host}.sqlite").values()
        assert model in value["completions"][0]["text"]


def test_the_legacy_cache_of_118_models_migrates_without_loss(
    pr1903: Catalog, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    counts = legacy_cache(cache, legacy_names())
    original = {name: read_shard(cache / f"{name}.sqlite") for name in counts}
    report = pr1903.migrate_cache(cache, in_place=True)
    assert report.ok and report.verified
    assert report.totals["entries"] >= sum(counts.values())
    everything_now: dict[str, Any] = {}
    for path in cache.glob("*.sqlite"):
        everything_now.update(read_shard(path))
    for entries in original.values():
        for k, v in entries.items():
            assert everything_now[k] == v
    by_shard = {s.shard: s for s in report.shards}
    assert by_shard["meta"].backup and by_shard["mosaicml"].backup
    assert by_shard["openai"].backup is None
    assert not pr1903.migrate_cache(cache, in_place=True).changed


# Conflicts ---------------------------------------------------------------------------------------


@pytest.fixture
def conflicting(cache: Path) -> Path:
    """together.sqlite already holds two of meta's keys: one identical, one different."""
    same, different = list(META)[:2]
    write_shard(cache, "together", {same: META[same], different: response("kept by together")})
    return cache


def test_keep_target_keeps_the_target_value(pr1903: Catalog, conflicting: Path) -> None:
    report = pr1903.migrate_cache(conflicting, in_place=True)
    meta = next(s for s in report.shards if s.shard == "meta")
    assert (meta.moved, meta.already_present) == ({"together": 2}, 1)
    assert meta.conflicts.kept_target == 1 and meta.conflicts.took_source == 0
    together = read_shard(conflicting / "together.sqlite")
    assert together[list(META)[1]] == response("kept by together")
    assert report.ok and report.verified
    assert meta.backup == "meta.sqlite.pre-migration"


def test_keep_source_takes_the_source_value(pr1903: Catalog, conflicting: Path) -> None:
    report = pr1903.migrate_cache(conflicting, in_place=True, on_conflict="keep-source")
    meta = next(s for s in report.shards if s.shard == "meta")
    assert meta.conflicts.took_source == 1
    assert read_shard(conflicting / "together.sqlite") == META


def test_fail_leaves_that_target_untouched_and_reports(pr1903: Catalog, conflicting: Path) -> None:
    together_before = (conflicting / "together.sqlite").read_bytes()
    report = pr1903.migrate_cache(conflicting, in_place=True, on_conflict="fail")
    assert not report.ok
    assert any("together.sqlite" in e and "--on-conflict fail" in e for e in report.errors)
    assert (conflicting / "together.sqlite").read_bytes() == together_before
    assert (conflicting / "meta.sqlite").exists()
    assert read_shard(conflicting / "huggingface.sqlite") == {**TOKENIZER, **GPT2}


def test_fail_in_the_entry_by_entry_path_spares_other_targets(
    v0512: Catalog, tmp_path: Path
) -> None:
    """meta splits across hosts; a conflict in huggingface leaves only huggingface alone."""
    llama, opt = key(model="meta/llama-7b", prompt="p"), key(model="meta/opt-175b", prompt="p")
    cache = tmp_path / "cache"
    write_shard(cache, "meta", {llama: response("llama"), opt: response("opt")})
    write_shard(cache, "huggingface", {opt: response("another opt")})
    before = (cache / "huggingface.sqlite").read_bytes()
    report = v0512.migrate_cache(cache, in_place=True, on_conflict="fail")
    meta = next(s for s in report.shards if s.shard == "meta")
    assert (meta.failed, meta.moved) == (1, {"together": 1})
    assert any("huggingface.sqlite" in e for e in meta.errors)
    assert (cache / "huggingface.sqlite").read_bytes() == before
    assert read_shard(cache / "together.sqlite") == {llama: response("llama")}
    assert (cache / "meta.sqlite").exists() and not report.ok


def test_prune_deletes_verified_moved_copies_from_a_shard_that_keeps_others(
    pr1903: Catalog, cache: Path
) -> None:
    report = pr1903.migrate_cache(cache, in_place=True, prune=True)
    openai = next(s for s in report.shards if s.shard == "openai")
    assert openai.pruned == 1 and openai.backup is None
    assert read_shard(cache / "openai.sqlite") == {**OPENAI_STAYING, **OPENAI_UNROUTED}
    assert read_shard(cache / "huggingface.sqlite") == {**TOKENIZER, **GPT2}
    assert not pr1903.migrate_cache(cache, in_place=True, prune=True).changed


# Values, files and formats -----------------------------------------------------------------------


class _OpensAFile:
    """Unpickling an instance would create `path`: the migration must never unpickle."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def test_values_move_byte_for_byte_and_are_never_unpickled(pr1903: Catalog, tmp_path: Path) -> None:
    trap = tmp_path / "unpickled-here"
    values = {
        key(model="meta/llama-7b", prompt="not a pickle"): b"\x00\xffnot a pickle at all",
        key(model="meta/llama-7b", prompt="trap"): pickle.dumps(_OpensAFile(str(trap))),
        key(model="meta/llama-7b", prompt="empty"): b"",
    }
    cache = tmp_path / "cache"
    cache.mkdir()
    write_raw(cache / "meta.sqlite", values)
    for options in ({"out": tmp_path / "out"}, {"in_place": True}):
        report = pr1903.migrate_cache(cache, **options)
        assert report.ok and report.verified
    assert raw_entries(tmp_path / "out" / "together.sqlite") == values
    assert raw_entries(cache / "together.sqlite") == values
    assert not trap.exists()


def test_a_created_shard_is_exactly_what_sqlitedict_makes(pr1903: Catalog, cache: Path) -> None:
    write_shard(cache, "openai", GPT2)
    pr1903.migrate_cache(cache, in_place=True)
    made_by_us = cache / "huggingface.sqlite"
    reference = cache.parent / "reference.sqlite"
    SqliteDict(str(reference), tablename="unnamed", autocommit=True).close()

    def shape(path: Path) -> tuple[Any, ...]:
        connection = sqlite3.connect(path)
        try:
            return (
                connection.execute(
                    "SELECT type, name, tbl_name, sql FROM sqlite_master"
                ).fetchall(),
                connection.execute("PRAGMA page_size").fetchone(),
                connection.execute("PRAGMA journal_mode").fetchone(),
                connection.execute("PRAGMA encoding").fetchone(),
            )
        finally:
            connection.close()

    assert shape(made_by_us) == shape(reference)
    with SqliteDict(str(made_by_us), tablename="unnamed", autocommit=True) as db:
        db["written by HELM later"] = {"ok": True}
        assert db[next(iter(GPT2))] == response("g")


def test_unusable_files_are_errors_that_stop_only_themselves(
    pr1903: Catalog, cache: Path, tmp_path: Path
) -> None:
    (cache / "corrupt.sqlite").write_bytes(b"this is not a database file" * 10)
    (cache / "empty.sqlite").write_bytes(b"")
    other = sqlite3.connect(cache / "other.sqlite")
    other.execute("CREATE TABLE something (x)")
    other.close()
    elsewhere = tmp_path / "elsewhere.sqlite"
    write_shard(tmp_path, "elsewhere", META)
    (cache / "linked.sqlite").symlink_to(elsewhere)
    elsewhere_before = elsewhere.read_bytes()
    before = {n: b for n, b in file_bytes(cache).items() if n != "linked.sqlite"}
    report = pr1903.migrate_cache(cache, out=tmp_path / "out")
    assert not report.ok
    problems = {p.file: p.message for p in report.problems}
    assert "not a SQLite database" in problems["corrupt.sqlite"]
    assert "no 'unnamed' table" in problems["empty.sqlite"]
    assert "no 'unnamed' table" in problems["other.sqlite"]
    assert "symbolic link" in problems["linked.sqlite"]
    assert all(str(cache / name) in " ".join(report.errors) for name in problems)
    assert report.verified
    assert read_shard(tmp_path / "out" / "together.sqlite") == META
    assert not {"corrupt.sqlite", "linked.sqlite", "other.sqlite"} & set(shards(tmp_path / "out"))
    assert {n: b for n, b in file_bytes(cache).items() if n != "linked.sqlite"} == before
    assert elsewhere.read_bytes() == elsewhere_before
    assert report.ignored_files == ("README.txt",)


def test_a_symlinked_target_is_not_followed(pr1903: Catalog, cache: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.sqlite"
    write_shard(tmp_path, "outside", TOKENIZER)
    outside_before = outside.read_bytes()
    (cache / "together.sqlite").symlink_to(outside)
    report = pr1903.migrate_cache(cache, in_place=True)
    assert not report.ok
    assert outside.read_bytes() == outside_before
    assert (cache / "meta.sqlite").exists()
    assert any("symbolic link" in e for e in report.errors)


def test_a_wal_mode_shard_is_refused(pr1903: Catalog, cache: Path, tmp_path: Path) -> None:
    connection = sqlite3.connect(cache / "meta.sqlite")
    connection.execute("PRAGMA journal_mode=WAL")
    connection.close()
    before = file_bytes(cache)
    report = pr1903.migrate_cache(cache, out=tmp_path / "out")
    assert "WAL" in {p.file: p.message for p in report.problems}["meta.sqlite"]
    assert file_bytes(cache) == before


def test_a_host_that_is_not_a_safe_file_name_is_refused(pr1903: Catalog, tmp_path: Path) -> None:
    connection = pr1903.connection
    connection.execute(
        "INSERT INTO models (name, creator_prefix, engine, creator_organization_name, "
        "display_name, description, access, is_placeholder, position) "
        "VALUES ('evil/m', 'evil', 'm', 'Evil', 'm', 'm', 'open', 0, 9999)"
    )
    connection.execute(
        "INSERT INTO deployments (name, host_organization, engine, model_name, client_class, "
        "deprecated, position, first_position) "
        "VALUES ('dotdot/m', '..', 'm', 'evil/m', 'x.Client', 0, 9999, 9999)"
    )
    cache = tmp_path / "deep" / "cache"
    write_shard(cache, "evil", {key(model="evil/m"): response("m")})
    before = sorted(p.name for p in (tmp_path / "deep").iterdir())
    report = pr1903.migrate_cache(cache, in_place=True)
    (shard,) = report.shards
    assert shard.unrouted == 1 and "refused" in next(iter(shard.unrouted_reasons))
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == before
    assert shards(cache) == ["evil.sqlite"]


@pytest.mark.parametrize("mode", ["in-place", "out"])
def test_a_dry_run_writes_nothing(pr1903: Catalog, cache: Path, tmp_path: Path, mode: str) -> None:
    before = file_bytes(cache)
    out = tmp_path / "out"
    options: dict[str, Any] = {"in_place": True} if mode == "in-place" else {"out": out}
    report = pr1903.migrate_cache(cache, dry_run=True, **options)
    assert report.dry_run and not report.verified
    assert report.totals["moved"] == {"huggingface": 1, "together": 4}
    assert file_bytes(cache) == before
    assert not out.exists()


def test_progress_reports_every_entry_once(pr1903: Catalog, cache: Path, tmp_path: Path) -> None:
    for options in ({"out": tmp_path / "out"}, {"in_place": True}):
        calls: list[tuple[int, int]] = []

        def record(done: int, total: int, calls: list[tuple[int, int]] = calls) -> None:
            calls.append((done, total))

        pr1903.migrate_cache(cache, progress=record, **options)
        assert calls and calls[-1] == (calls[-1][1], calls[-1][1])
        assert [d for d, _ in calls] == sorted(d for d, _ in calls)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "exactly one of"),
        ({"in_place": True, "out": "x"}, "exactly one of"),
        ({"in_place": True, "on_conflict": "merge"}, "unknown conflict policy"),
        ({"out": "o", "prune": True}, "--prune applies to --in-place only"),
    ],
)
def test_bad_options_are_errors(
    pr1903: Catalog, cache: Path, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(CacheMigrationError, match=message):
        pr1903.migrate_cache(cache, **options)


def test_the_output_directory_cannot_be_the_cache(pr1903: Catalog, cache: Path) -> None:
    with pytest.raises(CacheMigrationError, match="use --in-place"):
        pr1903.migrate_cache(cache, out=cache / ".." / cache.name)


def test_a_missing_cache_directory_is_an_error(pr1903: Catalog, tmp_path: Path) -> None:
    with pytest.raises(CacheMigrationError, match="does not exist"):
        pr1903.plan_cache_migration(tmp_path / "absent")
    with pytest.raises(SettingError):
        pr1903.plan_cache_migration(tmp_path, policy="sideways")


# Properties --------------------------------------------------------------------------------------

IDENTIFIERS = ["meta/llama-7b", "llama-2-7b", "gpt2", "davinci", "nothing-known", "together/bloom"]
SHARDS = ["meta", "openai", "together", "huggingface", "misc"]


@st.composite
def old_caches(draw: st.DrawFn) -> dict[str, dict[str, bytes]]:
    entries = draw(
        st.lists(
            st.tuples(
                st.sampled_from(SHARDS),
                st.sampled_from(IDENTIFIERS),
                st.integers(0, 5),
                st.binary(max_size=20),
            ),
            max_size=25,
        )
    )
    cache: dict[str, dict[str, bytes]] = {}
    for shard, identifier, prompt, value in entries:
        # Keys unique across shards: conflicts have tests of their own.
        cache.setdefault(shard, {})[key(model=identifier, prompt=f"{shard} {prompt}")] = value
    return cache


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(old=old_caches())
def test_nothing_is_lost_and_both_modes_agree(
    pr1903: Catalog, tmp_path_factory: pytest.TempPathFactory, old: dict[str, dict[str, bytes]]
) -> None:
    root = tmp_path_factory.mktemp("property")
    cache = root / "cache"
    cache.mkdir()
    for shard, entries in old.items():
        write_raw(cache / f"{shard}.sqlite", entries)
    if not old:
        with pytest.raises(CacheMigrationError, match="no cache shards"):
            pr1903.migrate_cache(cache, out=root / "out")
        assert not (root / "out").exists()
        return
    out = pr1903.migrate_cache(cache, out=root / "out")
    in_place = pr1903.migrate_cache(cache, in_place=True, prune=True)
    assert out.ok and in_place.ok
    layout = state(cache)
    live = {name: entries for name, entries in layout.items() if name.endswith(".sqlite")}
    backups = {name: entries for name, entries in layout.items() if name not in live}
    for shard, entries in old.items():
        for k, v in entries.items():
            assert any(found.get(k) == v for found in live.values()) or any(
                name.startswith(f"{shard}.sqlite") and found.get(k) == v
                for name, found in backups.items()
            )
    assert {n: e for n, e in live.items() if e} == {
        n: e for n, e in state(root / "out").items() if e
    }
    assert not pr1903.migrate_cache(cache, in_place=True, prune=True).changed
    shutil.rmtree(root)


def test_relative_paths_work(pr1903: Catalog, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(cache.parent)
    report = pr1903.migrate_cache(os.path.relpath(cache), out="out-relative")
    assert report.ok and (cache.parent / "out-relative" / "together.sqlite").exists()


@pytest.mark.slow  # what a fresh interpreter imports
def test_the_migration_modules_import_neither_sqlalchemy_nor_yaml_nor_click() -> None:
    code = (
        "import sys, catalog.cache.migrate, catalog.cache.routing, catalog.cache.store; "
        "print(sorted(m for m in ('sqlalchemy', 'yaml', 'click', 'alembic') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr


def test_an_empty_catalog_is_an_error_not_a_silent_no_op(catalog: Catalog, cache: Path) -> None:
    with pytest.raises(CacheMigrationError, match="catalog sync"):
        catalog.plan_cache_migration(cache)
