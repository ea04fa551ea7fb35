"""Small HELM-format catalogs written from Python, and fresh databases to sync them into.

Creating a database runs the Alembic migrations (a few hundred milliseconds), so an empty
head database is made once per test session and copied for each catalog.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from catalog import Catalog

_template: Path | None = None

DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
"""libyaml's safe dumper where there is one: the same YAML as `yaml.safe_dump`, written faster."""


def model(name: str, tags: Iterable[str] = ("TEXT_MODEL_TAG",)) -> dict[str, Any]:
    return {
        "name": name,
        "display_name": name,
        "description": f"The {name} model.",
        "creator_organization_name": name.split("/")[0].title(),
        "access": "open",
        "release_date": "2024-01-01",
        "tags": list(tags),
    }


def deployment(
    name: str, model_name: str | None = None, *, deprecated: bool = False, tokenizer: str = ""
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": name,
        "client_spec": {"class_name": "helm.clients.simple_client.SimpleClient"},
        "max_sequence_length": 2048,
    }
    if model_name is not None:
        entry["model_name"] = model_name
    if tokenizer:
        entry["tokenizer_name"] = tokenizer
    if deprecated:
        entry["deprecated"] = True
    return entry


def tokenizer(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "tokenizer_spec": {"class_name": "helm.tokenizers.simple_tokenizer.SimpleTokenizer"},
        "end_of_text_token": "</s>",
        "prefix_token": "<s>",
    }


def write_sources(
    directory: Path,
    models: list[dict[str, Any]],
    deployments: list[dict[str, Any]],
    tokenizers: Iterable[dict[str, Any]] = (),
) -> Path:
    """The three HELM files in `directory` (created), as HELM's config directory holds them."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "model_metadata.yaml": {"models": models},
        "model_deployments.yaml": {"model_deployments": deployments},
        "tokenizer_configs.yaml": {"tokenizer_configs": list(tokenizers)},
    }
    for file_name, content in files.items():
        (directory / file_name).write_text(yaml.dump(content, Dumper=DUMPER, sort_keys=False))
    return directory


def empty_database(path: Path) -> Path:
    """A fresh database at the head revision, copied from a per-session template."""
    global _template
    if _template is None or not _template.exists():
        directory = tempfile.mkdtemp(prefix="catalog-template-")
        atexit.register(shutil.rmtree, directory, True)
        template = Path(directory) / "empty.db"
        Catalog.open(template).close()
        _template = template
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_template, path)
    return path


def synced_catalog(directory: Path, *layers: Path) -> Catalog:
    """A new catalog in `directory` synced from `layers` (HELM config directories)."""
    catalog = Catalog.open(empty_database(directory / "catalog.db"))
    catalog.sync(list(layers))
    return catalog
