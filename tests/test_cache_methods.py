"""Each move of a cache migration is made by the cheapest method that is correct for it, and
the report says which, per move."""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from cache_helpers import key, raw_entries, read_shard, response, write_raw, write_shard
from conftest import run_cli

from catalog import Catalog
from catalog.cache import migrate as cache_migrate
from catalog.cache.sqlite_store import _rename_noreplace

# In the v0.5.12 catalog every model of aisingapore and of ibm-granite is served by
# huggingface; meta's models are served by several hosts.
AISINGAPORE = {
    key(model="aisingapore/sea-lion-7b-instruct", prompt=str(n)): response(f"sea-lion {n}")
    for n in range(30)
}
IBM = {key(model="ibm-granite/x", prompt=str(n)): response(f"granite {n}") for n in range(20)}
META = {
    key(model=model, prompt=str(n)): response(f"{model} {n}")
    for model in ("meta/llama-7b", "meta/opt-175b", "meta/llama-3.1-70b-instruct")
    for n in range(10)
}
TOGETHER = {key(model="together/bloom", prompt="own"): response("own")}
META_OPT = {k: v for k, v in META.items() if "opt-175b" in k}  # served by huggingface


def _cache(directory: Path) -> Path:
    write_shard(directory, "aisingapore", AISINGAPORE)
    write_shard(directory, "ibm-granite", IBM)
    write_shard(directory, "meta", META)
    write_shard(directory, "together", TOGETHER)
    write_shard(directory, "nobody", {key(prompt="no model"): response("j")})
    return directory


def _moves(report: Any) -> dict[str, list[tuple[str, str, str, int]]]:
    return {
        shard.shard: [(m.target, m.kind, m.method, m.entries) for m in shard.moves]
        for shard in report.shards
    }


def _reflinks_here(directory: Path) -> bool:
    """Whether this file system clones files (btrfs, XFS) or not (ext4, tmpfs)."""
    source, clone = directory / "reflink-probe", directory / "reflink-probe-clone"
    source.write_bytes(b"x" * 4096)
    try:
        with source.open("rb") as reader, clone.open("wb") as writer:
            fcntl.ioctl(writer.fileno(), 0x40049409, reader.fileno())
    except OSError:
        return False
    finally:
        source.unlink()
        clone.unlink(missing_ok=True)
    return True


def test_out_copies_whole_shards_as_files_and_inserts_the_rest_in_key_order(
    v0512: Catalog, tmp_path: Path
) -> None:
    cache = _cache(tmp_path / "cache")
    out = tmp_path / "out"
    report = v0512.migrate_cache(cache, out=out)
    assert report.ok and report.verified
    copy = "reflink" if _reflinks_here(tmp_path) else "file copy"
    moves = _moves(report)
    # Absent target: the file itself; the same target, now existing: inserts.
    assert moves["aisingapore"] == [("huggingface", "whole shard", copy, 30)]
    assert moves["ibm-granite"] == [("huggingface", "whole shard", "inserts in key order", 20)]
    assert {m[2] for m in moves["meta"]} == {"inserts in key order"}
    assert {m[1] for m in moves["meta"]} == {"routed"}
    assert sum(m[3] for m in moves["meta"]) == len(META)
    # A shard whose entries all stay is copied into the new layout as a file.
    assert moves["together"] == [("together", "whole shard", copy, 1)]
    assert report.shards[0].method == copy
    assert read_shard(out / "huggingface.sqlite") == {**AISINGAPORE, **IBM, **META_OPT}
    # A copied file is the source file byte for byte, as sqlitedict wrote it.
    assert (out / "nobody.sqlite").read_bytes() == (cache / "nobody.sqlite").read_bytes()


