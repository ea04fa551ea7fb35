"""History: what each event changed, `catalog diff`, `catalog history`, and answers as of an
earlier event, checked against independent computations and against fresh catalogs."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import HELM_CONFIGS, dump, real_yaml, require_shared, run_cli
from helm_yaml import deployment, model, synced_catalog, write_sources
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from catalog import Catalog, HistoryError, SchemaError
from catalog.db import migrations
from catalog.db.location import DatabaseLocation

PAIRS = [("2023-11-17-pr1903", "v0.5.0"), ("v0.5.0", "v0.5.12")]


# An independent reading of HELM's YAML: PyYAML, the later definition of a name wins, and a
# deployment's model without metadata stands as HELM's placeholder.


def _yaml_entries(directory: Path, file: str, key: str) -> dict[str, dict[str, Any]]:
    listed = real_yaml(directory / file).get(key) or []
    return {entry["name"]: entry for entry in listed}


def _model_content(entry: dict[str, Any]) -> tuple[Any, ...]:
    release = entry.get("release_date")
    return (
        entry.get("display_name"),
        entry.get("description"),
        entry.get("creator_organization_name"),
        entry.get("access"),
        str(release) if release is not None else None,
        entry.get("num_parameters"),
        tuple(dict.fromkeys(entry.get("tags") or ())),
    )


def _spec(spec: dict[str, Any] | None) -> Any:
    if spec is None:
        return None
    return json.dumps(
        [spec.get("class_name"), spec.get("args") or None], sort_keys=True, default=str
    )


def _deployment_content(entry: dict[str, Any]) -> tuple[Any, ...]:
    return (
        entry.get("model_name") or entry["name"],
        entry.get("tokenizer_name"),
        _spec(entry.get("client_spec")),
        _spec(entry.get("window_service_spec")),
        entry.get("max_sequence_length"),
        entry.get("max_request_length"),
        entry.get("max_sequence_and_generated_tokens_length"),
        bool(entry.get("deprecated")),
    )


def _tokenizer_content(entry: dict[str, Any]) -> tuple[Any, ...]:
    return (
        _spec(entry.get("tokenizer_spec")),
        entry.get("end_of_text_token"),
        entry.get("prefix_token"),
    )


def independent_state(directory: Path) -> dict[str, dict[str, tuple[Any, ...]]]:
    models = {n: _model_content(e) for n, e in _yaml_entries(
        directory, "model_metadata.yaml", "models").items()}  # fmt: skip
    deployments = _yaml_entries(directory, "model_deployments.yaml", "model_deployments")
    tokenizers = {
        n: _tokenizer_content(e)
        for n, e in _yaml_entries(directory, "tokenizer_configs.yaml", "tokenizer_configs").items()
    }
    for name, entry in deployments.items():
        served = entry.get("model_name") or name
        if served not in models:
            models[served] = ("placeholder", served)
        tokenizer = entry.get("tokenizer_name")
        if tokenizer and tokenizer not in tokenizers:
            tokenizers[tokenizer] = ("placeholder", tokenizer)
    return {
        "models": models,
        "deployments": {n: _deployment_content(e) for n, e in deployments.items()},
        "tokenizers": tokenizers,
    }


def _list_scan_defaults(directory: Path) -> dict[str, dict[str, str | None]]:
    """HELM's two rules scanning its list (every copy of a name kept)."""
    listed = real_yaml(directory / "model_deployments.yaml")["model_deployments"]
    by_name = {d["name"]: d for d in listed}
    models = independent_state(directory)["models"]
    defaults: dict[str, dict[str, str | None]] = {"first": {}, "last": {}}
    for name in models:
        mine = [d for d in listed if (d.get("model_name") or d["name"]) == name]
        live = [d for d in mine if not d.get("deprecated")]
        first = (live or mine)[0]["name"] if mine else None
        defaults["first"][name] = by_name[name]["name"] if name in by_name else first
        last = (live or mine)[-1]["name"] if mine else None
        defaults["last"][name] = last if mine else (name if name in by_name else None)
    return defaults


