"""What `catalog serve` tells Datasette: titles, the description of every table, view and column,
default facets and sort orders, foreign-key labels, canned queries and the charts.

Every description comes from catalog.db.schema (tables) and catalog.db.views (views): nothing
here repeats them, so a new column is described where it is declared. The dictionaries are
Datasette 0.65's metadata format (one document for descriptions, behaviour and plugin
settings); Datasette 1.0 splits it in two and silently ignores this one, hence the `<1` pin.

Nothing here imports Datasette: the metadata is plain data, built (and tested) without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from catalog.db.schema import TABLES
from catalog.db.search import SEARCH_TABLES
from catalog.db.views import VIEWS

DATABASE = "catalog"
"""The name the catalog is served under, whatever its file is called: URLs stay /catalog/..."""
DASHBOARD = "catalog"
TITLE = "Model catalog"
DESCRIPTION = (
    "HELM's models, deployments and tokenizers, with the default deployment of every model, "
    "the history of every sync, and the cache shards HELM reads."
)

# How each table or view is shown by default: facets that answer the usual questions, an order
# that reads well, and the column that names a row where another table links to it.
_PRESENTATION: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "models": {
            "facets": ["creator_organization_name", "access", "is_placeholder"],
            "sort_desc": "release_date",
            "label_column": "display_name",
        },
        "deployments": {
            "facets": ["host_organization", "deprecated"],
            "sort": "position",
            "label_column": "name",
        },
        "tokenizers": {"facets": ["is_placeholder"], "sort": "position", "label_column": "name"},
        "tags": {"label_column": "name"},
        "model_tags": {"facets": ["tag_name"], "sort": "model_name"},
        "syncs": {"sort_desc": "id"},
        "events": {"facets": ["kind"], "sort_desc": "id", "label_column": "summary"},
        "change_log": {"facets": ["table_name", "change"], "sort_desc": "id"},
        "default_change_log": {"facets": ["policy"], "sort_desc": "event_id"},
        "pins": {"sort": "model_name"},
        "deployment_details": {
            "facets": ["host_organization", "creator_organization_name", "access", "deprecated"]
        },
        "changes": {"facets": ["event_kind", "table_name", "change"], "sort_desc": "id"},
        "default_changes": {"facets": ["policy", "event_kind"], "sort_desc": "event_id"},
        "cache_shards": {"facets": ["host_shard", "creator_shard", "is_default"]},
        "cached_responses": {"facets": ["shard", "kind"]},
    }
)

QUERIES: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "which_deployment": {
            "title": "Which deployment runs a model?",
            "description": "The default deployment of :model in force (its pin, else the "
            "policy setting), and what each policy alone would pick. The model's page "
            "(/model/NAME) also says why.",
            "sql": "SELECT model, default_deployment, default_host_organization, "
            "pinned_deployment, first_policy_deployment, last_policy_deployment\n"
            "FROM model_default_deployments WHERE model = :model",
        },
        "models_with_tag": {
            "title": "Models with a tag",
            "description": "Every model carrying :tag (TEXT_MODEL_TAG, CODE_MODEL_TAG, ...), "
            "in catalog order.",
            "sql": "SELECT m.name, m.display_name, m.creator_organization_name, m.access, "
            "m.release_date\nFROM model_tags AS t JOIN models AS m ON m.name = t.model_name\n"
            "WHERE t.tag_name = :tag ORDER BY m.position",
        },
        "host_serves": {
            "title": "What a host serves",
            "description": "The deployments of :host (together, openai, ...) in catalog order, "
            "with their models.",
            "sql": "SELECT deployment, model, creator_organization_name, tokenizer, "
            "max_sequence_length, deprecated\nFROM deployment_details "
            "WHERE host_organization = :host ORDER BY position",
        },
        "sync_changes": {
            "title": "What changed in a sync",
            "description": "Every entry that sync :sync_id added, removed or changed, with the "
            "fields before and after (see the syncs table for the numbers).",
            "sql": "SELECT table_name, name, change, before, after, occurred_at\n"
            "FROM changes WHERE sync_id = CAST(:sync_id AS INTEGER) ORDER BY id",
        },
        "sync_default_changes": {
            "title": "Whose default deployment a sync changed",
            "description": "Every model whose default deployment sync :sync_id moved, per "
            "policy (first, last, in_force).",
            "sql": "SELECT policy, model, before, after\nFROM default_changes "
            "WHERE sync_id = CAST(:sync_id AS INTEGER) ORDER BY policy, model",
        },
        "model_cache_shards": {
            "title": "Cache shards of a model",
            "description": "For each deployment of :model: the HELM cache shard before PR #1903 "
            "(the creator's) and now (the host's), and which one is the default.",
            "sql": "SELECT deployment, creator_shard, host_shard, is_default\n"
            "FROM cache_shards WHERE model = :model",
        },
    }
)

_TOP_CREATORS = 10
CHARTS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "models-per-quarter": {
            "title": "Models released per quarter, by creator",
            "db": DATABASE,
            "query": f"""WITH released AS (
    SELECT substr(release_date, 1, 4) || '-Q'
            || ((CAST(substr(release_date, 6, 2) AS INTEGER) + 2) / 3) AS quarter,
        creator_organization_name AS creator
    FROM models WHERE release_date IS NOT NULL AND NOT is_placeholder
), top AS (
    SELECT creator FROM released GROUP BY creator ORDER BY count(*) DESC LIMIT {_TOP_CREATORS}
)
SELECT quarter,
    CASE WHEN creator IN (SELECT creator FROM top) THEN creator ELSE 'others' END AS creator,
    count(*) AS models