def test_in_place_a_whole_shard_into_an_absent_target_is_renamed_after_its_backup(
    v0512: Catalog, tmp_path: Path
) -> None:
    cache = _cache(tmp_path / "cache")
    original = cache / "aisingapore.sqlite"
    inode, content = original.stat().st_ino, original.read_bytes()
    report = v0512.migrate_cache(cache, in_place=True)
    assert report.ok and report.verified
    moves = _moves(report)
    backup_by = "reflink" if _reflinks_here(tmp_path) else "file copy"
    assert moves["aisingapore"] == [
        ("huggingface", "whole shard", f"rename, backup by {backup_by}", 30)
    ]
    assert moves["ibm-granite"] == [("huggingface", "whole shard", "inserts in key order", 20)]
    target = cache / "huggingface.sqlite"
    backup = cache / "aisingapore.sqlite.pre-migration"
    # The shard's own file became the target; the backup is a separate, identical file.
    assert target.stat().st_ino == inode
    assert backup.read_bytes() == content
    assert backup.stat().st_ino != inode and backup.stat().st_nlink == 1
    assert not original.exists()
    by_shard = {s.shard: s for s in report.shards}
    assert by_shard["aisingapore"].backup == backup.name
    assert by_shard["aisingapore"].moved == {"huggingface": 30}
    # ibm-granite went in by inserts and was then set aside by a rename: its own file.
    assert by_shard["ibm-granite"].backup == "ibm-granite.sqlite.pre-migration"
    assert read_shard(target) == {**AISINGAPORE, **IBM, **META_OPT}
    assert not v0512.migrate_cache(cache, in_place=True).changed


def test_routed_entries_are_inserted_in_key_order(v0512: Catalog, tmp_path: Path) -> None:
    """A new target's rowids follow its keys: the key index was filled along its edge."""
    cache = tmp_path / "cache"
    write_shard(cache, "meta", META)
    report = v0512.migrate_cache(cache, out=tmp_path / "out")
    assert report.ok and report.verified
    for path in (tmp_path / "out").glob("*.sqlite"):
        connection = sqlite3.connect(path)
        try:
            keys = [k for (k,) in connection.execute('SELECT key FROM "unnamed" ORDER BY rowid')]
        finally:
            connection.close()
        assert keys == sorted(keys) and keys


