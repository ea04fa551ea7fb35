"""What HELM generates at run time for a model the catalog has no deployment for: asked of
HELM's own generators when crfm-helm is importable (`chosen_by: "helm-generator"`), "HELM may
generate one" when it is not, and never a call to a Hugging Face generator (it downloads)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_cli
from helm_helpers import hide_crfm_helm, require_helm
from helm_yaml import deployment, model, synced_catalog, write_sources

from catalog import Catalog
from catalog.helm.generators import HELM_GENERATOR


@pytest.fixture
def small(tmp_path: Path) -> Iterator[Catalog]:
    source = write_sources(
        tmp_path / "src",
        [
            model("openai/brand-new"),  # HELM's openai/ generator makes `openai/brand-new`
            model("huggingface/some-model"),  # HELM's generator would download: not called
            model("meta/unserved"),  # no generator for meta/
            model("acme/served"),
        ],
        [deployment("h/served", "acme/served")],
    )
    catalog = synced_catalog(tmp_path, source)
    yield catalog
    catalog.close()


def test_resolve_explain_and_files_report_the_deployment_helm_generates(
    small: Catalog, tmp_path: Path
) -> None:
    require_helm()
    [run] = small.resolve("mmlu:model=openai/brand-new")
    assert (run.model_deployment, run.host_organization, run.chosen_by) == (
        "openai/brand-new",
        "openai",
        HELM_GENERATOR,
    )
    assert "HELM will generate one at run time: deployment 'openai/brand-new'" in run.warnings[0]
    assert run.run_entry == "mmlu:model=openai/brand-new,model_deployment=openai/brand-new"
    [unserved] = small.resolve("model=meta/unserved")
    assert unserved.model_deployment is None and unserved.chosen_by is None
    [hub] = small.resolve("model=huggingface/some-model")
    assert hub.model_deployment is None
    assert "may generate" in hub.warnings[0] and "Hugging Face Hub" in hub.warnings[0]
    by_model = {r.model: r.chosen_by for r in small.resolve("model=text")}
    assert by_model["openai/brand-new"] == HELM_GENERATOR

    explained = small.explain("openai/brand-new")
    assert (explained.chosen, explained.chosen_by) == ("openai/brand-new", HELM_GENERATOR)
    text = run_cli("explain", "openai/brand-new", db=small.path).stdout
    assert "chosen: openai/brand-new by rule helm-generator" in text
    assert "HELM will generate one at run time: deployment 'openai/brand-new'" in text
    assert small.explain("meta/unserved").generator_note is None

    findings = {f.subject: f for f in small.check().by_code("model-without-deployments")}
    assert findings["openai/brand-new"].severity == "info"
    assert (
        "deployment 'openai/brand-new' (its openai/ generator)"
        in findings["openai/brand-new"].message
    )
    assert findings["huggingface/some-model"].severity == "info"
    assert "may generate" in findings["huggingface/some-model"].message
    assert findings["meta/unserved"].severity == "warning"

    conf = tmp_path / "runs.conf"
    conf.write_text(
        'entries: [\n  {description: "mmlu:model=openai/brand-new", priority: 1}\n'
        '  {description: "mmlu:model=meta/unserved", priority: 1}\n]\n'
    )
    report = small.resolve_file(conf)
    assert [o.ok for o in report.outcomes] == [True, False]
    as_json = json.loads(run_cli("resolve", "--file", conf, "--json", db=small.path).stdout)
    assert as_json["entries"][0]["resolutions"][0]["chosen_by"] == HELM_GENERATOR


def test_without_crfm_helm_it_says_helm_may_generate_one(
    small: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    hide_crfm_helm(monkeypatch)
    [run] = small.resolve("model=openai/brand-new")
    assert run.model_deployment is None and run.chosen_by is None
    assert "HELM may generate one at run time" in run.warnings[0]
    assert "crfm-helm is not installed" in run.warnings[0]
    explained = small.explain("openai/brand-new")
    assert explained.chosen is None
    assert "may generate" in (explained.generator_note or "")
    # Without HELM's code, HELM 0.5.16's prefixes still tell meta/ (no generator) apart.
    assert small.explain("meta/unserved").generator_note is None
    findings = {f.subject: f for f in small.check().by_code("model-without-deployments")}
    assert findings["openai/brand-new"].severity == "info"
    assert "HELM may generate one at run time" in findings["openai/brand-new"].message
    assert findings["meta/unserved"].severity == "warning"
