"""`Catalog.sql` / `catalog query`: reading works, and no spelling of a write gets through."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlite_utils
from conftest import FIXTURES, dump, run_cli
from helm_yaml import empty_database
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from catalog import Catalog
from catalog.db.location import DatabaseLocation
from catalog.db.readonly import run_readonly_query
from catalog.errors import DatabaseError, ReadOnlyQueryError

MINI = FIXTURES / "read" / "mini"
VIEWS = {
    "deployment_details",
    "model_tag_list",
    "model_default_deployments",
    "cache_shards",
    "changes",
    "default_changes",
    "cached_responses",
}


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synced catalog file with no connection left open, so its bytes can be compared."""
    path = empty_database(tmp_path_factory.mktemp("query") / "catalog.db")
    with Catalog.open(path) as catalog:
        catalog.sync([MINI])
    return path


def _fingerprint(path: Path) -> tuple[str, str]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), dump(path)


@pytest.fixture
def untouched(db: Path) -> Iterator[Path]:
    """The catalog, asserted byte-for-byte and dump-for-dump unchanged after the test."""
    before = _fingerprint(db)
    yield db
    assert _fingerprint(db) == before


def _sql(path: Path, query: str, params: object = None) -> list[dict[str, object]]:
    return run_readonly_query(DatabaseLocation(path), query, params)  # type: ignore[arg-type]


# Reading ----------------------------------------------------------------------------------------


def test_select_with_positional_and_named_parameters(untouched: Path) -> None:
    rows = _sql(untouched, "SELECT name, access FROM models WHERE creator_prefix = ?", ["acme"])
    assert rows == [
        {"name": "acme/alpha", "access": "open"},
        {"name": "acme/beta", "access": "limited"},
    ]
    named = _sql(
        untouched,
        "SELECT count(*) AS n FROM deployments WHERE model_name = :m",
        {"m": "acme/alpha"},
    )
    assert named == [{"n": 2}]


def test_views_cte_and_reporting_pragmas(untouched: Path) -> None:
    details = _sql(
        untouched,
        "SELECT deployment, host_organization, tokenizer FROM deployment_details "
        "WHERE model = ? ORDER BY position",
        ["acme/alpha"],
    )
    assert [d["deployment"] for d in details] == ["acme/alpha", "hostco/alpha"]
    recursive = _sql(
        untouched,
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 3) "
        "SELECT x FROM n",
    )
    assert recursive == [{"x": 1}, {"x": 2}, {"x": 3}]
    columns = _sql(untouched, "PRAGMA table_info(models)")
    assert "creator_prefix" in [c["name"] for c in columns]
    assert _sql(untouched, "PRAGMA user_version") == [{"user_version": 0}]
    assert _sql(
        untouched,
        "SELECT json_extract(args, '$.padding_side') AS p FROM tokenizers WHERE name = ?",
        ["acme/tok"],
    ) == [{"p": "left"}]


def test_through_the_catalog_api(untouched: Path) -> None:
    with Catalog.open(untouched) as catalog:
        assert catalog.sql("SELECT count(*) AS n FROM tags") == [{"n": 3}]


def test_a_trailing_semicolon_and_comment_are_one_statement(untouched: Path) -> None:
    assert _sql(untouched, "SELECT 1 AS one; -- done\n") == [{"one": 1}]
    assert _sql(untouched, "SELECT ';' AS s /* ; */;") == [{"s": ";"}]


# Refusing ---------------------------------------------------------------------------------------

WRITES = [
    "INSERT INTO tags (name) VALUES ('X')",
    "UPDATE models SET access = 'open'",
    "DELETE FROM models",
    "DROP TABLE models",
    "DROP VIEW deployment_details",
    "CREATE TABLE t (x)",
    "CREATE TEMP TABLE t (x)",
    "CREATE INDEX ix_x ON models (display_name)",
    "ALTER TABLE models ADD COLUMN x",
    "ATTACH DATABASE '{tmp}/attached.db' AS x",
    "DETACH DATABASE main",
    "PRAGMA foreign_keys=OFF",
    "PRAGMA user_version=5",
    "PRAGMA journal_mode=DELETE",
    "PRAGMA writable_schema=ON",
    "VACUUM",
    "VACUUM INTO '{tmp}/copy.db'",
    "REINDEX",
    "ANALYZE",
    "BEGIN",
    "SAVEPOINT s",
    "SELECT load_extension('x')",
    "SELECT 1; DROP TABLE models",
    "SELECT 1;DELETE FROM models;",
    "WITH x AS (SELECT 1) DELETE FROM models",
    "WITH x AS (SELECT 1) INSERT INTO tags SELECT 'Y' FROM x",
    "REPLACE INTO tags (name) VALUES ('Z')",
    "INSERT INTO tags (name) VALUES ('a') RETURNING name",
    "/* hidden */ DELETE FROM models",
    "SELECT * FROM pragma_table_info('models')",
    "",
    "  -- only a comment",
]


@pytest.mark.parametrize("statement", WRITES)
def test_writes_are_refused_and_nothing_changes(
    untouched: Path, tmp_path: Path, statement: str
) -> None:
    query = statement.format(tmp=tmp_path)
    with pytest.raises(ReadOnlyQueryError) as raised:
        _sql(untouched, query)
    message = str(raised.value)
    assert "refused" in message or "empty" in message
    assert "only reading is allowed" in message
    assert list(tmp_path.iterdir()) == []  # VACUUM INTO / ATTACH created no file


