"""`catalog serve` without a browser: the metadata, the pages, and serving safely.

Datasette answers in this process (`datasette.client`, no socket), so each test costs
milliseconds. The real server and a real browser are in test_web_browser.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES, dump, run_cli
from helm_yaml import deployment, empty_database, model, write_sources

from catalog import Catalog, SchemaOutdatedError
from catalog.db import migrations
from catalog.db.location import DatabaseLocation
from catalog.db.schema import TABLES
from catalog.db.views import VIEWS_BY_NAME
from catalog.web import server, site

if not os.environ.get("CI"):  # under CI a missing extra fails the tests instead
    pytest.importorskip("datasette", reason="the web extra is not installed")

MINI = FIXTURES / "read" / "mini"


@pytest.fixture(scope="module")
def mini_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A closed catalog synced from the mini fixture (no -wal left beside it)."""
    path = empty_database(tmp_path_factory.mktemp("web") / "catalog.db")
    with Catalog.open(path) as catalog:
        catalog.sync([MINI])
    return path


@pytest.fixture
def mini_db(mini_template: Path, tmp_path: Path) -> Path:
    """A copy of the mini catalog for a test that writes or serves it its own way."""
    path = tmp_path / "catalog.db"
    shutil.copyfile(mini_template, path)
    return path


@pytest.fixture(scope="module")
def mini_site(mini_template: Path) -> Iterator[Site]:
    """One site for the tests that only read (the catalog stays byte-identical: checked)."""
    before = _digest(mini_template), dump(mini_template)
    served = Site(DatabaseLocation.parse(mini_template))
    yield served
    served.close()
    assert (_digest(mini_template), dump(mini_template)) == before


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Site:
    """A Datasette serving one catalog, answered in-process."""

    def __init__(self, location: DatabaseLocation, *, snapshot: bool = False) -> None:
        self._files = server.served_file(location, snapshot=snapshot)
        self.served = self._files.__enter__()
        self.datasette = server.build_datasette(self.served)
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self.datasette.invoke_startup())

    def get(self, path: str) -> Any:
        return self._loop.run_until_complete(self.datasette.client.get(path))

    def close(self) -> None:
        for database in self.datasette.databases.values():
            database.close()
        self._loop.close()
        self._files.__exit__(None, None, None)


@pytest.fixture
def site_of() -> Iterator[Any]:
    opened: list[Site] = []

    def open_site(path: Path, *, snapshot: bool = False) -> Site:
        opened.append(Site(DatabaseLocation.parse(path), snapshot=snapshot))
        return opened[-1]

    yield open_site
    for each in opened:
        each.close()


# The metadata: one source for every description ------------------------------------------------


def test_every_table_view_and_column_is_described_from_the_schema(mini_template: Path) -> None:
    tables = site.metadata()["databases"]["catalog"]["tables"]
    for table in TABLES:
        assert tables[table.name]["description"] == table.doc
        assert tables[table.name]["columns"] == {c.name: c.doc for c in table.columns}
    connection = sqlite3.connect(mini_template)
    try:
        views = [
            name
            for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type='view'")
        ]
        for name in views:
            columns = [row[1] for row in connection.execute(f"PRAGMA table_info({name})")]
            assert name in VIEWS_BY_NAME, f"view {name} has no description in catalog.db.views"
            assert list(VIEWS_BY_NAME[name].column_names) == columns, name
            assert tables[name]["description"] == VIEWS_BY_NAME[name].doc
            assert all(tables[name]["columns"][c] for c in columns)
    finally:
        connection.close()


def test_facets_sorts_and_labels_name_real_columns(mini_template: Path) -> None:
    connection = sqlite3.connect(mini_template)
    try:
        tables = site.metadata()["databases"]["catalog"]["tables"]
        for name, spec in tables.items():
            if spec.get("hidden"):
                continue
            columns = {row[1] for row in connection.execute(f"PRAGMA table_info({name})")}
            named = [*spec.get("facets", []), spec.get("sort"), spec.get("sort_desc")]
            named.append(spec.get("label_column"))
            assert {c for c in named if c} <= columns, name
    finally:
        connection.close()


