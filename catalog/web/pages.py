"""What the catalog's own pages show, computed from a read connection that Datasette hands over.

Each page reads through the same `Catalog` methods as the command line (`explain` says which
deployment runs a model and why, `model` and `deployments` list the facts), inside one read
transaction, so a page never mixes the catalog before and after a sync that commits while it is
being built. Nothing here imports Datasette: these are plain functions over a sqlite3
connection, tested without a server.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.api import Catalog
from catalog.db.connection import CatalogConnection
from catalog.db.location import DatabaseLocation
from catalog.db.schema import TABLES
from catalog.db.search import SearchHit
from catalog.errors import UnknownModelError
from catalog.resolve.policies import (
    EXPLICIT,
    FIRST_NON_DEPRECATED,
    LAST_NON_DEPRECATED,
    ONLY_DEPRECATED,
    PINNED,
    SAME_NAME,
)

# `chosen_by` in words, for a reader who has not read HELM's code.
REASONS = {
    PINNED: "pinned with `catalog pin`",
    SAME_NAME: "a deployment is named exactly like the model",
    FIRST_NON_DEPRECATED: "the first deployment in catalog order that is not deprecated",
    LAST_NON_DEPRECATED: "the last deployment in catalog order that is not deprecated",
    ONLY_DEPRECATED: "every deployment is deprecated, so the rule falls back to one of them",
    EXPLICIT: "named explicitly",
    "helm-generator": "HELM generates this deployment at run time",
}


def _catalog(connection: sqlite3.Connection, path: str | None) -> Catalog:
    """A `Catalog` over Datasette's own read connection (read-only or immutable): the page
    sees what Datasette's other pages see. It is never closed here: Datasette owns it."""
    location = DatabaseLocation(Path(path or "catalog.db"))
    return Catalog(location, CatalogConnection(connection, location))


@dataclass(frozen=True)
class ModelPage:
    model: dict[str, Any]
    explanation: dict[str, Any]
    reason: str | None
    """`chosen_by` in words."""
    deployments: list[dict[str, Any]]


def model_page(connection: sqlite3.Connection, path: str | None, name: str) -> ModelPage | None:
    """Everything the page of model `name` shows, read in one transaction; None if there is no
    such model."""
    catalog = _catalog(connection, path)
    with catalog.connection.read():
        try:
            model = catalog.model(name)
        except UnknownModelError:
            return None
        explanation = catalog.explain(name)
        deployments = catalog.deployments(model=name)
    chosen_by = explanation.chosen_by
    return ModelPage(
        model=model.to_json(),
        explanation=explanation.to_json(),
        reason=REASONS.get(chosen_by, chosen_by) if chosen_by is not None else None,
        deployments=[deployment.to_json() for deployment in deployments],
    )


def search_page(
    connection: sqlite3.Connection, path: str | None, text: str, limit: int
) -> list[SearchHit]:
    """The models, deployments and tokenizers matching `text`, best first (`catalog search`)."""
    return _catalog(connection, path).search(text, limit=limit)


# The schema diagram ---------------------------------------------------------------------------

_LINE_HEIGHT = 16
_CHAR_WIDTH = 6.7  # 11px monospace
_COLUMN_GAP = 90


def schema_diagram() -> dict[str, Any]:
    """The declared tables and their foreign keys, laid out for the Vega spec of schema.html.

    A table sits one column left of every table it references, so every arrow points right;
    the geometry is computed here and Vega only draws boxes, text and link paths.
    """
    columns = {table.name: table.columns for table in TABLES}
    links = [
        {
            "source": table.name,
            "column": column.name,
            "target": column.references.split(".")[0],
            "target_column": column.references.split(".")[1],
        }
        for table in TABLES
        for column in table.columns
        if column.references is not None
    ]
    depth: dict[str, int] = {}

    def depth_of(name: str, seen: tuple[str, ...] = ()) -> int:
        if name not in depth:
            targets = [
                link["target"]
                for link in links
                if link["source"] == name and link["target"] not in (*seen, name)
            ]
            depth[name] = 1 + max((depth_of(t, (*seen, name)) for t in targets), default=-1)
        return depth[name]

    deepest = max(depth_of(name) for name in columns)
    lines = {
        name: [name]
        + [f"{'PK ' if c.primary_key else ''}{c.name} {c.type.value}" for c in table_columns]
        for name, table_columns in columns.items()
    }
    width = {
        name: max(160, int(_CHAR_WIDTH * max(map(len, text))) + 14) for name, text in lines.items()
    }
    place = {name: deepest - depth_of(name) for name in columns}
    column_width = [
        max([width[n] for n in columns if place[n] == c], default=0) for c in range(deepest + 1)
    ]
    column_x = [sum(column_width[:c]) + _COLUMN_GAP * c for c in range(deepest + 1)]
    next_y: dict[int, int] = {}
    nodes: dict[str, dict[str, Any]] = {}
    for name in sorted(columns, key=lambda n: (place[n], n)):
        x, y = column_x[place[name]], next_y.get(place[name], 0)
        height = len(lines[name]) * _LINE_HEIGHT + 4
        node: dict[str, Any] = {
            "name": name,
            "x": x,
            "y": y,
            "w": width[name],
            "h": height,
            "lines": [
                {"text": text, "i": i, "x": x + 6, "y": y + (i + 1) * _LINE_HEIGHT - 4}
                for i, text in enumerate(lines[name])
            ],
        }
        next_y[place[name]] = y + height + 2 * _LINE_HEIGHT
        nodes[name] = node
    for link in links:
        source, target = nodes[link["source"]], nodes[link["target"]]
        source_line = 1 + [c.name for c in columns[link["source"]]].index(link["column"])
        target_line = 1 + [c.name for c in columns[link["target"]]].index(link["target_column"])
        link.update(
            sx=source["x"] + source["w"],
            sy=source["y"] + (source_line + 0.5) * _LINE_HEIGHT,
            tx=target["x"],
            ty=target["y"] + (target_line + 0.5) * _LINE_HEIGHT,
        )
    return {
        "nodes": list(nodes.values()),
        "links": links,
        "width": column_x[-1] + column_width[-1],
        "height": max(next_y.values()),
    }
