"""The one mapping from the catalog's records to the fields of HELM's registry classes.

Two places build HELM's objects from the catalog: the plugin builds HELM's own classes
(`ModelMetadata`, `ModelDeployment`, `TokenizerConfig`) inside helm-run, and catalog.helm_compat
builds look-alikes where HELM is not imported. Both take their fields from here, given the
spec classes to build (HELM's or the look-alikes), so the two can never disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from catalog.db.schema import DeploymentInfo, ModelInfo, TokenizerInfo

SpecClass = Callable[[str, dict[str, Any]], Any]
"""HELM's ObjectSpec subclasses (ClientSpec, ...): built from a class name and args."""


def model_metadata_fields(model: ModelInfo) -> dict[str, Any]:
    """HELM's ModelMetadata fields, `deployment_names` left to the caller (HELM fills it in
    as deployments register)."""
    return {
        "name": model.name,
        "creator_organization_name": model.creator_organization_name,
        "display_name": model.display_name,
        "description": model.description,
        "access": model.access,
        "release_date": model.release_date,
        "tags": list(model.tags),
        "num_parameters": model.num_parameters,
    }


def model_deployment_fields(
    deployment: DeploymentInfo, client_spec: SpecClass, window_service_spec: SpecClass
) -> dict[str, Any]:
    """HELM's ModelDeployment fields; spec args are copied (HELM's objects may be mutated)."""
    window = deployment.window_service_class
    return {
        "name": deployment.name,
        "client_spec": client_spec(deployment.client_class, dict(deployment.client_args or {})),
        "model_name": deployment.model_name,
        "tokenizer_name": deployment.tokenizer_name,
        "window_service_spec": (
            window_service_spec(window, dict(deployment.window_service_args or {}))
            if window
            else None
        ),
        "max_sequence_length": deployment.max_sequence_length,
        "max_request_length": deployment.max_request_length,
        "max_sequence_and_generated_tokens_length": (
            deployment.max_sequence_and_generated_tokens_length
        ),
        "deprecated": deployment.deprecated,
    }


def tokenizer_config_fields(tokenizer: TokenizerInfo, tokenizer_spec: SpecClass) -> dict[str, Any]:
    """HELM's TokenizerConfig fields (a placeholder tokenizer has no config: not for one)."""
    assert tokenizer.class_name is not None, "a placeholder tokenizer has no config"
    return {
        "name": tokenizer.name,
        "tokenizer_spec": tokenizer_spec(tokenizer.class_name, dict(tokenizer.args or {})),
        "end_of_text_token": tokenizer.end_of_text_token,
        "prefix_token": tokenizer.prefix_token,
    }
