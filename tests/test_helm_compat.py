"""`catalog.helm_compat` answers exactly as HELM's registries would from the same YAML files.

The reference below is HELM's own logic, re-implemented over `yaml.safe_load` output: lists that
keep every copy of a duplicated name, dicts where the last copy wins, placeholder metadata for
models only deployments mention, and a first-match (or last-match) scan for default deployments.
Where the catalog deliberately differs, the reference follows it: a duplicated name is listed
once, and a YAML date inside spec args is an ISO string (the catalog keeps args as JSON).
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import HELM_CONFIGS, SnapshotTemplate, copy_catalog, require_shared
from helm_yaml import synced_catalog

from catalog import Catalog, helm_compat

PLACEHOLDER_TAGS = ["TEXT_MODEL_TAG", "FULL_FUNCTIONALITY_TEXT_MODEL_TAG"]
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _json_args(args: dict[str, Any] | None) -> dict[str, Any]:
    """Spec args as the catalog's JSON columns hold them: YAML dates become ISO strings."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value.isoformat() if isinstance(value, dt.date) else value

    return plain(args or {})  # type: ignore[no-any-return]


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


class HelmReference:
    """HELM's registries, loaded from one config directory the way HELM loads them."""

    def __init__(self, directory: Path) -> None:
        def load(name: str, key: str) -> list[dict[str, Any]]:
            with open(directory / name, encoding="utf-8") as file:
                return list((yaml.load(file, Loader=Loader) or {}).get(key) or [])

        self.models = load("model_metadata.yaml", "models")
        self.model_by_name = {m["name"]: m for m in self.models}
        self.tokenizer_by_name = {
            t["name"]: t for t in load("tokenizer_configs.yaml", "tokenizer_configs")
        }
        self.deployments: list[dict[str, Any]] = []
        self.deployment_by_name: dict[str, dict[str, Any]] = {}
        self.deployment_names: dict[str, list[str] | None] = {}
        for raw in load("model_deployments.yaml", "model_deployments"):
            entry = {**raw, "model_name": raw.get("model_name") or raw["name"]}
            self.deployments.append(entry)
            self.deployment_by_name[entry["name"]] = entry
            model_name = entry["model_name"]
            if model_name not in self.model_by_name:
                placeholder = {
                    "name": model_name,
                    "creator_organization_name": "Unknown",
                    "display_name": model_name,
                    "description": model_name,
                    "access": "open",
                    "tags": list(PLACEHOLDER_TAGS),
                }
                self.models.append(placeholder)
                self.model_by_name[model_name] = placeholder
            # register_model_deployment's bookkeeping of ModelMetadata.deployment_names
            current = self.deployment_names.get(model_name)
            if entry["name"] not in (current if current is not None else [model_name]):
                self.deployment_names[model_name] = [*(current or []), entry["name"]]

    def all_models(self) -> list[str]:
        return list(self.model_by_name)

    def names_with_tag(self, tag: str) -> list[str]:
        return _unique([m["name"] for m in self.models if tag in (m.get("tags") or [])])

    def default_first(self, name: str, ignore_deprecated: bool) -> str | None:
        if name in self.deployment_by_name:
            same = self.deployment_by_name[name]
            if bool(same.get("deprecated")) and ignore_deprecated:
                return None
            return str(same["name"])
        available = [d for d in self.deployments if d["model_name"] == name]
        if not available:
            return None
        usable = [d for d in available if not d.get("deprecated")]
        if usable:
            return str(usable[0]["name"])
        return None if ignore_deprecated else str(available[0]["name"])

    def default_last(self, name: str, ignore_deprecated: bool) -> str | None:
        available = [d for d in self.deployments if d["model_name"] == name]
        if available:
            usable = [d for d in available if not d.get("deprecated")]
            if usable:
                return str(usable[-1]["name"])
            return None if ignore_deprecated else str(available[-1]["name"])
        same = self.deployment_by_name.get(name)
        if same is None or (bool(same.get("deprecated")) and ignore_deprecated):
            return None
        return str(same["name"])


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory, snapshot_template: Callable[[str], SnapshotTemplate]
) -> Iterator[Callable[[Path], Any]]:
    """Per snapshot, once per module: (catalog, reference)."""
    cache: dict[Path, tuple[Catalog, HelmReference]] = {}

    def get(snapshot: Path) -> tuple[Catalog, HelmReference]:
        if snapshot not in cache:
            template = snapshot_template(snapshot.name).path
            catalog = copy_catalog(template, tmp_path_factory.mktemp(snapshot.name) / "catalog.db")
            cache[snapshot] = (catalog, HelmReference(snapshot))
        catalog, reference = cache[snapshot]
        helm_compat.use_catalog(catalog)
        return catalog, reference

    yield get
    for catalog, _ in cache.values():
        catalog.close()


def test_models_and_tags(snapshot_dir: Path, built: Callable[[Path], Any]) -> None:
    _, ref = built(snapshot_dir)
    assert helm_compat.get_all_models() == ref.all_models()
    tags = {tag for m in ref.models for tag in (m.get("tags") or [])}
    for tag in sorted(tags):
        assert helm_compat.get_model_names_with_tag(tag) == ref.names_with_tag(tag), tag
    assert helm_compat.get_model_names_with_tag("NO_SUCH_TAG") == []
    assert helm_compat.get_all_text_models() == ref.names_with_tag("TEXT_MODEL_TAG")
    assert helm_compat.get_all_code_models() == ref.names_with_tag("CODE_MODEL_TAG")
    assert helm_compat.get_all_instruction_following_models() == ref.names_with_tag(
        "INSTRUCTION_FOLLOWING_MODEL_TAG"
    )