@pytest.mark.parametrize(("old", "new"), PAIRS)
def test_the_diff_of_two_helm_releases_is_what_their_yaml_says(old: str, new: str) -> None:
    before_dir = require_shared(HELM_CONFIGS / old)
    after_dir = require_shared(HELM_CONFIGS / new)
    with Catalog.from_helm_dirs([before_dir]) as a, Catalog.from_helm_dirs([after_dir]) as b:
        changes = a.diff(b).to_json()
    before, after = independent_state(before_dir), independent_state(after_dir)
    for table in ("models", "deployments", "tokenizers"):
        assert changes["added"][table] == sorted(set(after[table]) - set(before[table])), table
        assert changes["removed"][table] == sorted(set(before[table]) - set(after[table])), table
        changed = sorted(n for n in before[table] if n in after[table] and before[table][n]
                         != after[table][n])  # fmt: skip
        assert [c["name"] for c in changes["changed"][table]] == changed, table
    old_defaults, new_defaults = _list_scan_defaults(before_dir), _list_scan_defaults(after_dir)
    for policy in ("first", "last"):
        expected = sorted(
            model
            for model in {*old_defaults[policy], *new_defaults[policy]}
            if old_defaults[policy].get(model) != new_defaults[policy].get(model)
        )
        assert [c["model"] for c in changes["default_changes"][policy]] == expected, policy
    assert changes["added"]["models"] and changes["changed"]["deployments"]


def test_diff_on_the_command_line_exits_like_diff(tmp_path: Path) -> None:
    old = require_shared(HELM_CONFIGS / "v0.5.0")
    result = run_cli("diff", old, old, db=tmp_path / "none.db")
    assert (result.returncode, result.stdout.strip()) == (0, "no difference")
    result = run_cli("diff", old, HELM_CONFIGS / "v0.5.12", "--json", db=tmp_path / "none.db")
    assert result.returncode == 1
    shape = json.loads(result.stdout)
    assert set(shape) >= {"added", "removed", "changed", "default_changes"}
    assert set(shape["default_changes"]) >= {"first", "last"}
    missing = run_cli("diff", old, tmp_path / "absent.db", db=tmp_path / "none.db")
    assert missing.returncode == 2 and "error: no catalog at" in missing.stderr
    assert not (tmp_path / "absent.db").exists() and not (tmp_path / "none.db").exists()


# As of each event ----------------------------------------------------------------------------


def _event_times(catalog: Catalog) -> list[dt.datetime]:
    return [
        dt.datetime.fromisoformat(row[0])
        for row in catalog.connection.execute("SELECT occurred_at FROM events ORDER BY id")
    ]


def _defaults(catalog: Catalog) -> dict[tuple[str, str], str | None]:
    return {
        (name, policy): catalog.default_deployment(name, policy)
        for name in catalog.model_names()
        for policy in ("first", "last")
    } | {(name, "in force"): catalog.default_deployment(name) for name in catalog.model_names()}


def test_as_of_each_event_the_catalog_answers_as_a_fresh_one_built_from_that_state(
    tmp_path: Path,
) -> None:
    old = require_shared(HELM_CONFIGS / "v0.5.0")
    new = require_shared(HELM_CONFIGS / "v0.5.12")
    model_name, pinned = "meta/llama-2-7b", "together/llama-2-7b"
    steps: list[tuple[list[Path], dict[str, str], str | None]] = []
    with Catalog.open(tmp_path / "catalog.db") as catalog:
        catalog.sync([old])
        steps.append(([old], {}, None))
        catalog.pin(model_name, pinned)
        steps.append(([old], {model_name: pinned}, None))
        catalog.sync([new])
        steps.append(([new], {model_name: pinned}, None))
        catalog.unpin(model_name)
        steps.append(([new], {}, None))
        catalog.set_setting("policy", "last")
        steps.append(([new], {}, "last"))
        times = _event_times(catalog)[1:]  # the baseline first
        assert len(times) == len(steps)
        for index, ((sources, pins, policy), moment) in enumerate(zip(steps, times, strict=True)):
            fresh = synced_catalog(tmp_path / f"fresh{index}", *sources)
            for name, deployment_name in pins.items():
                fresh.pin(name, deployment_name)
            if policy is not None:
                fresh.set_setting("policy", policy)
            past = catalog.at(moment)
            assert _defaults(past) == _defaults(fresh), f"as of event {index + 2}"
            assert [p.deployment_name for p in past.pins()] == list(pins.values())
            fresh.close()
        with pytest.raises(HistoryError, match="history starts"):
            catalog.at(times[0] - dt.timedelta(days=1))
        assert catalog.at(1).model_names() == catalog.at(times[0]).model_names()


