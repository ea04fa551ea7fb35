"""The catalog's Datasette plugin: its own pages, links into them, and menu entries.

Registered by `catalog serve` alone (catalog.web.server.build_datasette), never through an
entry point, so other Datasette instances on the machine do not change. Being a package with
`templates/` beside it, Datasette finds its templates without a --template-dir.

Pages:

- `/model/<name>`: a model, its default deployment under the policy in force with the reason
  (`chosen_by`), what each policy alone picks, the pin, its deployments, tags and source line.
- `/-/search?q=...`: models, deployments and tokenizers ranked by relevance (`catalog search`).
- `/-/schema`: the tables and their foreign keys, drawn by Vega (the copy datasette-dashboards
  ships, so nothing is fetched from elsewhere and nothing is vendored here).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import datasette
from datasette.utils import tilde_encode
from datasette.utils.asgi import NotFound, Response
from markupsafe import Markup, escape

from catalog.errors import CatalogError
from catalog.web import pages, site

F = TypeVar("F", bound=Callable[..., Any])


def hookimpl(function: F) -> F:
    """Datasette's hook marker, typed: it marks the function and returns it unchanged."""
    return cast(F, datasette.hookimpl(function))


_SEARCH_LIMIT = 50
# Columns that name a model, a deployment or a tokenizer: their cells link to the model's page
# or to the row's page, on table pages (where Datasette may have expanded the value with its
# label) and on row pages (where Datasette 0.65 links nothing), so a deployment's page links its
# model and its tokenizer.
_LINKS = {
    ("models", "display_name"): "model",
    ("deployments", "model_name"): "model",
    ("deployments", "tokenizer_name"): "tokenizers",
    ("pins", "model_name"): "model",
    ("pins", "deployment_name"): "deployments",
    ("model_tags", "model_name"): "model",
    ("shadowed_deployments", "name"): "deployments",
    ("deployment_details", "deployment"): "deployments",
    ("deployment_details", "model"): "model",
    ("deployment_details", "tokenizer"): "tokenizers",
    ("model_default_deployments", "model"): "model",
    ("model_default_deployments", "first_policy_deployment"): "deployments",
    ("model_default_deployments", "last_policy_deployment"): "deployments",
    ("model_default_deployments", "pinned_deployment"): "deployments",
    ("model_default_deployments", "default_deployment"): "deployments",
    ("model_tag_list", "model"): "model",
    ("cache_shards", "model"): "model",
    ("cache_shards", "deployment"): "deployments",
    ("cached_responses", "model"): "model",
    ("cached_responses", "deployment"): "deployments",
}


def model_path(datasette: Any, name: str) -> str:
    return str(datasette.urls.path(f"/model/{name}"))


def row_path(datasette: Any, table: str, name: str) -> str:
    """A row's page; Datasette wants the key tilde-encoded (`together~2Fllama-2-7b`)."""
    return str(datasette.urls.row(site.DATABASE, table, tilde_encode(name)))


async def model_view(datasette: Any, request: Any) -> Any:
    name = request.url_vars["name"]
    database = datasette.get_database(site.DATABASE)
    page = await database.execute_fn(
        lambda connection: pages.model_page(connection, database.path, name)
    )
    if page is None:
        raise NotFound(f"no model named {name!r}")
    context = {
        "database": site.DATABASE,
        "page": page,
        "model": page.model,
        "explanation": page.explanation,
        "row_path": lambda table, key: row_path(datasette, table, key),
        "tag_url": datasette.urls.path(
            f"/{site.DATABASE}/models_with_tag?tag=",
        ),
    }
    html = await datasette.render_template("catalog_model.html", context, request=request)
    return Response.html(html)


async def search_view(datasette: Any, request: Any) -> Any:
    text = request.args.get("q", "").strip()
    hits: list[dict[str, Any]] = []
    error = None
    if text:
        database = datasette.get_database(site.DATABASE)
        try:
            found = await database.execute_fn(
                lambda connection: pages.search_page(connection, database.path, text, _SEARCH_LIMIT)
            )
        except CatalogError as problem:
            error = str(problem)
        else:
            for hit in found:
                href = (
                    model_path(datasette, hit.name)
                    if hit.kind == "model"
                    else row_path(datasette, f"{hit.kind}s", hit.name)
                )
                hits.append({**hit.to_json(), "href": href})
    context = {"database": site.DATABASE, "q": text, "hits": hits, "error": error}
    html = await datasette.render_template("catalog_search.html", context, request=request)
    return Response.html(html)


async def schema_view(datasette: Any, request: Any) -> Any:
    context = {"database": site.DATABASE, "diagram": pages.schema_diagram()}
    html = await datasette.render_template("catalog_schema.html", context, request=request)
    return Response.html(html)


@hookimpl
def register_routes() -> list[tuple[str, Any]]:
    return [
        (r"^/model/(?P<name>.+)$", model_view),  # model names hold a '/'
        (r"^/-/search$", search_view),
        (r"^/-/schema$", schema_view),
    ]


@hookimpl
def render_cell(
    row: Any, value: Any, column: str, table: str | None, database: str, datasette: Any
) -> Any:
    target = _LINKS.get((table or "", column)) if database == site.DATABASE else None
    if target is None:
        return None
    label = value
    if isinstance(value, dict):  # a foreign key Datasette expanded: {"value": ..., "label": ...}
        value, label = value.get("value"), value.get("label") or value.get("value")
    if not isinstance(value, str) or not value:
        return None
    if table == "models":  # the display name links to the page of the row's model
        value = row["name"]
    href = model_path(datasette, value) if target == "model" else row_path(datasette, target, value)
    return Markup(f'<a href="{escape(href)}">{escape(label)}</a>')


@hookimpl
def menu_links(datasette: Any) -> list[dict[str, str]]:
    return [
        {"href": datasette.urls.path("/-/search"), "label": "Search the catalog"},
        {"href": datasette.urls.path(site.CHART_PAGES[0]), "label": "Charts"},
        {"href": datasette.urls.path("/-/schema"), "label": "Schema diagram"},
    ]