# Pages -----------------------------------------------------------------------------------------


def test_home_search_model_and_deployment_pages(mini_site: Site) -> None:
    served = mini_site
    home = served.get("/")
    assert home.status_code == 200 and 'action="/-/search"' in home.text

    found = served.get("/-/search?q=alpha")
    assert found.status_code == 200
    assert 'href="/model/acme/alpha"' in found.text
    assert "/catalog/deployments/hostco~2Falpha" in found.text

    page = served.get("/model/acme/alpha")
    assert page.status_code == 200
    assert 'data-testid="chosen-by">same-name<' in page.text
    assert "a deployment is named exactly like the model" in page.text
    assert "model_metadata.yaml:3" in page.text  # where it was defined
    assert "TEXT_MODEL_TAG" in page.text
    deployment_page = served.get("/catalog/deployments/hostco~2Falpha")
    assert deployment_page.status_code == 200
    assert 'href="/model/acme/alpha"' in deployment_page.text  # its model
    assert "/catalog/tokenizers/acme~2Ftok" in deployment_page.text

    assert served.get("/model/acme/nothing").status_code == 404
    assert served.get("/catalog/models?_search=alpha").status_code == 200


@pytest.mark.parametrize(
    ("query", "params", "expected"),
    [
        ("which_deployment", "model=acme/alpha", "acme/alpha"),
        ("models_with_tag", "tag=TEXT_MODEL_TAG", "acme/alpha"),
        ("host_serves", "host=hostco", "hostco/beta-old"),
        ("sync_changes", "sync_id=1", "zeta/gamma"),
        ("sync_default_changes", "sync_id=1", "acme/beta"),
        ("model_cache_shards", "model=acme/beta", "hostco/beta-old"),
    ],
)
def test_each_canned_query_answers_with_its_parameter(
    mini_site: Site, query: str, params: str, expected: str
) -> None:
    assert query in site.QUERIES
    answer = mini_site.get(f"/catalog/{query}.json?{params}&_shape=array")
    assert answer.status_code == 200, answer.text
    assert expected in answer.text


def test_chart_pages_answer_and_the_diagram_draws_with_the_plugins_vega(
    mini_site: Site,
) -> None:
    import datasette_dashboards

    vega = Path(datasette_dashboards.__file__).parent / "static" / "vega.min.js"
    assert vega.is_file() and vega.stat().st_size > 100_000
    served = mini_site
    for path in site.CHART_PAGES:
        assert served.get(path).status_code == 200, path
    assert "datasette_dashboards/vega.min.js" in served.get("/-/schema").text
    assert served.get("/-/static-plugins/datasette_dashboards/vega.min.js").status_code == 200
    for slug, chart in site.CHARTS.items():
        rows = served.get("/catalog.json?" + _query_string(chart["query"]) + "&_shape=array")
        assert rows.status_code == 200 and rows.json(), slug


def _query_string(sql: str) -> str:
    from urllib.parse import urlencode

    return urlencode({"sql": sql})


# Serving safely --------------------------------------------------------------------------------


def test_each_pin_and_sync_shows_without_a_restart(
    mini_db: Path, tmp_path: Path, site_of: Any
) -> None:
    served = site_of(mini_db)
    assert served.get("/model/acme/delta").status_code == 404
    layer = write_sources(
        tmp_path / "layer", [model("acme/delta")], [deployment("hostco/delta", "acme/delta")]
    )
    with Catalog.open(mini_db) as catalog:
        catalog.sync([MINI, layer])
        assert served.get("/model/acme/delta").status_code == 200
        assert "hostco/delta" in served.get("/-/search?q=delta").text
        catalog.pin("acme/alpha", "hostco/alpha")
        page = served.get("/model/acme/alpha")
        assert 'data-testid="chosen-by">pinned<' in page.text and "Pinned to" in page.text