def _small_catalogs(tmp_path: Path) -> list[Path]:
    """Three small catalogs whose defaults differ under the two rules and between each other."""
    layouts = [
        ([model("a/one"), model("a/two")], [deployment("h1/one", "a/one"),
         deployment("h2/one", "a/one"), deployment("h1/two", "a/two")]),
        ([model("a/one"), model("a/three")], [deployment("h2/one", "a/one"),
         deployment("h3/one", "a/one", deprecated=True), deployment("h1/three", "a/three")]),
        ([model("a/two"), model("a/three")], [deployment("h1/two", "a/two"),
         deployment("h2/two", "a/two"), deployment("h1/three", "a/three")]),
    ]  # fmt: skip
    return [
        write_sources(tmp_path / f"layout{i}", models, deployments)
        for i, (models, deployments) in enumerate(layouts)
    ]


OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("sync"), st.integers(0, 2)),
        st.tuples(st.just("pin"), st.integers(0, 20)),
        st.tuples(st.just("unpin"), st.integers(0, 20)),
        st.tuples(st.just("policy"), st.sampled_from(["first", "last"])),
    ),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=OPERATIONS)
@example(operations=[("sync", 0), ("pin", 0), ("sync", 1)])  # a pin a later sync drops
def test_as_of_any_event_of_any_sequence_equals_a_catalog_rebuilt_from_its_state(
    tmp_path_factory: pytest.TempPathFactory, operations: list[tuple[str, Any]]
) -> None:
    tmp_path = tmp_path_factory.mktemp("sequence")
    layouts = _small_catalogs(tmp_path)
    states: list[tuple[int | None, dict[str, str], str | None]] = []
    layout: int | None = None
    pins: dict[str, str] = {}
    policy: str | None = None
    with Catalog.open(tmp_path / "catalog.db") as catalog:
        for kind, value in operations:
            before = catalog.connection.execute("SELECT count(*) FROM events").fetchone()[0]
            if kind == "sync":
                catalog.sync([layouts[value]])
                layout = value
                kept = {d.name: d.model_name for d in catalog.deployments()}
                pins = {m: d for m, d in pins.items() if kept.get(d) == m}
            elif kind in ("pin", "unpin") and layout is not None:
                deployments = catalog.deployments()
                chosen = deployments[value % len(deployments)]
                if kind == "pin":
                    catalog.pin(chosen.model_name, chosen.name)
                    pins[chosen.model_name] = chosen.name
                else:
                    catalog.unpin(chosen.model_name)
                    pins.pop(chosen.model_name, None)
            elif kind == "policy":
                catalog.set_setting("policy", value)
                policy = value
            after = catalog.connection.execute("SELECT count(*) FROM events").fetchone()[0]
            if after > before:
                states.append((layout, dict(pins), policy))
        times = _event_times(catalog)[1:]
        assert len(times) == len(states)
        for index, ((layout_at, pins_at, policy_at), moment) in enumerate(
            zip(states, times, strict=True)
        ):
            fresh = synced_catalog(
                tmp_path / f"fresh{index}", *([layouts[layout_at]] if layout_at is not None else [])
            ) if layout_at is not None else None  # fmt: skip
            past = catalog.at(moment)
            if fresh is None:
                assert past.model_names() == []
                continue
            for name, deployment_name in pins_at.items():
                fresh.pin(name, deployment_name)
            if policy_at is not None:
                fresh.set_setting("policy", policy_at)
            assert _defaults(past) == _defaults(fresh)
            assert [(d.name, d.model_name, d.deprecated) for d in past.deployments()] == [
                (d.name, d.model_name, d.deprecated) for d in fresh.deployments()
            ]
            fresh.close()


# What a sync reports, and what it records --------------------------------------------------


