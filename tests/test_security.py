"""Hostile data: SQL in values, writes through the query layer, the cache tool and the filesystem,
pickles and class names that would run code.

Every test here gives the tool data crafted to do harm and checks that none was done: the
database and the cache stay byte for byte what they were, no file appears outside the
directories the command was given, no module is imported and no value is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
import yaml
from cache_helpers import key, raw_entries, response, write_raw, write_shard
from conftest import HELM_CONFIGS, dump, require_shared, run_cli, run_cli_process
from helm_yaml import DUMPER
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog import Catalog, CatalogError, ReadOnlyQueryError

INJECTION = "x'); DROP TABLE models;--"
HOSTILE = [INJECTION, '"', "%", "_", "'; DELETE FROM deployments; --", 'a" OR "1"="1', "\\", "%_"]


def _ok(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if result.stdout.lstrip().startswith(("[", "{")) else None


def _refused(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    return result.stderr


def _files(directory: Path) -> dict[str, str]:
    """Every file and link under `directory`: a hash of its bytes, or where the link points."""
    found = {}
    for path in sorted(directory.rglob("*")):
        name = str(path.relative_to(directory))
        if path.is_symlink():
            found[name] = "-> " + os.readlink(path)
        elif path.is_file():
            found[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


# A catalog full of hostile values ---------------------------------------------------------------

# Names must be org/engine, so the SQL goes into everything else; `_` is legal in names, and
# would match any character if a lookup used LIKE.
MODELS = [
    {
        "name": "acme/abc",
        "display_name": INJECTION,
        "description": "'; DELETE FROM deployments; --",
        "creator_organization_name": "Acme",
        "access": "open",
        "tags": ["TEXT_MODEL_TAG", *HOSTILE],
    },
    {
        "name": "acme/a_c",
        "display_name": '"',
        "description": 'a" OR "1"="1',
        "creator_organization_name": "%",
        "access": "open",
        "tags": ["TEXT_MODEL_TAG", "%"],
    },
    {
        "name": "ac_e/x",
        "display_name": "%",
        "description": "\\",
        "creator_organization_name": "_",
        "access": "closed",
        "tags": ["TEXT_MODEL_TAG", "_"],
    },
]
CLIENT_ARGS = {"sql": INJECTION, "quote": '"', "percent": "%", INJECTION: "a hostile key"}
DEPLOYMENTS = [
    {
        "name": "hxst/abc",
        "model_name": "acme/abc",
        "tokenizer_name": "acme/tok",
        "max_sequence_length": 2048,
        "client_spec": {
            "class_name": "helm.clients.simple_client.SimpleClient",
            "args": CLIENT_ARGS,
        },
    },
    {
        "name": "h_st/a_c",
        "model_name": "acme/a_c",
        "tokenizer_name": "acme/tok",
        "max_sequence_length": 2048,
        "client_spec": {"class_name": "helm.clients.simple_client.SimpleClient"},
        "window_service_spec": {
            "class_name": "helm.benchmark.window_services.default_window_service.X",
            "args": {"x": "'; DROP TABLE tokenizers; --"},
        },
    },
    {
        "name": "ac_e/x",
        "model_name": "ac_e/x",
        "max_sequence_length": 2048,
        "client_spec": {"class_name": "helm.clients.simple_client.SimpleClient"},
    },
]
TOKENIZERS = [
    {
        "name": "acme/tok",
        "tokenizer_spec": {
            "class_name": "helm.tokenizers.simple_tokenizer.SimpleTokenizer",
            "args": {"path": INJECTION},
        },
        "end_of_text_token": "'); DROP TABLE tokenizers;--",
        "prefix_token": '"',
    }
]


def write_catalog(
    directory: Path,
    models: list[dict[str, Any]] = MODELS,
    deployments: list[dict[str, Any]] = DEPLOYMENTS,
    tokenizers: list[dict[str, Any]] = TOKENIZERS,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for file_name, top, entries in (
        ("model_metadata.yaml", "models", models),
        ("model_deployments.yaml", "model_deployments", deployments),
        ("tokenizer_configs.yaml", "tokenizer_configs", tokenizers),
    ):
        (directory / file_name).write_text(
            yaml.dump({top: entries}, Dumper=DUMPER, allow_unicode=True), encoding="utf-8"
        )
    return directory


@pytest.fixture(scope="module")
def hostile_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    db = root / "catalog.db"
    synced = run_cli("sync", write_catalog(root / "configs"), db=db)
    assert synced.returncode == 0, synced.stderr
    return db


@pytest.fixture
def hostile_db(hostile_template: Path, tmp_path: Path) -> Path:
    db = tmp_path / "catalog.db"
    shutil.copyfile(hostile_template, db)
    return db


def _integrity(db: Path) -> None:
    connection = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
    try:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
        tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master")}
        assert {"models", "deployments", "tokenizers", "tags", "model_tags", "pins"} <= tables
        assert connection.execute("SELECT count(*) FROM models").fetchone() == (3,)
        assert connection.execute("SELECT count(*) FROM deployments").fetchone() == (3,)
    finally:
        connection.close()


def test_hostile_values_are_stored_and_shown_exactly(hostile_db: Path) -> None:
    model = _ok(run_cli("show", "model", "acme/abc", "--json", db=hostile_db))
    assert model["display_name"] == INJECTION
    assert model["description"] == "'; DELETE FROM deployments; --"
    assert model["tags"] == ["TEXT_MODEL_TAG", *HOSTILE]
    deployment = _ok(run_cli("show", "deployment", "hxst/abc", "--json", db=hostile_db))
    assert deployment["client_args"] == CLIENT_ARGS
    tokenizer = _ok(run_cli("show", "tokenizer", "acme/tok", "--json", db=hostile_db))
    assert tokenizer["args"] == {"path": INJECTION}
    assert tokenizer["end_of_text_token"] == "'); DROP TABLE tokenizers;--"
    _integrity(hostile_db)


@pytest.mark.parametrize("tag", HOSTILE)
def test_list_by_a_hostile_tag_is_a_plain_comparison(hostile_db: Path, tag: str) -> None:
    rows = _ok(run_cli("list", "models", "--tag", tag, "--json", db=hostile_db))
    expected = [m["name"] for m in MODELS if tag in m["tags"]]
    assert [row["name"] for row in rows] == expected
    _integrity(hostile_db)


def test_creator_and_host_filters_match_literally(hostile_db: Path) -> None:
    def names(*args: str) -> list[str]:
        result = run_cli("list", *args, "--json", db=hostile_db)
        return [row["name"] for row in _ok(result)]

    assert names("models", "--creator", "%") == ["acme/a_c"]
    assert names("models", "--creator", "_") == ["ac_e/x"]
    assert names("models", "--creator", "ac_e") == ["ac_e/x"]
    assert names("models", "--creator", "a_me") == []
    assert names("models", "--creator", INJECTION) == []
    assert names("models", "--host", "h_st") == ["acme/a_c"]
    assert names("models", "--host", "h%") == []
    assert names("models", "--host", "_") == []
    assert names("deployments", "--host", "h_st") == ["h_st/a_c"]
    assert names("deployments", "--host", "%") == []
    assert names("deployments", "--model", "acme/a_c") == ["h_st/a_c"]
    _refused(run_cli("list", "deployments", "--model", INJECTION, db=hostile_db))
    _refused(run_cli("list", "deployments", "--tokenizer", INJECTION, db=hostile_db))
    _integrity(hostile_db)


def test_resolve_pin_explain_and_query_with_hostile_input(hostile_db: Path) -> None:
    resolved = _ok(run_cli("resolve", "model=acme/a_c", "--json", db=hostile_db))
    assert [r["model_deployment"] for r in resolved] == ["h_st/a_c"]
    _refused(run_cli("resolve", f"model={INJECTION}", db=hostile_db))
    _refused(run_cli("resolve", f"model_deployment={INJECTION}", db=hostile_db))
    text = _ok(run_cli("resolve", "model=text", "--json", db=hostile_db))
    assert [r["model"] for r in text] == [m["name"] for m in MODELS]

    _refused(run_cli("pin", INJECTION, "h_st/a_c", db=hostile_db))
    _refused(run_cli("pin", "acme/a_c", INJECTION, db=hostile_db))
    _refused(run_cli("pin", "acme/abc", "h_st/a_c", db=hostile_db))
    _ok(run_cli("pin", "acme/a_c", "h_st/a_c", db=hostile_db))
    pins = _ok(run_cli("pins", "--json", db=hostile_db))
    assert [(p["model_name"], p["deployment_name"]) for p in pins] == [("acme/a_c", "h_st/a_c")]
    _refused(run_cli("unpin", INJECTION, db=hostile_db))
    _refused(run_cli("settings", "set", "policy", INJECTION, db=hostile_db))
    _refused(run_cli("settings", "set", INJECTION, "first", db=hostile_db))

    explained = run_cli("explain", "acme/abc", db=hostile_db)
    assert explained.returncode == 0 and "hxst/abc" in explained.stdout
    _refused(run_cli("explain", INJECTION, db=hostile_db))
    _refused(run_cli("show", "model", INJECTION, db=hostile_db))

    for value in HOSTILE:
        rows = _ok(
            run_cli(
                "query",
                "SELECT name FROM models WHERE display_name = ? OR creator_organization_name = ?",
                "--param",
                value,
                "--param",
                value,
                "--json",
                db=hostile_db,
            )
        )
        expected = [
            m["name"]
            for m in MODELS
            if value in (m["display_name"], m["creator_organization_name"])
        ]
        assert sorted(r["name"] for r in rows) == sorted(expected)
    _integrity(hostile_db)


VALUES_OF = {
    "models": "name, display_name, description, creator_organization_name, access",
    "model_tags": "model_name, tag_name, position",
    "tags": "name",
    "deployments": "name, model_name, tokenizer_name, client_class, client_args, "
    "window_service_class, window_service_args",
    "tokenizers": "name, class_name, args, end_of_text_token, prefix_token",
}


def _values(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every stored value, without where it was read from (file and line)."""
    connection = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
    try:
        return {
            table: sorted(connection.execute(f"SELECT {columns} FROM {table}"), key=repr)
            for table, columns in VALUES_OF.items()
        }
    finally:
        connection.close()


