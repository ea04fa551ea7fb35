"""The SQL views agree with the Python API: same defaults, same tags, same shards."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import HELM_CONFIGS, SnapshotTemplate, copy_catalog, require_shared

from catalog import Catalog

Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def rows(connection: sqlite3.Connection, query: str, *params: Any) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in connection.execute(query, params)]


@pytest.fixture
def snapshot_catalog(
    snapshot_dir: Path, tmp_path: Path, snapshot_template: Callable[[str], SnapshotTemplate]
) -> Iterator[Catalog]:
    catalog = copy_catalog(snapshot_template(snapshot_dir.name).path, tmp_path / "catalog.db")
    yield catalog
    catalog.close()


@pytest.fixture(scope="module")
def v0512(tmp_path_factory: pytest.TempPathFactory, v0512_template: Path) -> Iterator[Catalog]:
    catalog = copy_catalog(v0512_template, tmp_path_factory.mktemp("views") / "catalog.db")
    yield catalog
    catalog.close()


def _view_defaults(catalog: Catalog) -> dict[str, tuple[Any, ...]]:
    query = (
        "SELECT model, first_policy_deployment, last_policy_deployment, pinned_deployment, "
        "default_deployment, default_host_organization FROM model_default_deployments"
    )
    return {row[0]: row[1:] for row in rows(catalog.connection, query)}


def _host(catalog: Catalog, deployment: str | None) -> str | None:
    if deployment is None:
        return None
    found = rows(
        catalog.connection, "SELECT host_organization FROM deployments WHERE name = ?", deployment
    )
    return str(found[0][0])


def test_default_deployments_view_matches_resolution(snapshot_catalog: Catalog) -> None:
    catalog = snapshot_catalog
    models = [r[0] for r in rows(catalog.connection, "SELECT name FROM models")]
    view = _view_defaults(catalog)
    assert list(view) == [
        r[0] for r in rows(catalog.connection, "SELECT name FROM models ORDER BY position")
    ]
    for model in models:
        first = catalog.default_deployment(model, "first")
        last = catalog.default_deployment(model, "last")
        assert view[model] == (first, last, None, first, _host(catalog, first)), model

    # Pin every model that has two deployments or more to its last-listed one.
    pinned = {}
    for model in models:
        own = [d.name for d in catalog.explain(model).deployments]
        if len(own) > 1:
            pinned[model] = own[-1]
            catalog.pin(model, own[-1])
    assert pinned
    for policy in ("first", "last"):
        catalog.set_setting("policy", policy)
        view = _view_defaults(catalog)
        for model in models:
            expected = catalog.default_deployment(model)
            assert view[model][2] == pinned.get(model)
            assert view[model][3] == expected, (policy, model)
            assert view[model][4] == _host(catalog, expected)


def test_deployment_details_joins_model_facts(v0512: Catalog) -> None:
    connection = v0512.connection
    assert rows(
        connection,
        "SELECT deployment, host_organization, creator_organization_name, access, deprecated "
        "FROM deployment_details WHERE model = ?",
        "openai/gpt2",
    ) == [("huggingface/gpt2", "huggingface", "OpenAI", "open", 0)]
    per_host = dict(
        rows(connection, "SELECT host_organization, count(*) FROM deployment_details GROUP BY 1")
    )
    assert per_host == dict(
        rows(connection, "SELECT host_organization, count(*) FROM deployments GROUP BY 1")
    )
    # Deployments hosted by someone other than the model's creator, e.g. Together's Llama.
    third_party = {
        r[0]
        for r in rows(
            connection,
            "SELECT deployment FROM deployment_details WHERE host_organization != creator_prefix",
        )
    }
    assert "together/llama-2-7b" in third_party
    assert "openai/gpt-4-0613" not in third_party


def test_model_tag_list_keeps_yaml_order(v0512: Catalog) -> None:
    source = require_shared(HELM_CONFIGS / "v0.5.12") / "model_metadata.yaml"
    with open(source, encoding="utf-8") as file:
        models = yaml.load(file, Loader=Loader)["models"]
    expected = {m["name"]: list(dict.fromkeys(m.get("tags") or [])) for m in models}
    listed = {
        model: (tags.split(",") if tags else [], count)
        for model, tags, count in rows(v0512.connection, "SELECT * FROM model_tag_list")
    }
    assert listed == {name: (tags, len(tags)) for name, tags in expected.items()}
    assert rows(
        v0512.connection,
        "SELECT model FROM model_tag_list WHERE ',' || tags || ',' LIKE ? ORDER BY model LIMIT 2",
        "%,AUDIO_LANGUAGE_MODEL_TAG,%",
    )


def test_cache_shards_marks_one_default_per_model(v0512: Catalog) -> None:
    connection = v0512.connection
    assert rows(
        connection,
        "SELECT deployment, creator_shard, host_shard, is_default FROM cache_shards "
        "WHERE model = ?",
        "meta/llama-2-7b",
    ) == [("together/llama-2-7b", "meta", "together", 1)]
    defaults = rows(
        connection,
        "SELECT model, count(*) FROM cache_shards WHERE is_default GROUP BY model "
        "HAVING count(*) != 1",
    )
    assert defaults == []
    served = {r[0] for r in rows(connection, "SELECT DISTINCT model_name FROM deployments")}
    marked = {r[0] for r in rows(connection, "SELECT model FROM cache_shards WHERE is_default")}
    assert marked == served


def test_cache_shards_follow_the_policy_setting(tmp_path: Path, v0512_template: Path) -> None:
    catalog = copy_catalog(v0512_template, tmp_path / "catalog.db")
    query = "SELECT deployment FROM cache_shards WHERE model = ? AND is_default"
    model = "google/gemma-2-9b-it"
    try:
        assert rows(catalog.connection, query, model) == [("together/gemma-2-9b-it",)]
        catalog.set_setting("policy", "last")
        assert rows(catalog.connection, query, model) == [("huggingface/gemma-2-9b-it",)]
        catalog.pin(model, "together/gemma-2-9b-it")
        assert rows(catalog.connection, query, model) == [("together/gemma-2-9b-it",)]
    finally:
        catalog.close()
