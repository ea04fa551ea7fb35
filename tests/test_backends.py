"""Every command on both backends, SQLite and a real PostgreSQL server: one parametrized
fixture, the same tests. Then what only a shared server has: migrations on PostgreSQL, its
read-only guard and roles, `catalog copy`, bad URLs and a connection lost mid-sync."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cache_helpers import key, response, write_shard
from conftest import FIXTURES, HELM_CONFIGS, require_shared, run_cli
from helm_yaml import deployment, empty_database, model, write_sources
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pg_server import (
    PASSWORD,
    PASSWORD_ROLE,
    PostgresServer,
    drop_database,
    free_port,
    new_database,
)

from catalog import Catalog, NotACatalogError, SchemaTooNewError
from catalog.db import migrations
from catalog.db.copying import COPIED_TABLES, table_digest
from catalog.db.location import DatabaseLocation
from catalog.db.metadata import build_metadata
from catalog.db.revisions import HEAD_REVISION, KNOWN_REVISIONS
from catalog.db.rows import encode_value
from catalog.db.schema import ColumnType

MINI = FIXTURES / "read" / "mini"

# A PostgreSQL server of its own (started once per session): slow, as other servers are.
pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty catalog at the newest revision, on each backend in turn: its --db."""
    if request.param == "sqlite":
        yield str(empty_database(tmp_path / "catalog.db"))
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = new_database(server, with_catalog=True)
    try:
        yield url
    finally:
        drop_database(server, url)


def _ok(*args: Any, db: str) -> subprocess.CompletedProcess[str]:
    result = run_cli(*args, db=db)  # type: ignore[arg-type]
    assert result.returncode == 0, (args, result.stderr)
    return result


def test_every_command_works_on_each_backend(backend_db: str, tmp_path: Path) -> None:
    layer = write_sources(tmp_path / "layer", [model("acme/gamma")],
                          [deployment("hostco/gamma", "acme/gamma")])  # fmt: skip
    db = backend_db
    assert "added" in _ok("sync", MINI, db=db).stdout
    assert "up to date" in _ok("sync", MINI, db=db).stdout
    names = [m["name"] for m in json.loads(_ok("list", "models", "--json", db=db).stdout)]
    assert names[:2] == ["acme/alpha", "acme/beta"]
    assert "hostco/alpha" in _ok("list", "deployments", "--host", "HostCo", db=db).stdout
    _ok("list", "tokenizers", "--csv", db=db)
    _ok("list", "tags", db=db)
    assert "acme/alpha" in _ok("show", "model", "acme/alpha", db=db).stdout
    assert (
        _ok("search", "alpha", "--tsv", db=db)
        .stdout.splitlines()[1]
        .startswith("model\tacme/alpha\t")
    )
    _ok("show", "deployment", "hostco/alpha", "--json", db=db)
    _ok("show", "tokenizer", "acme/tok", db=db)
    assert run_cli("check", "--json", db=db).returncode == 0  # type: ignore[arg-type]
    _ok("export", tmp_path / "exported", db=db)
    query = "SELECT count(*) AS n FROM deployment_details WHERE model = ?"
    rows = json.loads(_ok("query", query, "--param", "acme/alpha", "--json", db=db).stdout)
    assert rows == [{"n": 2}]
    assert "CHOSEN" in _ok("explain", "acme/alpha", db=db).stdout
    resolved = json.loads(_ok("resolve", "mmlu:model=text", "--json", db=db).stdout)
    assert {r["model"] for r in resolved} >= {"acme/alpha"}
    conf = tmp_path / "entries.conf"
    conf.write_text('entries: [{description: "mmlu:model=acme/alpha", priority: 1}]\n')
    _ok("resolve", "--file", conf, db=db)
    _ok("pin", "acme/alpha", "hostco/alpha", db=db)
    assert json.loads(_ok("pins", "--json", db=db).stdout)[0]["deployment_name"] == "hostco/alpha"
    _ok("settings", "set", "policy", "last", db=db)
    assert _ok("settings", "get", "policy", db=db).stdout.strip() == "last"
    _ok("settings", "list", db=db)
    _ok("unpin", "acme/alpha", db=db)
    _ok("sync", MINI, layer, db=db)
    changed = run_cli("diff", "@1", "@2", db=db)  # type: ignore[arg-type]
    assert changed.returncode == 1 and "added models: acme/gamma" in changed.stdout
    assert "acme/gamma" not in _ok("list", "models", "--as-of", "1", db=db).stdout
    _ok("resolve", "model=acme/alpha", "--as-of", "1", db=db)
    assert "pin" in _ok("history", "acme/alpha", db=db).stdout
    assert HEAD_REVISION in _ok("db", "current", db=db).stdout
    _ok("db", "history", db=db)
    cache = tmp_path / "cache"
    write_shard(cache, "acme", {key(model="acme/alpha", prompt="hi"): response("hello")})
    assert "hostco" in _ok("cache", "plan", cache, db=db).stdout


