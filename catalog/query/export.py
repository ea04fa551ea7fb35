"""`catalog export`: the catalog back as HELM's three YAML files.

The files are what a sync reads, so syncing an export rebuilds an equal catalog: same entries,
same content, same order. Placeholders are left out because no source defined them; the sync
of the export recreates them from the deployments that need them, exactly as before.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalog.db.schema import DeploymentInfo, ModelInfo, TokenizerInfo
from catalog.query.lookups import list_deployments, list_models, list_tokenizers

if TYPE_CHECKING:
    from catalog.db.connection import CatalogConnection

MODELS_FILE = "model_metadata.yaml"
DEPLOYMENTS_FILE = "model_deployments.yaml"
TOKENIZERS_FILE = "tokenizer_configs.yaml"

_HEADER = (
    "# Written by `catalog export` from a model catalog, in HELM's format.\n"
    "# `catalog sync` of this directory rebuilds the same catalog.\n\n"
)


class _FlowList(list[Any]):
    """A list written inline, `[A, B]`, as HELM writes tags."""


def export_catalog(connection: CatalogConnection, out_dir: Path) -> list[Path]:
    """Write the three files into `out_dir` (created if needed); returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with connection.read():
        documents = {
            TOKENIZERS_FILE: {
                "tokenizer_configs": [
                    _tokenizer_entry(t) for t in list_tokenizers(connection) if not t.is_placeholder
                ]
            },
            MODELS_FILE: {
                "models": [_model_entry(m) for m in list_models(connection) if not m.is_placeholder]
            },
            DEPLOYMENTS_FILE: {
                "model_deployments": [_deployment_entry(d) for d in list_deployments(connection)]
            },
        }
    written = []
    for file_name in (MODELS_FILE, DEPLOYMENTS_FILE, TOKENIZERS_FILE):
        path = out_dir / file_name
        _write_atomically(path, _HEADER + _dump(documents[file_name]))
        written.append(path)
    return written


def _model_entry(model: ModelInfo) -> dict[str, Any]:
    return _without_nulls(
        {
            "name": model.name,
            "display_name": model.display_name,
            "description": model.description,
            "creator_organization_name": model.creator_organization_name,
            "access": model.access,
            "num_parameters": model.num_parameters,
            "release_date": model.release_date,
            "tags": _FlowList(model.tags) if model.tags else None,
        }
    )


def _deployment_entry(deployment: DeploymentInfo) -> dict[str, Any]:
    return _without_nulls(
        {
            "name": deployment.name,
            "deprecated": True if deployment.deprecated else None,
            "model_name": deployment.model_name,
            "tokenizer_name": deployment.tokenizer_name,
            "max_sequence_length": deployment.max_sequence_length,
            "max_request_length": deployment.max_request_length,
            "max_sequence_and_generated_tokens_length": (
                deployment.max_sequence_and_generated_tokens_length
            ),
            "client_spec": _spec(deployment.client_class, deployment.client_args),
            "window_service_spec": _spec(
                deployment.window_service_class, deployment.window_service_args
            ),
        }
    )


def _tokenizer_entry(tokenizer: TokenizerInfo) -> dict[str, Any]:
    return _without_nulls(
        {
            "name": tokenizer.name,
            "tokenizer_spec": _spec(tokenizer.class_name, tokenizer.args),
            "end_of_text_token": tokenizer.end_of_text_token,
            "prefix_token": tokenizer.prefix_token,
        }
    )


def _spec(class_name: str | None, args: dict[str, Any] | None) -> dict[str, Any] | None:
    """A HELM ObjectSpec; `args` only when there are some (HELM's `args: {}` reads the same)."""
    if class_name is None:
        return None
    return _without_nulls({"class_name": class_name, "args": args or None})


def _without_nulls(entry: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in entry.items() if value is not None}


def _dump(document: dict[str, Any]) -> str:
    import yaml

    base: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

    class Dumper(base):  # type: ignore[misc]
        pass

    def flow_list(dumper: Any, data: _FlowList) -> Any:
        return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)

    Dumper.add_representer(_FlowList, flow_list)
    text: str = yaml.dump(
        document,
        Dumper=Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=1_000_000,
    )
    return text


def _write_atomically(path: Path, text: str) -> None:
    """A reader never sees half a file, and a failed export leaves the old file in place."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
