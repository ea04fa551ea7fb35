"""`catalog export --for-helm`: HELM itself, reading the export, picks the catalog's default
deployment of every model, pins and policy included. Loaded with real HELM code (crfm-helm
0.5.16) as its config directory and as a prod_env over its own files; for the rule of HELM
before 0.5.7, through a catalog synced from the export under the `first` policy (the catalog's
implementation of that rule)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import HELM_CONFIGS, require_shared, run_cli
from helm_helpers import helm_registries, require_helm
from helm_yaml import deployment, model, synced_catalog, write_sources

from catalog import Catalog, HelmError

_ = helm_registries  # a fixture, used by name


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, Path], Catalog]:
    """A fresh copy of a real snapshot's catalog (each snapshot synced once per module)."""
    synced: dict[str, Path] = {}

    def copy(name: str, directory: Path) -> Catalog:
        if name not in synced:
            source = require_shared(HELM_CONFIGS / name)
            catalog = synced_catalog(tmp_path_factory.mktemp(f"export-{name}"), source)
            catalog.close()
            synced[name] = catalog.path
        shutil.copy(synced[name], directory / "catalog.db")
        return Catalog.open(directory / "catalog.db")

    return copy


def pin_some(catalog: Catalog, *, old_rule: bool = False) -> dict[str, str]:
    """For models with several deployments, pin one the policy would not choose (never a
    deprecated one while others are not: no order makes HELM pick that; for HELM's rule
    before 0.5.7, never a model with a deployment named like it, which that rule always
    takes)."""
    pins = {}
    names = {d.name for d in catalog.deployments()}
    for info in catalog.models():
        if old_rule and info.name in names:
            continue
        live = [d for d in catalog.deployments(model=info.name) if not d.deprecated]
        others = [d for d in live if d.name != catalog.default_deployment(info.name)]
        if len(info.deployments) >= 2 and others and len(pins) < 12:
            catalog.pin(info.name, others[0].name)
            pins[info.name] = others[0].name
    return pins


def defaults(catalog: Catalog) -> dict[str, str | None]:
    served = {d.model_name for d in catalog.deployments()}
    return {m: catalog.default_deployment(m) for m in sorted(served)}


def helm_defaults(helm: Any, names: list[str]) -> dict[str, str | None]:
    function = helm.get_default_model_deployment_for_model
    assert not hasattr(function, "__catalog_original__"), "HELM's own function, not the plugin's"
    return {name: function(name) for name in names}


def load_into_empty_helm(helm: Any, directory: Path) -> None:
    from helm.benchmark import model_metadata_registry, tokenizer_config_registry
    from helm.benchmark.config_registry import register_configs_from_directory

    for container in (
        model_metadata_registry.ALL_MODELS_METADATA,
        model_metadata_registry.MODEL_NAME_TO_MODEL_METADATA,
        helm.ALL_MODEL_DEPLOYMENTS,
        helm.DEPLOYMENT_NAME_TO_MODEL_DEPLOYMENT,
        tokenizer_config_registry.ALL_TOKENIZER_CONFIGS,
        tokenizer_config_registry.TOKENIZER_NAME_TO_CONFIG,
    ):
        container.clear()
    register_configs_from_directory(str(directory))


# Loading YAML into HELM takes seconds: each snapshot once, the two policies between them.
@pytest.mark.parametrize(
    ("name", "policy"), [("v0.5.12", "first"), ("v0.5.0", "last"), ("2023-11-17-pr1903", "last")]
)
def test_helm_reading_the_export_as_its_configs_picks_every_default_of_the_catalog(
    snapshots: Callable[[str, Path], Catalog],
    helm_registries: Any,
    name: str,
    policy: str,
    tmp_path: Path,
) -> None:
    snapshot = snapshots(name, tmp_path)
    snapshot.set_setting("policy", policy)
    pins = pin_some(snapshot)
    assert pins
    expected = defaults(snapshot)
    out = tmp_path / "for-helm"
    snapshot.export(out, for_helm="0.5.16")
    load_into_empty_helm(helm_registries, out)
    assert helm_defaults(helm_registries, list(expected)) == expected
    if name == "2023-11-17-pr1903":
        # Each pin is an earlier deployment than the one the `last` policy picks: HELM reading
        # the plain export, in catalog order, follows none of them.
        plain = tmp_path / "plain"
        snapshot.export(plain)
        load_into_empty_helm(helm_registries, plain)
        followed = helm_defaults(helm_registries, list(pins))
        assert all(followed[name] != pinned for name, pinned in pins.items())