@pytest.fixture(scope="module")
def both_v0512(
    postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """v0.5.12 synced into a SQLite file and into a PostgreSQL database, with a pin."""
    source = require_shared(HELM_CONFIGS / "v0.5.12")
    sqlite = str(empty_database(tmp_path_factory.mktemp("both") / "catalog.db"))
    postgres = new_database(postgres_server, with_catalog=True)
    for db in (sqlite, postgres):
        with Catalog.open(db) as catalog:
            catalog.sync([source])
            catalog.pin("meta/llama-3.1-8b-instruct", "huggingface/llama-3.1-8b-instruct")
    yield sqlite, postgres
    drop_database(postgres_server, postgres)


@pytest.mark.parametrize(
    "args",
    [
        ("list", "models", "--json"),
        ("list", "deployments", "--json"),
        ("list", "tokenizers", "--json"),
        ("list", "tags", "--json"),
        ("resolve", "model=text", "--json"),
        ("explain", "meta/llama-3.1-8b-instruct", "--json"),
        ("query", "SELECT * FROM model_default_deployments", "--json"),
        ("query", "SELECT * FROM model_tag_list", "--json"),
        ("query", "SELECT * FROM deployment_details", "--json"),
        ("query", "SELECT * FROM cache_shards", "--json"),
    ],
)
def test_both_backends_give_the_same_answers_in_the_same_order(
    both_v0512: tuple[str, str], args: tuple[str, ...]
) -> None:
    sqlite, postgres = (json.loads(_ok(*args, db=db).stdout) for db in both_v0512)
    assert _normalised(postgres) == _normalised(sqlite)


# Words as people search: names, parts of names, words of descriptions in other forms than
# written (stemmed on both), and text that is all punctuation.
SEARCHES = ["llama", "llama-3.1 instr", "gpt 4", "anthropic claude", "tokenizer", "huggingface",
            "a", "models", "instruction tuned", "openai/gpt-4o", "7b", "running", "code models",
            "state-of-the-art", "q\"uote", "'&|!:*", "zzzz-no-such-word"]  # fmt: skip


def test_search_finds_the_same_entries_on_both_backends(both_v0512: tuple[str, str]) -> None:
    with Catalog.open(both_v0512[0]) as sqlite, Catalog.open(both_v0512[1]) as postgres:
        for text in SEARCHES:
            found = [
                {(hit.kind, hit.name) for hit in catalog.search(text, limit=10_000)}
                for catalog in (sqlite, postgres)
            ]
            assert found[0] == found[1], text
        assert postgres.search("llama-3.1 instruct", limit=1)[0].name.startswith("meta/llama-3.1")
        deployments = postgres.search("llama", kinds=["deployment"])
        assert deployments and {hit.kind for hit in deployments} == {"deployment"}


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=st.text(min_size=1, max_size=30).filter(lambda text: text.replace("\x00", "").split()))
def test_any_text_is_only_words_to_look_for_on_postgresql(
    both_v0512: tuple[str, str], text: str
) -> None:
    with Catalog.open(both_v0512[1]) as postgres:
        postgres.search(text)  # never a tsquery syntax error, whatever the quotes and operators