def test_inserts_go_in_transactions_of_flush_rows_entries(
    v0512: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """25 entries into an existing target with FLUSH_ROWS = 10: three transactions, each
    read back before the next is counted done."""
    cache = tmp_path / "cache"
    write_shard(cache, "huggingface", {key(tokenizer="gpt2", text="t"): [1]})
    write_raw(cache / "aisingapore.sqlite", {k: b"v" for k in list(AISINGAPORE)[:25]})
    monkeypatch.setattr(cache_migrate, "FLUSH_ROWS", 10)
    done: list[int] = []
    report = v0512.migrate_cache(
        cache, in_place=True, progress=lambda count, _total: done.append(count)
    )
    assert report.ok and report.verified
    assert done[:3] == [10, 20, 25]  # then huggingface, read after, counts what it holds
    assert _moves(report)["aisingapore"] == [
        ("huggingface", "whole shard", "inserts in key order", 25)
    ]
    assert raw_entries(cache / "huggingface.sqlite")[next(iter(AISINGAPORE))] == b"v"


def test_a_backup_left_by_a_killed_run_is_kept_not_made_twice(
    v0512: Catalog, tmp_path: Path
) -> None:
    """Killed after the backup was published and before the rename: the next run finds the
    identical backup, keeps it, and renames."""
    cache = tmp_path / "cache"
    write_shard(cache, "aisingapore", AISINGAPORE)
    shard = cache / "aisingapore.sqlite"
    (cache / "aisingapore.sqlite.pre-migration").write_bytes(shard.read_bytes())
    report = v0512.migrate_cache(cache, in_place=True)
    assert report.ok and report.verified
    assert sorted(p.name for p in cache.iterdir()) == [
        "aisingapore.sqlite.pre-migration",
        "huggingface.sqlite",
    ]
    assert report.shards[0].backup == "aisingapore.sqlite.pre-migration"


def test_an_older_different_backup_is_kept_and_a_new_one_made_beside_it(
    v0512: Catalog, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    write_shard(cache, "aisingapore", AISINGAPORE)
    older = cache / "aisingapore.sqlite.pre-migration"
    older.write_bytes(b"an older backup")
    report = v0512.migrate_cache(cache, in_place=True)
    assert report.ok
    assert older.read_bytes() == b"an older backup"
    assert read_shard(cache / "aisingapore.sqlite.pre-migration.2") == AISINGAPORE
    assert read_shard(cache / "huggingface.sqlite") == AISINGAPORE


def test_a_shard_left_linked_to_its_target_is_finished(v0512: Catalog, tmp_path: Path) -> None:
    """Where rename-without-replace is missing, the move is a link then an unlink; a run
    killed between the two leaves both names on one file, which the next run finishes."""
    cache = tmp_path / "cache"
    write_shard(cache, "aisingapore", AISINGAPORE)
    shard = cache / "aisingapore.sqlite"
    (cache / "aisingapore.sqlite.pre-migration").write_bytes(shard.read_bytes())
    os.link(shard, cache / "huggingface.sqlite")
    report = v0512.migrate_cache(cache, in_place=True)
    assert report.ok and report.verified
    assert sorted(p.name for p in cache.iterdir()) == [
        "aisingapore.sqlite.pre-migration",
        "huggingface.sqlite",
    ]
    assert (cache / "huggingface.sqlite").stat().st_nlink == 1
    assert read_shard(cache / "huggingface.sqlite") == AISINGAPORE


def test_a_rename_never_replaces_a_file(tmp_path: Path) -> None:
    source, target = tmp_path / "a", tmp_path / "b"
    source.write_text("a")
    target.write_text("b")
    with pytest.raises(FileExistsError):
        _rename_noreplace(source, target)
    assert (source.read_text(), target.read_text()) == ("a", "b")
    target.unlink()
    _rename_noreplace(source, target)
    assert target.read_text() == "a" and not source.exists()


def test_a_wrong_guess_costs_only_the_copy(v0512: Catalog, tmp_path: Path) -> None:
    """aisingapore's rules predict one host, but a tokenizer entry stays: the file copy
    started early is thrown away and the entries are inserted."""
    cache = tmp_path / "cache"
    entries = {**AISINGAPORE, key(tokenizer="aisingapore/x", text="t"): {"tokens": [1]}}
    write_shard(cache, "aisingapore", entries)
    for options in ({"out": tmp_path / "out"}, {"in_place": True, "prune": True}):
        report = v0512.migrate_cache(cache, **options)
        assert report.ok and report.verified
        (shard,) = report.shards
        assert shard.method == "inserts in key order"
        assert [p.name for p in tmp_path.rglob("*.migrating-tmp")] == []
    assert read_shard(cache / "huggingface.sqlite") == AISINGAPORE
    assert set(read_shard(cache / "aisingapore.sqlite")) == set(entries) - set(AISINGAPORE)
    assert read_shard(tmp_path / "out" / "aisingapore.sqlite") == {
        k: v for k, v in entries.items() if k not in AISINGAPORE
    }


def test_a_dry_run_names_the_methods_it_would_use(v0512: Catalog, tmp_path: Path) -> None:
    cache = _cache(tmp_path / "cache")
    for options, whole in (
        ({"out": tmp_path / "out"}, "file copy"),
        ({"in_place": True}, "rename, backup by file copy"),
    ):
        moves = _moves(v0512.migrate_cache(cache, dry_run=True, **options))
        assert moves["aisingapore"] == [("huggingface", "whole shard", whole, 30)]
        assert {m[2] for m in moves["meta"]} == {"inserts in key order"}


def test_the_json_report_has_the_method_of_every_move(tmp_path: Path, v0512_template: Path) -> None:
    db = tmp_path / "catalog.db"
    db.write_bytes(v0512_template.read_bytes())
    cache = _cache(tmp_path / "cache")
    result = run_cli("cache", "migrate", cache, "--out", tmp_path / "out", "--json", db=db)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for shard in report["shards"]:
        assert shard["moves"], shard["shard"]
        assert sum(move["entries"] for move in shard["moves"]) == shard["entries"]
        for move in shard["moves"]:
            assert set(move) == {"target", "kind", "method", "entries", "seconds", "refused"}
            assert move["refused"] is False
            assert move["method"] in {"file copy", "reflink", "inserts in key order"}
            assert move["kind"] in {"whole shard", "routed"} and move["seconds"] >= 0