def test_model_metadata_of_every_model(snapshot_dir: Path, built: Callable[[Path], Any]) -> None:
    _, ref = built(snapshot_dir)
    for name, raw in ref.model_by_name.items():
        metadata = helm_compat.get_model_metadata(name)
        release = raw.get("release_date")
        assert (
            metadata.name,
            metadata.creator_organization_name,
            metadata.display_name,
            metadata.description,
            metadata.access,
            metadata.release_date,
            metadata.tags,
            metadata.num_parameters,
            metadata.deployment_names,
        ) == (
            name,
            raw["creator_organization_name"],
            raw["display_name"],
            raw["description"],
            raw["access"],
            dt.date.fromisoformat(release) if isinstance(release, str) else release,
            list(raw.get("tags") or []),
            raw.get("num_parameters"),
            ref.deployment_names.get(name),
        ), name
        assert metadata.creator_organization == name.split("/")[0]
        for tag in metadata.tags[:1]:
            assert helm_compat.model_has_tag(name, tag)
        assert not helm_compat.model_has_tag(name, "NO_SUCH_TAG")
    with pytest.raises(ValueError, match="unknown model"):
        helm_compat.get_model_metadata("nobody/nothing")


def test_every_deployment(snapshot_dir: Path, built: Callable[[Path], Any]) -> None:
    _, ref = built(snapshot_dir)
    for name, raw in ref.deployment_by_name.items():
        got = helm_compat.get_model_deployment(name)
        window = raw.get("window_service_spec")
        assert (
            got.name,
            got.model_name,
            got.tokenizer_name,
            got.client_spec.class_name,
            got.client_spec.args,
            got.window_service_spec.class_name if got.window_service_spec else None,
            got.window_service_spec.args if got.window_service_spec else None,
            got.max_sequence_length,
            got.max_request_length,
            got.max_sequence_and_generated_tokens_length,
            got.deprecated,
            got.host_organization,
            got.engine,
        ) == (
            name,
            raw["model_name"],
            raw.get("tokenizer_name"),
            raw["client_spec"]["class_name"],
            _json_args(raw["client_spec"].get("args")),
            window["class_name"] if window else None,
            _json_args(window.get("args")) if window else None,
            raw.get("max_sequence_length"),
            raw.get("max_request_length"),
            raw.get("max_sequence_and_generated_tokens_length"),
            bool(raw.get("deprecated")),
            name.split("/")[0],
            name.split("/")[1],
        ), name
    with pytest.raises(ValueError, match="unknown deployment"):
        helm_compat.get_model_deployment("nobody/nothing")


def test_hosts_and_tokenizers(snapshot_dir: Path, built: Callable[[Path], Any]) -> None:
    _, ref = built(snapshot_dir)
    first_copies: dict[str, dict[str, Any]] = {}
    for entry in ref.deployments:
        first_copies.setdefault(entry["name"], entry)
    for host in {d["name"].split("/")[0] for d in ref.deployments}:
        expected = [d["name"] for d in first_copies.values() if d["name"].split("/")[0] == host]
        assert helm_compat.get_model_deployments_by_host_organization(host) == expected
    tokenizers = set(ref.tokenizer_by_name) | {
        d["tokenizer_name"] for d in ref.deployments if d.get("tokenizer_name")
    }
    for tokenizer in tokenizers:
        expected = [
            d["model_name"] for d in first_copies.values() if d.get("tokenizer_name") == tokenizer
        ]
        assert helm_compat.get_model_names_with_tokenizer(tokenizer) == expected, tokenizer
        raw = ref.tokenizer_by_name.get(tokenizer)
        config = helm_compat.get_tokenizer_config(tokenizer)
        if raw is None:
            assert config is None
            continue
        assert config is not None
        assert (
            config.name,
            config.tokenizer_spec.class_name,
            config.tokenizer_spec.args,
            config.end_of_text_token,
            config.prefix_token,
        ) == (
            tokenizer,
            raw["tokenizer_spec"]["class_name"],
            _json_args(raw["tokenizer_spec"].get("args")),
            raw.get("end_of_text_token"),
            raw.get("prefix_token"),
        )
    assert helm_compat.get_tokenizer_config("nobody/nothing") is None


@pytest.mark.parametrize("policy", ["first", "last"])
def test_default_deployment_of_every_name(
    snapshot_dir: Path, built: Callable[[Path], Any], policy: str
) -> None:
    catalog, ref = built(snapshot_dir)
    reference = ref.default_first if policy == "first" else ref.default_last
    catalog.set_setting("policy", policy)
    try:
        names = [*ref.model_by_name, *ref.deployment_by_name, "nobody/nothing"]
        for name in names:
            for ignore in (False, True):
                got = helm_compat.get_default_model_deployment_for_model(
                    name, ignore_deprecated=ignore
                )
                assert got == reference(name, ignore), (name, ignore)
    finally:
        catalog.set_setting("policy", "first")


@pytest.mark.slow  # the first call in a fresh process opens CATALOG_DB (then kept per process)
def test_default_opens_the_default_catalog(tmp_path: Path) -> None:
    source = require_shared(HELM_CONFIGS / "2023-11-17-pr1903")
    catalog = synced_catalog(tmp_path, source)
    catalog.close()
    code = (
        "from catalog import helm_compat\n"
        "print(len(helm_compat.get_all_models()))\n"
        "print(helm_compat.get_default_model_deployment_for_model('meta/llama-2-7b'))\n"
    )
    env = {**os.environ, "CATALOG_DB": str(catalog.path)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["132", "together/llama-2-7b"]
