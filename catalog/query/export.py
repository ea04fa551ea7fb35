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

from catalog.db.schema import DEPLOYMENTS, MODELS, TOKENIZERS, Table
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
                    helm_entry(TOKENIZERS, t)
                    for t in list_tokenizers(connection)
                    if not t.is_placeholder
                ]
            },
            MODELS_FILE: {
                "models": [
                    helm_entry(MODELS, m) for m in list_models(connection) if not m.is_placeholder
                ]
            },
            DEPLOYMENTS_FILE: {
                "model_deployments": [
                    helm_entry(DEPLOYMENTS, d) for d in list_deployments(connection)
                ]
            },
        }
    written = []
    for file_name in (MODELS_FILE, DEPLOYMENTS_FILE, TOKENIZERS_FILE):
        path = out_dir / file_name
        _write_atomically(path, _HEADER + _dump(documents[file_name]))
        written.append(path)
    return written


def _absent(value: Any) -> bool:
    """What HELM's files leave out: nulls, false flags, empty args and tag lists."""
    return value is None or value is False or (isinstance(value, (dict, list, tuple)) and not value)


def helm_entry(table: Table, record: Any) -> dict[str, Any]:
    """A record as the entry of HELM's YAML file it came from: the fields the schema maps to
    HELM keys (`client_spec.args` nests), in schema order, absent values left out."""
    entry: dict[str, Any] = {}
    for field_name, key in table.helm_fields:
        value = getattr(record, field_name)
        if _absent(value):
            continue
        if isinstance(value, tuple):
            value = _FlowList(value)
        *parents, leaf = key.split(".")
        place = entry
        for parent in parents:
            place = place.setdefault(parent, {})
        place[leaf] = value
    return entry


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
