"""`catalog export`: the catalog back as HELM's three YAML files.

The files are what a sync reads, so syncing an export rebuilds an equal catalog: same entries,
same content, same order. Placeholders are left out because no source defined them; the sync
of the export recreates them from the deployments that need them, exactly as before.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from catalog.store import read_snapshot

MODELS_FILE = "model_metadata.yaml"
DEPLOYMENTS_FILE = "model_deployments.yaml"
TOKENIZERS_FILE = "tokenizer_configs.yaml"

_HEADER = (
    "# Written by `catalog export` from a model catalog, in HELM's format.\n"
    "# `catalog sync` of this directory rebuilds the same catalog.\n\n"
)


class _FlowList(list[Any]):
    """A list written inline, `[A, B]`, as HELM writes tags."""


def export_catalog(connection: sqlite3.Connection, out_dir: Path) -> list[Path]:
    """Write the three files into `out_dir` (created if needed); returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with read_snapshot(connection):
        documents = {
            TOKENIZERS_FILE: {"tokenizer_configs": _tokenizers(connection)},
            MODELS_FILE: {"models": _models(connection)},
            DEPLOYMENTS_FILE: {"model_deployments": _deployments(connection)},
        }
    written = []
    for file_name in (MODELS_FILE, DEPLOYMENTS_FILE, TOKENIZERS_FILE):
        path = out_dir / file_name
        _write_atomically(path, _HEADER + _dump(documents[file_name]))
        written.append(path)
    return written


def _models(connection: sqlite3.Connection) -> list[dict[str, Any]]:
    tags: dict[str, list[str]] = {}
    for model_name, tag_name in connection.execute(
        "SELECT model_name, tag_name FROM model_tags ORDER BY model_name, position"
    ):
        tags.setdefault(model_name, []).append(tag_name)
    entries = []
    for (
        name,
        display_name,
        description,
        creator,
        access,
        num_parameters,
        release_date,
    ) in connection.execute(
        "SELECT name, display_name, description, creator_organization_name, access, "
        "num_parameters, release_date FROM models WHERE is_placeholder = 0 ORDER BY position"
    ):
        entry = {
            "name": name,
            "display_name": display_name,
            "description": description,
            "creator_organization_name": creator,
            "access": access,
            "num_parameters": num_parameters,
            "release_date": dt.date.fromisoformat(release_date[:10]) if release_date else None,
            "tags": _FlowList(tags[name]) if tags.get(name) else None,
        }
        entries.append(_without_nulls(entry))
    return entries


def _deployments(connection: sqlite3.Connection) -> list[dict[str, Any]]:
    entries = []
    for (
        name,
        deprecated,
        model_name,
        tokenizer_name,
        max_sequence_length,
        max_request_length,
        max_total_length,
        client_class,
        client_args,
        window_class,
        window_args,
    ) in connection.execute(
        "SELECT name, deprecated, model_name, tokenizer_name, max_sequence_length, "
        "max_request_length, max_sequence_and_generated_tokens_length, client_class, "
        "client_args, window_service_class, window_service_args "
        "FROM deployments ORDER BY position"
    ):
        entry = {
            "name": name,
            "deprecated": True if deprecated else None,
            "model_name": model_name,
            "tokenizer_name": tokenizer_name,
            "max_sequence_length": max_sequence_length,
            "max_request_length": max_request_length,
            "max_sequence_and_generated_tokens_length": max_total_length,
            "client_spec": _spec(client_class, client_args),
            "window_service_spec": _spec(window_class, window_args),
        }
        entries.append(_without_nulls(entry))
    return entries


def _tokenizers(connection: sqlite3.Connection) -> list[dict[str, Any]]:
    entries = []
    for name, class_name, args, end_of_text_token, prefix_token in connection.execute(
        "SELECT name, class_name, args, end_of_text_token, prefix_token FROM tokenizers "
        "WHERE is_placeholder = 0 ORDER BY position"
    ):
        entry = {
            "name": name,
            "tokenizer_spec": _spec(class_name, args),
            "end_of_text_token": end_of_text_token,
            "prefix_token": prefix_token,
        }
        entries.append(_without_nulls(entry))
    return entries


def _spec(class_name: str | None, args_json: str | None) -> dict[str, Any] | None:
    """A HELM ObjectSpec; `args` only when there are some (HELM's `args: {}` reads the same)."""
    if class_name is None:
        return None
    args = json.loads(args_json) if args_json is not None else None
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
