"""Connections: foreign keys enforced by the database, WAL and a busy timeout on every one."""

from __future__ import annotations

import contextlib
import sqlite3
import sqlite3.dbapi2
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from conftest import FIXTURES
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from catalog import Catalog
from catalog.db import migrations
from catalog.db.connection import connect_raw as connect
from catalog.db.connection import create_engine
from catalog.db.location import DatabaseLocation

BASE = FIXTURES / "sync" / "base"
ORPHAN_DEPLOYMENT = (
    "INSERT INTO deployments (name, host_organization, engine, model_name, client_class, "
    "deprecated, position, first_position) "
    "VALUES ('host/orphan', 'host', 'orphan', 'nobody/no-model', 'X', 0, 0, 0)"
)


@pytest.fixture
def synced(catalog: Catalog) -> Iterator[Catalog]:
    catalog.sync([BASE])
    yield catalog


def test_library_connection_refuses_a_deployment_of_a_missing_model(synced: Catalog) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        synced.connection.execute(ORPHAN_DEPLOYMENT)
    assert synced.connection.execute(
        "SELECT count(*) FROM deployments WHERE name = 'host/orphan'"
    ).fetchone() == (0,)


def test_sqlalchemy_engine_refuses_a_deployment_of_a_missing_model(synced: Catalog) -> None:
    from sqlalchemy.exc import IntegrityError

    engine = create_engine(synced.location)
    try:
        with pytest.raises(IntegrityError, match="FOREIGN KEY"), engine.begin() as connection:
            connection.execute(text(ORPHAN_DEPLOYMENT))
    finally:
        engine.dispose()


def test_plain_sqlite3_session_with_foreign_keys_on_refuses_it(synced: Catalog) -> None:
    connection = sqlite3.connect(synced.path)
    try:
        connection.execute("PRAGMA foreign_keys = ON")
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            connection.execute(ORPHAN_DEPLOYMENT)
        # Deleting a model that deployments use is refused too; its tags go with a deletable one.
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            connection.execute("DELETE FROM models WHERE name = 'acme/alpha-1'")
        connection.execute("DELETE FROM deployments WHERE model_name = 'beta/b-large'")
        connection.execute("DELETE FROM models WHERE name = 'beta/b-large'")
        assert connection.execute(
            "SELECT count(*) FROM model_tags WHERE model_name = 'beta/b-large'"
        ).fetchone() == (0,)
        connection.rollback()
    finally:
        connection.close()


def test_check_constraints_hold(synced: Catalog) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        synced.connection.execute("UPDATE models SET access = 'public'")
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        synced.connection.execute("UPDATE deployments SET max_sequence_length = 0")


def pragmas(connection: Any) -> tuple[int, str, int]:
    foreign_keys = connection.execute("PRAGMA foreign_keys").fetchone()[0]
    journal_mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
    busy_timeout = connection.execute("PRAGMA busy_timeout").fetchone()[0]
    return int(foreign_keys), str(journal_mode).lower(), int(busy_timeout)


def assert_catalog_pragmas(connection: Any) -> None:
    foreign_keys, journal_mode, busy_timeout = pragmas(connection)
    assert foreign_keys == 1
    assert journal_mode == "wal"
    assert busy_timeout > 0


def test_every_kind_of_library_connection_has_the_pragmas(synced: Catalog) -> None:
    assert_catalog_pragmas(synced.connection)
    for readonly in (False, True):
        connection = connect(synced.location, readonly=readonly)
        try:
            assert_catalog_pragmas(connection)
        finally:
            connection.close()
    engine = create_engine(synced.location)
    try:
        with engine.connect() as connection:
            assert_catalog_pragmas(connection.connection.driver_connection)
    finally:
        engine.dispose()


class RecordingConnection(sqlite3.Connection):
    """Records the pragmas of each connection when it is closed (after its work is done)."""

    closed_with: ClassVar[list[tuple[int, str, int]]] = []

    def close(self) -> None:
        with contextlib.suppress(sqlite3.ProgrammingError):  # already closed
            RecordingConnection.closed_with.append(pragmas(self))
        super().close()


def test_connections_opened_by_open_sync_and_migrations_have_the_pragmas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[sqlite3.Connection] = []
    original_connect = sqlite3.connect

    def recording_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        kwargs.setdefault("factory", RecordingConnection)
        connection = original_connect(*args, **kwargs)
        opened.append(connection)
        return connection

    RecordingConnection.closed_with = []
    monkeypatch.setattr(sqlite3, "connect", recording_connect)
    monkeypatch.setattr(sqlite3.dbapi2, "connect", recording_connect)  # SQLAlchemy's import
    path = tmp_path / "catalog.db"
    with Catalog.open(path) as catalog:
        catalog.sync([BASE])
        catalog.sync([BASE], force=True)
        catalog.sync([BASE], dry_run=True, force=True)
        assert_catalog_pragmas(catalog.connection)
    location = DatabaseLocation.parse(path)
    migrations.downgrade(location, "base", force=True)
    migrations.upgrade(location)
    assert migrations.stamped_revision(location) is not None

    monkeypatch.undo()
    assert len(opened) >= 5  # open, then the migrations; a sync reuses the connection
    assert len(RecordingConnection.closed_with) == len(opened)
    for foreign_keys, journal_mode, busy_timeout in RecordingConnection.closed_with:
        assert (foreign_keys, journal_mode) == (1, "wal")
        assert busy_timeout > 0


def test_a_second_writer_waits_instead_of_failing(synced: Catalog) -> None:
    """The write lock is taken at BEGIN (IMMEDIATE), so a sync cannot fail halfway on it."""
    holder = connect(synced.location)
    try:
        holder.execute("BEGIN IMMEDIATE")
        other = sqlite3.connect(synced.path, timeout=0)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        finally:
            other.close()
        holder.execute("ROLLBACK")
    finally:
        holder.close()


@settings(max_examples=60, deadline=None)
@given(
    parts=st.lists(
        st.text(
            alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="/\x00"),
            min_size=1,
            max_size=12,
        ).filter(lambda part: part not in (".", "..")),
        min_size=1,
        max_size=3,
    )
)
def test_location_url_reads_back_to_the_same_path(parts: list[str]) -> None:
    location = DatabaseLocation(Path("/tmp", *parts))
    assert DatabaseLocation.parse(location.url) == location
    assert DatabaseLocation.parse(str(location.path)) == location


def test_engine_writes_to_the_file_named_even_with_url_characters(tmp_path: Path) -> None:
    directory = tmp_path / "we ird%41?x#y"
    directory.mkdir()
    path = directory / "catalog.db"
    with Catalog.open(path) as catalog:
        assert catalog.sync([BASE]).added["models"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["we ird%41?x#y"]
    connection = sqlite3.connect(path)
    try:
        assert connection.execute("SELECT count(*) FROM models").fetchone() == (3,)
    finally:
        connection.close()


@pytest.mark.slow  # what a fresh interpreter imports
def test_opening_an_existing_catalog_loads_no_write_machinery(synced: Catalog) -> None:
    """Reads stay on the standard library: no SQLAlchemy, Alembic, PyYAML, click or psycopg."""
    script = (
        "import sys; from catalog import Catalog; from catalog.db import migrations; "
        "from catalog import names; "
        f"catalog = Catalog.open({str(synced.path)!r}); "
        "catalog.connection.execute('SELECT count(*) FROM deployments').fetchone(); "
        "catalog.resolve('model=all'); "
        "print(sorted(m for m in ('sqlalchemy', 'alembic', 'yaml', 'click', 'psycopg') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
