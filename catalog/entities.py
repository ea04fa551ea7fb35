"""The frozen records every read returns: callers never see sqlite3 rows or ORM objects.

`to_json()` gives plain JSON-safe dicts (dates as ISO strings) so the CLI's --json output and
scripts see the same shape as the Python API.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelInfo:
    """A model with its tags (YAML order) and deployments (catalog order)."""

    name: str
    creator_prefix: str
    engine: str
    creator_organization_name: str
    display_name: str
    description: str
    access: str
    release_date: dt.date | None
    num_parameters: int | None
    is_placeholder: bool
    tags: tuple[str, ...]
    deployments: tuple[str, ...]
    source_file: str | None
    source_line: int | None
    position: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "creator_prefix": self.creator_prefix,
            "engine": self.engine,
            "creator_organization_name": self.creator_organization_name,
            "display_name": self.display_name,
            "description": self.description,
            "access": self.access,
            "release_date": self.release_date.isoformat() if self.release_date else None,
            "num_parameters": self.num_parameters,
            "is_placeholder": self.is_placeholder,
            "tags": list(self.tags),
            "deployments": list(self.deployments),
            "source_file": self.source_file,
            "source_line": self.source_line,
            "position": self.position,
        }


@dataclass(frozen=True)
class DeploymentInfo:
    """A deployment: which model it serves, on which host, with which client and limits."""

    name: str
    model_name: str
    host_organization: str
    engine: str
    tokenizer_name: str | None
    client_class: str
    client_args: dict[str, Any] | None
    window_service_class: str | None
    window_service_args: dict[str, Any] | None
    max_sequence_length: int | None
    max_request_length: int | None
    max_sequence_and_generated_tokens_length: int | None
    deprecated: bool
    source_file: str | None
    source_line: int | None
    position: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model_name": self.model_name,
            "host_organization": self.host_organization,
            "engine": self.engine,
            "tokenizer_name": self.tokenizer_name,
            "client_class": self.client_class,
            "client_args": self.client_args,
            "window_service_class": self.window_service_class,
            "window_service_args": self.window_service_args,
            "max_sequence_length": self.max_sequence_length,
            "max_request_length": self.max_request_length,
            "max_sequence_and_generated_tokens_length": (
                self.max_sequence_and_generated_tokens_length
            ),
            "deprecated": self.deprecated,
            "source_file": self.source_file,
            "source_line": self.source_line,
            "position": self.position,
        }


@dataclass(frozen=True)
class TokenizerInfo:
    """A tokenizer config and the deployments (catalog order) that use it."""

    name: str
    class_name: str | None
    args: dict[str, Any] | None
    end_of_text_token: str | None
    prefix_token: str | None
    is_placeholder: bool
    source_file: str | None
    source_line: int | None
    position: int
    deployments: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "class_name": self.class_name,
            "args": self.args,
            "end_of_text_token": self.end_of_text_token,
            "prefix_token": self.prefix_token,
            "is_placeholder": self.is_placeholder,
            "source_file": self.source_file,
            "source_line": self.source_line,
            "position": self.position,
            "deployments": list(self.deployments),
        }


@dataclass(frozen=True)
class TagInfo:
    name: str
    model_count: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "model_count": self.model_count}


@dataclass(frozen=True)
class PinInfo:
    """A user's chosen default deployment for a model; `pinned_at` as the database holds it."""

    model_name: str
    deployment_name: str
    pinned_at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "deployment_name": self.deployment_name,
            "pinned_at": self.pinned_at,
        }