def test_check_and_export_round_trip_hostile_values(hostile_db: Path, tmp_path: Path) -> None:
    assert run_cli("check", db=hostile_db).returncode == 0
    exported = tmp_path / "exported"
    _ok(run_cli("export", exported, db=hostile_db))
    again = tmp_path / "again.db"
    _ok(run_cli("sync", exported, db=again))
    original = _values(hostile_db)
    assert INJECTION in json.dumps(original["models"])
    assert _values(again) == original


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=40) | st.sampled_from(HOSTILE))
def test_any_text_as_a_name_or_filter_is_only_a_value(hostile_template: Path, text: str) -> None:
    """Through the Python API: a result or a CatalogError, never a change."""
    before = dump(hostile_template)
    with Catalog.open(hostile_template) as catalog:
        for call in (
            lambda: catalog.model(text),
            lambda: catalog.deployment(text),
            lambda: catalog.tokenizer(text),
            lambda: catalog.models(tag=text),
            lambda: catalog.models(creator=text, host=text),
            lambda: catalog.deployments(model=text),
            lambda: catalog.deployments(host=text, tokenizer=text),
            lambda: catalog.resolve(f"model={text}"),
            lambda: catalog.explain(text),
            lambda: catalog.default_deployment(text),
            lambda: catalog.pin(text, text),
            lambda: catalog.unpin(text),
            lambda: catalog.sql("SELECT ? AS v", [text]),
        ):
            with suppress(CatalogError):
                call()
        assert catalog.sql("SELECT ? AS v", [text]) == [{"v": text}]
    assert dump(hostile_template) == before