def test_a_snapshot_is_an_immutable_copy_that_later_syncs_do_not_touch(
    mini_db: Path, tmp_path: Path, site_of: Any
) -> None:
    before = sorted(dump(mini_db).splitlines())
    served = site_of(mini_db, snapshot=True)
    assert served.served.immutable and served.served.path != mini_db
    assert sorted(dump(served.served.path).splitlines()) == before  # VACUUM reorders the schema
    layer = write_sources(tmp_path / "layer", [model("acme/delta")], [])
    with Catalog.open(mini_db) as catalog:
        catalog.sync([MINI, layer])
    assert served.get("/model/acme/delta").status_code == 404
    assert served.get("/model/acme/alpha").status_code == 200
    scratch = served.served.path.parent
    served.close()
    assert not scratch.exists()


@contextlib.contextmanager
def _read_only_directory(directory: Path) -> Iterator[None]:
    """`directory` unwritable, even for root (a read-only bind mount; chmod when not root).
    The test fails, never skips, if that cannot be done (test_faults.read_only does the same
    for more cases; importing it would cost seconds of assertion rewriting)."""
    if os.geteuid() != 0:
        mode = directory.stat().st_mode
        directory.chmod(mode & ~0o222)
        try:
            yield
        finally:
            directory.chmod(mode)
        return

    def mount(*args: str) -> bool:
        return subprocess.run(["mount", *args], capture_output=True).returncode == 0

    if not mount("--bind", str(directory), str(directory)):
        pytest.fail(f"cannot bind-mount {directory} to make it read-only")
    try:
        if not mount("-o", "remount,bind,ro", str(directory)):
            pytest.fail(f"cannot remount {directory} read-only")
        yield
    finally:
        subprocess.run(["umount", str(directory)], capture_output=True, check=True)


def test_a_catalog_in_a_read_only_directory_is_served_from_a_snapshot(
    mini_db: Path, site_of: Any
) -> None:
    before = _digest(mini_db)
    with _read_only_directory(mini_db.parent):
        served = site_of(mini_db)
        assert served.served.immutable
        assert served.served.notice is not None and "read-only" in served.served.notice
        assert served.get("/model/acme/alpha").status_code == 200
    assert _digest(mini_db) == before


def test_the_served_file_is_the_live_catalog_and_sql_cannot_write_it(mini_site: Site) -> None:
    assert not mini_site.served.immutable and mini_site.served.path == mini_site.served.source
    refused = mini_site.get("/catalog.json?" + _query_string("DELETE FROM pins"))
    assert refused.status_code >= 400 or "error" in refused.text.lower()
    # mini_site's teardown checks that the file is byte for byte what it was


def test_an_outdated_catalog_is_refused_naming_the_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    migrations.upgrade(DatabaseLocation.parse(path), migrations.KNOWN_REVISIONS[0])
    with (
        pytest.raises(SchemaOutdatedError, match="catalog db upgrade"),
        server.served_file(DatabaseLocation.parse(path), snapshot=False),
    ):
        pass
    result = run_cli("serve", "--port", "0", db=path)
    assert result.returncode == 1 and "catalog db upgrade" in result.stderr
    missing = run_cli("serve", "--port", "0", db=tmp_path / "none.db")
    assert missing.returncode == 1 and "catalog sync" in missing.stderr
    assert not (tmp_path / "none.db").exists()


# Without the extra -----------------------------------------------------------------------------


def test_without_the_web_extra_serve_says_how_to_install_it(
    mini_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "datasette", None)  # `import datasette` now fails
    result = run_cli("serve", db=mini_db)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: catalog serve needs the web extra")
    assert lines[1] == "hint: pip install 'model-catalog[web]'"


def test_the_package_and_its_cli_never_import_datasette() -> None:
    code = (
        "import sys, catalog, catalog.cli\n"
        "from catalog.cli import main\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in "
        "('datasette', 'uvicorn', 'datasette_dashboards')], 'datasette imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