def _normalised(value: Any) -> Any:
    """Booleans as SQLite returns them (0/1), and the source paths (equal on both sides)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, list):
        return [_normalised(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalised(v) for k, v in value.items() if k != "pinned_at"}
    return value


# Migrations on PostgreSQL -------------------------------------------------------------------


def test_postgresql_migrates_to_head_without_drift_and_back_to_base(postgres_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine

    location = DatabaseLocation.parse(postgres_url)
    migrations.upgrade(location)
    assert migrations.stamped_revision(location) == HEAD_REVISION
    engine = create_engine(location.url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, build_metadata()) == []
    finally:
        engine.dispose()
    migrations.downgrade(location, "base")
    assert migrations.stamped_revision(location) is None
    migrations.upgrade(location)
    assert migrations.stamped_revision(location) == HEAD_REVISION


def _columns(connection: psycopg.Connection[Any], table: str) -> list[str]:
    return [
        row[0]
        for row in connection.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
            "ORDER BY ordinal_position",
            (table,),
        )
    ]


@pytest.mark.parametrize("revision", KNOWN_REVISIONS[:-1])
def test_a_postgresql_catalog_filled_at_an_older_revision_upgrades_row_for_row(
    revision: str, postgres_server: PostgresServer, v050_template: Path, tmp_path: Path
) -> None:
    """Rows of a real catalog, as an older revision held them, survive the upgrade to head."""
    source = tmp_path / "source.db"
    shutil.copyfile(v050_template, source)
    with Catalog.open(source) as catalog:
        catalog.pin("meta/llama-2-7b", "together/llama-2-7b")
        catalog.set_setting("policy", "last")
    url = new_database(postgres_server, with_catalog=False)
    try:
        migrations.upgrade(DatabaseLocation.parse(url), revision)
        old_columns: dict[str, list[str]] = {}
        with psycopg.connect(url, autocommit=True) as target, Catalog.open(source) as catalog:
            old_columns = {
                t.name: _columns(target, t.name) for t in COPIED_TABLES if _columns(target, t.name)
            }
            with target.transaction():
                for table in reversed(old_columns):
                    target.execute(f"DELETE FROM {table}")
                for table, columns in old_columns.items():
                    kinds = {c.name: c.type for t in COPIED_TABLES if t.name == table
                             for c in t.columns}  # fmt: skip
                    found = catalog.connection.execute(f"SELECT {', '.join(columns)} FROM {table}")
                    rows = [
                        tuple(encode_value(kinds[c], _decoded(kinds[c], v))
                              for c, v in zip(columns, row, strict=True))
                        for row in found
                    ]  # fmt: skip
                    marks = ", ".join("%s" for _ in columns)
                    with target.cursor() as cursor:
                        cursor.executemany(
                            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows
                        )
            before = {t: _table_rows(target, t, c) for t, c in old_columns.items()}
        assert run_cli("db", "upgrade", db=url).returncode == 0  # type: ignore[arg-type]
        with psycopg.connect(url, autocommit=True) as target:
            for table, columns in old_columns.items():
                assert _table_rows(target, table, columns) == before[table], table
        with Catalog.open(url) as upgraded:
            if "pins" in old_columns:  # the revision held pins and settings
                assert upgraded.default_deployment("meta/llama-2-7b") == "together/llama-2-7b"
                assert upgraded.setting("policy") == "last"
            assert len(upgraded.model_names()) == 227
    finally:
        drop_database(postgres_server, url)


def _table_rows(connection: psycopg.Connection[Any], table: str, columns: list[str]) -> list[str]:
    return sorted(map(repr, connection.execute(f"SELECT {', '.join(columns)} FROM {table}")))


def _decoded(kind: ColumnType, value: Any) -> Any:
    """A value as SQLite stores it, as Python holds it (what encode_value takes)."""
    if value is None:
        return None
    if kind is ColumnType.BOOLEAN:
        return bool(value)
    if kind is ColumnType.JSON:
        return json.loads(value)
    return value


# Read-only queries and roles on PostgreSQL -----------------------------------------------


@pytest.fixture
def synced_postgres(postgres_server: PostgresServer) -> Iterator[str]:
    url = new_database(postgres_server, with_catalog=True)
    try:
        with Catalog.open(url) as catalog:
            catalog.sync([MINI])
        yield url
    finally:
        drop_database(postgres_server, url)


def _contents(url: str) -> list[Any]:
    with Catalog.open(url) as catalog:
        return [table_digest(catalog.connection, table) for table in COPIED_TABLES]


@pytest.mark.parametrize(
    "query",
    [
        "COPY (SELECT 1) TO PROGRAM 'touch /tmp/catalog-was-here'",
        "SELECT pg_read_file('/etc/hostname')",
        "SELECT \"pg_read_file\"('postgresql.conf')",
        "SET ROLE postgres",
        "SELECT dblink_exec('dbname=x', 'DELETE FROM models')",
        "SELECT 1; DELETE FROM models",
        "DELETE FROM models",
        "WITH gone AS (DELETE FROM models RETURNING *) SELECT * FROM gone",
        "SELECT write_something()",
        "SELECT lo_from_bytea(0, 'x')",
        "SELECT query_to_xml('DELETE FROM models', true, true, '')",
        "SELECT set_config('default_transaction_read_only', 'off', false)",
    ],
)
def test_no_query_writes_to_a_postgresql_catalog(
    synced_postgres: str, postgres_server: PostgresServer, query: str
) -> None:
    with psycopg.connect(synced_postgres, autocommit=True) as admin:
        admin.execute(
            "CREATE OR REPLACE FUNCTION write_something() RETURNS int VOLATILE LANGUAGE sql AS "
            "$$ INSERT INTO settings (key, value) VALUES ('policy', 'last') RETURNING 1 $$"
        )
    before = _contents(synced_postgres)
    result = run_cli("query", query, db=synced_postgres)  # type: ignore[arg-type]
    assert result.returncode == 1 and result.stderr.startswith("error: "), result.stderr
    assert "refused" in result.stderr
    assert _contents(synced_postgres) == before
    assert not Path("/tmp/catalog-was-here").exists()


def test_a_reader_role_reads_but_cannot_sync(synced_postgres: str) -> None:
    database = synced_postgres.rsplit("/", 1)[1]
    with psycopg.connect(synced_postgres, autocommit=True) as admin:
        admin.execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'catalog_reader') "
            "THEN CREATE ROLE catalog_reader LOGIN; END IF; END $$"
        )
        admin.execute(f"GRANT CONNECT ON DATABASE {database} TO catalog_reader")
        admin.execute("GRANT USAGE ON SCHEMA public TO catalog_reader")
        admin.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO catalog_reader")
    reader = synced_postgres.replace("postgres@", "catalog_reader@", 1)
    before = _contents(synced_postgres)
    assert "acme/alpha" in _ok("list", "models", db=reader).stdout
    assert json.loads(_ok("query", "SELECT count(*) AS n FROM models", "--json", db=reader)
                      .stdout) == [{"n": 4}]  # fmt: skip
    refused = run_cli("sync", MINI, "--force", db=reader)  # type: ignore[arg-type]
    assert refused.returncode == 1 and "permission denied" in refused.stderr
    refused = run_cli("pin", "acme/alpha", "hostco/alpha", db=reader)  # type: ignore[arg-type]
    assert refused.returncode == 1 and "permission denied" in refused.stderr
    assert _contents(synced_postgres) == before


# copy -------------------------------------------------------------------------------------


def test_copy_moves_a_whole_catalog_to_postgresql_and_back(
    postgres_url: str, v050_template: Path, tmp_path: Path
) -> None:
    personal = tmp_path / "personal.db"
    shutil.copyfile(v050_template, personal)
    with Catalog.open(personal) as catalog:
        catalog.pin("meta/llama-2-7b", "together/llama-2-7b")
        catalog.set_setting("policy", "last")
        original = [table_digest(catalog.connection, t) for t in COPIED_TABLES]
    result = run_cli("copy", personal, postgres_url, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["verified"] is True
    home = tmp_path / "home.db"
    assert run_cli("copy", postgres_url, home).returncode == 0
    with Catalog.open(home) as catalog:
        assert [table_digest(catalog.connection, t) for t in COPIED_TABLES] == original
        assert catalog.default_deployment("meta/llama-2-7b") == "together/llama-2-7b"
        catalog.sync([MINI])  # ids continue after the copied ones
    again = run_cli("copy", personal, postgres_url)
    assert again.returncode == 1 and "already holds a catalog" in again.stderr
    assert run_cli("copy", personal, postgres_url, "--force").returncode == 0
    with Catalog.open(postgres_url) as catalog:
        catalog.pin("meta/llama-2-7b", "together/llama-2-7b")  # sequences continue too


# Bad input ---------------------------------------------------------------------------------


def test_bad_postgresql_urls_and_servers_are_one_clear_error(
    postgres_server: PostgresServer, synced_postgres: str
) -> None:
    before = _contents(synced_postgres)
    port = synced_postgres.rsplit(":", 1)[1].split("/")[0]
    database = synced_postgres.rsplit("/", 1)[1]
    closed = free_port()
    cases = {
        "postgresql://localhost": "names no database",
        f"postgresql://postgres@127.0.0.1:{closed}/{database}": "cannot connect to the server",
        f"postgresql://{PASSWORD_ROLE}:wrong@127.0.0.1:{port}/{database}": "refused the login",
        f"postgresql://nobody@127.0.0.1:{port}/{database}": "role",
        f"postgresql://postgres@127.0.0.1:{port}/no_such_database": "does not exist",
    }
    for url, message in cases.items():
        result = run_cli("list", "models", db=url)  # type: ignore[arg-type]
        assert result.returncode == 1, url
        assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr
        assert "hint: " in result.stderr and "Traceback" not in result.stderr
        assert "wrong" not in result.stderr  # the password is never shown
    right = f"postgresql://{PASSWORD_ROLE}:{PASSWORD}@127.0.0.1:{port}/{database}"
    assert run_cli("db", "current", db=right).returncode in (0, 1)  # type: ignore[arg-type]
    assert _contents(synced_postgres) == before


def test_a_newer_or_foreign_postgresql_database_is_refused_and_left_alone(
    postgres_server: PostgresServer, synced_postgres: str, postgres_url: str
) -> None:
    with psycopg.connect(synced_postgres, autocommit=True) as admin:
        admin.execute("UPDATE alembic_version SET version_num = '9999_future'")
    with pytest.raises(SchemaTooNewError, match="9999_future"):
        Catalog.open(synced_postgres)
    result = run_cli("sync", MINI, db=synced_postgres)  # type: ignore[arg-type]
    assert result.returncode == 1 and "newer model-catalog" in result.stderr
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("CREATE TABLE orders (id int)")
    with pytest.raises(NotACatalogError):
        Catalog.open(postgres_url)
    assert run_cli("sync", MINI, db=postgres_url).returncode == 1  # type: ignore[arg-type]
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        listed = admin.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
        tables = [row[0] for row in listed]
    assert tables == ["orders"]


def test_a_connection_lost_in_the_middle_of_a_sync_leaves_the_catalog_as_it_was(
    postgres_server: PostgresServer, synced_postgres: str
) -> None:
    source = require_shared(HELM_CONFIGS / "v0.5.12")
    before = _contents(synced_postgres)
    failure: list[BaseException] = []

    def sync() -> None:
        try:
            with Catalog.open(synced_postgres) as catalog:
                catalog.sync([source])
        except BaseException as error:
            failure.append(error)

    thread = threading.Thread(target=sync)
    thread.start()
    with psycopg.connect(synced_postgres, autocommit=True) as admin:
        deadline = time.monotonic() + 30
        victims: list[Any] = []
        while not victims and time.monotonic() < deadline and thread.is_alive():
            victims = admin.execute(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            ).fetchall()
        assert victims, "the sync never took its write lock"
        admin.execute("SELECT pg_terminate_backend(%s)", (victims[0][0],))
    thread.join(60)
    assert failure and "connection to the server was lost" in str(failure[0])
    assert _contents(synced_postgres) == before
    assert run_cli("sync", source, db=synced_postgres).returncode == 0  # type: ignore[arg-type]


# Two machines at once ----------------------------------------------------------------------

SYNC_IN_A_PROCESS = """
import sys
from catalog import Catalog
with Catalog.open(sys.argv[1]) as catalog:
    report = catalog.sync([sys.argv[2]])
