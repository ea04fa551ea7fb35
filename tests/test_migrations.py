"""The schema under Alembic: revisions, their agreement with the ORM, and refusing other schemas."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from conftest import FIXTURES, dump, run_cli

from catalog import (
    Catalog,
    NotACatalogError,
    SchemaError,
    SchemaOutdatedError,
    SchemaTooNewError,
    UnsupportedDatabaseError,
)
from catalog.db import migrations
from catalog.db.connection import create_engine
from catalog.db.location import DatabaseLocation
from catalog.db.metadata import build_metadata
from catalog.db.revisions import HEAD_REVISION, KNOWN_REVISIONS
from catalog.db.search import SEARCH_TABLES, is_search_table

BASE = FIXTURES / "sync" / "base"
TABLES = {
    "models",
    "tags",
    "model_tags",
    "tokenizers",
    "deployments",
    "syncs",
    "sync_sources",
    "pins",
    "settings",
    "events",
    "change_log",
    "default_change_log",
    "shadowed_deployments",
    "cache_scan",
} | SEARCH_TABLES  # the full-text index (0005_search): FTS5 tables and their shadow tables
VIEWS = {
    "deployment_details",
    "model_tag_list",
    "model_default_deployments",
    "cache_shards",
    "changes",
    "default_changes",
    "cached_responses",
}


def objects(path: Path, kind: str) -> set[str]:
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute(
            "SELECT name FROM sqlite_master WHERE type = ? AND name NOT LIKE 'sqlite_%'", (kind,)
        ).fetchall()
    finally:
        connection.close()
    return {name for (name,) in rows} - {"alembic_version"}


def stamped(path: Path) -> str | None:
    return migrations.stamped_revision(DatabaseLocation.parse(path))


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def set_revision(path: Path, revision: str) -> None:
    connection = sqlite3.connect(path)
    try:
        connection.execute("UPDATE alembic_version SET version_num = ?", (revision,))
        connection.commit()
    finally:
        connection.close()


# Upgrading and downgrading -------------------------------------------------------------------


def test_empty_to_head_to_base_to_head(db_path: Path) -> None:
    location = DatabaseLocation.parse(db_path)
    migrations.upgrade(location)
    assert stamped(db_path) == HEAD_REVISION
    assert objects(db_path, "table") == TABLES
    assert objects(db_path, "view") == VIEWS

    migrations.downgrade(location, "base")
    assert stamped(db_path) is None
    assert objects(db_path, "table") == set()
    assert objects(db_path, "view") == set()

    migrations.upgrade(location)
    assert stamped(db_path) == HEAD_REVISION
    assert objects(db_path, "table") == TABLES


def test_step_by_step_through_every_revision_with_data(db_path: Path) -> None:
    with Catalog.open(db_path) as catalog:
        catalog.sync([BASE])
    location = DatabaseLocation.parse(db_path)
    for revision in reversed(KNOWN_REVISIONS[:-1]):
        migrations.downgrade(location, revision, force=True)
        assert stamped(db_path) == revision
    migrations.downgrade(location, "base", force=True)
    for revision in KNOWN_REVISIONS:
        migrations.upgrade(location, revision)
        assert stamped(db_path) == revision
    with Catalog.open(db_path) as catalog:
        assert catalog.sync([BASE]).added["models"] == 3


def test_downgrade_keeps_the_remaining_tables_and_their_rows(db_path: Path) -> None:
    with Catalog.open(db_path) as catalog:
        catalog.sync([BASE])
    migrations.downgrade(DatabaseLocation.parse(db_path), "0001_initial", force=True)
    connection = sqlite3.connect(db_path)
    try:
        assert connection.execute("SELECT count(*) FROM deployments").fetchone() == (4,)
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        connection.close()
    assert "pins" not in objects(db_path, "table")


def test_a_failing_migration_changes_nothing(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alembic import op

    def failing_execute(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("injected failure inside 0002")

    location = DatabaseLocation.parse(db_path)
    monkeypatch.setattr(op, "execute", failing_execute)
    with pytest.raises(RuntimeError, match="injected"):
        migrations.upgrade(location)
    assert objects(db_path, "table") == set()
    assert stamped(db_path) is None
    monkeypatch.undo()
    migrations.upgrade(location)
    assert stamped(db_path) == HEAD_REVISION


def test_unknown_revision_argument_is_a_schema_error(db_path: Path) -> None:
    location = DatabaseLocation.parse(db_path)
    migrations.upgrade(location)
    with pytest.raises(SchemaError, match="catalog db history"):
        migrations.downgrade(location, "no_such_revision")
    assert stamped(db_path) == HEAD_REVISION


# The ORM and the migrations agree ------------------------------------------------------------


def test_orm_metadata_and_migrations_agree(db_path: Path) -> None:
    location = DatabaseLocation.parse(db_path)
    migrations.upgrade(location)
    engine = create_engine(location)
    try:
        with engine.connect() as connection:
            # The search index is not declared in the schema (it is SQLite's FTS5, made by
            # 0005_search), so it is left out of the comparison by name.
            context = MigrationContext.configure(
                connection,
                opts={
                    "compare_type": True,
                    "include_name": lambda name, kind, _parent: (
                        kind != "table" or not is_search_table(str(name))
                    ),
                },
            )
            assert compare_metadata(context, build_metadata()) == []
    finally:
        engine.dispose()


def _normalised_schema(path: Path) -> dict[str, list[str]]:
    """Each table's and index's DDL, clause by clause (constraint order is not meaningful)."""
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute(
            "SELECT name, sql FROM sqlite_master WHERE type IN ('table', 'index') "
            "AND sql IS NOT NULL AND name != 'alembic_version'"
        ).fetchall()
    finally:
        connection.close()
    # A table rebuilt by a batch migration keeps its name quoted: `CREATE TABLE "syncs"`.
    return {
        name: sorted(sql.replace(f'"{name}"', name).removesuffix("\n)").split(", \n\t"))
        for name, sql in rows
        if not is_search_table(name)  # made by 0005_search, not declared in the schema
    }


def test_migrated_ddl_equals_the_orm_ddl_including_checks(tmp_path: Path) -> None:
    migrated = tmp_path / "migrated.db"
    migrations.upgrade(DatabaseLocation.parse(migrated))
    created = tmp_path / "created.db"
    engine = create_engine(DatabaseLocation.parse(created))
    try:
        build_metadata().create_all(engine)
    finally:
        engine.dispose()
    assert _normalised_schema(migrated) == _normalised_schema(created)


def test_known_revisions_are_the_script_directory_in_order() -> None:
    script = ScriptDirectory.from_config(migrations.alembic_config())
    in_order = [rev.revision for rev in script.walk_revisions("base", "heads")]
    assert tuple(reversed(in_order)) == KNOWN_REVISIONS
    assert script.get_heads() == [HEAD_REVISION]
    assert [info.revision for info in migrations.history()] == list(reversed(KNOWN_REVISIONS))


# Opening databases at other revisions, or not catalogs at all --------------------------------


def test_a_new_database_is_created_at_head_on_first_use(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "catalog.db"
    with Catalog.open(path):
        pass
    assert stamped(path) == HEAD_REVISION


@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
def test_an_sqlite_file_without_tables_is_created_at_head(
    tmp_path: Path, journal_mode: str
) -> None:
    path = tmp_path / "empty.db"
    connection = sqlite3.connect(path)
    connection.execute(f"PRAGMA journal_mode = {journal_mode}")
    connection.close()
    with Catalog.open(path):
        pass
    assert stamped(path) == HEAD_REVISION


def test_older_revision_is_refused_naming_the_upgrade_command(db_path: Path) -> None:
    migrations.upgrade(DatabaseLocation.parse(db_path), KNOWN_REVISIONS[0])
    before_dump, before_bytes = dump(db_path), file_digest(db_path)
    with pytest.raises(SchemaOutdatedError, match="catalog db upgrade"):
        Catalog.open(db_path)
    assert dump(db_path) == before_dump
    assert file_digest(db_path) == before_bytes
    assert stamped(db_path) == KNOWN_REVISIONS[0]


def test_database_downgraded_to_base_is_refused_naming_the_upgrade_command(db_path: Path) -> None:
    location = DatabaseLocation.parse(db_path)
    migrations.upgrade(location)
    migrations.downgrade(location, "base")
    with pytest.raises(SchemaOutdatedError, match="catalog db upgrade"):
        Catalog.open(db_path)


def test_unknown_revision_is_too_new_for_open_and_for_upgrade(db_path: Path) -> None:
    migrations.upgrade(DatabaseLocation.parse(db_path))
    set_revision(db_path, "9999_future")
    before = file_digest(db_path)
    with pytest.raises(SchemaTooNewError, match="9999_future"):
        Catalog.open(db_path)
    with pytest.raises(SchemaTooNewError):
        migrations.upgrade(DatabaseLocation.parse(db_path))
    assert file_digest(db_path) == before


def test_sqlite_database_of_another_application_is_not_a_catalog(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    connection.commit()
    connection.close()
    before = file_digest(path)
    with pytest.raises(NotACatalogError, match="not a model-catalog database"):
        Catalog.open(path)
    with pytest.raises(NotACatalogError):
        migrations.upgrade(DatabaseLocation.parse(path))
    assert file_digest(path) == before


def test_a_file_that_is_not_sqlite_is_not_a_catalog(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are not database pages\n" * 200, encoding="utf-8")
    with pytest.raises(NotACatalogError):
        Catalog.open(path)
    with pytest.raises(NotACatalogError):
        migrations.upgrade(DatabaseLocation.parse(path))
    assert path.read_text(encoding="utf-8").startswith("these are not")


@pytest.mark.parametrize(
    ("text", "relative"),
    [
        ("sqlite:///rel.db", "rel.db"),
        ("sqlite+pysqlite:///sub/rel.db", "sub/rel.db"),
        ("rel.db", "rel.db"),
    ],
)
def test_relative_paths_and_urls_resolve_from_the_working_directory(
    text: str, relative: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert DatabaseLocation.parse(text).path == tmp_path / relative


def test_absolute_sqlite_url(tmp_path: Path) -> None:
    assert DatabaseLocation.parse(f"sqlite:///{tmp_path}/a.db").path == tmp_path / "a.db"
    assert DatabaseLocation.parse(f"sqlite:///{tmp_path}/a%20b.db").path == tmp_path / "a b.db"


@pytest.mark.parametrize(
    "text",
    [
        "mysql://localhost/catalog",
        "postgresql://localhost",
        "sqlite://",
        "sqlite:///:memory:",
        ":memory:",
        "",
    ],
)
def test_unsupported_locations_are_refused(text: str) -> None:
    with pytest.raises(UnsupportedDatabaseError):
        DatabaseLocation.parse(text)


# The same through the CLI --------------------------------------------------------------------


def test_db_commands_through_the_cli_with_a_url(tmp_path: Path) -> None:
    path = tmp_path / "cli.db"
    url = f"sqlite:///{path}"

    def cli(*args: str) -> str:
        result = run_cli("--db", url, "db", *args)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert cli("current") == "base (no schema)"
    assert cli("upgrade") == f"{path}: at revision {HEAD_REVISION}"
    assert cli("current") == f"{HEAD_REVISION} (head)"
    assert cli("downgrade", "base") == f"{path}: at revision base"
    assert cli("current") == "base (no schema)"
    assert cli("upgrade", KNOWN_REVISIONS[0]) == f"{path}: at revision {KNOWN_REVISIONS[0]}"
    assert cli("current").startswith(f"{KNOWN_REVISIONS[0]} (head is {HEAD_REVISION}")
    assert cli("upgrade") == f"{path}: at revision {HEAD_REVISION}"
    history = cli("history").splitlines()
    assert len(history) == len(KNOWN_REVISIONS)
    assert history[0].startswith(f"{KNOWN_REVISIONS[-2]} -> {HEAD_REVISION} (head)")
    assert history[-1].startswith(f"<base> -> {KNOWN_REVISIONS[0]}")


def test_cli_refuses_an_outdated_or_foreign_database_with_an_actionable_message(
    tmp_path: Path,
) -> None:
    outdated = tmp_path / "old.db"
    migrations.upgrade(DatabaseLocation.parse(outdated), KNOWN_REVISIONS[0])
    result = run_cli("sync", BASE, db=outdated)
    assert result.returncode == 1
    assert "catalog db upgrade" in result.stderr
    assert "Traceback" not in result.stderr

    future = tmp_path / "future.db"
    migrations.upgrade(DatabaseLocation.parse(future))
    set_revision(future, "9999_future")
    for args in (["sync", BASE], ["db", "upgrade"], ["db", "downgrade", "base"]):
        result = run_cli(*args, db=future)
        assert result.returncode == 1
        assert "9999_future" in result.stderr and "newer model-catalog" in result.stderr
    assert "unknown to this version" in run_cli("db", "current", db=future).stdout

    missing = run_cli("db", "downgrade", "base", db=tmp_path / "missing.db")
    assert missing.returncode == 1
    assert "no catalog database" in missing.stderr
    assert not (tmp_path / "missing.db").exists()
