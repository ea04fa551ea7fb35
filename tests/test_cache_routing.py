"""Routing rules: which host shard each entry of an old creator-named shard belongs in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cache_helpers import key
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog import Catalog
from catalog.cache.routing import (
    Candidate,
    DeploymentNames,
    KeyIdentifiers,
    Outcome,
    Router,
    ShardRouting,
    _parse_json,
    build_shard_routing,
    catalog_router,
    key_identifiers,
    string_values,
)
from catalog.cache.sqlite_store import shard_name_problem
from catalog.errors import CacheMigrationError, SettingError


def deployment_names(name: str, model: str, args: dict[str, Any] | None = None) -> DeploymentNames:
    host, _, engine = name.partition("/")
    return DeploymentNames(name, engine, model, host, tuple(string_values(args)))


LLAMA = DeploymentNames(
    "together/llama-7b", "llama-7b", "meta/llama-7b", "together", ("huggyllama/llama-7b",)
)
OPT = deployment_names("huggingface/opt-66b", "meta/opt-66b", {"path": "facebook/opt-66b"})


def meta_routing(targets: dict[str, str | None] | None = None) -> ShardRouting:
    """Shard `meta` with llama-7b on together, opt-66b on huggingface, gal nowhere."""
    models = [("meta/llama-7b", "llama-7b"), ("meta/opt-66b", "opt-66b"), ("meta/gal", "gal")]
    hosts = {"meta/llama-7b": "together", "meta/opt-66b": "huggingface", "meta/gal": None}
    hosts.update(targets or {})
    return build_shard_routing("meta", models, [LLAMA, OPT], [], hosts)


def ids(*identifiers: str, tokenizer: bool = False) -> KeyIdentifiers:
    return KeyIdentifiers(identifiers, tokenizer)


# Pure rules ------------------------------------------------------------------------------------


def test_a_tokenizer_request_stays_whatever_it_names() -> None:
    outcome = meta_routing().route(ids("meta/llama-7b", tokenizer=True))
    assert outcome.kind == "stay"


@pytest.mark.parametrize(
    "identifier",
    ["meta/llama-7b", "llama-7b", "together/llama-7b", "huggyllama/llama-7b", "x/LLaMA-7B"],
)
def test_a_model_matches_by_name_engine_deployment_and_client_args(identifier: str) -> None:
    assert meta_routing().route(ids(identifier)) == Outcome("move", "together")


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(["meta/llama-7b", "huggyllama/llama-7b", "together/llama-7b"]),
    upper=st.lists(st.booleans(), min_size=32, max_size=32),
    prefix=st.from_regex(r"[a-z]{1,8}/", fullmatch=True),
)
def test_matching_ignores_case_and_reads_the_last_segment(
    name: str, upper: list[bool], prefix: str
) -> None:
    cased = "".join(c.upper() if u else c for c, u in zip(name, upper, strict=False))
    routing = meta_routing()
    assert routing.route(ids(cased)) == Outcome("move", "together")
    assert routing.route(ids(prefix + cased.rpartition("/")[2])) == Outcome("move", "together")


def test_a_match_without_target_is_unrouted_with_the_reason() -> None:
    outcome = meta_routing().route(ids("meta/gal"))
    assert outcome.kind == "unrouted"
    assert "meta/gal" in outcome.reason and "no deployment" in outcome.reason


def test_matches_on_two_hosts_are_unrouted() -> None:
    outcome = meta_routing().route(ids("llama-7b", "opt-66b"))
    assert outcome.kind == "unrouted"
    assert "huggingface" in outcome.reason and "together" in outcome.reason


def test_matches_on_one_host_route_together() -> None:
    routing = meta_routing({"meta/opt-66b": "together"})
    assert routing.route(ids("llama-7b", "opt-66b")) == Outcome("move", "together")


def test_no_match_goes_to_the_single_host_of_the_shard() -> None:
    routing = meta_routing({"meta/opt-66b": "together"})
    for identifiers in (ids("gpt-99"), ids()):
        assert routing.route(identifiers) == Outcome("move", "together")


def test_no_match_with_several_hosts_is_unrouted() -> None:
    outcome = meta_routing().route(ids("gpt-99"))
    assert outcome.kind == "unrouted"
    assert "several hosts" in outcome.reason


def test_no_match_and_no_target_at_all_is_unrouted() -> None:
    routing = meta_routing({"meta/llama-7b": None, "meta/opt-66b": None})
    assert routing.route(ids("gpt-99")).kind == "unrouted"


def test_a_shard_without_candidates_is_left_as_it_is() -> None:
    routing = build_shard_routing("scale", [], [], [], {})
    assert routing.route(ids("anything")).kind == "stay"
    assert routing.route(ids()).kind == "stay"


def test_a_deployment_named_after_the_shard_targets_the_shard_itself() -> None:
    bloom = deployment_names("together/bloom", "bigscience/bloom", {"m": "bigscience/bloom"})
    routing = build_shard_routing("together", [], [], [bloom], {})
    for identifier in ("bigscience/bloom", "BLOOM", "other"):
        outcome = routing.route(ids(identifier))
        assert (outcome.kind, outcome.host) == ("stay", "together")


def test_aliases_add_match_strings_to_models_and_through_deployments() -> None:
    models = [("meta/llama-7b", "llama-7b")]
    targets = {"meta/llama-7b": "together"}
    by_model = build_shard_routing("meta", models, [LLAMA], [], targets, {"meta/llama-7b": ["L7"]})
    by_deployment = build_shard_routing(
        "meta", models, [LLAMA], [], targets, {"together/llama-7b": ["my-llama"]}
    )
    assert by_model.route(ids("l7")) == Outcome("move", "together")
    assert by_deployment.route(ids("x/MY-LLAMA")) == Outcome("move", "together")


@pytest.mark.parametrize("host", ["a/b", "..", "", ".hidden", "a\\b"])
def test_an_unsafe_host_name_is_refused(host: str) -> None:
    routing = build_shard_routing(
        "meta", [("meta/m", "m")], [], [], {"meta/m": host}, name_problem=shard_name_problem
    )
    outcome = routing.route(ids("meta/m"))
    assert outcome.kind == "unrouted"
    assert "refused" in outcome.reason


def test_an_entry_its_host_would_move_again_is_unrouted() -> None:
    """A move must be final, or a second run would move the entry on."""
    meta = build_shard_routing("meta", [("meta/x", "x")], [], [], {"meta/x": "together"})
    together = build_shard_routing(
        "together", [("together/x", "x")], [], [], {"together/x": "huggingface"}
    )
    router = Router({"meta": meta, "together": together}.__getitem__)
    outcome = router.route("meta", key(model="x"))
    assert outcome.kind == "unrouted"
    assert "together" in outcome.reason and "huggingface" in outcome.reason


# Keys --------------------------------------------------------------------------------------------


def test_identifiers_are_the_string_model_and_engine_fields() -> None:
    assert key_identifiers(key(model="a/b", engine="c", prompt="p")) == ids("a/b", "c")
    assert key_identifiers(key(engine="davinci")) == ids("davinci")
    assert key_identifiers(key(model=3, engine=None)) == ids()
    assert key_identifiers(key(tokenizer="huggingface/gpt2", text="x")) == ids(tokenizer=True)


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '"model"', "", '{"model": "a"} x'])
def test_a_key_that_is_not_a_json_object_has_no_identifier(text: str) -> None:
    assert key_identifiers(text) == ids()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def _loads(text: str) -> tuple[str, Any]:
    try:
        return "ok", json.loads(text)
    except ValueError:
        return "error", None


def _parsed(text: str) -> tuple[str, Any]:
    try:
        return "ok", _parse_json(text)
    except ValueError:
        return "error", None


@settings(max_examples=300, deadline=None)
@given(value=json_values, pad=st.sampled_from(["", " ", "\n", " x", "}", "\t "]))
def test_the_fast_parser_agrees_with_json_loads(value: Any, pad: str) -> None:
    text = json.dumps(value, sort_keys=True)
    assert _parsed(text) == _loads(text)
    assert _parsed(pad + text) == _loads(pad + text)
    assert _parsed(text + pad) == _loads(text + pad)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=40))
def test_the_fast_parser_agrees_with_json_loads_on_any_text(text: str) -> None:
    assert _parsed(text) == _loads(text)


def test_string_values_are_collected_at_any_depth() -> None:
    args = {"a": "x", "b": [1, "y", {"c": "z", "d": None}], "e": {"f": ["w"]}}
    assert sorted(string_values(args)) == ["w", "x", "y", "z"]


def test_candidates_hold_case_folded_match_strings() -> None:
    routing = meta_routing()
    llama = next(c for c in routing.candidates if c.name == "meta/llama-7b")
    assert llama == Candidate(
        "meta/llama-7b",
        "model",
        "together",
        frozenset({"meta/llama-7b", "llama-7b", "together/llama-7b", "huggyllama/llama-7b"}),
    )


# From the real catalogs ------------------------------------------------------------------------


def route(catalog: Catalog, shard: str, *, policy: str | None = None, **request: Any) -> Outcome:
    router, _ = catalog_router(
        catalog.connection, catalog.engine, policy=policy, name_problem=shard_name_problem
    )
    return router.route(shard, key(**request))


@pytest.mark.parametrize(
    "identifier",
    ["meta/llama-7b", "together/llama-7b", "huggyllama/llama-7b", "togethercomputer/llama-7b"],
)
def test_pr1903_meta_entries_move_to_together(pr1903: Catalog, identifier: str) -> None:
    assert route(pr1903, "meta", model=identifier, prompt="p") == Outcome("move", "together")


def test_pr1903_openai_entries_stay_except_gpt2(pr1903: Catalog) -> None:
    assert route(pr1903, "openai", engine="davinci").kind == "stay"
    assert route(pr1903, "openai", model="gpt-3.5-turbo-0613").kind == "stay"
    assert route(pr1903, "openai", model="gpt2") == Outcome("move", "huggingface")
    assert route(pr1903, "openai", model="nothing-known").kind == "unrouted"


def test_pr1903_shards_without_candidates_stay(pr1903: Catalog) -> None:
    assert route(pr1903, "perspectiveapi", model="x").kind == "stay"
    assert route(pr1903, "scale", prompt="y").kind == "stay"


@pytest.mark.parametrize(
    ("model", "host"),
    [
        ("meta/llama-7b", "together"),
        ("meta/opt-175b", "huggingface"),
        ("meta/llama-3.1-70b-instruct", "google"),
        ("meta/amazon-llama3-8b-instruct-v1:0", "amazon"),
    ],
)
def test_v0512_meta_is_split_across_hosts(v0512: Catalog, model: str, host: str) -> None:
    assert route(v0512, "meta", model=model) == Outcome("move", host)


def test_the_policy_picks_the_host(v0512: Catalog) -> None:
    model = "meta/llama-3.1-8b-instruct"
    assert route(v0512, "meta", model=model) == Outcome("move", "google")
    assert route(v0512, "meta", model=model, policy="last") == Outcome("move", "huggingface")
    v0512.connection.execute("INSERT INTO settings (key, value) VALUES ('policy', 'last')")
    assert route(v0512, "meta", model=model) == Outcome("move", "huggingface")
    assert route(v0512, "meta", model=model, policy="first") == Outcome("move", "google")
    with pytest.raises(SettingError, match="unknown policy"):
        route(v0512, "meta", model=model, policy="middle")


def test_a_pin_overrides_the_policy(v0512: Catalog) -> None:
    v0512.connection.execute(
        "INSERT INTO pins (model_name, deployment_name, pinned_at) VALUES (?, ?, ?)",
        ("meta/llama-3.1-8b-instruct", "huggingface/llama-3.1-8b-instruct", "2026-01-01"),
    )
    assert route(v0512, "meta", model="llama-3.1-8b-instruct") == Outcome("move", "huggingface")
    targets = v0512.engine.default_hosts("first")
    assert targets["meta/llama-3.1-8b-instruct"] == "huggingface"


def test_a_model_without_deployment_has_no_target(pr1903: Catalog) -> None:
    targets = pr1903.engine.default_hosts("first")
    assert targets["google/palm"] is None
    assert targets["meta/llama-7b"] == "together"


def test_an_aliases_file_routes_private_identifiers(pr1903: Catalog, tmp_path: Path) -> None:
    aliases = tmp_path / "aliases.yaml"
    aliases.write_text("my-llama: meta/llama-7b\nin-house-7b: together/llama-2-7b\n")
    router, _ = catalog_router(pr1903.connection, pr1903.engine, aliases=aliases)
    assert router.route("meta", key(model="my-llama")) == Outcome("move", "together")
    assert router.route("meta", key(model="corp/In-House-7B")) == Outcome("move", "together")


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        (b"my-llama: meta/llama-7c\n", 1, "did you mean 'meta/llama-7b'"),
        (b"- a\n- b\n", 1, "must map identifiers"),
        (b"a: meta/llama-7b\nb: [c]\n", 2, "both must be strings"),
        (b"a: meta/llama-7b\nb: [unclosed\n", 3, "not valid YAML"),
        (b"a: meta/llama-7b\n---\nb: meta/llama-7b\n", 2, "single document"),
        (b"a: meta/llama-7b\nb: \xe9\n", 2, "not UTF-8"),
        (b"a: !!python/object/apply:os.system [id]\n", 1, "python/object"),
        (b"a: &a [x, x]\nb: &b [*a, *a]\n", 1, "must be strings"),
        (b"a: " + b"[" * 5000 + b"]" * 5000 + b"\n", 1, "nested too deep"),
    ],
)
def test_a_bad_aliases_file_is_an_error_naming_its_line(
    pr1903: Catalog, tmp_path: Path, content: bytes, line: int, message: str
) -> None:
    aliases = tmp_path / "aliases.yaml"
    aliases.write_bytes(content)
    with pytest.raises(CacheMigrationError, match=message) as raised:
        catalog_router(pr1903.connection, pr1903.engine, aliases=aliases)
    assert f"{aliases}:{line}: " in str(raised.value)


def test_an_empty_aliases_file_adds_nothing(pr1903: Catalog, tmp_path: Path) -> None:
    aliases = tmp_path / "aliases.yaml"
    aliases.write_text("# nothing yet\n")
    router, _ = catalog_router(pr1903.connection, pr1903.engine, aliases=aliases)
    assert router.route("meta", key(model="my-llama")).kind == "move"


def test_a_missing_aliases_file_is_an_error(pr1903: Catalog, tmp_path: Path) -> None:
    with pytest.raises(CacheMigrationError, match="cannot read the aliases file"):
        catalog_router(pr1903.connection, pr1903.engine, aliases=tmp_path / "absent.yaml")
