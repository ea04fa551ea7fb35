"""Full-text search: `Catalog.search` and `catalog search`, the index kept in step with every
sync, and an index that only the writer can change."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
import sqlite_utils
from conftest import FIXTURES, run_cli
from helm_yaml import deployment, empty_database, model, write_sources
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog import Catalog, CatalogError, ReadOnlyQueryError
from catalog.db.search import INDEXED_COLUMNS, SEARCH_TABLES, fts_query

MINI = FIXTURES / "read" / "mini"


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = empty_database(tmp_path_factory.mktemp("search") / "catalog.db")
    with Catalog.open(path) as catalog:
        catalog.sync([MINI])
    return path


def _names(catalog: Catalog, text: str, **options: object) -> list[tuple[str, str]]:
    return [(hit.kind, hit.name) for hit in catalog.search(text, **options)]  # type: ignore[arg-type]


def test_models_deployments_and_tokenizers_are_found_best_first(mini: Path) -> None:
    with Catalog.open(mini) as catalog:
        found = _names(catalog, "alpha")
        assert found[0] == ("model", "acme/alpha")
        assert {("deployment", "acme/alpha"), ("deployment", "hostco/alpha")} <= set(found)
        assert _names(catalog, "alpha", kinds=["deployment"])[0][0] == "deployment"
        assert ("tokenizer", "acme/tok") in _names(catalog, "tok")
        assert ("model", "zeta/gamma") in _names(catalog, "Zeta")  # the creator
        assert _names(catalog, "alp") == _names(catalog, "alpha")  # the last word is a prefix
        assert len(catalog.search("acme", limit=2)) == 2
        with pytest.raises(CatalogError, match="nothing to search for"):
            catalog.search("   ")
        with pytest.raises(CatalogError, match="unknown kind"):
            catalog.search("alpha", kinds=["tag"])


def test_the_index_follows_every_sync(mini: Path, tmp_path: Path) -> None:
    path = tmp_path / "catalog.db"
    path.write_bytes(mini.read_bytes())
    renamed = model("acme/alpha")
    renamed["display_name"] = "Zanzibar"
    layer = write_sources(
        tmp_path / "next", [renamed, model("acme/omega")], [deployment("acme/omega")]
    )
    with Catalog.open(path) as catalog:
        catalog.sync([layer])  # alpha changed, omega added, beta and gamma removed
        assert _names(catalog, "zanzibar") == [("model", "acme/alpha")]
        assert ("model", "acme/omega") in _names(catalog, "omega")
        assert _names(catalog, "gamma") == []
        assert ("deployment", "hostco/alpha") not in _names(catalog, "alpha")
        for table in INDEXED_COLUMNS:  # FTS5 raises if an index and its table disagree
            catalog.connection.execute(
                f"INSERT INTO {table}_fts({table}_fts, rank) VALUES ('integrity-check', 1)"
            )


def test_as_of_an_earlier_sync_search_finds_what_the_catalog_said_then(
    mini: Path, tmp_path: Path
) -> None:
    path = tmp_path / "catalog.db"
    path.write_bytes(mini.read_bytes())
    renamed = model("acme/alpha")
    renamed["display_name"] = "Zanzibar"
    layer = write_sources(tmp_path / "next", [renamed], [deployment("acme/alpha")])
    with Catalog.open(path) as catalog:
        (first,) = catalog.connection.execute("SELECT max(id) FROM syncs").fetchone()
        then = _names(catalog, "alpha")
        catalog.sync([layer])
        past = catalog.at(first)
        assert _names(past, "zanzibar") == []
        assert _names(past, "alpha") == then
        assert ("model", "zeta/gamma") in _names(past, "gamma")
        for table in INDEXED_COLUMNS:  # the as-of copy's index agrees with its tables
            past.connection.execute(
                f"INSERT INTO {table}_fts({table}_fts, rank) VALUES ('integrity-check', 1)"
            )
        assert _names(catalog, "zanzibar") == [("model", "acme/alpha")]


def test_any_text_is_only_words_to_look_for(mini: Path) -> None:
    with Catalog.open(mini) as catalog:

        @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(
            st.text(min_size=1, max_size=30).filter(lambda text: text.replace("\x00", "").split())
        )
        def search_anything(text: str) -> None:
            catalog.search(text)  # never an FTS5 syntax error, whatever the quotes and stars

        search_anything()
    assert fts_query('a"b c*') == '"a""b" "c*"*'


def test_sqlite_utils_and_datasette_see_the_index(mini: Path) -> None:
    database = sqlite_utils.Database(mini)
    try:
        for table, columns in INDEXED_COLUMNS.items():
            assert database[table].detect_fts() == f"{table}_fts"  # type: ignore[union-attr]
            fts_columns = [c.name for c in database[f"{table}_fts"].columns]
            assert fts_columns == [name for name, _ in columns]
        found = [row["name"] for row in database["models"].search("alpha")]  # type: ignore[union-attr]
        assert found == ["acme/alpha"]
    finally:
        database.close()
    connection = sqlite3.connect(mini)
    try:
        names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        assert names >= SEARCH_TABLES
    finally:
        connection.close()


def test_a_vacuumed_copy_searches_the_same(mini: Path, tmp_path: Path) -> None:
    """The index is keyed by rowid: a VACUUM (and the snapshot `catalog serve` makes with
    VACUUM INTO) must keep rowids, also after deletions left gaps."""
    path = tmp_path / "catalog.db"
    path.write_bytes(mini.read_bytes())
    layer = write_sources(tmp_path / "less", [model("zeta/gamma")], [])
    with Catalog.open(path) as catalog:
        catalog.sync([MINI, layer])
        catalog.sync([layer])
        expected = _names(catalog, "gamma") + _names(catalog, "zeta")
        catalog.connection.execute(f"VACUUM INTO '{tmp_path / 'copy.db'}'")
        catalog.connection.execute("VACUUM")
        assert _names(catalog, "gamma") + _names(catalog, "zeta") == expected
    with Catalog.open(tmp_path / "copy.db") as copy:
        assert _names(copy, "gamma") + _names(copy, "zeta") == expected


def test_read_only_queries_read_the_index_but_cannot_write_through_it(mini: Path) -> None:
    before = hashlib.sha256(mini.read_bytes()).hexdigest()
    with Catalog.open(mini) as catalog:
        found = catalog.sql(
            "SELECT m.name FROM models_fts JOIN models AS m ON m.rowid = models_fts.rowid "
            "WHERE models_fts MATCH ? ORDER BY rank",
            ["alpha"],
        )
        assert found[0] == {"name": "acme/alpha"}
        counted = run_cli("query", "SELECT count(*) AS n FROM models_fts_data", db=mini)
        assert counted.returncode == 0, counted.stderr
        for statement in (
            "INSERT INTO models_fts(models_fts) VALUES ('rebuild')",
            "INSERT INTO models_fts(models_fts) VALUES ('delete-all')",
            "INSERT INTO models_fts(models_fts, rank) VALUES ('merge', 16)",
            "DELETE FROM models_fts_data",
            "UPDATE models_fts_config SET v = 0",
            "CREATE VIRTUAL TABLE temp.v USING fts5vocab(main, models_fts, row)",
            "SELECT fts3_tokenizer('simple')",
        ):
            with pytest.raises(ReadOnlyQueryError):
                catalog.sql(statement)
    assert hashlib.sha256(mini.read_bytes()).hexdigest() == before


def test_catalog_search_on_the_command_line(mini: Path) -> None:
    table = run_cli("search", "alpha", db=mini)
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[2].split()[:2] == ["model", "acme/alpha"]
    lines = run_cli("search", "alpha", "--kind", "deployment", "--nl", db=mini).stdout.splitlines()
    assert {json.loads(line)["kind"] for line in lines} == {"deployment"}
    tsv = run_cli("search", "acme", "--tsv", "--limit", "1", db=mini).stdout.splitlines()
    assert tsv[0] == "kind\tname\tdetail\trank" and len(tsv) == 2
    empty = run_cli("search", " ", db=mini)
    assert empty.returncode == 1 and "nothing to search for" in empty.stderr