# The query layer writes nothing, by any route --------------------------------------------------

ROUTES = [
    "CREATE TRIGGER t AFTER INSERT ON tags BEGIN DELETE FROM models; END",
    "CREATE TEMP TRIGGER t AFTER INSERT ON tags BEGIN DELETE FROM models; END",
    "CREATE VIEW v AS SELECT 1",
    "CREATE TEMP VIEW v AS SELECT 1",
    "CREATE VIRTUAL TABLE v USING fts5(x)",
    "CREATE TABLE IF NOT EXISTS models (x)",
    "DROP TRIGGER IF EXISTS t",
    "DROP INDEX IF EXISTS ix_deployments_model_name",
    "ATTACH 'file:{tmp}/attached.db?mode=rwc' AS x",
    "ATTACH ':memory:' AS m",
    "ATTACH DATABASE '{db}' AS again",
    "VACUUM main INTO '{tmp}/copy.db'",
    "VACUUM INTO 'file:{tmp}/copy2.db'",
    "PRAGMA main.user_version = 1",
    "PRAGMA wal_checkpoint(TRUNCATE)",
    "PRAGMA optimize",
    "PRAGMA incremental_vacuum",
    "PRAGMA query_only = 0",
    "PRAGMA locking_mode = EXCLUSIVE",
    "PRAGMA journal_size_limit = 0",
    "PRAGMA wal_autocheckpoint = 1",
    "PRAGMA writable_schema = 1",
    "PRAGMA legacy_alter_table = ON",
    "PRAGMA trusted_schema = 1",
    "PRAGMA temp_store_directory = '{tmp}'",
    "SELECT LOAD_EXTENSION('{tmp}/evil.so')",
    "SELECT \"load_extension\"('{tmp}/evil', 'sqlite3_evil_init')",
    "SELECT writefile('{tmp}/written', 'data')",
    "SELECT fts3_tokenizer('simple', x'00')",
    "SELECT 'a;b'; DROP TABLE models",
    "SELECT 1 /* ; */ ; DELETE FROM models",
    "SELECT 1 -- ;\n; DELETE FROM models",
    "SELECT 1;; DELETE FROM models",
    "SELECT * FROM models; PRAGMA foreign_keys = OFF",
    "BEGIN; DELETE FROM models; COMMIT",
    "WITH d AS (SELECT 1) UPDATE models SET access = 'x'",
    "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 3) "
    "INSERT INTO tags (name) SELECT 'n' || x FROM n",
    "INSERT INTO tags (name) VALUES ('a') ON CONFLICT (name) DO UPDATE SET name = 'b'",
    "INSERT INTO settings (key, value) VALUES ('policy', 'last')",
    "DELETE FROM pins",
    "UPDATE sqlite_master SET sql = 'x'",
    "DELETE FROM sqlite_sequence",
    "ROLLBACK",
    "COMMIT",
    "END",
    "RELEASE s",
    "DETACH temp",
    "ANALYZE models",
    "REINDEX models",
    "ALTER TABLE models RENAME TO m",
    "SELECT 1;\x00DELETE FROM models",
]