def test_helm_reading_the_export_as_prod_env_over_its_own_files_picks_the_catalogs_choices(
    tmp_path: Path, helm_registries: Any
) -> None:
    require_helm()
    from helm.benchmark.config_registry import register_builtin_configs_from_helm_package

    private = write_sources(
        tmp_path / "private",
        [model("acme/private")],
        [deployment("myhost/gpt2", "openai/gpt2"), deployment("h/private", "acme/private")],
    )
    db = tmp_path / "catalog.db"
    assert run_cli("sync", "--helm", private, db=db).returncode == 0
    with Catalog.open(db) as catalog:
        catalog.set_setting("policy", "first")  # HELM's own rule is last: the order must say
        pins = pin_some(catalog)
        expected = defaults(catalog)
    result = run_cli("export", tmp_path / "prod_env", "--for-helm", db=db)
    assert result.returncode == 0, result.stderr
    header = (tmp_path / "prod_env" / "model_deployments.yaml").read_text().splitlines()[0]
    assert header.endswith("for crfm-helm 0.5.16.")
    load_into_empty_helm(helm_registries, tmp_path / "empty")
    register_builtin_configs_from_helm_package()
    from helm.benchmark.config_registry import register_configs_from_directory

    register_configs_from_directory(str(tmp_path / "prod_env"))
    assert helm_defaults(helm_registries, list(expected)) == expected
    assert pins and expected["openai/gpt2"] == "huggingface/gpt2"  # the `first` policy


def test_for_helm_before_0_5_7_the_export_follows_the_first_rule(
    snapshots: Callable[[str, Path], Catalog], tmp_path: Path
) -> None:
    # v0.5.12 has models with a deployment named like them and others after it.
    snapshot = snapshots("v0.5.12", tmp_path)
    snapshot.set_setting("policy", "last")
    assert pin_some(snapshot, old_rule=True)
    expected = defaults(snapshot)
    out = tmp_path / "for-0.5.6"
    snapshot.export(out, for_helm="0.5.6")
    assert "for crfm-helm 0.5.6." in (out / "model_deployments.yaml").read_text()
    reread = synced_catalog(tmp_path / "reread", out)
    try:
        reread.set_setting("policy", "first")  # HELM's rule from PR #1903 to 0.5.6
        assert defaults(reread) == expected
    finally:
        reread.close()


def test_a_choice_no_order_can_give_is_refused_naming_the_model(tmp_path: Path) -> None:
    source = write_sources(
        tmp_path / "src",
        [model("acme/m"), model("acme/same")],
        [
            deployment("h/live", "acme/m"),
            deployment("h/old", "acme/m", deprecated=True),
            deployment("acme/same"),
            deployment("h/same", "acme/same"),
        ],
    )
    catalog = synced_catalog(tmp_path, source)
    try:
        catalog.pin("acme/m", "h/old")
        with pytest.raises(HelmError, match="acme/m: the catalog runs it on h/old") as refused:
            catalog.export(tmp_path / "out", for_helm="0.5.16")
        assert "1 model(s)" in str(refused.value)
        assert not (tmp_path / "out" / "model_deployments.yaml").exists()
        catalog.unpin("acme/m")
        catalog.pin("acme/same", "h/same")  # HELM before 0.5.7 always takes acme/same itself
        with pytest.raises(HelmError, match="always picks the deployment named 'acme/same'"):
            catalog.export(tmp_path / "out", for_helm="0.5.6")
        catalog.export(tmp_path / "out", for_helm="0.5.16")  # the last rule can
        result = run_cli("export", tmp_path / "old", "--for-helm", "0.3.0", db=catalog.path)
        assert result.returncode == 1 and "predates model deployments" in result.stderr
    finally:
        catalog.close()