def test_refusal_says_what_the_query_would_do(untouched: Path, tmp_path: Path) -> None:
    cases = {
        "DELETE FROM models": "delete from table models",
        "PRAGMA foreign_keys=OFF": "set PRAGMA foreign_keys = OFF",
        f"VACUUM INTO '{tmp_path}/y.db'": "attach the database file",
        "SELECT load_extension('x')": "call load_extension()",
        "SELECT 1; DROP TABLE models": "more than one statement",
        "DROP TABLE models": "drop a table, index, view or trigger",
    }
    for query, expected in cases.items():
        with pytest.raises(
            ReadOnlyQueryError, match=expected.replace("(", r"\(").replace(")", r"\)")
        ):
            _sql(untouched, query)


def test_a_broken_query_is_a_database_error_not_a_refusal(untouched: Path) -> None:
    with pytest.raises(DatabaseError, match="syntax error"):
        _sql(untouched, "SELEC 1")
    with pytest.raises(DatabaseError, match="no such table"):
        _sql(untouched, "SELECT * FROM nothing_here")
    with pytest.raises(DatabaseError, match="bindings"):
        _sql(untouched, "SELECT ?", [])


def test_a_missing_database_is_not_created(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="no such catalog database"):
        _sql(tmp_path / "absent.db", "SELECT 1")
    assert not (tmp_path / "absent.db").exists()


HOSTILE = ["x'); DROP TABLE models; --", "'; DELETE FROM tags; --", 'a" OR 1=1 --', "%"]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_are_only_values(untouched: Path, value: str) -> None:
    assert _sql(untouched, "SELECT ? AS v", [value]) == [{"v": value}]
    assert _sql(untouched, "SELECT name FROM models WHERE name = ?", [value]) == []


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=st.text(max_size=30))
def test_any_parameter_round_trips(db: Path, value: str) -> None:
    assert _sql(db, "SELECT ? AS v", [value]) == [{"v": value}]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    table=st.sampled_from(["models", "tags", "deployments", "pins", "settings"]),
    verb=st.sampled_from(["DELETE FROM {t}", "UPDATE {t} SET rowid = rowid", "DROP TABLE {t}"]),
    prefix=st.sampled_from(["", "  ", "/* c */ ", "-- c\n", "WITH q AS (SELECT 1) "]),
    suffix=st.sampled_from(["", ";", "; ", ";\n-- end"]),
)
def test_generated_writes_are_refused(
    db: Path, table: str, verb: str, prefix: str, suffix: str
) -> None:
    assume(not (prefix.startswith("WITH") and verb.startswith("DROP")))  # not SQL at all
    before = dump(db)
    query = prefix + verb.format(t=table) + suffix
    with pytest.raises(ReadOnlyQueryError):
        _sql(db, query)
    assert dump(db) == before


# The file is an ordinary SQLite database --------------------------------------------------------


def test_opens_in_the_stock_sqlite3_module(untouched: Path) -> None:
    connection = sqlite3.connect(f"{untouched.as_uri()}?mode=ro", uri=True)
    try:
        names = {
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'view'")
        }
        assert names == VIEWS
        (count,) = connection.execute("SELECT count(*) FROM deployment_details").fetchone()
        assert count == 5
    finally:
        connection.close()


def test_opens_in_sqlite_utils(untouched: Path) -> None:
    database = sqlite_utils.Database(untouched)
    try:
        tables = set(database.table_names())
        assert {"models", "deployments", "tokenizers", "tags", "model_tags", "pins"} <= tables
        assert set(database.view_names()) == VIEWS
        rows = list(
            database.query(
                "SELECT deployment, host_organization FROM deployment_details WHERE model = ?",
                ["acme/beta"],
            )
        )
        assert rows == [
            {"deployment": "hostco/beta-old", "host_organization": "hostco"},
            {"deployment": "acme/beta", "host_organization": "acme"},
        ]
    finally:
        database.close()


# CLI ---------------------------------------------------------------------------------------------


def test_cli_query_json_with_params(untouched: Path) -> None:
    result = run_cli(
        "query",
        "SELECT name FROM deployments WHERE model_name = ? AND host_organization = ?",
        "--param",
        "acme/alpha",
        "--param",
        "hostco",
        "--json",
        db=untouched,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [{"name": "hostco/alpha"}]


def test_cli_query_csv_and_table(untouched: Path) -> None:
    csv_result = run_cli(
        "query", "SELECT name, access FROM models ORDER BY position LIMIT 2", "--csv", db=untouched
    )
    assert csv_result.stdout.splitlines() == ["name,access", "acme/alpha,open", "acme/beta,limited"]
    table = run_cli(
        "query", "SELECT name FROM models WHERE name = ?", "--param", "nope", db=untouched
    )
    assert table.returncode == 0
    assert table.stdout.strip() == "(no rows)"


@pytest.mark.parametrize(
    "statement",
    ["DROP TABLE models", "PRAGMA foreign_keys=OFF", "SELECT 1; DROP TABLE models", "VACUUM"],
)
def test_cli_query_refuses_writes(untouched: Path, statement: str) -> None:
    result = run_cli("query", statement, db=untouched)
    assert result.returncode == 1
    assert result.stderr.startswith("error: refused")
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_cli_query_hostile_param(untouched: Path) -> None:
    value = "x'); DROP TABLE models; --"
    result = run_cli("query", "SELECT ? AS v", "--param", value, "--json", db=untouched)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [{"v": value}]
