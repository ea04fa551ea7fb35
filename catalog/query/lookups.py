"""Reading the catalog: one model, deployment or tokenizer, and filtered listings.

Every lookup is one indexed query per table it needs (name primary keys, the indexes on
model_tags.tag_name, deployments.model_name/host_organization/tokenizer_name), so a `show`
costs the same on a catalog of ten models or ten thousand. Rows become records through
catalog.db.rows; a lookup that reads several tables does it in one read transaction. The full
name list is read only on the error path, to suggest close names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from catalog.db import rows
from catalog.db.schema import (
    DEPLOYMENTS,
    MODELS,
    TOKENIZERS,
    DeploymentInfo,
    ModelInfo,
    TagInfo,
    TokenizerInfo,
)
from catalog.errors import (
    UnknownDeploymentError,
    UnknownModelError,
    UnknownNameError,
    UnknownTagError,
    UnknownTokenizerError,
)

if TYPE_CHECKING:
    from catalog.db.connection import CatalogConnection

R = TypeVar("R")

_MODEL = rows.RecordReader[ModelInfo](MODELS)
_DEPLOYMENT = rows.RecordReader[DeploymentInfo](DEPLOYMENTS)
_TOKENIZER = rows.RecordReader[TokenizerInfo](TOKENIZERS)
_UNKNOWN: dict[str, type[UnknownNameError]] = {
    "models": UnknownModelError,
    "deployments": UnknownDeploymentError,
    "tokenizers": UnknownTokenizerError,
}


def names(connection: CatalogConnection, table: str) -> list[str]:
    """Every name of `table` (a fixed table name) in catalog order, for suggestions."""
    return [row[0] for row in connection.execute(f"SELECT name FROM {table} ORDER BY position")]


def _column(connection: CatalogConnection, sql: str, params: Sequence[Any]) -> list[Any]:
    return [row[0] for row in connection.execute(sql, params)]


def _require(connection: CatalogConnection, table: str, name: str) -> None:
    if connection.execute(f"SELECT 1 FROM {table} WHERE name = ?", (name,)).fetchone() is None:
        raise _UNKNOWN[table](name, names(connection, table))


def require_model(connection: CatalogConnection, name: str) -> None:
    """UnknownModelError (with suggestions) unless the catalog holds model `name`."""
    _require(connection, "models", name)


def require_tag(connection: CatalogConnection, tag: str) -> None:
    if connection.execute("SELECT 1 FROM tags WHERE name = ?", (tag,)).fetchone() is None:
        known = [row[0] for row in connection.execute("SELECT name FROM tags ORDER BY name")]
        raise UnknownTagError(tag, known)


# Single lookups --------------------------------------------------------------------------------


def _one_with_users(
    connection: CatalogConnection,
    reader: rows.RecordReader[R],
    name: str,
    related: dict[str, str],
) -> R:
    """One row of `reader`'s table by name, with each related field filled by its query (one
    name parameter, one column), all in one read transaction."""
    table = reader.table.name
    with connection.read():
        found = connection.execute(
            rows.select_sql(reader.table, "t") + " WHERE t.name = ?", (name,)
        )
        row = found.fetchone()
        if row is None:
            raise _UNKNOWN[table](name, names(connection, table))
        values = {field: tuple(_column(connection, sql, (name,))) for field, sql in related.items()}
    return reader(row, **values)


def get_model(connection: CatalogConnection, name: str) -> ModelInfo:
    return _one_with_users(
        connection,
        _MODEL,
        name,
        {
            "tags": "SELECT tag_name FROM model_tags WHERE model_name = ? ORDER BY position",
            "deployments": "SELECT name FROM deployments WHERE model_name = ? ORDER BY position",
        },
    )


def require_deployment(connection: CatalogConnection, name: str) -> DeploymentInfo:
    """The deployment `name`; UnknownDeploymentError (with suggestions) if there is none."""
    found = connection.execute(rows.select_sql(DEPLOYMENTS, "d") + " WHERE d.name = ?", (name,))
    row = found.fetchone()
    if row is None:
        raise UnknownDeploymentError(name, names(connection, "deployments"))
    return _DEPLOYMENT(row)


get_deployment = require_deployment


def get_tokenizer(connection: CatalogConnection, name: str) -> TokenizerInfo:
    return _one_with_users(
        connection,
        _TOKENIZER,
        name,
        {"deployments": "SELECT name FROM deployments WHERE tokenizer_name = ? ORDER BY position"},
    )


# Listings ---------------------------------------------------------------------------------------


def _host_as_stored(connection: CatalogConnection, host: str) -> str:
    """`host` as the catalog spells it (`Together` -> `together`): looked up exactly first, on
    the index, and ignoring case only if that finds nothing."""
    found = connection.execute(
        "SELECT 1 FROM deployments WHERE host_organization = ? LIMIT 1", (host,)
    ).fetchone()
    if found is not None:
        return host
    spelled = connection.execute(
        "SELECT DISTINCT host_organization FROM deployments WHERE "
        + connection.equals_ignoring_case("host_organization"),
        (host,),
    ).fetchone()
    return host if spelled is None else str(spelled[0])


def list_models(
    connection: CatalogConnection,
    *,
    tag: str | None = None,
    creator: str | None = None,
    host: str | None = None,
) -> list[ModelInfo]:
    """Models in catalog order; filters combine with AND.

    `creator` matches the name prefix (`meta`) or, ignoring case, the creator organization
    name (`Meta`); `host` ignores case too (`Together`). An unknown tag raises UnknownTagError
    (a typo should not look like "none").
    """
    conditions: list[str] = []
    params: list[Any] = []
    with connection.read():
        if tag is not None:
            require_tag(connection, tag)
            conditions.append("m.name IN (SELECT model_name FROM model_tags WHERE tag_name = ?)")
            params.append(tag)
        if creator is not None:
            organization = connection.equals_ignoring_case("m.creator_organization_name")
            conditions.append(f"(m.creator_prefix = ? OR {organization})")
            params += [creator, creator]
        if host is not None:
            conditions.append(
                "m.name IN (SELECT model_name FROM deployments WHERE host_organization = ?)"
            )
            params.append(_host_as_stored(connection, host))
        where = " WHERE " + " AND ".join(conditions) if conditions else ""
        return _models_where(connection, where, params)


def _models_where(connection: CatalogConnection, where: str, params: list[Any]) -> list[ModelInfo]:
    """Models matching `where` (fixed SQL text; values in `params`) with tags and deployments."""
    selected = f"SELECT m.name FROM models AS m{where}"
    found = connection.execute(
        rows.select_sql(MODELS, "m") + where + " ORDER BY m.position", params
    ).fetchall()
    tags: dict[str, list[str]] = {}
    for model_name, tag_name in connection.execute(
        f"SELECT model_name, tag_name FROM model_tags WHERE model_name IN ({selected}) "
        "ORDER BY model_name, position",
        params,
    ):
        tags.setdefault(model_name, []).append(tag_name)
    deployments: dict[str, list[str]] = {}
    for model_name, deployment_name in connection.execute(
        f"SELECT model_name, name FROM deployments WHERE model_name IN ({selected}) "
        "ORDER BY position",
        params,
    ):
        deployments.setdefault(model_name, []).append(deployment_name)
    return [
        _MODEL(
            row,
            tags=tuple(tags.get(row[0], ())),
            deployments=tuple(deployments.get(row[0], ())),
        )
        for row in found
    ]


def list_deployments(
    connection: CatalogConnection,
    *,
    model: str | None = None,
    host: str | None = None,
    tokenizer: str | None = None,
    include_deprecated: bool = True,
    cached: bool = False,
) -> list[DeploymentInfo]:
    """Deployments in catalog order; an unknown model or tokenizer raises with suggestions.

    `cached`: only deployments with cached responses, by the view `cached_responses` (the
    last `catalog cache scan` of each cache directory)."""
    conditions: list[str] = []
    params: list[Any] = []
    with connection.read():
        if model is not None:
            require_model(connection, model)
            conditions.append("d.model_name = ?")
            params.append(model)
        if host is not None:
            conditions.append("d.host_organization = ?")
            params.append(_host_as_stored(connection, host))
        if tokenizer is not None:
            _require(connection, "tokenizers", tokenizer)
            conditions.append("d.tokenizer_name = ?")
            params.append(tokenizer)
        if not include_deprecated:
            conditions.append("d.deprecated = ?")
            params.append(False)
        if cached:
            conditions.append(
                "d.name IN (SELECT deployment FROM cached_responses WHERE entries > 0)"
            )
        where = " WHERE " + " AND ".join(conditions) if conditions else ""
        found = connection.execute(
            rows.select_sql(DEPLOYMENTS, "d") + where + " ORDER BY d.position", params
        )
        return [_DEPLOYMENT(row) for row in found]


def list_tokenizers(connection: CatalogConnection) -> list[TokenizerInfo]:
    """Tokenizers in catalog order, each with the deployments that use it."""
    users: dict[str, list[str]] = {}
    with connection.read():
        for tokenizer_name, deployment_name in connection.execute(
            "SELECT tokenizer_name, name FROM deployments WHERE tokenizer_name IS NOT NULL "
            "ORDER BY position"
        ):
            users.setdefault(tokenizer_name, []).append(deployment_name)
        found = connection.execute(rows.select_sql(TOKENIZERS, "t") + " ORDER BY t.position")
        return [_TOKENIZER(row, deployments=tuple(users.get(row[0], ()))) for row in found]


def list_tags(connection: CatalogConnection) -> list[TagInfo]:
    """Every tag by name, with how many models carry it."""
    found = connection.execute(
        "SELECT t.name, count(mt.model_name) FROM tags AS t "
        "LEFT JOIN model_tags AS mt ON mt.tag_name = t.name GROUP BY t.name ORDER BY t.name"
    )
    return [TagInfo(name, count) for name, count in found]
