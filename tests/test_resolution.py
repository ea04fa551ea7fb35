"""Default deployments under both HELM policies, run-entry resolution and `explain`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import copy_catalog, run_cli
from helm_yaml import deployment, model, synced_catalog, write_sources

from catalog import Catalog
from catalog.errors import (
    AmbiguousRunEntryError,
    IncompatibleDeploymentError,
    RunEntrySyntaxError,
    SettingError,
    UnknownDeploymentError,
    UnknownModelError,
)
from catalog.resolve.engine import Resolution

TEXT = "TEXT_MODEL_TAG"
VLM = "VISION_LANGUAGE_MODEL_TAG"

# Each model exercises one rule; the comments say what each policy must choose.
SMALL_MODELS = [
    model("c/coder", tags=("CODE_MODEL_TAG",)),
    model("a/solo", tags=(TEXT, "CODE_MODEL_TAG", "ABLATION_MODEL_TAG")),  # both policies agree
    model("a/multi"),  # first: h2/multi, last: h3/multi
    model("a/same"),  # first: a/same (same name), last: y/same
    model("a/old"),  # all deprecated: first h1/old, last h2/old, none when ignored
    model("a/samedep"),  # first: a/samedep (deprecated same-name), last: h/samedep
    model("a/dup"),  # dup/x listed twice: first by first appearance, last by last copy
    model("a/none"),  # no deployment
    model("b/alias", tags=(VLM,)),  # no deployment, but one is named b/alias
    model("b/target", tags=(VLM,)),
    model("a/gone", tags=(TEXT, "DEPRECATED_MODEL_TAG")),
    model("a/unsupported", tags=(TEXT, "UNSUPPORTED_MODEL_TAG")),
]
SMALL_DEPLOYMENTS = [
    deployment("dup/x", "a/dup"),
    deployment("h/coder", "c/coder"),
    deployment("h1/solo", "a/solo"),
    deployment("h1/multi", "a/multi", deprecated=True),
    deployment("h2/multi", "a/multi"),
    deployment("h3/multi", "a/multi"),
    deployment("a/same"),
    deployment("y/same", "a/same"),
    deployment("h1/old", "a/old", deprecated=True),
    deployment("h2/old", "a/old", deprecated=True),
    deployment("a/samedep", deprecated=True),
    deployment("h/samedep", "a/samedep"),
    deployment("h/dup", "a/dup"),
    deployment("b/alias", "b/target"),
    deployment("h/gone", "a/gone"),
    deployment("h/unsupported", "a/unsupported"),
    deployment("dup/x", "a/dup"),
]

EXPECTED = {
    # model: (first, first rule, last, last rule)
    "a/solo": ("h1/solo", "first-non-deprecated", "h1/solo", "last-non-deprecated"),
    "a/multi": ("h2/multi", "first-non-deprecated", "h3/multi", "last-non-deprecated"),
    "a/same": ("a/same", "same-name", "y/same", "last-non-deprecated"),
    "a/old": ("h1/old", "only-deprecated", "h2/old", "only-deprecated"),
    "a/samedep": ("a/samedep", "same-name", "h/samedep", "last-non-deprecated"),
    "a/dup": ("dup/x", "first-non-deprecated", "dup/x", "last-non-deprecated"),
    "a/none": (None, None, None, None),
    "b/alias": ("b/alias", "same-name", "b/alias", "same-name"),
    "b/target": ("b/alias", "first-non-deprecated", "b/alias", "last-non-deprecated"),
}


@pytest.fixture(scope="module")
def small_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sources(tmp_path_factory.mktemp("small-src"), SMALL_MODELS, SMALL_DEPLOYMENTS)


@pytest.fixture
def small(tmp_path: Path, small_source: Path) -> Iterator[Catalog]:
    catalog = synced_catalog(tmp_path, small_source)
    yield catalog
    catalog.close()


@pytest.fixture(scope="module")
def v0512(tmp_path_factory: pytest.TempPathFactory, v0512_template: Path) -> Iterator[Catalog]:
    catalog = copy_catalog(v0512_template, tmp_path_factory.mktemp("v0512") / "catalog.db")
    yield catalog
    catalog.close()


# Policies -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_policy_chooses_as_helm(small: Catalog, name: str) -> None:
    first, _, last, _ = EXPECTED[name]
    assert small.default_deployment(name, policy="first") == first
    assert small.default_deployment(name, policy="last") == last


@pytest.mark.parametrize("name", ["a/solo", "a/multi", "a/same", "a/old", "a/dup", "b/target"])
def test_explain_names_the_rule_of_each_policy(small: Catalog, name: str) -> None:
    first, first_rule, last, last_rule = EXPECTED[name]
    explanation = small.explain(name)
    choices = {c.policy: (c.deployment, c.chosen_by) for c in explanation.policy_choices}
    assert choices == {"first": (first, first_rule), "last": (last, last_rule)}
    assert (explanation.chosen, explanation.chosen_by) == (first, first_rule)


def test_ignore_deprecated_follows_helm(small: Catalog) -> None:
    for policy in ("first", "last"):
        assert small.default_deployment("a/old", policy, ignore_deprecated=True) is None
        assert small.default_deployment("a/multi", policy, ignore_deprecated=True) in (
            "h2/multi",
            "h3/multi",
        )
    # HELM's `first` stops at a deprecated same-name deployment instead of looking further.
    assert small.default_deployment("a/samedep", "first", ignore_deprecated=True) is None
    assert small.default_deployment("a/samedep", "last", ignore_deprecated=True) == "h/samedep"


def test_duplicate_name_uses_first_and_last_appearance(small: Catalog) -> None:
    explanation = small.explain("a/dup", policy="first")
    assert [d.name for d in explanation.deployments] == ["dup/x", "h/dup"]
    explanation = small.explain("a/dup", policy="last")
    assert [d.name for d in explanation.deployments] == ["h/dup", "dup/x"]


def test_policy_in_force_argument_then_setting_then_first(small: Catalog) -> None:
    assert small.policy_in_force() == "first"
    assert small.explain("a/multi").policy_source == "default"
    small.set_setting("policy", "last")
    assert small.policy_in_force() == "last"
    assert small.default_deployment("a/multi") == "h3/multi"
    assert small.explain("a/multi").policy_source == "setting"
    assert small.policy_in_force("first") == "first"
    assert small.default_deployment("a/multi", policy="first") == "h2/multi"
    assert small.explain("a/multi", policy="first").policy_source == "argument"


def test_unknown_policy_is_a_setting_error(small: Catalog) -> None:
    with pytest.raises(SettingError, match="first, last"):
        small.default_deployment("a/multi", policy="newest")


def test_a_bad_stored_policy_says_how_to_fix_it(small: Catalog) -> None:
    small.connection.execute("INSERT INTO settings (key, value) VALUES ('policy', 'LAST')")
    with pytest.raises(SettingError, match="catalog settings set policy"):
        small.default_deployment("a/multi")


def test_unknown_model_suggests_close_names(small: Catalog) -> None:
    with pytest.raises(UnknownModelError, match="a/multi"):
        small.default_deployment("a/mult")


# Run entries --------------------------------------------------------------------------------


def test_group_resolves_every_member_in_catalog_order(small: Catalog) -> None:
    resolutions = small.resolve("model=text")
    assert [r.model for r in resolutions] == [
        "a/solo",
        "a/multi",
        "a/same",
        "a/old",
        "a/samedep",
        "a/dup",
        "a/none",
    ]
    by_model = {r.model: r for r in resolutions}
    assert by_model["a/multi"].model_deployment == "h2/multi"
    assert by_model["a/multi"].host_organization == "h2"
    assert by_model["a/multi"].chosen_by == "first-non-deprecated"
    missing = by_model["a/none"]
    assert missing.model_deployment is None and missing.chosen_by is None
    assert missing.host_organization is None
    assert any("no deployment" in w for w in missing.warnings)
    assert any("deprecated" in w for w in by_model["a/old"].warnings)


def test_group_with_ignore_deprecated_reports_the_model_left_without(small: Catalog) -> None:
    by_model = {r.model: r for r in small.resolve("model=text", ignore_deprecated=True)}
    assert by_model["a/old"].model_deployment is None
    assert any("only deprecated" in w for w in by_model["a/old"].warnings)


def test_ablation_groups(small: Catalog) -> None:
    assert [r.model for r in small.resolve("model=ablation_text")] == ["a/solo"]
    assert [r.model for r in small.resolve("model=ablation_code")] == ["a/solo"]
    assert [r.model for r in small.resolve("model=ablation")] == ["a/solo"]
    assert small.resolve("model=ablation_vlm") == []


def test_text_code_lists_text_models_then_code_models_once(small: Catalog) -> None:
    assert [r.model for r in small.resolve("model=code")] == ["c/coder", "a/solo"]
    models = [r.model for r in small.resolve("model=text_code")]
    assert models[0] == "a/solo" and models[-1] == "c/coder"
    assert len(models) == len(set(models)) == 8


def test_same_name_deployment_of_another_model_is_incompatible(small: Catalog) -> None:
    # HELM's `first` picks deployment b/alias for model b/alias, then fails: it serves b/target.
    with pytest.raises(IncompatibleDeploymentError, match="b/target"):
        small.resolve("model=vlm")
    with pytest.raises(IncompatibleDeploymentError, match="b/target"):
        small.resolve("model=b/alias", policy="last")


def test_single_model_warns_which_was_chosen_and_the_others(small: Catalog) -> None:
    (resolution,) = small.resolve("model=a/multi")
    assert resolution.model_deployment == "h2/multi"
    (warning,) = resolution.warnings
    assert "h2/multi" in warning and "first" in warning
    assert "h1/multi" in warning and "h3/multi" in warning


def test_pin_wins_and_says_so(small: Catalog) -> None:
    small.pin("a/multi", "h1/multi")
    (resolution,) = small.resolve("model=a/multi", ignore_deprecated=True)
    assert (resolution.model_deployment, resolution.chosen_by) == ("h1/multi", "pinned")
    assert any("pinned" in w for w in resolution.warnings)
    assert any("deprecated" in w for w in resolution.warnings)
    explanation = small.explain("a/multi")
    assert explanation.pinned == "h1/multi"
    assert (explanation.chosen, explanation.chosen_by) == ("h1/multi", "pinned")


def test_explicit_deployment_gives_its_model(small: Catalog) -> None:
    (resolution,) = small.resolve("model_deployment=h3/multi")
    assert resolution.model == "a/multi"
    assert resolution.chosen_by == "explicit"
    assert resolution.warnings == ()
    (both,) = small.resolve("model=a/multi,model_deployment=h1/multi")
    assert both.chosen_by == "explicit"
    assert any("deprecated" in w for w in both.warnings)


def test_explicit_deployment_of_another_model_is_incompatible(small: Catalog) -> None:
    with pytest.raises(IncompatibleDeploymentError, match="h2/multi"):
        small.resolve("model=a/multi,model_deployment=h1/solo")


@pytest.mark.parametrize("entry", ["model_deployment=text", "model=text,model_deployment=h1/solo"])
def test_a_group_where_one_deployment_is_meant_is_ambiguous(small: Catalog, entry: str) -> None:
    with pytest.raises(AmbiguousRunEntryError, match="group"):
        small.resolve(entry)


@pytest.mark.parametrize(
    ("entry", "error", "hint"),
    [
        ("model=a/mult", UnknownModelError, "a/multi"),
        ("model=txt", UnknownModelError, "text"),
        ("model=h2/multi", UnknownModelError, "model_deployment=h2/multi"),
        ("model_deployment=h2/mult", UnknownDeploymentError, "h2/multi"),
        ("model_deployment=a/multi", UnknownDeploymentError, "model=a/multi"),
        ("mmlu:subject=anatomy", RunEntrySyntaxError, "names no model"),
        ("mmlu:model=text,,x=1", RunEntrySyntaxError, "column 17"),
    ],
)
def test_errors_say_what_to_write(
    small: Catalog, entry: str, error: type[Exception], hint: str
) -> None:
    with pytest.raises(error, match=hint):
        small.resolve(entry)


def test_other_arguments_pass_through_untouched(small: Catalog) -> None:
    resolutions = small.resolve("mmlu:subject=anatomy,model=text,data_augmentation=canonical")
    first = resolutions[0]
    assert first.name == "mmlu"
    assert first.args == (("subject", "anatomy"), ("data_augmentation", "canonical"))
    assert first.run_entry == (
        "mmlu:subject=anatomy,model=a/solo,model_deployment=h1/solo,data_augmentation=canonical"
    )
    assert all(isinstance(r, Resolution) for r in resolutions)
    assert first.to_json() == {
        "model": "a/solo",
        "model_deployment": "h1/solo",
        "host_organization": "h1",
        "chosen_by": "first-non-deprecated",
        "warnings": [],
        "run_entry": first.run_entry,
    }


# Freshness ----------------------------------------------------------------------------------


def test_answers_follow_a_sync_made_through_another_connection(
    small: Catalog, tmp_path: Path
) -> None:
    assert small.default_deployment("a/multi") == "h2/multi"
    changed = [d for d in SMALL_DEPLOYMENTS if d["name"] != "h2/multi"]
    source = write_sources(tmp_path / "changed", SMALL_MODELS, changed)
    with Catalog.open(small.path) as other:
        other.sync([source])
    assert small.default_deployment("a/multi") == "h3/multi"


def test_answers_follow_writes_on_the_same_connection(small: Catalog) -> None:
    assert small.default_deployment("a/multi", policy="last") == "h3/multi"
    small.connection.execute("UPDATE deployments SET deprecated = 1 WHERE name = 'h3/multi'")
    assert small.default_deployment("a/multi", policy="last") == "h2/multi"


# Real data ----------------------------------------------------------------------------------


def test_v0512_examples_from_helm(v0512: Catalog) -> None:
    (llama,) = v0512.resolve("model=meta/llama-2-7b")
    assert llama.model_deployment == "together/llama-2-7b"
    assert llama.warnings
    (gpt2,) = v0512.resolve("model_deployment=huggingface/gpt2")
    assert (gpt2.model, gpt2.chosen_by) == ("openai/gpt2", "explicit")
    (pair,) = v0512.resolve("model=openai/gpt2,model_deployment=huggingface/gpt2")
    assert pair.model_deployment == "huggingface/gpt2"
    with pytest.raises(IncompatibleDeploymentError):
        v0512.resolve("model=meta/llama-2-7b,model_deployment=huggingface/gpt2")
    with pytest.raises(AmbiguousRunEntryError):
        v0512.resolve("model_deployment=text")


def test_v0512_text_group_excludes_deprecated_and_unsupported_models(v0512: Catalog) -> None:
    members = {r.model for r in v0512.resolve("mmlu:subject=anatomy,model=text")}
    excluded = {
        row[0]
        for row in v0512.connection.execute(
            "SELECT model_name FROM model_tags WHERE tag_name IN "
            "('DEPRECATED_MODEL_TAG', 'UNSUPPORTED_MODEL_TAG')"
        )
    }
    text = {
        row[0]
        for row in v0512.connection.execute(
            "SELECT model_name FROM model_tags WHERE tag_name = 'TEXT_MODEL_TAG'"
        )
    }
    assert members == text - excluded
    assert len(members) > 400


def test_v0512_internal_copies_placed_first_are_not_the_last_default(v0512: Catalog) -> None:
    # HELM's file lists the Stanford Health Care copies early "to make them non-default".
    name = "openai/gpt-4o-2024-05-13"
    assert v0512.default_deployment(name, policy="last") == "openai/gpt-4o-2024-05-13"
    explanation = v0512.explain(name, policy="first")
    assert explanation.deployments[0].name.startswith("stanfordhealthcare")
    assert explanation.chosen == name and explanation.chosen_by == "same-name"


# Command line -------------------------------------------------------------------------------


def test_cli_resolve_json(small: Catalog) -> None:
    result = run_cli("resolve", "model=a/multi", "--policy", "last", "--json", db=small.path)
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert row["model_deployment"] == "h3/multi"
    assert row["chosen_by"] == "last-non-deprecated"
    assert set(row) >= {"model", "model_deployment", "host_organization", "chosen_by", "warnings"}
    assert row["warnings"] and result.stderr == ""


def test_cli_resolve_table_warns_on_stderr(small: Catalog) -> None:
    result = run_cli("resolve", "model=a/multi", db=small.path)
    assert result.returncode == 0
    assert "h2/multi" in result.stdout
    assert result.stderr.startswith("warning: model=a/multi")


def test_cli_resolve_errors_exit_1_with_the_reason(small: Catalog) -> None:
    result = run_cli("resolve", "model=meta/llama", db=small.path)
    assert result.returncode == 1
    assert result.stderr.startswith("error: unknown model 'meta/llama'")
    usage = run_cli("resolve", db=small.path)
    assert usage.returncode == 2


def test_cli_explain(small: Catalog) -> None:
    result = run_cli("explain", "a/same", db=small.path)
    assert result.returncode == 0, result.stderr
    assert "a/same" in result.stdout and "same-name" in result.stdout
    assert "policy last alone would choose: y/same" in result.stdout
    as_json = json.loads(run_cli("explain", "a/same", "--json", db=small.path).stdout)
    assert as_json["chosen"] == "a/same"
    assert [d["name"] for d in as_json["deployments"]] == ["a/same", "y/same"]


@pytest.mark.slow  # what a fresh interpreter imports
def test_reading_never_imports_the_write_stack(small: Catalog) -> None:
    code = (
        "import sys, catalog\n"
        f"c = catalog.Catalog.open({str(small.path)!r})\n"
        "print(c.default_deployment('a/multi'))\n"
        "print(len(c.resolve('mmlu:model=text')))\n"
        "print(c.explain('a/multi').chosen)\n"
        "from catalog import helm_compat\n"
        "helm_compat.use_catalog(c)\n"
        "print(helm_compat.get_default_model_deployment_for_model('a/multi'))\n"
        "heavy = [m for m in ('sqlalchemy', 'alembic', 'yaml', 'click') if m in sys.modules]\n"
        "print('heavy:', heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:3] == ["h2/multi", "7", "h2/multi"]
    assert "heavy: []" in result.stdout
