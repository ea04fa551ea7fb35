"""HELM's run-entry syntax and helm-run's options, without HELM installed.

What HELM accepts is accepted (a key given twice, an entry that is only a run-spec name, HELM's
one-model groups such as `model=openai/curie`), and `--models-to-run` / `--priority` mean what
they mean to helm-run. The comparison with a real `helm-run` is in test_helm_plugin_runs.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_cli
from helm_yaml import deployment, model, synced_catalog, write_sources

from catalog import Catalog, RunEntrySyntaxError, UnknownModelError
from catalog.resolve.run_entries import parse_run_entry

TEXT = "TEXT_MODEL_TAG"
DEPRECATED = "DEPRECATED_MODEL_TAG"
ABLATION = "ABLATION_MODEL_TAG"


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    root = tmp_path_factory.mktemp("helm-entries")
    source = write_sources(
        root / "src",
        [
            model("acme/a"),
            model("acme/b", tags=("CODE_MODEL_TAG",)),
            model("acme/c", tags=(TEXT, ABLATION)),
            model("openai/curie", tags=(TEXT, DEPRECATED)),
        ],
        [
            deployment("h/a", "acme/a"),
            deployment("h/b", "acme/b"),
            deployment("h/c", "acme/c"),
            deployment("openai/curie"),
        ],
    )
    catalog = synced_catalog(root, source)
    yield catalog
    catalog.close()


def conf(path: Path, *entries: str) -> Path:
    path.write_text("entries: [\n" + "".join(f"  {e}\n" for e in entries) + "]\n")
    return path


# A key given twice (issue 9, item 6) --------------------------------------------------------


def test_a_key_given_twice_keeps_its_place_and_its_last_value_as_in_helm() -> None:
    # A line of HELM's own run_entries_lite_20240424_palmyra.conf.
    entry = parse_run_entry("gsm:model=text_code,stop=none,stop=none")
    assert entry.args == (("model", "text_code"), ("stop", "none"))
    assert len(entry.warnings) == 1 and "stop= is given twice" in entry.warnings[0]
    changed = parse_run_entry("gsm:stop=a,model=text,stop=b")
    assert changed.args == (("stop", "b"), ("model", "text"))
    assert "'a', then 'b'" in changed.warnings[0]


def test_resolve_accepts_a_repeated_key_and_warns_once(small: Catalog) -> None:
    result = run_cli("resolve", "gsm:model=text,stop=none,stop=x", db=small.path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("stop= is given twice") == 1  # not once per model of the group
    as_json = json.loads(run_cli("resolve", "gsm:model=acme/a,stop=a,stop=b", "--json",
                                 db=small.path).stdout)  # fmt: skip
    assert as_json[0]["run_entry"] == "gsm:model=acme/a,model_deployment=h/a,stop=b"
    assert any("given twice" in w for w in as_json[0]["warnings"])


def test_a_repeated_model_key_runs_the_last_model(small: Catalog) -> None:
    [run] = small.resolve("mmlu:model=acme/a,model=acme/b")
    assert (run.model, run.model_deployment) == ("acme/b", "h/b")


# An entry without a colon (issue 9, item 6) -------------------------------------------------


def test_an_entry_without_a_colon_is_a_run_spec_name_with_no_arguments() -> None:
    # As in HELM's run_entries_arabic.conf.
    entry = parse_run_entry("arabic_content_generation")
    assert (entry.name, entry.args, entry.model) == ("arabic_content_generation", (), None)


def test_an_entry_without_a_model_runs_on_models_to_run_or_says_none_is_given(
    small: Catalog, tmp_path: Path
) -> None:
    with pytest.raises(RunEntrySyntaxError, match="no model given"):
        small.resolve("arabic_content_generation")
    runs = small.resolve("arabic_content_generation", models_to_run=["acme/a", "acme/b"])
    assert [(r.model, r.model_deployment) for r in runs] == [("acme/a", "h/a"), ("acme/b", "h/b")]
    assert runs[0].run_entry == "arabic_content_generation:model=acme/a,model_deployment=h/a"

    path = conf(tmp_path / "arabic.conf", '{description: "arabic_content_generation", priority: 1}',
                '{description: "mmlu:subject=anatomy", priority: 1}')  # fmt: skip
    report = small.resolve_file(path)
    assert [o.reason for o in report.outcomes] == ["no model given", "no model given"]
    result = run_cli("resolve", "--file", path, db=small.path)
    assert result.returncode == 1 and "no model given" in result.stderr
    result = run_cli("resolve", "--file", path, "--models-to-run", "acme/a", "--json",
                     db=small.path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    entries = json.loads(result.stdout)["entries"]
    assert [[r["model"] for r in e["resolutions"]] for e in entries] == [["acme/a"], ["acme/a"]]


# HELM's fixed model groups (issue 9, item 7) ------------------------------------------------


def test_helms_one_model_groups_give_what_helm_gives(small: Catalog) -> None:
    # openai/curie is a key of HELM's group table; tagged deprecated, its group is empty.
    assert small.resolve("mmlu:model=openai/curie") == []
    assert small.resolve("mmlu:model=ablation_openai/curie") == []
    # ai21/j1-jumbo is not in this catalog: HELM's list still names it, so it is a run
    # without a deployment, never an unknown model.
    [jumbo] = small.resolve("mmlu:model=ai21/j1-jumbo")
    assert (jumbo.model, jumbo.model_deployment) == ("ai21/j1-jumbo", None)
    assert "not in the catalog" in jumbo.warnings[0]
    assert small.resolve("mmlu:model=ablation_ai21/j1-jumbo") == []
    result = run_cli("resolve", "mmlu:model=ablation_ai21/j1-jumbo", "--json", db=small.path)
    assert (result.returncode, json.loads(result.stdout)) == (0, [])
    # An ordinary model name is still one model.
    with pytest.raises(UnknownModelError):
        small.resolve("mmlu:model=ai21/j1-grande")


def test_an_empty_fixed_group_is_an_entry_with_no_run_not_a_failure(
    small: Catalog, tmp_path: Path
) -> None:
    path = conf(tmp_path / "fixed.conf", '{description: "mmlu:model=openai/curie", priority: 1}')
    report = small.resolve_file(path)
    assert (report.failed, report.empty, report.runs) == (0, 1, 0)


# helm-run's --models-to-run and --priority ---------------------------------------------------


def test_models_to_run_replaces_groups_and_filters_named_models_as_helm_run_does(
    small: Catalog, tmp_path: Path
) -> None:
    path = conf(
        tmp_path / "runs.conf",
        '{description: "mmlu:subject=anatomy,model=text", priority: 1}',
        '{description: "mmlu:subject=anatomy,model=acme/a", priority: 1}',
        '{description: "boolq:model=code", priority: 2}',
        '{description: "boolq:model=acme/c", priority: 3}',
    )
    report = small.resolve_file(path, models_to_run=["acme/b", "acme/c"], priority=2)
    pairs = [[(r.model, r.model_deployment) for r in o.resolutions] for o in report.outcomes]
    # model=text becomes each model to run, members or not (acme/b is not a text model).
    assert pairs[0] == [("acme/b", "h/b"), ("acme/c", "h/c")]
    assert any("not a member of group 'text'" in note for note in report.outcomes[0].notes)
    # An explicit model outside --models-to-run gives no run.
    assert pairs[1] == [] and report.outcomes[1].ok
    assert pairs[2] == [("acme/b", "h/b"), ("acme/c", "h/c")]
    # Priority 3 is above --priority 2: skipped, not failed.
    assert report.outcomes[3].skipped and report.outcomes[3].ok and pairs[3] == []
    assert report.summary()["skipped"] == 1 and report.summary()["models_to_run"] == [
        "acme/b",
        "acme/c",
    ]


def test_without_models_to_run_a_group_expands_with_a_note(small: Catalog, tmp_path: Path) -> None:
    path = conf(tmp_path / "text.conf", '{description: "mmlu:model=text", priority: 1}')
    report = small.resolve_file(path)
    assert [r.model for r in report.outcomes[0].resolutions] == ["acme/a", "acme/c"]
    assert "helm-run itself refuses" in report.outcomes[0].notes[0]
    result = run_cli("resolve", "--file", path, db=small.path)
    assert result.returncode == 0 and "--models-to-run" in result.stderr


def test_an_unknown_model_to_run_is_refused_as_helm_run_refuses_it(
    small: Catalog, tmp_path: Path
) -> None:
    path = conf(tmp_path / "one.conf", '{description: "mmlu:model=text", priority: 1}')
    result = run_cli("resolve", "--file", path, "--models-to-run", "acme/nope", db=small.path)
    assert result.returncode == 1
    assert result.stderr.startswith("error: unknown model 'acme/nope'")
    assert "--models-to-run" in result.stderr
