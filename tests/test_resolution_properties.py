"""Properties of resolution on generated catalogs, each synced into a fresh database.

Names come from small pools so that generated catalogs hit the interesting cases often: a
deployment named like a model (possibly serving another one), duplicated names, models without
deployments, deployments of models without metadata (placeholders), all-deprecated models.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helm_yaml import deployment, model, synced_catalog, write_sources
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog import Catalog
from catalog.errors import CatalogError

MODEL_NAMES = [f"m/{i}" for i in range(5)]
HOST_NAMES = [f"h{j}/x{k}" for j in range(3) for k in range(3)]
TAGS = ["TEXT_MODEL_TAG", "CODE_MODEL_TAG", "ABLATION_MODEL_TAG", "DEPRECATED_MODEL_TAG"]
POLICIES = ("first", "last")


@dataclass(frozen=True)
class Generated:
    models: list[dict[str, Any]]
    deployments: list[dict[str, Any]]
    pins: dict[int, int]
    """Model index -> which of its deployments to pin (modulo their number)."""


@st.composite
def catalogs(draw: st.DrawFn) -> Generated:
    names = draw(st.lists(st.sampled_from(MODEL_NAMES), min_size=1, max_size=5, unique=True))
    models = [model(n, tags=draw(st.lists(st.sampled_from(TAGS), unique=True))) for n in names]
    entries = []
    for _ in range(draw(st.integers(0, 8))):
        name = draw(st.sampled_from(HOST_NAMES + MODEL_NAMES))
        served = draw(st.none() | st.sampled_from([*names, "m/9"]))
        entries.append(deployment(name, served, deprecated=draw(st.booleans())))
    pins = draw(st.dictionaries(st.integers(0, len(names) - 1), st.integers(0, 7), max_size=2))
    return Generated(models, entries, pins)


@contextmanager
def opened(generated: Generated) -> Iterator[Catalog]:
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        source = write_sources(root / "src", generated.models, generated.deployments)
        catalog = synced_catalog(root, source)
        try:
            yield catalog
        finally:
            catalog.close()


def deployments_of(catalog: Catalog) -> dict[str, tuple[str, bool]]:
    rows = catalog.connection.execute("SELECT name, model_name, deprecated FROM deployments")
    return {name: (served, bool(deprecated)) for name, served, deprecated in rows}


def model_names(catalog: Catalog) -> list[str]:
    return [row[0] for row in catalog.connection.execute("SELECT name FROM models")]


def apply_pins(catalog: Catalog, generated: Generated) -> dict[str, str]:
    served: dict[str, list[str]] = {}
    for name, (model_name, _) in deployments_of(catalog).items():
        served.setdefault(model_name, []).append(name)
    pinned = {}
    for index, choice in generated.pins.items():
        model_name = generated.models[index]["name"]
        options = sorted(served.get(model_name, []))
        if options:
            pinned[model_name] = options[choice % len(options)]
            catalog.pin(model_name, pinned[model_name])
    return pinned


PROPERTY_SETTINGS = settings(max_examples=40, deadline=None)


@PROPERTY_SETTINGS
@given(catalogs())
def test_default_is_a_deployment_of_the_model_or_named_like_it(generated: Generated) -> None:
    with opened(generated) as catalog:
        deployments = deployments_of(catalog)
        for name in model_names(catalog):
            for policy in POLICIES:
                for ignore in (False, True):
                    chosen = catalog.default_deployment(name, policy, ignore_deprecated=ignore)
                    if chosen is None:
                        continue
                    served, deprecated = deployments[chosen]
                    assert served == name or chosen == name
                    if ignore:
                        assert not deprecated


@PROPERTY_SETTINGS
@given(catalogs())
def test_default_is_not_deprecated_when_a_live_one_exists(generated: Generated) -> None:
    with opened(generated) as catalog:
        deployments = deployments_of(catalog)
        for name in model_names(catalog):
            own = [d for d, (served, _) in deployments.items() if served == name]
            if not any(not deployments[d][1] for d in own):
                continue
            last = catalog.default_deployment(name, "last")
            assert last is not None and not deployments[last][1]
            if name not in deployments:  # HELM's `first` trusts a same-name deployment
                first = catalog.default_deployment(name, "first")
                assert first is not None and not deployments[first][1]


@PROPERTY_SETTINGS
@given(catalogs())
def test_policies_agree_on_a_model_with_one_deployment(generated: Generated) -> None:
    with opened(generated) as catalog:
        deployments = deployments_of(catalog)
        for name in model_names(catalog):
            own = [d for d, (served, _) in deployments.items() if served == name]
            if len(own) == 1 and (name not in deployments or own == [name]):
                for ignore in (False, True):
                    assert catalog.default_deployment(
                        name, "first", ignore_deprecated=ignore
                    ) == catalog.default_deployment(name, "last", ignore_deprecated=ignore)


@PROPERTY_SETTINGS
@given(catalogs())
def test_a_pin_always_wins(generated: Generated) -> None:
    with opened(generated) as catalog:
        pinned = apply_pins(catalog, generated)
        for name, deployment_name in pinned.items():
            for policy in POLICIES:
                for ignore in (False, True):
                    assert (
                        catalog.default_deployment(name, policy, ignore_deprecated=ignore)
                        == deployment_name
                    )
            (resolution,) = catalog.resolve(f"model={name}", ignore_deprecated=True)
            assert resolution.chosen_by == "pinned"


@PROPERTY_SETTINGS
@given(catalogs(), st.sampled_from(POLICIES))
def test_the_view_agrees_with_resolution(generated: Generated, policy: str) -> None:
    with opened(generated) as catalog:
        apply_pins(catalog, generated)
        catalog.set_setting("policy", policy)
        view = dict(
            catalog.connection.execute(
                "SELECT model, default_deployment FROM model_default_deployments"
            ).fetchall()
        )
        assert view == {name: catalog.default_deployment(name) for name in model_names(catalog)}


_PIECES = st.sampled_from(
    [
        "model=",
        "model_deployment=",
        "mmlu:",
        ",",
        ":",
        "=",
        "text",
        "ablation_code",
        "all",
        *MODEL_NAMES,
        *HOST_NAMES,
        "m/9",
        "subject=x",
        " ",
        "",
    ]
)
RUN_ENTRIES = st.lists(_PIECES, max_size=8).map("".join) | st.text(max_size=30)


@settings(max_examples=40, deadline=None)
@given(catalogs(), st.lists(RUN_ENTRIES, min_size=1, max_size=10), st.booleans())
def test_resolution_raises_only_documented_errors(
    generated: Generated, entries: list[str], ignore: bool
) -> None:
    with opened(generated) as catalog:
        deployments = deployments_of(catalog)
        for entry in entries:
            for policy in POLICIES:
                try:
                    resolutions = catalog.resolve(entry, policy=policy, ignore_deprecated=ignore)
                except CatalogError:
                    continue
                for resolution in resolutions:
                    if resolution.model_deployment is not None:
                        served, _ = deployments[resolution.model_deployment]
                        assert served == resolution.model
                        assert resolution.chosen_by is not None
                    else:
                        assert resolution.warnings
