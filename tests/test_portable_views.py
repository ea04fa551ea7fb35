"""Revision 0006_portable_views: the view of defaults answers as the resolver does under every
source of the policy in force (setting, the crfm-helm a sync read, the default), and the
revision upgrades a filled catalog and downgrades back with every row kept."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import SnapshotTemplate, copy_catalog, run_cli
from helm_helpers import require_helm

from catalog import Catalog
from catalog.db import migrations
from catalog.db.location import DatabaseLocation
from catalog.resolve.policies import helm_rule


def _view_defaults(catalog: Catalog) -> dict[str, str | None]:
    return {
        row["model"]: row["default_deployment"]
        for row in catalog.sql("SELECT model, default_deployment FROM model_default_deployments")
    }


def _resolver_defaults(catalog: Catalog) -> dict[str, str | None]:
    return {name: catalog.default_deployment(name) for name in catalog.model_names()}


def _differing(catalog: Catalog) -> int:
    """How many models the two policies give different defaults, so that a check of the
    policy in force is not vacuous."""
    rows = catalog.sql(
        "SELECT count(*) AS n FROM model_default_deployments "
        "WHERE first_policy_deployment IS NOT last_policy_deployment"
    )
    return int(rows[0]["n"])


def test_the_view_gives_the_resolvers_default_whatever_sets_the_policy(
    snapshot_template: Callable[[str], SnapshotTemplate], tmp_path: Path
) -> None:
    version = require_helm()
    template = snapshot_template("v0.5.12")
    with copy_catalog(template.path, tmp_path / "catalog.db") as catalog:
        assert _differing(catalog) > 0
        assert catalog.policy_reason()[0] == "first"
        assert _view_defaults(catalog) == _resolver_defaults(catalog)

        # A sync that read crfm-helm's configs: its rule is the policy while none is set.
        catalog.sync([template.source], helm=True)
        assert catalog.sql("SELECT helm_rule FROM syncs ORDER BY id DESC LIMIT 1") == [
            {"helm_rule": helm_rule(version)}
        ]
        assert catalog.policy_in_force() == helm_rule(version) == "last"
        assert _view_defaults(catalog) == _resolver_defaults(catalog)
        assert _view_defaults(catalog) == {
            row["model"]: row["last_policy_deployment"]
            for row in catalog.sql("SELECT * FROM model_default_deployments")
        }

        # A setting wins over the crfm-helm rule; a pin over both.
        catalog.set_setting("policy", "first")
        assert _view_defaults(catalog) == _resolver_defaults(catalog)
        deployments = [d.name for d in catalog.deployments(model="openai/gpt2")]
        catalog.pin("openai/gpt2", deployments[-1])
        assert _view_defaults(catalog)["openai/gpt2"] == deployments[-1]
        assert _view_defaults(catalog) == _resolver_defaults(catalog)


def _content(db: Path) -> dict[str, list[Any]]:
    connection = sqlite3.connect(db)
    try:
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                "AND name NOT LIKE '%_fts%' AND name != 'alembic_version' ORDER BY name"
            )
        ]
        return {
            table: connection.execute(
                f"SELECT * FROM {table} ORDER BY 1"
                if table != "syncs"
                else "SELECT id, started_at, finished_at, helm_version FROM syncs ORDER BY 1"
            ).fetchall()
            for table in tables
        }
    finally:
        connection.close()


def test_0006_upgrades_a_catalog_an_older_sync_helm_made_and_downgrades_back(
    v0512_template: Path, tmp_path: Path
) -> None:
    db = tmp_path / "catalog.db"
    copy_catalog(v0512_template, db).close()
    location = DatabaseLocation.parse(db)
    migrations.downgrade(location, "0005_search")
    # What `sync --helm` of crfm-helm 0.5.16 left before this revision: the version only.
    connection = sqlite3.connect(db)
    with connection:
        connection.execute("UPDATE syncs SET helm_version = '0.5.16'")
    connection.close()
    before = _content(db)

    upgraded = run_cli("db", "upgrade", db=db)
    assert upgraded.returncode == 0, upgraded.stderr
    assert _content(db) == before
    with Catalog.open(db, create=False) as catalog:
        assert catalog.sql("SELECT helm_version, helm_rule FROM syncs") == [
            {"helm_version": "0.5.16", "helm_rule": "last"}
        ]
        assert catalog.policy_in_force() == "last"
        assert _view_defaults(catalog) == _resolver_defaults(catalog)
        ordered = catalog.sql("SELECT deployment, position FROM deployment_details")
        assert [row["position"] for row in ordered] == sorted(row["position"] for row in ordered)
        assert len(catalog.sql("SELECT * FROM cached_responses")) == 0
        assert len(catalog.sql("SELECT * FROM cache_shards")) == len(ordered)

    migrations.downgrade(location, "0005_search")
    assert migrations.stamped_revision(location) == "0005_search"
    assert _content(db) == before
    connection = sqlite3.connect(db)
    try:
        columns = [row[1] for row in connection.execute("PRAGMA table_info(syncs)")]
        assert "helm_rule" not in columns
        views = {
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'view'")
        }
        assert {"deployment_details", "model_tag_list", "model_default_deployments"} <= views
        assert {"cache_shards", "cached_responses"} <= views
        assert connection.execute("SELECT count(*) FROM cache_shards").fetchone()[0] > 0
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        connection.close()
