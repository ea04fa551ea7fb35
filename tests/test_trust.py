"""Trust: the failures a new user met at the edges, each reproduced first, then fixed."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES, HELM_CONFIGS, require_shared, run_cli
from helm_yaml import deployment, model, synced_catalog, write_sources
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog import Catalog, DatabaseError, NoCatalogError, UnknownModelError

MINI = FIXTURES / "read" / "mini"


def _hand_edit(db: Path, *statements: str) -> None:
    """What `sqlite3 catalog.db "..."` does: the stock shell has foreign keys off."""
    connection = sqlite3.connect(db)
    try:
        for statement in statements:
            connection.execute(statement)
        connection.commit()
    finally:
        connection.close()


# 1, 2: a catalog edited by hand ------------------------------------------------------------


def test_a_model_deleted_by_hand_is_named_and_a_sync_repairs_it(
    pr1903_template: Path, tmp_path: Path
) -> None:
    db = tmp_path / "catalog.db"
    shutil.copyfile(pr1903_template, db)
    _hand_edit(db, "DELETE FROM models WHERE name = 'openai/gpt2'")
    conf = tmp_path / "entries.conf"
    conf.write_text('entries: [{description: "mmlu:model=text", priority: 1}]\n')
    for args in (
        ("resolve", "mmlu:model=text"),
        ("explain", "openai/davinci"),
        ("resolve", "--file", conf),
    ):
        result = run_cli(*args, db=db)
        assert result.returncode == 1, args
        assert "Traceback" not in result.stderr
        assert "refers to model 'openai/gpt2', which is missing" in result.stderr
        assert "hint: `catalog check`" in result.stderr
    with Catalog.open(db) as catalog, pytest.raises(DatabaseError, match="openai/gpt2"):
        catalog.default_deployment("openai/davinci")
    check = run_cli("check", db=db)
    assert check.returncode == 1 and "foreign-key-violation" in check.stdout
    repaired = run_cli("sync", require_shared(HELM_CONFIGS / "2023-11-17-pr1903"), db=db)
    assert repaired.returncode == 0, repaired.stderr
    assert "up to date" not in repaired.stdout and "added models: openai/gpt2" in repaired.stdout
    assert run_cli("check", db=db).returncode == 0
    assert run_cli("resolve", "mmlu:model=text", db=db).returncode == 0


TABLES = ("models", "deployments", "tokenizers", "tags", "model_tags", "pins", "settings")
ODD_VALUES = ["x", "", 0, -1, 1.5, "2024-13-45", "{not json", 10**18, "meta/llama-7b"]
EDITS = st.lists(
    st.tuples(
        st.sampled_from(["delete", "update"]),
        st.sampled_from(TABLES),
        st.integers(0, 10_000),
        st.integers(0, 20),
        st.sampled_from(ODD_VALUES),
    ),
    min_size=1,
    max_size=4,
)


def _edit(connection: sqlite3.Connection, operation: tuple[str, str, int, int, Any]) -> None:
    kind, table, row, column, value = operation
    rowids = [r[0] for r in connection.execute(f"SELECT rowid FROM {table}")]
    if not rowids:
        return
    rowid = rowids[row % len(rowids)]
    if kind == "delete":
        connection.execute(f"DELETE FROM {table} WHERE rowid = ?", (rowid,))
        return
    columns = [r[1] for r in connection.execute(f"PRAGMA table_info({table})")]
    name = columns[column % len(columns)]
    # NOT NULL, CHECK and keys hold even with foreign keys off.
    with contextlib.suppress(sqlite3.IntegrityError):
        connection.execute(f"UPDATE {table} SET {name} = ? WHERE rowid = ?", (value, rowid))


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(edits=EDITS)
def test_any_hand_edit_leaves_every_read_command_working_or_saying_what_is_broken(
    pr1903_template: Path, tmp_path_factory: pytest.TempPathFactory, edits: list[Any]
) -> None:
    tmp_path = tmp_path_factory.mktemp("edited")
    db = tmp_path / "catalog.db"
    shutil.copyfile(pr1903_template, db)
    connection = sqlite3.connect(db)
    try:
        for edit in edits:
            _edit(connection, edit)
        connection.commit()
    finally:
        connection.close()
    conf = tmp_path / "entries.conf"
    conf.write_text('entries: [{description: "mmlu:model=text", priority: 1}]\n')
    commands = [
        ("list", "models"),
        ("list", "deployments", "--json"),
        ("list", "tokenizers"),
        ("show", "model", "meta/llama-7b"),
        ("show", "deployment", "together/llama-7b"),
        ("show", "tokenizer", "huggingface/gpt2"),
        ("explain", "meta/llama-7b"),
        ("resolve", "model=text"),
        ("resolve", "model=meta/llama-7b", "--json"),
        ("resolve", "--file", conf),
        ("check",),
        ("export", tmp_path / "exported", "--force"),
        ("history", "meta/llama-7b"),
        ("query", "SELECT * FROM model_default_deployments"),
    ]
    for args in commands:
        result = run_cli(*args, db=db)
        assert result.returncode in (0, 1), (args, edits, result.stderr[-2000:])
        assert "Traceback" not in result.stderr, (args, edits, result.stderr[-2000:])
        # check and resolve --file exit 1 on the findings or failed entries they print.
        if result.returncode and args[0] != "check" and "--file" not in args:
            assert result.stderr.startswith("error: "), (args, result.stderr)


# 3, 4: exports -----------------------------------------------------------------------------


def test_an_export_of_an_overridden_deployment_keeps_both_policies_and_pins_need_restoring(
    tmp_path: Path,
) -> None:
    base = write_sources(
        tmp_path / "base",
        [model("a/one")],
        [deployment("h1/one", "a/one"), deployment("h2/one", "a/one")],
    )
    layer = write_sources(tmp_path / "layer", [], [deployment("h1/one", "a/one")])
    original = synced_catalog(tmp_path / "original", base, layer)
    exported = tmp_path / "exported"
    original.export(exported)
    rebuilt = synced_catalog(tmp_path / "rebuilt", exported)
    for policy in ("first", "last"):
        assert rebuilt.default_deployment("a/one", policy) == original.default_deployment(
            "a/one", policy
        ), policy
    assert (original.default_deployment("a/one", "first"),
            original.default_deployment("a/one", "last")) == ("h1/one", "h1/one")  # fmt: skip
    original.close()
    rebuilt.close()


# 9: a --db that is not there ---------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("list", "models"),
        ("show", "model", "a/b"),
        ("query", "SELECT 1"),
        ("explain", "a/b"),
        ("resolve", "model=text"),
        ("check",),
        ("export", "out"),
        ("pins",),
        ("cache", "plan", "cache"),
        ("pin", "a/b", "c/d"),
        ("settings", "set", "policy", "last"),
        ("history", "a/b"),
    ],
)
def test_no_command_but_sync_creates_a_missing_catalog(
    args: tuple[str, ...], tmp_path: Path
) -> None:
    (tmp_path / "cache").mkdir()
    db = tmp_path / "nested" / "catalog.db"
    result = run_cli(*args, db=db, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert f"error: no catalog at {db}" in result.stderr
    assert "hint: run `catalog sync` to create one" in result.stderr
    assert not (tmp_path / "nested").exists()
    with pytest.raises(NoCatalogError):
        Catalog.open(db, create=False)


def test_a_db_that_is_a_directory_says_so(tmp_path: Path) -> None:
    result = run_cli("list", "models", db=tmp_path)
    assert result.returncode == 1 and "is a directory" in result.stderr


# 8, 15, 16, 19: what explain and check say -------------------------------------------------


def test_explain_says_when_helms_list_scan_would_pick_another_deployment(tmp_path: Path) -> None:
    base = write_sources(
        tmp_path / "base",
        [model("a/one")],
        [deployment("h1/one", "a/one"), deployment("h2/one", "a/one")],
    )
    layer = write_sources(tmp_path / "layer", [], [deployment("h2/one", "a/one", deprecated=True)])
    with synced_catalog(tmp_path / "c", base, layer) as catalog:
        explanation = catalog.explain("a/one", policy="last")
        assert explanation.chosen == "h1/one"
        assert explanation.helm_list_choice == "h2/one"
        assert "HELM's own list still holds the earlier copy" in explanation.notes[0]
        assert catalog.explain("a/one", policy="first").notes == ()
        db = catalog.path
    text = run_cli("explain", "a/one", "--policy", "last", db=db)
    assert "note: a later layer redefined 'h2/one'" in text.stdout


def test_pins_to_deprecated_deployments_are_flagged_everywhere(tmp_path: Path) -> None:
    before = write_sources(
        tmp_path / "before",
        [model("a/one")],
        [deployment("h1/one", "a/one"), deployment("h2/one", "a/one")],
    )
    after = write_sources(
        tmp_path / "after",
        [model("a/one")],
        [deployment("h1/one", "a/one"), deployment("h2/one", "a/one", deprecated=True)],
    )
    with synced_catalog(tmp_path / "c", before) as catalog:
        catalog.pin("a/one", "h2/one")
        report = catalog.sync([after])
        assert [w.code for w in report.warnings] == ["pin-deprecated"]
        assert "pin-to-deprecated" in {f.code for f in catalog.check().findings}
        (resolution,) = catalog.resolve("model=a/one", ignore_deprecated=True)
        assert resolution.model_deployment == "h2/one"
        assert any("a pin wins over --ignore-deprecated" in w for w in resolution.warnings)
    with synced_catalog(tmp_path / "strict", before) as catalog:
        catalog.pin("a/one", "h2/one")
        result = run_cli("sync", after, "--strict", db=catalog.path)
        assert result.returncode == 1 and "pin-deprecated" in result.stderr


def test_check_knows_which_models_helm_generates_a_deployment_for(tmp_path: Path) -> None:
    source = write_sources(
        tmp_path / "s",
        [model("openai/gpt-x"), model("acme/none"), model("acme/one")],
        [deployment("acme/one"), deployment("openai/gpt-x-2", "acme/one")],
    )
    with synced_catalog(tmp_path / "c", source) as catalog:
        findings = {f.subject: f for f in catalog.check().by_code("model-without-deployments")}
    assert findings["openai/gpt-x"].severity == "info"
    assert "generate one at run time" in findings["openai/gpt-x"].message
    assert findings["acme/none"].severity == "warning"
    assert "no run can use it" in findings["acme/none"].message


def test_check_flags_a_deployment_named_like_another_model(tmp_path: Path) -> None:
    source = write_sources(
        tmp_path / "s",
        [model("acme/one"), model("acme/two")],
        [deployment("acme/one", "acme/two"), deployment("h1/one", "acme/one")],
    )
    with synced_catalog(tmp_path / "c", source) as catalog:
        (finding,) = catalog.check().by_code("deployment-named-like-another-model")
    assert finding.subject == "acme/one" and "acme/two" in finding.message


def test_explain_of_a_deployment_gives_the_commands_in_full(tmp_path: Path) -> None:
    source = write_sources(tmp_path / "s", [model("acme/one")], [deployment("h1/one", "acme/one")])
    with synced_catalog(tmp_path / "c", source) as catalog:
        with pytest.raises(UnknownModelError) as raised:
            catalog.explain("h1/one")
        db = catalog.path
    assert "catalog resolve model_deployment=h1/one" in str(raised.value)
    result = run_cli("explain", "h1/one", db=db)
    assert "hint: " in result.stderr and "`catalog explain acme/one`" in result.stderr


def test_list_by_host_ignores_case_like_creator(tmp_path: Path) -> None:
    source = write_sources(
        tmp_path / "s", [model("acme/one")], [deployment("together/one", "acme/one")]
    )
    with synced_catalog(tmp_path / "c", source) as catalog:
        assert [m.name for m in catalog.models(host="Together")] == ["acme/one"]
        assert [d.name for d in catalog.deployments(host="TOGETHER")] == ["together/one"]


@pytest.mark.parametrize(
    ("entry", "column", "where", "key"),
    [
        ("mmlu: model=acme/one", 6, "before", "model"),
        ("mmlu:model =acme/one", 6, "after", "model"),
        ("mmlu:model=acme/one, subject=anatomy", 21, "before", "subject"),
    ],
)
def test_a_space_next_to_a_key_is_named_as_the_mistake(
    tmp_path: Path, entry: str, column: int, where: str, key: str
) -> None:
    source = write_sources(tmp_path / "s", [model("acme/one")], [deployment("h1/one", "acme/one")])
    with synced_catalog(tmp_path / "c", source) as catalog:
        db = catalog.path
    result = run_cli("resolve", entry, db=db)
    assert result.returncode == 1
    assert f"column {column}: a space {where} the key {key!r}" in result.stderr
    assert "remove the space" in result.stderr


# 17, 18: lenient values and near misses ---------------------------------------------------


def test_values_helm_reads_leniently_are_converted_with_a_warning(tmp_path: Path) -> None:
    entry = deployment("h1/one", "acme/one") | {
        "max_sequence_length": "4096",
        "max_request_length": 1024.0,
        "deprecated": 0,
    }
    source = write_sources(tmp_path / "s", [model("acme/one") | {"num_parameters": "7000"}],
                           [entry])  # fmt: skip
    with synced_catalog(tmp_path / "c", source) as catalog:
        report_codes = [w.code for w in catalog.sync([source], force=True).warnings]
        info = catalog.deployment("h1/one")
        assert (info.max_sequence_length, info.max_request_length, info.deprecated) == (
            4096,
            1024,
            False,
        )
        assert catalog.model("acme/one").num_parameters == 7000
        db = catalog.path
    assert report_codes.count("coerced-value") == 4
    strict = run_cli("sync", source, "--strict", "--force", db=db)
    assert strict.returncode == 1 and "coerced-value" in strict.stderr


def test_the_comment_hint_of_a_string_flag_comes_only_with_a_hash(tmp_path: Path) -> None:
    plain = deployment("h1/one", "acme/one") | {"deprecated": "yes"}
    glued = deployment("h2/one", "acme/one") | {"deprecated": "true# old"}
    source = write_sources(tmp_path / "s", [model("acme/one")], [plain, glued])
    with synced_catalog(tmp_path / "c", source) as catalog:
        messages = [w.message for w in catalog.sync([source], force=True).warnings]
    assert "space before '#'" not in messages[0] and "space before '#'" in messages[1]


def test_a_model_name_that_is_a_near_miss_gets_a_suggestion(tmp_path: Path) -> None:
    source = write_sources(
        tmp_path / "s",
        [model("meta/llama-3.1-8b-instruct")],
        [deployment("together/llama", "meta/llama-3.1-8b-instrcut")],
    )
    with synced_catalog(tmp_path / "c", source) as catalog:
        report = catalog.sync([source], force=True)
    (warning,) = [w for w in report.warnings if w.code == "placeholder-model"]
    assert "did you mean meta/llama-3.1-8b-instruct?" in warning.message


def test_check_json_lists_findings_with_their_severity(tmp_path: Path) -> None:
    """The findings added here keep the shape of every finding."""
    source = write_sources(tmp_path / "s", [model("openai/gpt-x")], [])
    with synced_catalog(tmp_path / "c", source) as catalog:
        shape = json.loads(run_cli("check", "--json", db=catalog.path).stdout)
    assert shape["findings"][0]["severity"] == "info"