@pytest.fixture(scope="module")
def query_db(tmp_path_factory: pytest.TempPathFactory, v050_template: Path) -> Path:
    directory = tmp_path_factory.mktemp("query") / "catalog"
    directory.mkdir()
    db = directory / "catalog.db"
    shutil.copyfile(v050_template, db)
    return db


@pytest.mark.parametrize("route", ROUTES)
def test_no_route_through_sql_changes_anything(query_db: Path, tmp_path: Path, route: str) -> None:
    before = _files(query_db.parent)
    query = route.format(tmp=tmp_path, db=query_db)
    with Catalog.open(query_db) as catalog, pytest.raises(CatalogError) as raised:
        catalog.sql(query)
    assert "Traceback" not in str(raised.value)
    assert _files(query_db.parent) == before
    assert list(tmp_path.iterdir()) == []


def test_no_route_through_the_cli_changes_anything(query_db: Path, tmp_path: Path) -> None:
    before = _files(query_db.parent)
    for route in [*ROUTES[::6], "SELECT 1; DROP TABLE models", "PRAGMA writable_schema = 1"]:
        result = run_cli("query", route.format(tmp=tmp_path, db=query_db), db=query_db)
        _refused(result)
    assert _files(query_db.parent) == before
    assert list(tmp_path.iterdir()) == []


