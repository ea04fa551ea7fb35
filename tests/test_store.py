"""The read API: lookups and listings through `Catalog`, on real HELM data and a small fixture."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FIXTURES, copy_catalog, dump
from helm_yaml import empty_database
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog import Catalog
from catalog.db.schema import DeploymentInfo, ModelInfo, PinInfo, TagInfo, TokenizerInfo
from catalog.errors import (
    UnknownDeploymentError,
    UnknownModelError,
    UnknownTagError,
    UnknownTokenizerError,
)

MINI = FIXTURES / "read" / "mini"


@pytest.fixture(scope="module")
def v0512(tmp_path_factory: pytest.TempPathFactory, v0512_template: Path) -> Iterator[Catalog]:
    """One v0.5.12 catalog shared by the tests of this module, which only read."""
    with copy_catalog(v0512_template, tmp_path_factory.mktemp("store") / "catalog.db") as opened:
        yield opened


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    with Catalog.open(empty_database(tmp_path_factory.mktemp("mini") / "catalog.db")) as opened:
        opened.sync([MINI])
        yield opened


# Single lookups ---------------------------------------------------------------------------------


def test_model_has_its_fields_tags_and_deployments(v0512: Catalog) -> None:
    model = v0512.model("openai/gpt-4-0613")
    assert isinstance(model, ModelInfo)
    assert model.creator_prefix == "openai"
    assert model.engine == "gpt-4-0613"
    assert model.creator_organization_name == "OpenAI"
    assert model.access == "limited"
    assert model.release_date == dt.date(2023, 6, 13)
    assert model.tags == (
        "TEXT_MODEL_TAG",
        "OPENAI_CHATGPT_MODEL_TAG",
        "LIMITED_FUNCTIONALITY_TEXT_MODEL_TAG",
        "INSTRUCTION_FOLLOWING_MODEL_TAG",
    )
    # The Stanford Health Care copy comes first in the file, so first in catalog order.
    assert model.deployments == ("stanfordhealthcare/gpt-4-0613", "openai/gpt-4-0613")
    assert model.is_placeholder is False
    assert model.source_file is not None and model.source_file.endswith("model_metadata.yaml")
    assert model.source_line is not None and model.source_line > 0


def test_results_are_frozen(v0512: Catalog) -> None:
    model = v0512.model("meta/llama-2-7b")
    with pytest.raises(AttributeError):
        model.name = "x"  # type: ignore[misc]


def test_model_to_json_is_json_safe(v0512: Catalog) -> None:
    data = v0512.model("meta/llama-2-7b").to_json()
    assert json.loads(json.dumps(data)) == data
    assert data["release_date"] == "2023-07-18"
    assert data["tags"] == ["TEXT_MODEL_TAG", "FULL_FUNCTIONALITY_TEXT_MODEL_TAG"]
    assert data["deployments"] == ["together/llama-2-7b"]


def test_deployment_has_client_spec_limits_and_source(v0512: Catalog) -> None:
    deployment = v0512.deployment("together/llama-2-7b")
    assert isinstance(deployment, DeploymentInfo)
    assert deployment.model_name == "meta/llama-2-7b"
    assert deployment.host_organization == "together"
    assert deployment.engine == "llama-2-7b"
    assert deployment.tokenizer_name == "meta-llama/Llama-2-7b-hf"
    assert deployment.client_class == "helm.clients.together_client.TogetherClient"
    assert deployment.client_args == {"together_model": "togethercomputer/llama-2-7b"}
    assert deployment.max_sequence_length == 4094
    assert deployment.deprecated is False
    assert deployment.source_file is not None
    assert deployment.source_file.endswith("model_deployments.yaml")
    assert json.loads(json.dumps(deployment.to_json())) == deployment.to_json()


def test_deprecated_deployment_reads_as_true(v0512: Catalog) -> None:
    deprecated = [d for d in v0512.deployments() if d.deprecated]
    assert len(deprecated) == 7
    assert all(d.deprecated is True for d in deprecated)


def test_tokenizer_lists_the_deployments_using_it(v0512: Catalog) -> None:
    tokenizer = v0512.tokenizer("meta-llama/Llama-2-7b-hf")
    assert isinstance(tokenizer, TokenizerInfo)
    assert tokenizer.class_name == "helm.tokenizers.huggingface_tokenizer.HuggingFaceTokenizer"
    assert tokenizer.end_of_text_token == "</s>"
    assert tokenizer.prefix_token == "<s>"
    assert "together/llama-2-7b" in tokenizer.deployments
    users = [d.name for d in v0512.deployments(tokenizer="meta-llama/Llama-2-7b-hf")]
    assert list(tokenizer.deployments) == users


def test_placeholder_tokenizer_of_v0512(v0512: Catalog) -> None:
    tokenizer = v0512.tokenizer("huggingface/openthaigpt-1.0.0-7b-chat")
    assert tokenizer.is_placeholder is True
    assert tokenizer.class_name is None
    assert tokenizer.deployments == ("huggingface/openthaigpt-1.0.0-70b-chat",)


@pytest.mark.parametrize(
    ("lookup", "error", "typo", "expected"),
    [
        ("model", UnknownModelError, "meta/llama-2-7", "meta/llama-2-7b"),
        ("deployment", UnknownDeploymentError, "together/llama-2-7", "together/llama-2-7b"),
        ("tokenizer", UnknownTokenizerError, "meta-llama/Llama-2-7b", "meta-llama/Llama-2-7b-hf"),
    ],
)
def test_unknown_names_suggest_close_ones(
    v0512: Catalog, lookup: str, error: type[Exception], typo: str, expected: str
) -> None:
    with pytest.raises(error) as raised:
        getattr(v0512, lookup)(typo)
    assert expected in str(raised.value)
    assert "did you mean" in str(raised.value)


def test_unknown_deployment_is_a_value_error_like_helm(v0512: Catalog) -> None:
    with pytest.raises(ValueError, match="unknown deployment"):
        v0512.deployment("nobody/nothing")


# Listings ---------------------------------------------------------------------------------------


def test_models_are_in_catalog_order(v0512: Catalog) -> None:
    models = v0512.models()
    assert len(models) == 598
    positions = [m.position for m in models]
    assert positions == sorted(positions)
    assert models[0].name == "simple/model1"


def test_models_by_creator_prefix_or_organization_name(v0512: Catalog) -> None:
    by_prefix = [m.name for m in v0512.models(creator="meta")]
    by_organization = [m.name for m in v0512.models(creator="mEtA")]
    assert by_prefix
    assert by_organization == by_prefix
    assert all(n.startswith("meta/") for n in by_prefix)
    assert v0512.models(creator="nobody-at-all") == []


def test_models_by_tag_and_host(v0512: Catalog) -> None:
    code_models = v0512.models(tag="CODE_MODEL_TAG")
    assert code_models
    assert all("CODE_MODEL_TAG" in m.tags for m in code_models)
    on_together = v0512.models(host="together")
    assert "meta/llama-2-7b" in [m.name for m in on_together]
    for model in on_together:
        hosts = {d.host_organization for d in v0512.deployments(model=model.name)}
        assert "together" in hosts


def test_model_filters_combine(v0512: Catalog) -> None:
    both = {m.name for m in v0512.models(creator="meta", host="together")}
    assert both == {m.name for m in v0512.models(creator="meta")} & {
        m.name for m in v0512.models(host="together")
    }


def test_listed_models_equal_single_lookups(v0512: Catalog) -> None:
    for model in v0512.models(creator="openai"):
        assert v0512.model(model.name) == model


def test_unknown_tag_is_an_error_with_suggestions(v0512: Catalog) -> None:
    with pytest.raises(UnknownTagError, match="TEXT_MODEL_TAG"):
        v0512.models(tag="TEXT_MODL_TAG")


def test_deployments_filters(v0512: Catalog) -> None:
    everything = v0512.deployments()
    assert len(everything) == 567
    assert [d.position for d in everything] == sorted(d.position for d in everything)
    current = v0512.deployments(include_deprecated=False)
    assert len(current) == 560
    assert not any(d.deprecated for d in current)
    together = v0512.deployments(host="together")
    assert together and all(d.host_organization == "together" for d in together)
    of_model = v0512.deployments(model="openai/gpt-4-0613")
    assert [d.name for d in of_model] == list(v0512.model("openai/gpt-4-0613").deployments)


def test_deployments_of_unknown_model_or_tokenizer_raise(v0512: Catalog) -> None:
    with pytest.raises(UnknownModelError):
        v0512.deployments(model="meta/llama-2-7")
    with pytest.raises(UnknownTokenizerError):
        v0512.deployments(tokenizer="nobody/tok")


def test_tokenizers_and_tags(v0512: Catalog) -> None:
    tokenizers = v0512.tokenizers()
    assert len(tokenizers) == 177  # 176 defined + one placeholder
    assert [t.position for t in tokenizers] == sorted(t.position for t in tokenizers)
    tags = v0512.tags()
    assert all(isinstance(t, TagInfo) for t in tags)
    assert [t.name for t in tags] == sorted(t.name for t in tags)
    counts = {t.name: t.model_count for t in tags}
    assert counts["CODE_MODEL_TAG"] == len(v0512.models(tag="CODE_MODEL_TAG"))
    links = v0512.connection.execute("SELECT count(*) FROM model_tags").fetchone()[0]
    assert sum(counts.values()) == links


# The small fixture: every kind of entry ---------------------------------------------------------


def test_fixture_model_texts_with_quotes_survive(mini: Catalog) -> None:
    alpha = mini.model("acme/alpha")
    assert alpha.display_name == 'Alpha "Q" (7B)'
    assert "ünïcode" in alpha.description
    assert alpha.num_parameters == 7_000_000_000
    assert alpha.deployments == ("acme/alpha", "hostco/alpha")


def test_fixture_placeholder_model(mini: Catalog) -> None:
    ghost = mini.model("ghost/model")
    assert ghost.is_placeholder is True
    assert ghost.creator_organization_name == "Unknown"
    assert ghost.tags == ("TEXT_MODEL_TAG", "FULL_FUNCTIONALITY_TEXT_MODEL_TAG")
    assert ghost.deployments == ("hostco/ghost",)
    assert ghost.source_file is not None and ghost.source_file.endswith("model_deployments.yaml")


def test_fixture_window_service_and_nested_args(mini: Catalog) -> None:
    deployment = mini.deployment("hostco/alpha")
    assert deployment.client_args is None
    assert deployment.window_service_args == {"gpt2_window_service": {}, "mode": "strict"}
    assert deployment.max_request_length == 4097
    assert deployment.max_sequence_and_generated_tokens_length == 8192
    tokenizer = mini.tokenizer("acme/tok")
    assert tokenizer.args == {
        "pretrained_model_name_or_path": "acme/alpha-hf",
        "padding_side": "left",
    }
    assert mini.tokenizer("acme/unused").end_of_text_token == ""


def test_fixture_creator_organization_name_with_space(mini: Catalog) -> None:
    assert [m.name for m in mini.models(creator="acme labs")] == ["acme/alpha", "acme/beta"]
    assert [m.name for m in mini.models(creator="acme")] == ["acme/alpha", "acme/beta"]


def test_fixture_model_without_deployments(mini: Catalog) -> None:
    assert mini.model("zeta/gamma").deployments == ()
    assert mini.deployments(model="zeta/gamma") == []


def test_pin_info_is_a_plain_record() -> None:
    pin = PinInfo("acme/alpha", "hostco/alpha", "2026-01-01 00:00:00")
    assert pin.to_json() == {
        "model_name": "acme/alpha",
        "deployment_name": "hostco/alpha",
        "pinned_at": "2026-01-01 00:00:00",
    }


# Lookups are indexed SQL ------------------------------------------------------------------------


def _query_plans(catalog: Catalog, call: object) -> list[str]:
    """The plan of every statement a call runs (statements captured with their values)."""
    statements: list[str] = []
    catalog.connection.raw.set_trace_callback(statements.append)
    try:
        assert callable(call)
        call()
    finally:
        catalog.connection.raw.set_trace_callback(None)
    plans = []
    for statement in statements:
        if statement.split()[0].upper() in ("BEGIN", "COMMIT"):
            continue
        rows = catalog.connection.execute("EXPLAIN QUERY PLAN " + statement).fetchall()
        plans.extend(str(row[-1]) for row in rows)
    return plans


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.model("meta/llama-2-7b"),
        lambda c: c.deployment("together/llama-2-7b"),
        lambda c: c.tokenizer("meta-llama/Llama-2-7b-hf"),
        lambda c: c.models(tag="CODE_MODEL_TAG"),
        lambda c: c.models(host="together"),
        lambda c: c.deployments(model="meta/llama-2-7b"),
        lambda c: c.deployments(host="together"),
        lambda c: c.deployments(tokenizer="meta-llama/Llama-2-7b-hf"),
    ],
)
def test_lookups_use_indexes_not_scans(v0512: Catalog, call: object) -> None:
    assert callable(call)
    plans = _query_plans(v0512, lambda: call(v0512))
    assert plans
    scans = [p for p in plans if p.startswith("SCAN") and "COVERING INDEX" not in p]
    assert scans == [], plans


# Hostile names ----------------------------------------------------------------------------------

HOSTILE = ["x'); DROP TABLE models; --", 'a"b', "%", "_", "meta/%", "' OR '1'='1", "\x00x"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_only_unknown_names(mini: Catalog, name: str) -> None:
    before = dump(mini.path)
    with pytest.raises(UnknownModelError):
        mini.model(name)
    with pytest.raises(UnknownDeploymentError):
        mini.deployment(name)
    with pytest.raises(UnknownTokenizerError):
        mini.tokenizer(name)
    assert mini.models(creator=name) == []
    assert mini.models(host=name) == []
    assert mini.deployments(host=name) == []
    assert dump(mini.path) == before


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=st.text(max_size=40))
def test_any_text_as_a_name_is_a_lookup_not_sql(mini: Catalog, name: str) -> None:
    known = {m.name for m in mini.models()}
    if name in known:
        assert mini.model(name).name == name
    else:
        with pytest.raises(UnknownModelError) as raised:
            mini.model(name)
        assert raised.value.name == name
    assert all(
        m.creator_prefix == name or m.creator_organization_name.lower() == name.lower()
        for m in mini.models(creator=name)
    )
    assert mini.connection.execute("SELECT count(*) FROM models").fetchone()[0] == 4


def test_reads_do_not_change_the_connection_state(mini: Catalog) -> None:
    mini.models()
    mini.model("acme/alpha")
    assert mini.connection.in_transaction is False
    assert mini.connection.raw.row_factory is None


def test_reads_inside_a_callers_transaction(tmp_path: Path) -> None:
    with Catalog.open(empty_database(tmp_path / "c.db")) as catalog:
        catalog.sync([MINI])
        catalog.connection.execute("BEGIN")
        try:
            assert catalog.model("acme/alpha").name == "acme/alpha"
            assert catalog.connection.in_transaction is True
        finally:
            catalog.connection.execute("ROLLBACK")


@pytest.mark.slow  # what a fresh interpreter imports
def test_store_reads_with_sqlite3_only() -> None:
    import subprocess
    import sys

    code = (
        "import sys, catalog.query.lookups, catalog.db.schema, catalog.query.checks\n"
        "import catalog.query.export\n"
        "bad = [m for m in ('sqlalchemy', 'alembic', 'yaml', 'click') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
