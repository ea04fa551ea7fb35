"""The policy of the HELM in use: a catalog synced with --helm records the crfm-helm version it
read, and with no policy set its rule is the policy in force; `catalog settings` and `explain`
say which policy is in force and why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli
from helm_helpers import require_helm
from helm_yaml import deployment, model, write_sources

from catalog import Catalog, SettingError
from catalog.resolve.policies import helm_rule


@pytest.mark.parametrize(
    ("version", "rule"),
    [("0.4.0", "first"), ("0.5.6", "first"), ("0.5.7", "last"), ("0.5.16", "last"),
     ("0.5.7.dev1", "last"), ("0.5.10rc1", "last"), ("1.0", "last")],
)  # fmt: skip
def test_each_helm_version_has_its_rule(version: str, rule: str) -> None:
    assert helm_rule(version) == rule


@pytest.mark.parametrize("version", ["", "latest", "v0.5.16", ".5"])
def test_a_version_that_is_not_one_is_refused(version: str) -> None:
    with pytest.raises(SettingError, match="not a crfm-helm version"):
        helm_rule(version)


def settings_rows(db: Path) -> dict[str, dict[str, str]]:
    result = run_cli("settings", "list", "--json", db=db)
    assert result.returncode == 0, result.stderr
    return {row["key"]: row for row in json.loads(result.stdout)}


def test_a_catalog_synced_with_helm_runs_that_helms_rule_until_a_policy_is_set(
    tmp_path: Path,
) -> None:
    version = require_helm()
    db = tmp_path / "catalog.db"
    # A private layer in which openai/gpt2 has a second deployment: HELM's own rule (last)
    # picks it, the catalog's default rule (first) would not.
    private = write_sources(
        tmp_path / "private", [model("acme/x")], [deployment("myhost/gpt2", "openai/gpt2")]
    )
    result = run_cli("sync", "--helm", private, db=db)
    assert result.returncode == 0, result.stderr
    with Catalog.open(db) as catalog:
        assert catalog.sql("SELECT helm_version FROM syncs") == [{"helm_version": version}]
        assert catalog.policy_in_force() == "last"
        why = f"from crfm-helm {version} synced with --helm"
        assert catalog.policy_reason() == ("last", why)
        assert catalog.setting("policy") == "last"
        assert catalog.default_deployment("openai/gpt2") == "myhost/gpt2"
    row = settings_rows(db)["policy"]
    assert (row["value"], row["source"]) == ("last", why)
    assert run_cli("settings", "get", "policy", db=db).stdout == "last\n"
    explained = run_cli("explain", "openai/gpt2", db=db)
    assert f"policy: last ({why})" in explained.stdout
    as_json = json.loads(run_cli("explain", "openai/gpt2", "--json", db=db).stdout)
    assert (as_json["policy_source"], as_json["policy_reason"]) == ("helm", why)

    assert run_cli("settings", "set", "policy", "first", db=db).returncode == 0
    row = settings_rows(db)["policy"]
    assert (row["value"], row["source"]) == (
        "first",
        "set by the user (catalog settings set policy)",
    )
    as_json = json.loads(run_cli("explain", "openai/gpt2", "--json", db=db).stdout)
    assert as_json["policy_source"] == "setting"


def test_a_catalog_not_synced_with_helm_says_its_policy_is_the_default(tmp_path: Path) -> None:
    db = tmp_path / "catalog.db"
    source = write_sources(tmp_path / "src", [model("acme/x")], [deployment("h/x", "acme/x")])
    assert run_cli("sync", source, db=db).returncode == 0
    row = settings_rows(db)["policy"]
    assert row["value"] == "first" and row["source"].startswith("default")
    assert "policy: first (default" in run_cli("explain", "acme/x", db=db).stdout


def test_the_same_files_synced_without_helm_are_not_skipped_and_drop_the_helm_rule(
    tmp_path: Path,
) -> None:
    require_helm()
    from catalog.sync.sources import helm_config_dir

    db = tmp_path / "catalog.db"
    assert run_cli("sync", "--helm", db=db).returncode == 0
    again = run_cli("sync", helm_config_dir(), "--json", db=db)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["skipped_unchanged"] is False
    with Catalog.open(db) as catalog:
        assert catalog.policy_reason()[0] == "first"