def test_the_read_only_connection_cannot_load_extensions(query_db: Path) -> None:
    with Catalog.open(query_db) as catalog, pytest.raises(ReadOnlyQueryError):
        catalog.sql("SELECT load_extension('libc.so.6')")


# The cache tool: hostile keys, hostile hosts, links out of the directory ------------------------


def test_cache_keys_holding_sql_move_byte_for_byte(hostile_db: Path, tmp_path: Path) -> None:
    entries = {}
    for value in HOSTILE:
        entries[key(model="acme/a_c", prompt=value)] = pickle.dumps(response(value))
        entries[key(model=value, prompt="unrouted")] = pickle.dumps(response(value))
        entries[value] = pickle.dumps(value)  # not even JSON
    cache = tmp_path / "cache"
    cache.mkdir()
    write_raw(cache / "acme.sqlite", entries)
    out = tmp_path / "out"
    _ok(run_cli("cache", "migrate", cache, "--out", out, "-q", db=hostile_db))
    layout = {p.name: raw_entries(p) for p in sorted(out.iterdir())}
    assert sum(len(found) for found in layout.values()) == len(entries)
    assert {k: v for found in layout.values() for k, v in found.items()} == entries
    assert {key(model="acme/a_c", prompt=v) for v in HOSTILE} <= set(layout["h_st.sqlite"])
    # A model string equal to a client argument of acme/abc's deployment routes there.
    assert key(model=INJECTION, prompt="unrouted") in layout["hxst.sqlite"]
    _ok(run_cli("cache", "migrate", cache, "--in-place", "--prune", "-q", db=hostile_db))
    for name, found in layout.items():
        assert raw_entries(cache / name) == found


def _add_deployment_with_host(db: Path, host: str) -> None:
    """A host the importer would refuse, written straight into the database."""
    connection = sqlite3.connect(db)
    with connection:
        connection.execute(
            "INSERT INTO models (name, creator_prefix, engine, creator_organization_name, "
            "display_name, description, access, is_placeholder, position) "
            "VALUES ('evil/m', 'evil', 'm', 'Evil', 'm', 'm', 'open', 0, 99999)"
        )
        connection.execute(
            "INSERT INTO deployments (name, host_organization, engine, model_name, "
            "client_class, deprecated, position, first_position) "
            "VALUES ('evilhost/m', ?, 'm', 'evil/m', 'x.Client', 0, 99999, 99999)",
            (host,),
        )
    connection.close()


HOSTILE_HOSTS = ["..", ".", "a/b", "../outside", "/tmp/absolute", ".hidden", "a\\b", "", "x" * 300]


@pytest.mark.parametrize("host", HOSTILE_HOSTS)
@pytest.mark.parametrize("mode", ["in-place", "out"])
def test_a_hostile_host_never_names_a_file(
    v0512_template: Path, tmp_path: Path, host: str, mode: str
) -> None:
    db = tmp_path / "catalog.db"
    shutil.copyfile(v0512_template, db)
    _add_deployment_with_host(db, host)
    root = tmp_path / "root"
    cache = root / "deep" / "cache"
    write_shard(cache, "evil", {key(model="evil/m", prompt="p"): response("m")})
    before = _files(root)
    args = ["--in-place"] if mode == "in-place" else ["--out", str(root / "deep" / "out")]
    result = run_cli("cache", "migrate", cache, *args, "--json", db=db)
    report = json.loads(result.stdout)
    (shard,) = report["shards"]
    assert shard["unrouted"] == 1
    assert "refused" in next(iter(shard["unrouted_reasons"]))
    after = _files(root)
    created = set(after) - set(before)
    assert {name for name in created if not name.startswith("deep/out/")} == set()
    assert {k: v for k, v in after.items() if k in before} == before
    assert not Path("/tmp/absolute.sqlite").exists()