print(report.skipped_unchanged)
"""


@pytest.mark.slow
def test_two_syncs_from_two_processes_queue_and_a_pin_meanwhile_is_kept_or_reported(
    postgres_server: PostgresServer, synced_postgres: str
) -> None:
    old = require_shared(HELM_CONFIGS / "v0.5.0")
    new = require_shared(HELM_CONFIGS / "v0.5.12")
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", SYNC_IN_A_PROCESS, synced_postgres, str(source)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for source in (old, new)
    ]
    with Catalog.open(synced_postgres) as catalog:
        pinned = None
        for _ in range(50):
            try:
                catalog.pin("meta/llama-2-7b", "together/llama-2-7b")
                pinned = True
                break
            except Exception:
                time.sleep(0.05)
        results = [p.communicate(timeout=120) for p in processes]
        assert [p.returncode for p in processes] == [0, 0], results
        final = {m for m in catalog.model_names()}
        assert len(final) in (227, 598)  # one whole snapshot, never a mix
        dropped = [e for e in catalog.sql("SELECT * FROM changes WHERE table_name = 'pins'")]
        if pinned and "meta/llama-2-7b" in final:
            kept = [p.model_name for p in catalog.pins()]
            assert kept == ["meta/llama-2-7b"] or any(c["change"] == "removed" for c in dropped)


READER = """
import sys
from catalog import Catalog
sizes = set()
with Catalog.open(sys.argv[1]) as catalog:
    for _ in range(int(sys.argv[2])):
        with catalog.connection.read():
            models = catalog.connection.execute("SELECT count(*) FROM models").fetchone()[0]
            deployments = catalog.connection.execute(
                "SELECT count(*) FROM deployments").fetchone()[0]
        sizes.add((models, deployments))
        catalog.resolve("model=text")
print(sorted(sizes))
"""


@pytest.mark.slow
def test_readers_of_a_postgresql_catalog_see_one_whole_snapshot_while_it_is_synced(
    postgres_server: PostgresServer, synced_postgres: str
) -> None:
    old = require_shared(HELM_CONFIGS / "v0.5.0")
    new = require_shared(HELM_CONFIGS / "v0.5.12")
    with Catalog.open(synced_postgres) as catalog:
        catalog.sync([old])
    readers = [
        subprocess.Popen([sys.executable, "-c", READER, synced_postgres, "40"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]  # fmt: skip
    with Catalog.open(synced_postgres) as catalog:
        for source in (new, old, new):
            catalog.sync([source])
    for reader in readers:
        out, err = reader.communicate(timeout=120)
        assert reader.returncode == 0, err
        seen = eval(out)
        assert set(seen) <= {(227, 210), (598, 567)}, seen