def test_a_sync_reports_names_and_default_changes_and_a_dry_run_writes_none(
    tmp_path: Path,
) -> None:
    old = require_shared(HELM_CONFIGS / "v0.5.0")
    new = require_shared(HELM_CONFIGS / "v0.5.12")
    db = tmp_path / "catalog.db"
    assert run_cli("sync", old, db=db).returncode == 0
    before = dump(db)
    dry = run_cli("sync", new, "--dry-run", "--json", db=db)
    assert dry.returncode == 0 and dump(db) == before
    report = json.loads(dry.stdout)
    assert len(report["names"]["added"]["models"]) == report["added"]["models"] > 20
    assert {"first", "last", "in_force"} <= set(report["default_changes"])
    text = run_cli("sync", new, db=db)
    assert text.returncode == 0
    assert "added models: " in text.stdout and "more" in text.stdout
    assert "default deployment changed (the policy in force, pins applied)" in text.stdout
    with Catalog.open(db) as catalog:
        logged = catalog.sql("SELECT count(*) AS n FROM changes WHERE change = 'added' AND "
                             "table_name = 'models' AND sync_id = 2")[0]["n"]  # fmt: skip
        assert logged == report["added"]["models"]
        defaults = catalog.sql("SELECT count(*) AS n FROM default_changes WHERE sync_id = 2 "
                               "AND policy = 'first'")[0]["n"]  # fmt: skip
        assert defaults == len(report["default_changes"]["first"])


def test_history_of_one_model_lists_its_changes_and_defaults(tmp_path: Path) -> None:
    old = require_shared(HELM_CONFIGS / "v0.5.0")
    db = tmp_path / "catalog.db"
    run_cli("sync", old, db=db)
    run_cli("pin", "meta/llama-2-7b", "together/llama-2-7b", db=db)
    result = run_cli("history", "meta/llama-2-7b", "--json", db=db)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["table"], r["change"]) for r in rows][:2] == [
        ("models", "added"),
        ("defaults", "first"),
    ]
    assert rows[-1]["table"] == "pins" and rows[-1]["event_kind"] == "pin"
    unknown = run_cli("history", "meta/llama-2-7x", db=db)
    assert unknown.returncode == 1 and "did you mean 'meta/llama-2-7b'" in unknown.stderr


KILLED_SYNC = textwrap.dedent(
    """
    import os, signal, sys
    from catalog import Catalog
    from catalog.history import recorder

    original = recorder.EventRecorder.rows
    def rows_then_die(self, *args, **kwargs):
        original(self, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
    recorder.EventRecorder.rows = rows_then_die
    with Catalog.open(sys.argv[1]) as catalog:
        catalog.sync([sys.argv[2]])
    """
)


@pytest.mark.slow
def test_a_sync_killed_midway_leaves_no_history(tmp_path: Path) -> None:
    db = tmp_path / "catalog.db"
    Catalog.open(db).close()
    before = dump(db)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    died = subprocess.run(
        [sys.executable, "-c", KILLED_SYNC, str(db), str(require_shared(HELM_CONFIGS / "v0.5.0"))],
        env=env,
        capture_output=True,
    )
    assert died.returncode == -signal.SIGKILL
    assert dump(db) == before
    connection = sqlite3.connect(db)
    try:
        assert connection.execute("SELECT kind FROM events").fetchall() == [("baseline",)]
        assert connection.execute("SELECT count(*) FROM change_log").fetchone() == (0,)
    finally:
        connection.close()


# Downgrades keep what no sync can bring back ---------------------------------------------


def test_a_downgrade_that_would_delete_pins_or_history_is_refused_without_force(
    tmp_path: Path,
) -> None:
    db = tmp_path / "catalog.db"
    source = write_sources(tmp_path / "src", [model("a/one")], [deployment("h1/one", "a/one"),
                           deployment("h2/one", "a/one")])  # fmt: skip
    with Catalog.open(db) as catalog:
        catalog.sync([source])
        catalog.pin("a/one", "h2/one")
        saved = json.dumps([p.to_json() for p in catalog.pins()])
    before = dump(db)
    refused = run_cli("db", "downgrade", "0002_query_layer", db=db)
    assert refused.returncode == 1
    assert "would delete" in refused.stderr and "history events" in refused.stderr
    assert "hint: " in refused.stderr and dump(db) == before
    with pytest.raises(SchemaError, match="1 pins"):
        migrations.downgrade(DatabaseLocation.parse(db), "base")
    forced = run_cli("db", "downgrade", "0001_initial", "--force", db=db)
    assert forced.returncode == 0, forced.stderr
    assert "deleting 1 pins" in forced.stderr
    assert run_cli("db", "upgrade", db=db).returncode == 0
    (tmp_path / "pins.json").write_text(saved)
    restored = run_cli("pins", "--restore", tmp_path / "pins.json", db=db)
    assert restored.returncode == 0, restored.stderr
    with Catalog.open(db) as catalog:
        assert catalog.default_deployment("a/one") == "h2/one"