@pytest.fixture
def cache_and_outside(v0512_template: Path, tmp_path: Path) -> Iterator[dict[str, Path]]:
    """A cache whose meta shard splits (so it is pruned in place) next to precious files."""
    db = tmp_path / "catalog.db"
    shutil.copyfile(v0512_template, db)
    cache = tmp_path / "cache"
    meta = {key(model="meta/llama-7b", prompt=n): response(str(n)) for n in range(3)}
    meta[key(tokenizer="meta-llama/Llama-2-7b-hf", text="t")] = {"tokens": [1]}
    write_shard(cache, "meta", meta)
    write_shard(cache, "together", {key(model="together/bloom", prompt="own"): response("own")})
    write_shard(cache, "openai", {key(model="gpt2", prompt="g"): response("g")})
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("precious\n")
    write_shard(outside, "elsewhere", {"k": "v"})
    yield {"db": db, "cache": cache, "outside": outside}


LINKS = {
    "source-shard": ("openai.sqlite", "elsewhere.sqlite"),
    "target-shard": ("huggingface.sqlite", "elsewhere.sqlite"),
    "target-journal": ("together.sqlite-journal", "precious.txt"),
    "source-journal": ("meta.sqlite-journal", "precious.txt"),
    "dangling-journal": ("huggingface.sqlite-journal", "created-by-sqlite"),
    "temporary-file": ("huggingface.sqlite.migrating-tmp", "precious.txt"),
    "backup-name": ("openai.sqlite.pre-migration", "precious.txt"),
}


@pytest.mark.parametrize("link", sorted(LINKS))
@pytest.mark.parametrize("mode", ["in-place", "out"])
def test_a_symbolic_link_in_the_cache_never_leads_a_write_outside(
    cache_and_outside: dict[str, Path], tmp_path: Path, link: str, mode: str
) -> None:
    cache, outside = cache_and_outside["cache"], cache_and_outside["outside"]
    name, target = LINKS[link]
    out = tmp_path / "out"
    directory = cache if mode == "in-place" or link.startswith("source") else out
    directory.mkdir(exist_ok=True)
    if name == "openai.sqlite":
        (cache / name).unlink()
    (directory / name).symlink_to(outside / target)
    before = _files(outside)
    args = ["--in-place", "--prune"] if mode == "in-place" else ["--out", str(out)]
    result = run_cli("cache", "migrate", cache, *args, "-q", db=cache_and_outside["db"])
    assert _files(outside) == before
    assert not (outside / "created-by-sqlite").exists()
    if link in ("temporary-file", "backup-name"):
        # Names only this tool creates: a planted link is replaced, not written through.
        assert result.returncode == 0, result.stderr
    else:
        assert "symbolic link" in _refused(result)
        assert (directory / name).is_symlink()


def test_an_output_directory_that_is_a_link_to_the_cache_is_refused(
    cache_and_outside: dict[str, Path], tmp_path: Path
) -> None:
    cache = cache_and_outside["cache"]
    before = _files(cache)
    link = tmp_path / "link-to-cache"
    link.symlink_to(cache)
    stderr = _refused(run_cli("cache", "migrate", cache, "--out", link, db=cache_and_outside["db"]))
    assert "use --in-place" in stderr
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere" / "out")
    _refused(run_cli("cache", "migrate", cache, "--out", dangling, db=cache_and_outside["db"]))
    assert not (tmp_path / "nowhere").exists()
    assert _files(cache) == before


