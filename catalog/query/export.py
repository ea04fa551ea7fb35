"""`catalog export`: the catalog back as HELM's three YAML files.

The files are what a sync reads, so syncing an export rebuilds an equal catalog: same entries,
same content, same order. Placeholders are left out because no source defined them; the sync
of the export recreates them from the deployments that need them, exactly as before. A
deployment whose name first appeared earlier than its winning definition (a later layer
redefined it) is written twice, where it first appeared and where it won, as HELM's own list
holds it: HELM's `first` rule reads the first place, its `last` rule the second.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalog.db.schema import DEPLOYMENTS, MODELS, TOKENIZERS, DeploymentInfo, Table
from catalog.errors import ExportError
from catalog.query.lookups import list_deployments, list_models, list_tokenizers

if TYPE_CHECKING:
    from catalog.db.connection import CatalogConnection

MODELS_FILE = "model_metadata.yaml"
DEPLOYMENTS_FILE = "model_deployments.yaml"
TOKENIZERS_FILE = "tokenizer_configs.yaml"
FILE_NAMES = (MODELS_FILE, DEPLOYMENTS_FILE, TOKENIZERS_FILE)

_HEADER = (
    "# Written by `catalog export` from a model catalog, in HELM's format.\n"
    "# `catalog sync` of this directory rebuilds the same catalog.\n\n"
)


class _FlowList(list[Any]):
    """A list written inline, `[A, B]`, as HELM writes tags."""


def export_catalog(
    connection: CatalogConnection,
    out_dir: Path,
    *,
    force: bool = False,
    deployment_order: Callable[[list[DeploymentInfo]], list[DeploymentInfo]] | None = None,
    header: str = _HEADER,
) -> list[Path]:
    """Write the three files into `out_dir` (created if needed); returns their paths.

    A directory already holding any of the three files is refused unless `force` (then each
    replaced file keeps its mode; new files get 0666 less the umask, as `touch` would).
    `deployment_order` lays out the deployments file (catalog.helm.export orders it for one
    HELM version's rule), `header` heads each file.
    """
    present = [out_dir / name for name in FILE_NAMES if (out_dir / name).exists()]
    if present and not force:
        raise ExportError(
            f"{out_dir} already holds {', '.join(p.name for p in present)}; nothing was written",
            hint="give an empty or new directory, or --force to replace them",
        )
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
                    helm_entry(DEPLOYMENTS, d)
                    for d in (deployment_order or in_list_order)(list_deployments(connection))
                ]
            },
        }
    written = []
    for file_name in FILE_NAMES:
        path = out_dir / file_name
        _write_atomically(path, header + _dump(documents[file_name]))
        written.append(path)
    return written


def in_list_order(deployments: list[DeploymentInfo]) -> list[DeploymentInfo]:
    """Each deployment at its position, and again at its first position when a later layer
    redefined it: the order of HELM's list, which both rules read."""
    places = [(d.position, d) for d in deployments]
    places += [(d.first_position, d) for d in deployments if d.first_position != d.position]
    return [d for _, d in sorted(places, key=lambda place: place[0])]


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


def _new_file_mode() -> int:
    """0666 less the process's umask: the mode an ordinary new file gets."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _write_atomically(path: Path, text: str) -> None:
    """A reader never sees half a file, and a failed export leaves the old file in place. The
    file keeps the mode of the one it replaces (a new one: 0666 less the umask)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = _new_file_mode()
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
