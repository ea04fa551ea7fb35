"""The plugin in this process, against real HELM code: after it loads, HELM's registries hold
exactly the catalog, and HELM's own default-deployment function answers what
`Catalog.default_deployment` answers for every model of every real snapshot, under both
policies, with and without pins. And every HELM module holding a copy of that function is
covered when the plugin must replace it."""

from __future__ import annotations

import ast
import importlib
import shutil
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import HELM_CONFIGS, SNAPSHOTS, require_shared
from helm_helpers import helm_registries, require_helm
from helm_yaml import deployment, model, synced_catalog, write_sources

from catalog import Catalog
from catalog.helm.plugin import DEFAULT_FUNCTION, install

_ = helm_registries  # a fixture, used by name


@pytest.fixture(scope="module", params=SNAPSHOTS)
def snapshot_template(request: pytest.FixtureRequest, tmp_path_factory: Any) -> Path:
    """Each real snapshot synced once; tests work on copies."""
    source = require_shared(HELM_CONFIGS / str(request.param))
    path = tmp_path_factory.mktemp(f"plugin-{request.param}") / "catalog.db"
    with Catalog.open(path) as catalog:
        catalog.sync([source])
    return path


@pytest.fixture
def snapshot_catalog(snapshot_template: Path, tmp_path: Path) -> Iterator[Catalog]:
    path = tmp_path / "catalog.db"
    shutil.copy(snapshot_template, path)
    with Catalog.open(path) as catalog:
        yield catalog


def pin_some(catalog: Catalog) -> dict[str, str]:
    """Pins that move a default: for models with several deployments, one that is not the
    default, a deprecated one first where there is one (HELM's rule can never pick those by
    order alone, so the plugin must answer them itself)."""
    pins: dict[str, str] = {}
    deprecated_pins = 0
    for info in catalog.models():
        if len(info.deployments) < 2 or len(pins) >= 16:
            continue
        default = catalog.default_deployment(info.name)
        others = [d for d in catalog.deployments(model=info.name) if d.name != default]
        deprecated = [d for d in others if d.deprecated]
        chosen = deprecated[0] if deprecated and deprecated_pins < 4 else others[-1]
        deprecated_pins += chosen.deprecated
        catalog.pin(info.name, chosen.name)
        pins[info.name] = chosen.name
    assert pins  # every snapshot has models with several deployments
    return pins


@pytest.mark.parametrize("policy", ["first", "last"])
@pytest.mark.parametrize("pinned", [False, True], ids=["no-pins", "pins"])
def test_helms_own_function_answers_the_catalogs_default_for_every_model(
    snapshot_catalog: Catalog, helm_registries: Any, policy: str, pinned: bool
) -> None:
    import helm.benchmark.run_spec_factory as run_spec_factory

    catalog = snapshot_catalog
    catalog.set_setting("policy", policy)
    pins = pin_some(catalog) if pinned else {}
    report = install(catalog)
    served = {d.model_name for d in catalog.deployments()}
    assert served, "the snapshot has deployments"
    for ignore in (False, True):
        for name in sorted(served):
            expected = catalog.default_deployment(name, ignore_deprecated=ignore)
            for holder in (helm_registries, run_spec_factory):
                answer = holder.get_default_model_deployment_for_model(
                    name, ignore_deprecated=ignore
                )
                assert answer == expected, (holder.__name__, name, ignore)
    for name, pinned_deployment in pins.items():
        assert helm_registries.get_default_model_deployment_for_model(name) == pinned_deployment
    # Order alone gives every default HELM's rule can give; only the rest needs the function.
    if not pinned and policy == "last":
        assert report.patched_modules == () and report.answered_by_function == ()
    assert (report.patched_modules == ()) == (report.answered_by_function == ())


def test_helms_registries_hold_exactly_the_catalog_as_helms_classes(
    snapshot_catalog: Catalog, helm_registries: Any
) -> None:
    from helm.benchmark import model_metadata_registry as mmr
    from helm.benchmark import tokenizer_config_registry as tcr

    catalog = snapshot_catalog
    install(catalog)
    models = catalog.models()
    assert [m.name for m in mmr.ALL_MODELS_METADATA] == [m.name for m in models]
    assert all(type(m) is mmr.ModelMetadata for m in mmr.ALL_MODELS_METADATA)
    deployments = {d.name: d for d in catalog.deployments()}
    assert sorted(d.name for d in helm_registries.ALL_MODEL_DEPLOYMENTS) == sorted(deployments)
    assert set(helm_registries.DEPLOYMENT_NAME_TO_MODEL_DEPLOYMENT) == set(deployments)
    for helm_deployment in helm_registries.ALL_MODEL_DEPLOYMENTS:
        assert type(helm_deployment) is helm_registries.ModelDeployment
        ours = deployments[helm_deployment.name]
        assert (helm_deployment.model_name, helm_deployment.deprecated) == (
            ours.model_name,
            ours.deprecated,
        )
        assert helm_deployment.client_spec.class_name == ours.client_class
        assert helm_deployment.tokenizer_name == ours.tokenizer_name
        assert helm_deployment.max_sequence_length == ours.max_sequence_length
    configured = [t.name for t in catalog.tokenizers() if not t.is_placeholder]
    assert [t.name for t in tcr.ALL_TOKENIZER_CONFIGS] == configured
    for model_info in models:
        helm_model = mmr.get_model_metadata(model_info.name)
        assert helm_model.tags == list(model_info.tags)
        if not model_info.is_placeholder:
            assert helm_model.release_date == model_info.release_date
            assert helm_model.creator_organization_name == model_info.creator_organization_name


