"""`catalog.helm_compat`'s predicates and `get_unknown_model_metadata` answer as HELM's own
functions do, on every model of a real snapshot that HELM itself has loaded, and on names
neither knows."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import HELM_CONFIGS, require_shared
from helm_helpers import helm_registries
from helm_yaml import synced_catalog

from catalog import Catalog, helm_compat

_ = helm_registries  # a fixture, used by name
PREDICATES = ("is_vlm", "is_text_to_image_model", "is_audiolm")
UNKNOWN = ("acme/never-heard-of", "openai/not-a-model", "nonsense")


@pytest.fixture
def v0512(tmp_path: Path) -> Iterator[Catalog]:
    catalog = synced_catalog(tmp_path, require_shared(HELM_CONFIGS / "v0.5.12"))
    helm_compat.use_catalog(catalog)
    yield catalog
    catalog.close()


def test_predicates_answer_as_helms_own_on_every_model(
    v0512: Catalog, helm_registries: Any
) -> None:
    from helm.benchmark import model_metadata_registry as helm_models

    helm_models.ALL_MODELS_METADATA.clear()
    helm_models.MODEL_NAME_TO_MODEL_METADATA.clear()
    helm_models.register_model_metadata_from_path(
        str(HELM_CONFIGS / "v0.5.12" / "model_metadata.yaml")
    )
    names = [*v0512.model_names(), *UNKNOWN]
    for predicate in PREDICATES:
        ours = getattr(helm_compat, predicate)
        theirs = getattr(helm_models, predicate)
        assert [ours(n) for n in names] == [theirs(n) for n in names], predicate
    assert any(helm_compat.is_vlm(n) for n in names)
    for tag in ("VISION_LANGUAGE_MODEL_TAG", "TEXT_MODEL_TAG", "DEPRECATED_MODEL_TAG"):
        assert getattr(helm_compat, tag) == getattr(helm_models, tag)
        assert [helm_compat.model_has_tag(n, tag) for n in names] == [
            helm_models.model_has_tag(n, tag) for n in names
        ]


def test_every_tag_constant_of_helm_is_offered(helm_registries: Any) -> None:
    from helm.benchmark import model_metadata_registry as helm_models

    constants = {n for n in vars(helm_models) if n.endswith("_TAG")}
    assert constants and {n for n in constants if not hasattr(helm_compat, n)} == set()
    assert all(getattr(helm_compat, n) == getattr(helm_models, n) for n in constants)


def test_unknown_model_metadata_is_helms(helm_registries: Any) -> None:
    from helm.benchmark import model_metadata_registry as helm_models

    ours = dataclasses.asdict(helm_compat.get_unknown_model_metadata("acme/mystery"))
    theirs = dataclasses.asdict(helm_models.get_unknown_model_metadata("acme/mystery"))
    assert ours == theirs
