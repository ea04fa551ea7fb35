"""`catalog db upgrade` from 0001_initial on a database full of real data keeps every row.

The old database is made as a user of the first release would have it: created at
0001_initial, then filled (here by copying, table by table, from a head database synced from a
real HELM snapshot). After the upgrade every 0001 table must hold exactly the same rows, the
views of 0002 must answer, and pins and settings must work.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import SnapshotTemplate, copy_catalog, run_cli

from catalog import Catalog
from catalog.db import migrations
from catalog.db.location import DatabaseLocation
from catalog.db.revisions import HEAD_REVISION
from catalog.errors import SchemaOutdatedError

VIEWS = ("deployment_details", "model_tag_list", "model_default_deployments", "cache_shards")


def _tables(connection: sqlite3.Connection, schema: str = "main") -> list[str]:
    query = (
        f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table' "
        "AND name NOT LIKE 'sqlite_%' AND name != 'alembic_version' ORDER BY name"
    )
    return [row[0] for row in connection.execute(query)]


def _columns(connection: sqlite3.Connection, table: str) -> list[str]:
    query = "SELECT name FROM pragma_table_info(?, 'main')"
    return [row[0] for row in connection.execute(query, (table,))]


def _content(
    path: Path, tables: list[str], columns: dict[str, list[str]] | None = None
) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of `tables`, in the given columns (default: all of them)."""
    connection = sqlite3.connect(path)
    try:
        content = {}
        for table in tables:
            names = columns[table] if columns else _columns(connection, table)
            selected = ", ".join(f'"{c}"' for c in names)
            rows = connection.execute(f'SELECT {selected} FROM "{table}"')
            content[table] = sorted((tuple(row) for row in rows), key=repr)
        return content
    finally:
        connection.close()


def _columns_of(path: Path, tables: list[str]) -> dict[str, list[str]]:
    connection = sqlite3.connect(path)
    try:
        return {table: _columns(connection, table) for table in tables}
    finally:
        connection.close()


def _old_database(path: Path, head: Path) -> list[str]:
    """A 0001_initial database holding the rows of `head`; returns its tables."""
    migrations.upgrade(DatabaseLocation.parse(path), "0001_initial")
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        tables = _tables(connection)
        connection.execute("ATTACH DATABASE ? AS head", (str(head),))
        connection.execute("PRAGMA foreign_keys = OFF")
        connection.execute("BEGIN")
        for table in tables:
            columns = ", ".join(f'"{c}"' for c in _columns(connection, table))
            connection.execute(
                f'INSERT INTO main."{table}" ({columns}) SELECT {columns} FROM head."{table}"'
            )
        connection.execute("COMMIT")
        assert connection.execute("PRAGMA main.foreign_key_check").fetchall() == []
        connection.execute("DETACH DATABASE head")
    finally:
        connection.close()
    return tables


def test_upgrade_keeps_every_row_and_adds_a_working_query_layer(
    snapshot_dir: Path, tmp_path: Path, snapshot_template: Callable[[str], SnapshotTemplate]
) -> None:
    head = copy_catalog(snapshot_template(snapshot_dir.name).path, tmp_path / "head" / "catalog.db")
    head_path = head.path
    expected_defaults = {
        name: head.default_deployment(name)
        for (name,) in head.connection.execute("SELECT name FROM models")
    }
    head.close()
    old = tmp_path / "old.db"
    tables = _old_database(old, head_path)
    assert {"models", "deployments", "tokenizers", "model_tags", "syncs"} <= set(tables)
    assert "pins" not in tables and "settings" not in tables
    before = _content(old, tables)
    old_columns = _columns_of(old, tables)
    assert all(before[t] for t in ("models", "deployments", "tokenizers", "model_tags"))

    with pytest.raises(SchemaOutdatedError, match="db upgrade"):
        Catalog.open(old)

    result = run_cli("db", "upgrade", db=old)
    assert result.returncode == 0, result.stderr
    assert HEAD_REVISION in result.stdout

    after = _content(old, tables, old_columns)  # columns added later are new, not changed
    for table in tables:
        assert after[table] == before[table], table

    with Catalog.open(old) as upgraded:
        connection = upgraded.connection
        for view in VIEWS:
            (count,) = connection.execute(f"SELECT count(*) FROM {view}").fetchone()
            assert count > 0, view
        view_defaults = dict(
            connection.execute("SELECT model, default_deployment FROM model_default_deployments")
        )
        assert view_defaults == expected_defaults

        model, deployments = next(
            (name, [d.name for d in upgraded.explain(name).deployments])
            for name in expected_defaults
            if len(upgraded.explain(name).deployments) > 1
        )
        upgraded.pin(model, deployments[-1])
        assert upgraded.default_deployment(model) == deployments[-1]
        upgraded.set_setting("policy", "last")
        assert upgraded.settings() == {"policy": "last"}
        (row,) = connection.execute(
            "SELECT pinned_deployment, default_deployment FROM model_default_deployments "
            "WHERE model = ?",
            (model,),
        ).fetchall()
        assert tuple(row) == (deployments[-1], deployments[-1])
        assert upgraded.sync([snapshot_dir]).skipped_unchanged
        assert upgraded.pins()[0].deployment_name == deployments[-1]
