"""Pins and settings: written safely, checked against the catalog, kept across syncs."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import dump, run_cli
from helm_yaml import deployment, model, synced_catalog, write_sources

from catalog import Catalog
from catalog.db.schema import PinInfo
from catalog.errors import PinError, SettingError, UnknownDeploymentError, UnknownModelError

MODELS = [model("meta/llama"), model("openai/gpt2")]
DEPLOYMENTS = [
    deployment("together/llama", "meta/llama"),
    deployment("huggingface/llama", "meta/llama"),
    deployment("huggingface/gpt2", "openai/gpt2"),
]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return write_sources(tmp_path / "src", MODELS, DEPLOYMENTS)


@pytest.fixture
def cat(tmp_path: Path, source: Path) -> Iterator[Catalog]:
    catalog = synced_catalog(tmp_path, source)
    yield catalog
    catalog.close()


def test_pin_overrides_the_policy_until_unpinned(cat: Catalog) -> None:
    assert cat.default_deployment("meta/llama") == "together/llama"
    info = cat.pin("meta/llama", "huggingface/llama")
    assert isinstance(info, PinInfo)
    assert (info.model_name, info.deployment_name) == ("meta/llama", "huggingface/llama")
    dt.datetime.fromisoformat(info.pinned_at)
    for policy in ("first", "last"):
        assert cat.default_deployment("meta/llama", policy) == "huggingface/llama"
    assert cat.pins() == [info]
    assert cat.unpin("meta/llama") is True
    assert cat.unpin("meta/llama") is False
    assert cat.pins() == []
    assert cat.default_deployment("meta/llama") == "together/llama"


def test_pinning_again_replaces_the_pin(cat: Catalog) -> None:
    cat.pin("meta/llama", "huggingface/llama")
    cat.pin("meta/llama", "together/llama")
    assert [p.deployment_name for p in cat.pins()] == ["together/llama"]


def test_pins_are_listed_in_catalog_order(cat: Catalog) -> None:
    cat.pin("openai/gpt2", "huggingface/gpt2")
    cat.pin("meta/llama", "together/llama")
    assert [p.model_name for p in cat.pins()] == ["meta/llama", "openai/gpt2"]


def test_bad_pins_are_refused_and_change_nothing(cat: Catalog) -> None:
    before = dump(cat.path)
    with pytest.raises(PinError, match=r"serves 'openai/gpt2'.*together/llama"):
        cat.pin("meta/llama", "huggingface/gpt2")
    with pytest.raises(UnknownModelError, match="meta/llama"):
        cat.pin("meta/lama", "together/llama")
    with pytest.raises(UnknownDeploymentError, match="together/llama"):
        cat.pin("meta/llama", "together/lama")
    with pytest.raises(UnknownModelError):
        cat.unpin("meta/lama")
    assert not cat.connection.in_transaction
    assert dump(cat.path) == before


def test_pin_survives_syncs_and_is_dropped_with_its_deployment(
    cat: Catalog, source: Path, tmp_path: Path
) -> None:
    cat.pin("meta/llama", "huggingface/llama")
    more = write_sources(
        tmp_path / "more", [*MODELS, model("x/new")], [*DEPLOYMENTS, deployment("x/new")]
    )
    cat.sync([more])
    assert cat.default_deployment("meta/llama") == "huggingface/llama"
    cat.sync([source], force=True)
    assert cat.default_deployment("meta/llama") == "huggingface/llama"

    without = write_sources(
        tmp_path / "without", MODELS, [d for d in DEPLOYMENTS if d["name"] != "huggingface/llama"]
    )
    report = cat.sync([without])
    assert report.pins_dropped == ["meta/llama"]
    assert cat.pins() == []
    assert cat.default_deployment("meta/llama") == "together/llama"


def test_settings_have_defaults_checks_and_persist(cat: Catalog) -> None:
    assert cat.settings() == {"policy": "first"}
    cat.set_setting("policy", "last")
    assert cat.settings() == {"policy": "last"}
    with pytest.raises(SettingError, match="first, last"):
        cat.set_setting("policy", "newest")
    with pytest.raises(SettingError, match="did you mean 'policy'"):
        cat.set_setting("polcy", "last")
    assert not cat.connection.in_transaction
    with Catalog.open(cat.path) as reopened:
        assert reopened.policy_in_force() == "last"
        assert reopened.default_deployment("meta/llama") == "huggingface/llama"


def test_a_setting_written_elsewhere_is_seen_at_once(cat: Catalog) -> None:
    assert cat.default_deployment("meta/llama") == "together/llama"
    with Catalog.open(cat.path) as other:
        other.set_setting("policy", "last")
    assert cat.default_deployment("meta/llama") == "huggingface/llama"


def test_cli_pins_and_settings(cat: Catalog) -> None:
    db = cat.path
    result = run_cli("pin", "meta/llama", "huggingface/llama", db=db)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "pinned meta/llama to huggingface/llama"
    listed = json.loads(run_cli("pins", "--json", db=db).stdout)
    assert [(p["model_name"], p["deployment_name"]) for p in listed] == [
        ("meta/llama", "huggingface/llama")
    ]
    refused = run_cli("pin", "meta/llama", "huggingface/gpt2", db=db)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: cannot pin 'meta/llama'")
    assert run_cli("unpin", "meta/llama", db=db).stdout.strip() == "unpinned meta/llama"
    assert run_cli("unpin", "meta/llama", db=db).stdout.strip() == "meta/llama had no pin"

    assert run_cli("settings", "get", "policy", db=db).stdout.strip() == "first"
    assert run_cli("settings", "set", "policy", "last", db=db).returncode == 0
    rows = json.loads(run_cli("settings", "list", "--json", db=db).stdout)
    assert rows[0]["key"] == "policy" and rows[0]["value"] == "last"
    assert rows[0]["default"] == "first"
    bad = run_cli("settings", "set", "policy", "lst", db=db)
    assert bad.returncode == 1 and "first, last" in bad.stderr
    unknown = run_cli("settings", "get", "polcy", db=db)
    assert unknown.returncode == 1 and "unknown setting 'polcy'" in unknown.stderr
    resolved = json.loads(run_cli("resolve", "model=meta/llama", "--json", db=db).stdout)
    assert resolved[0]["model_deployment"] == "huggingface/llama"
