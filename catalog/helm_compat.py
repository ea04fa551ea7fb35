"""HELM's registry functions, with HELM's names, arguments and return shapes, read from a catalog.

Code written against `helm.benchmark.model_metadata_registry`, `model_deployment_registry` and
`tokenizer_config_registry` can import these instead and read the catalog database (which may
hold several layers, pins and a policy) without loading any YAML. Choose the catalog with
`use_catalog(path_or_catalog)`; by default `Catalog.open()` is used on first call.

Where the catalog knows more than HELM's globals, it answers as the catalog: the default
deployment honours pins and the database's policy setting. Three shapes differ from HELM's
registries on purpose: a name defined twice is listed once (HELM's list keeps both copies), a
placeholder model has no release date (HELM stamps the day it loaded the files), and a date
written unquoted inside spec args is its ISO string (the catalog stores args as JSON).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import warnings
from dataclasses import dataclass, field
from typing import Any

from catalog import resolution
from catalog.api import Catalog
from catalog.errors import UnknownDeploymentError, UnknownModelError

TEXT_MODEL_TAG = "TEXT_MODEL_TAG"
CODE_MODEL_TAG = "CODE_MODEL_TAG"
INSTRUCTION_FOLLOWING_MODEL_TAG = "INSTRUCTION_FOLLOWING_MODEL_TAG"


class UnknownModelMetadataError(UnknownModelError, ValueError):
    """HELM raises ValueError for a model without metadata; so does this module."""


@dataclass(frozen=True)
class ObjectSpec:
    class_name: str
    args: dict[str, Any] = field(default_factory=dict)


class ClientSpec(ObjectSpec):
    pass


class WindowServiceSpec(ObjectSpec):
    pass


class TokenizerSpec(ObjectSpec):
    pass


@dataclass(frozen=True)
class ModelMetadata:
    name: str
    creator_organization_name: str
    display_name: str
    description: str
    access: str
    release_date: dt.date | None
    tags: list[str] = field(default_factory=list)
    num_parameters: int | None = None
    deployment_names: list[str] | None = None

    @property
    def creator_organization(self) -> str:
        return self.name.split("/")[0]

    @property
    def engine(self) -> str:
        return self.name.split("/")[1]


@dataclass(frozen=True)
class ModelDeployment:
    name: str
    client_spec: ClientSpec
    model_name: str | None = None
    tokenizer_name: str | None = None
    window_service_spec: WindowServiceSpec | None = None
    max_sequence_length: int | None = None
    max_request_length: int | None = None
    max_sequence_and_generated_tokens_length: int | None = None
    deprecated: bool = False
    host_organization: str = ""
    engine: str = ""


@dataclass(frozen=True)
class TokenizerConfig:
    name: str
    tokenizer_spec: TokenizerSpec
    end_of_text_token: str | None = None
    prefix_token: str | None = None


_catalog: Catalog | None = None


def use_catalog(path_or_catalog: Catalog | str | os.PathLike[str] | None = None) -> Catalog:
    """Answer from this catalog from now on (a Catalog, or a path / URL to open)."""
    global _catalog
    if isinstance(path_or_catalog, Catalog):
        _catalog = path_or_catalog
    else:
        _catalog = Catalog.open(path_or_catalog)
    return _catalog


def _connection() -> sqlite3.Connection:
    if _catalog is None:
        use_catalog(None)
    assert _catalog is not None
    return _catalog.connection


# model_metadata_registry ---------------------------------------------------------------------


def get_model_metadata(model_name: str) -> ModelMetadata:
    connection = _connection()
    row = connection.execute(
        "SELECT name, creator_organization_name, display_name, description, access, "
        "release_date, num_parameters, is_placeholder FROM models WHERE name = ?",
        (model_name,),
    ).fetchone()
    if row is None:
        known = [r[0] for r in connection.execute("SELECT name FROM models")]
        raise UnknownModelMetadataError(model_name, known)
    name, creator, display, description, access, release, parameters, _placeholder = row
    tags = [
        r[0]
        for r in connection.execute(
            "SELECT tag_name FROM model_tags WHERE model_name = ? ORDER BY position", (name,)
        )
    ]
    return ModelMetadata(
        name=name,
        creator_organization_name=creator,
        display_name=display,
        description=description,
        access=access,
        release_date=dt.date.fromisoformat(release) if release else None,
        tags=tags,
        num_parameters=parameters,
        deployment_names=_deployment_names(connection, name),
    )


def _deployment_names(connection: sqlite3.Connection, model: str) -> list[str] | None:
    """HELM's `deployment_names` as its registry leaves it after loading the deployments.

    HELM starts from None, treats None as [model name], and appends each deployment not yet
    listed; so a model served only under its own name keeps None, and the own-name deployment
    is listed only if another deployment came before it.
    """
    names: list[str] | None = None
    for (deployment,) in connection.execute(
        "SELECT name FROM deployments WHERE model_name = ? ORDER BY first_position", (model,)
    ):
        if deployment not in (names if names is not None else [model]):
            names = (names or []) + [deployment]
    return names


def get_all_models() -> list[str]:
    return [r[0] for r in _connection().execute("SELECT name FROM models ORDER BY position")]


def get_model_names_with_tag(tag: str) -> list[str]:
    rows = _connection().execute(
        "SELECT m.name FROM model_tags AS t JOIN models AS m ON m.name = t.model_name "
        "WHERE t.tag_name = ? ORDER BY m.position",
        (tag,),
    )
    return [r[0] for r in rows]


def model_has_tag(model_name: str, tag: str) -> bool:
    return tag in get_model_metadata(model_name).tags


def get_all_text_models() -> list[str]:
    return get_model_names_with_tag(TEXT_MODEL_TAG)


def get_all_code_models() -> list[str]:
    return get_model_names_with_tag(CODE_MODEL_TAG)


def get_all_instruction_following_models() -> list[str]:
    return get_model_names_with_tag(INSTRUCTION_FOLLOWING_MODEL_TAG)


# model_deployment_registry -------------------------------------------------------------------

_DEPLOYMENT_COLUMNS = (
    "name, client_class, client_args, model_name, tokenizer_name, window_service_class, "
    "window_service_args, max_sequence_length, max_request_length, "
    "max_sequence_and_generated_tokens_length, deprecated, host_organization, engine"
)


def _deployment(row: tuple[Any, ...]) -> ModelDeployment:
    (name, client_class, client_args, model_name, tokenizer, window_class, window_args) = row[:7]
    return ModelDeployment(
        name=name,
        client_spec=ClientSpec(client_class, _json(client_args)),
        model_name=model_name,
        tokenizer_name=tokenizer,
        window_service_spec=(
            WindowServiceSpec(window_class, _json(window_args)) if window_class else None
        ),
        max_sequence_length=row[7],
        max_request_length=row[8],
        max_sequence_and_generated_tokens_length=row[9],
        deprecated=bool(row[10]),
        host_organization=row[11],
        engine=row[12],
    )


def _json(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


def get_model_deployment(name: str, warn_deprecated: bool = False) -> ModelDeployment:
    """Raises UnknownDeploymentError, a ValueError, for an unknown name (as HELM does)."""
    connection = _connection()
    row = connection.execute(
        f"SELECT {_DEPLOYMENT_COLUMNS} FROM deployments WHERE name = ?", (name,)
    ).fetchone()
    if row is None:
        known = [r[0] for r in connection.execute("SELECT name FROM deployments")]
        raise UnknownDeploymentError(name, known)
    deployment = _deployment(row)
    if deployment.deprecated and warn_deprecated:
        warnings.warn(f"model deployment {name} is deprecated", stacklevel=2)
    return deployment


def get_model_deployment_host_organization(name: str) -> str:
    return get_model_deployment(name).host_organization


def get_model_deployments_by_host_organization(host_organization: str) -> list[str]:
    """Names of the deployments on this host, in catalog order."""
    rows = _connection().execute(
        "SELECT name FROM deployments WHERE host_organization = ? ORDER BY first_position",
        (host_organization,),
    )
    return [r[0] for r in rows]


def get_model_names_with_tokenizer(tokenizer_name: str) -> list[str]:
    """The model of each deployment using this tokenizer (a model once per deployment)."""
    rows = _connection().execute(
        "SELECT model_name FROM deployments WHERE tokenizer_name = ? ORDER BY first_position",
        (tokenizer_name,),
    )
    return [r[0] for r in rows]


def get_default_model_deployment_for_model(
    model_name: str, warn_arg_deprecated: bool = False, ignore_deprecated: bool = False
) -> str | None:
    """HELM's default deployment of a model (or of any name, as HELM accepts any); None if
    there is none. Pins and the database's policy setting apply."""
    chosen = resolution.helm_default(_connection(), model_name, ignore_deprecated=ignore_deprecated)
    if warn_arg_deprecated and chosen is not None and chosen != model_name:
        warnings.warn(
            f"model name {model_name} is used where a deployment is expected; "
            f"{chosen} was chosen; name the model deployment explicitly",
            stacklevel=2,
        )
    return chosen


# tokenizer_config_registry -------------------------------------------------------------------


def get_tokenizer_config(name: str) -> TokenizerConfig | None:
    """None for an unknown tokenizer, and for one deployments name but nobody configured."""
    row = (
        _connection()
        .execute(
            "SELECT name, class_name, args, end_of_text_token, prefix_token FROM tokenizers "
            "WHERE name = ? AND NOT is_placeholder",
            (name,),
        )
        .fetchone()
    )
    if row is None:
        return None
    return TokenizerConfig(
        name=row[0],
        tokenizer_spec=TokenizerSpec(row[1], _json(row[2])),
        end_of_text_token=row[3],
        prefix_token=row[4],
    )