def test_an_output_directory_through_a_link_gets_the_files_and_nothing_else_does(
    cache_and_outside: dict[str, Path], tmp_path: Path
) -> None:
    cache = cache_and_outside["cache"]
    real = tmp_path / "real-out"
    real.mkdir()
    link = tmp_path / "out-link"
    link.symlink_to(real)
    before = {p.name for p in tmp_path.iterdir()}
    _ok(run_cli("cache", "migrate", cache, "--out", link, "-q", db=cache_and_outside["db"]))
    assert {p.name for p in tmp_path.iterdir()} == before
    assert sorted(p.name for p in real.iterdir()) == [
        "huggingface.sqlite",
        "meta.sqlite",
        "together.sqlite",
    ]


# Pickles are moved, never opened ------------------------------------------------------------------

NO_UNPICKLING = r"""
import pickle, sys, _pickle

calls = []
def refuse(*args, **kwargs):
    calls.append(args[:1])
    raise AssertionError("unpickling was attempted")
for module in (pickle, _pickle):
    for name in ("load", "loads", "Unpickler"):
        setattr(module, name, refuse)

from catalog.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exit_:
    print("calls", len(calls), file=sys.stderr)
    raise
"""


class _Trap:
    """Unpickling an instance creates the file at `path` (what a malicious value would do)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


@pytest.mark.slow  # pickle is disabled in a fresh interpreter before catalog is imported
def test_values_whose_unpickling_would_run_code_are_never_unpickled(
    v0512_template: Path, tmp_path: Path
) -> None:
    db = tmp_path / "catalog.db"
    shutil.copyfile(v0512_template, db)
    traps = tmp_path / "traps"
    traps.mkdir()
    cache = tmp_path / "cache"
    cache.mkdir()
    conflicting = key(model="meta/llama-7b", prompt="conflict")
    write_raw(
        cache / "meta.sqlite",
        {
            key(model="meta/llama-7b", prompt=n): pickle.dumps(_Trap(str(traps / f"source-{n}")))
            for n in range(3)
        }
        | {conflicting: pickle.dumps(_Trap(str(traps / "source-conflict")))},
    )
    write_raw(
        cache / "together.sqlite",
        {conflicting: pickle.dumps(_Trap(str(traps / "target-conflict")))},
    )
    for args in (
        ["cache", "plan", str(cache)],
        ["cache", "migrate", str(cache), "--out", str(tmp_path / "out"), "--on-conflict", "fail"],
        ["cache", "migrate", str(cache), "--in-place", "--dry-run"],
        ["cache", "migrate", str(cache), "--out", str(tmp_path / "out2")],
        ["cache", "migrate", str(cache), "--in-place", "--on-conflict", "keep-source"],
    ):
        result = subprocess.run(
            [sys.executable, "-c", NO_UNPICKLING, "--db", str(db), *args],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert "calls 0" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert list(traps.iterdir()) == []
    assert raw_entries(cache / "together.sqlite")[conflicting] == pickle.dumps(
        _Trap(str(traps / "source-conflict"))
    )


# Class names are stored, never imported -----------------------------------------------------------

EVIL_MODULE = """
from pathlib import Path
Path({marker!r}).write_text("imported")

class Client:
    def __init__(self, *args, **kwargs):
        Path({marker!r} + ".instance").write_text("constructed")
"""

EVERYTHING = r"""
import json, sys
from pathlib import Path
from catalog import Catalog
from catalog import helm_compat

db, configs, out, cache = sys.argv[1:5]
with Catalog.open(db) as catalog:
    catalog.sync([configs])
    names = [d.name for d in catalog.deployments()]
    for name in names:
        catalog.deployment(name)
    for tokenizer in catalog.tokenizers():
        catalog.tokenizer(tokenizer.name)
    for model in catalog.models():
        catalog.model(model.name)
        catalog.explain(model.name)
    catalog.resolve("model=text")
    catalog.check()
    catalog.export(out)
    catalog.plan_cache_migration(cache)
    helm_compat.use_catalog(catalog)
    for name in names:
        helm_compat.get_model_deployment(name)
    helm_compat.get_all_models()
