"""HELM's registries as its loader builds them from the YAML files: the benchmarks' baseline.

Kept apart from bench_resolve.py so that the baseline's fresh process imports PyYAML and this
file only, as HELM's own process would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class HelmLists:
    """HELM's registries as its loader leaves them: lists with every copy, name dicts."""

    def __init__(self, directory: Path) -> None:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

        def load(name: str, key: str) -> list[dict[str, Any]]:
            with open(directory / name, encoding="utf-8") as file:
                return list(yaml.load(file, Loader=loader).get(key) or [])

        self.models = load("model_metadata.yaml", "models")
        self.model_by_name = {m["name"]: m for m in self.models}
        self.deployments = []
        for entry in load("model_deployments.yaml", "model_deployments"):
            entry.setdefault("model_name", entry["name"])
            self.deployments.append(entry)
            if entry["model_name"] not in self.model_by_name:
                placeholder = {
                    "name": entry["model_name"],
                    "tags": ["TEXT_MODEL_TAG", "FULL_FUNCTIONALITY_TEXT_MODEL_TAG"],
                }
                self.models.append(placeholder)
                self.model_by_name[entry["model_name"]] = placeholder
        self.deployment_by_name = {d["name"]: d for d in self.deployments}
        load("tokenizer_configs.yaml", "tokenizer_configs")

    def default_deployment(self, model: str) -> str | None:
        """HELM PR #1903's get_default_model_deployment_for_model (ignore_deprecated False)."""
        if model in self.deployment_by_name:
            return str(self.deployment_by_name[model]["name"])
        available = [d for d in self.deployments if d["model_name"] == model]
        if not available:
            return None
        live = [d for d in available if not d.get("deprecated")]
        return str((live or available)[0]["name"])

    def names_with_tag(self, tag: str) -> list[str]:
        return [m["name"] for m in self.models if tag in (m.get("tags") or [])]

    def text_group(self) -> list[tuple[str, str | None]]:
        """ModelRunExpander's `text`, then a default deployment for each model."""
        excluded = set(self.names_with_tag("DEPRECATED_MODEL_TAG")) | set(
            self.names_with_tag("UNSUPPORTED_MODEL_TAG")
        )
        members = [m for m in self.names_with_tag("TEXT_MODEL_TAG") if m not in excluded]
        return [(m, self.default_deployment(m)) for m in members]