def test_models_without_a_deployment_keep_helms_generators(
    tmp_path: Path, helm_registries: Any
) -> None:
    source = write_sources(
        tmp_path / "src",
        [model("openai/brand-new"), model("acme/served")],
        [deployment("h/served", "acme/served")],
    )
    catalog = synced_catalog(tmp_path, source)
    try:
        install(catalog)
        answer = helm_registries.get_default_model_deployment_for_model("openai/brand-new")
        assert answer == "openai/brand-new"  # HELM's openai/ generator, not None
        assert helm_registries.get_default_model_deployment_for_model("acme/served") == "h/served"
    finally:
        catalog.close()


# Every copy of the function is covered ------------------------------------------------------


def _holders_of_the_function() -> dict[str, str]:
    """HELM modules that bind `get_default_model_deployment_for_model` by name, and the
    module each imports it from (an AST scan of the installed crfm-helm)."""
    import helm

    root = Path(helm.__file__).parent
    holders: dict[str, str] = {}
    for path in sorted(root.rglob("*.py")):
        module = ".".join(path.relative_to(root.parent).with_suffix("").parts)
        text = path.read_text(encoding="utf-8")
        if DEFAULT_FUNCTION not in text:
            continue
        with warnings.catch_warnings():  # HELM's own invalid escapes in regex strings
            warnings.simplefilter("ignore")
            tree = ast.parse(text)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and any(alias.name == DEFAULT_FUNCTION for alias in node.names)
            ):
                holders[module.removesuffix(".__init__")] = node.module
    return holders


def test_every_helm_module_holding_a_copy_of_the_function_gets_the_catalogs(
    tmp_path: Path, helm_registries: Any
) -> None:
    require_helm()
    holders = _holders_of_the_function()
    # crfm-helm 0.5.16: run_spec_factory (loaded when plugins load), proxy.server and
    # proxy.critique.model_critique_client (imported later, from a module that is covered).
    assert "helm.benchmark.run_spec_factory" in holders and len(holders) >= 2, holders
    source = write_sources(
        tmp_path / "src",
        [model("acme/m")],
        [deployment("h/live", "acme/m"), deployment("h/old", "acme/m", deprecated=True)],
    )
    catalog = synced_catalog(tmp_path, source)
    try:
        catalog.pin("acme/m", "h/old")  # HELM's rule never picks it: the function must
        report = install(catalog)
    finally:
        catalog.close()
    assert report.answered_by_function == ("acme/m",)
    replacement = helm_registries.get_default_model_deployment_for_model
    assert replacement("acme/m") == "h/old"
    patched = set(report.patched_modules)
    assert "helm.benchmark.model_deployment_registry" in patched
    for holder, imported_from in holders.items():
        if holder in sys.modules:
            assert holder in patched, f"{holder} keeps HELM's own function"
            assert getattr(sys.modules[holder], DEFAULT_FUNCTION) is replacement
        else:
            # Imported after the plugin, it copies the function from a module that has the
            # replacement already.
            assert imported_from in patched, f"{holder} would copy from {imported_from}"
    # One holder imported now, after the plugin, gets the replacement.
    late = "helm.proxy.critique.model_critique_client"
    if late in holders and late not in sys.modules:
        try:
            module = importlib.import_module(late)
        except ImportError:  # a dependency of the proxy that the dry-run install lacks
            return
        assert getattr(module, DEFAULT_FUNCTION) is replacement


# A catalog that cannot be used stops helm-run -----------------------------------------------


def test_an_outdated_or_empty_catalog_stops_the_plugin_with_the_catalogs_message(
    tmp_path: Path, helm_registries: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from helm.benchmark.config_registry import register_builtin_configs_from_helm_package

    from catalog.db import migrations
    from catalog.db.location import DatabaseLocation
    from catalog.db.revisions import KNOWN_REVISIONS
    from catalog.helm.plugin import load_into_helm

    register_builtin_configs_from_helm_package()  # what helm-run has loaded when plugins load
    before = list(helm_registries.ALL_MODEL_DEPLOYMENTS)
    assert before
    outdated = tmp_path / "old.db"
    migrations.upgrade(DatabaseLocation.parse(outdated), KNOWN_REVISIONS[0])
    with pytest.raises(SystemExit) as stopped:
        load_into_helm(outdated)
    assert stopped.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "catalog db upgrade" in err
    assert len(err.strip().splitlines()) == 2 and err.splitlines()[1].startswith("hint: ")

    empty = tmp_path / "empty.db"
    Catalog.open(empty).close()
    with pytest.raises(SystemExit):
        load_into_helm(empty)
    assert "holds no model" in capsys.readouterr().err
    assert before == helm_registries.ALL_MODEL_DEPLOYMENTS  # HELM's own catalog untouched


def test_the_entry_point_loads_the_catalog_only_when_opted_in(
    tmp_path: Path, helm_registries: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_sources(
        tmp_path / "src", [model("acme/only")], [deployment("h/only", "acme/only")]
    )
    synced_catalog(tmp_path, source).close()
    monkeypatch.setenv("CATALOG_DB", str(tmp_path / "catalog.db"))
    import catalog.helm.entry_point as entry_point

    for opt_in, expected in (("0", False), ("1", True)):
        monkeypatch.setenv("CATALOG_HELM_PLUGIN", opt_in)
        importlib.reload(entry_point)
        assert ("h/only" in helm_registries.DEPLOYMENT_NAME_TO_MODEL_DEPLOYMENT) is expected