print(json.dumps(sorted(m for m in sys.modules if m.startswith("evil"))))
"""


@pytest.mark.slow  # fresh interpreters with the trap modules importable: nothing may import them
def test_class_names_are_stored_and_never_imported(tmp_path: Path) -> None:
    modules = tmp_path / "modules"
    (modules / "evilpackage").mkdir(parents=True)
    markers = tmp_path / "markers"
    markers.mkdir()
    for name, path in (
        ("evilclient", modules / "evilclient.py"),
        ("evilwindow", modules / "evilwindow.py"),
        ("eviltokenizer", modules / "eviltokenizer.py"),
        ("evilpackage", modules / "evilpackage" / "__init__.py"),
    ):
        path.write_text(EVIL_MODULE.format(marker=str(markers / name)))
    deployments = [
        {
            "name": "evilhost/one",
            "model_name": "acme/abc",
            "tokenizer_name": "acme/tok",
            "client_spec": {"class_name": "evilclient.Client", "args": {"x": 1}},
            "window_service_spec": {"class_name": "evilwindow.Client"},
        },
        {
            "name": "evilhost/two",
            "model_name": "acme/abc",
            "client_spec": {
                "class_name": "os.system",
                "args": {"command": f"touch {markers / 'os-system'}"},
            },
        },
        {
            "name": "evilhost/three",
            "model_name": "acme/abc",
            "client_spec": {"class_name": "evilpackage.sub.Client"},
        },
    ]
    tokenizers = [
        {"name": "acme/tok", "tokenizer_spec": {"class_name": "eviltokenizer.Client"}},
    ]
    configs = write_catalog(tmp_path / "configs", MODELS[:1], deployments, tokenizers)
    cache = tmp_path / "cache"
    write_shard(cache, "acme", {key(model="acme/abc", prompt="p"): response("p")})
    pythonpath = {"PYTHONPATH": f"{modules}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    db = tmp_path / "catalog.db"
    everything = subprocess.run(
        [
            sys.executable,
            "-c",
            EVERYTHING,
            str(db),
            str(configs),
            str(tmp_path / "out"),
            str(cache),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **pythonpath},
        timeout=300,
    )
    assert everything.returncode == 0, everything.stderr
    assert json.loads(everything.stdout) == []
    for args in (
        ["sync", configs, "--force"],
        ["show", "deployment", "evilhost/one"],
        ["show", "tokenizer", "acme/tok"],
        ["resolve", "model=acme/abc"],
        ["check"],
        ["export", tmp_path / "out2"],
        ["cache", "migrate", cache, "--out", tmp_path / "out3"],
    ):
        result = run_cli_process(*args, db=db, env=pythonpath)
        assert "Traceback" not in result.stderr, result.stderr
    assert list(markers.iterdir()) == []
    with Catalog.open(db) as catalog:
        assert catalog.deployment("evilhost/two").client_class == "os.system"
        assert catalog.tokenizer("acme/tok").class_name == "eviltokenizer.Client"


def test_yaml_tags_that_would_run_code_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    configs = write_catalog(tmp_path / "configs", MODELS[:1], DEPLOYMENTS[:1], TOKENIZERS)
    metadata = configs / "model_metadata.yaml"
    metadata.write_text(
        metadata.read_text()
        + textwrap.dedent(
            f"""\
            - name: evil/m
              display_name: !!python/object/apply:os.system ["touch {marker}"]
              description: x
              creator_organization_name: x
              access: open
            """
        )
    )
    db = tmp_path / "catalog.db"
    result = run_cli("sync", configs, db=db)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "model_metadata.yaml" in result.stderr
    assert not marker.exists()


def test_the_shared_snapshots_are_not_written_by_any_of_this(tmp_path: Path) -> None:
    """The real HELM files the tests read in place: never modified (read-only use)."""
    source = require_shared(HELM_CONFIGS / "v0.5.12")
    before = _files(source)
    _ok(run_cli("sync", source, db=tmp_path / "catalog.db"))
    assert _files(source) == before