FROM released GROUP BY 1, 2 ORDER BY 1""",
            "library": "vega-lite",
            "display": {
                "mark": {"type": "bar", "tooltip": True},
                "encoding": {
                    "x": {"field": "quarter", "type": "ordinal", "title": "Quarter"},
                    "y": {
                        "field": "models",
                        "type": "quantitative",
                        "aggregate": "sum",
                        "title": "Models released",
                    },
                    "color": {"field": "creator", "type": "nominal", "title": "Creator"},
                },
            },
        },
        "deployments-per-host": {
            "title": "Deployments per host, deprecated or not",
            "db": DATABASE,
            "query": """SELECT host_organization AS host,
    CASE WHEN deprecated THEN 'deprecated' ELSE 'active' END AS status,
    count(*) AS deployments
FROM deployments GROUP BY 1, 2""",
            "library": "vega-lite",
            "display": {
                "mark": {"type": "bar", "tooltip": True},
                "encoding": {
                    "y": {"field": "host", "type": "nominal", "sort": "-x", "title": "Host"},
                    "x": {
                        "field": "deployments",
                        "type": "quantitative",
                        "aggregate": "sum",
                        "title": "Deployments",
                    },
                    "color": {
                        "field": "status",
                        "type": "nominal",
                        "title": "Status",
                        "scale": {
                            "domain": ["active", "deprecated"],
                            "range": ["#4c78a8", "#e45756"],
                        },
                    },
                },
            },
        },
    }
)
CHART_PAGES = (f"/-/dashboards/{DASHBOARD}", "/-/schema")
"""The pages with pictures: the dashboard of charts (a) and (b), and the schema diagram."""

SETTINGS: Mapping[str, Any] = MappingProxyType(
    {
        # Datasette's default of 5 s lets a browser show a page from before the last sync.
        "default_cache_ttl": 0,
        "sql_time_limit_ms": 3000,
        "facet_time_limit_ms": 500,
    }
)


def _table_metadata() -> dict[str, Any]:
    tables: dict[str, Any] = {}
    for table in TABLES:
        tables[table.name] = {
            "description": table.doc,
            "columns": {column.name: column.doc for column in table.columns},
            **_PRESENTATION.get(table.name, {}),
        }
    for view in VIEWS:
        tables[view.name] = {
            "description": view.doc,
            "columns": dict(view.columns),
            **_PRESENTATION.get(view.name, {}),
        }
    for name in SEARCH_TABLES:
        tables[name] = {"hidden": True}
    return tables


def metadata() -> dict[str, Any]:
    """Datasette 0.65's metadata document for the catalog (a new copy each call)."""
    return {
        "title": TITLE,
        "description": DESCRIPTION,
        "about": "Charts",
        "about_url": f"/-/dashboards/{DASHBOARD}",
        "databases": {
            DATABASE: {
                "description": DESCRIPTION,
                "tables": _table_metadata(),
                "queries": {name: dict(query) for name, query in QUERIES.items()},
            }
        },
        "plugins": {
            "datasette-dashboards": {
                DASHBOARD: {
                    "title": "Catalog charts",
                    "description": "Models released over time, and who serves what.",
                    "layout": [[slug] for slug in CHARTS],
                    "charts": {slug: dict(chart) for slug, chart in CHARTS.items()},
                }
            }
        },
    }
