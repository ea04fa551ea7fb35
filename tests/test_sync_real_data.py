"""Syncing HELM's real catalog snapshots: counts, and every known defect reported where it is.

Expected lines are found by scanning the YAML text here, so the assertions say what the defect
looks like rather than repeating numbers.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import HELM_CONFIGS, SnapshotTemplate, real_yaml, require_shared

from catalog.errors import Finding as Diagnostic
from catalog.sync.report import SyncReport

METADATA = "model_metadata.yaml"
DEPLOYMENTS = "model_deployments.yaml"
TOKENIZERS = "tokenizer_configs.yaml"
ENTRY_START = re.compile(r"^\s*- name:\s*(\S+)")


@dataclass(frozen=True)
class SyncedSnapshot:
    source: Path
    database: Path
    report: SyncReport

    def file(self, name: str) -> str:
        return str(self.source / name)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        connection = sqlite3.connect(self.database)
        try:
            return connection.execute(sql, params).fetchall()
        finally:
            connection.close()

    def warnings(self, code: str, file_name: str | None = None) -> list[Diagnostic]:
        return [
            w
            for w in self.report.warnings
            if w.code == code and (file_name is None or w.file == self.file(file_name))
        ]


@pytest.fixture(scope="module")
def sync_snapshot(
    tmp_path_factory: pytest.TempPathFactory,
    snapshot_template: Callable[[str], SnapshotTemplate],
) -> Iterator[Callable[[Path], SyncedSnapshot]]:
    """Each snapshot synced once per session (a copy per module); tests only read the result."""
    cache: dict[Path, SyncedSnapshot] = {}

    def synced(source: Path) -> SyncedSnapshot:
        if source not in cache:
            template = snapshot_template(source.name)
            assert template.source == source
            database = tmp_path_factory.mktemp(source.name) / "catalog.db"
            shutil.copyfile(template.path, database)
            cache[source] = SyncedSnapshot(source, database, template.report)
        return cache[source]

    yield synced


def snapshot(name: str) -> Path:
    return require_shared(HELM_CONFIGS / name)


def load_entries(source: Path, file_name: str, top_key: str) -> list[dict[str, Any]]:
    """The entries as PyYAML reads them (parsed once per session: do not change them)."""
    entries: list[dict[str, Any]] = real_yaml(source / file_name)[top_key]
    return entries


def entry_lines(path: Path) -> dict[str, list[int]]:
    """Name -> the lines of its `- name:` entries, in file order."""
    lines: dict[str, list[int]] = {}
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = ENTRY_START.match(text)
        if match:
            lines.setdefault(match.group(1).strip("'\""), []).append(number)
    return lines


def lines_matching(path: Path, pattern: str) -> list[int]:
    regex = re.compile(pattern)
    text = path.read_text(encoding="utf-8").splitlines()
    return [number for number, line in enumerate(text, start=1) if regex.search(line)]


# Counts --------------------------------------------------------------------------------------


def test_counts_per_table_match_the_distinct_names_in_the_yaml(
    snapshot_dir: Path, sync_snapshot: Callable[[Path], SyncedSnapshot]
) -> None:
    models = load_entries(snapshot_dir, METADATA, "models")
    deployments = load_entries(snapshot_dir, DEPLOYMENTS, "model_deployments")
    tokenizers = load_entries(snapshot_dir, TOKENIZERS, "tokenizer_configs")
    model_names = {m["name"] for m in models}
    placeholder_models = {d.get("model_name", d["name"]) for d in deployments} - model_names
    tokenizer_names = {t["name"] for t in tokenizers}
    used_tokenizers = {d["tokenizer_name"] for d in deployments if d.get("tokenizer_name")}
    placeholder_tokenizers = used_tokenizers - tokenizer_names
    tags = {tag for m in models for tag in m.get("tags") or []}
    if placeholder_models:
        tags |= {"TEXT_MODEL_TAG", "FULL_FUNCTIONALITY_TEXT_MODEL_TAG"}

    synced = sync_snapshot(snapshot_dir)

    def count(sql: str) -> int:
        return int(synced.query(sql)[0][0])

    assert count("SELECT count(*) FROM models") == len(model_names | placeholder_models)
    assert count("SELECT count(*) FROM models WHERE is_placeholder = 1") == len(placeholder_models)
    assert count("SELECT count(*) FROM deployments") == len({d["name"] for d in deployments})
    assert count("SELECT count(*) FROM tokenizers") == len(tokenizer_names | placeholder_tokenizers)
    assert count("SELECT count(*) FROM tokenizers WHERE is_placeholder = 1") == len(
        placeholder_tokenizers
    )
    assert count("SELECT count(*) FROM tags") == len(tags)
    assert synced.report.added == {
        "models": len(model_names | placeholder_models),
        "deployments": len({d["name"] for d in deployments}),
        "tokenizers": len(tokenizer_names | placeholder_tokenizers),
        "tags": len(tags),
    }
    assert synced.report.errors == []


def test_synced_snapshot_is_consistent_and_in_catalog_order(
    snapshot_dir: Path, sync_snapshot: Callable[[Path], SyncedSnapshot]
) -> None:
    synced = sync_snapshot(snapshot_dir)
    assert synced.query("PRAGMA integrity_check") == [("ok",)]
    assert synced.query("PRAGMA foreign_key_check") == []

    # Deployments are in the order of their winning definition; the file order of the names.
    deployments = load_entries(snapshot_dir, DEPLOYMENTS, "model_deployments")
    last_index = {d["name"]: index for index, d in enumerate(deployments)}
    expected_order = sorted(last_index, key=last_index.__getitem__)
    stored = synced.query(
        "SELECT name, host_organization, engine FROM deployments ORDER BY position"
    )
    assert [name for name, _, _ in stored] == expected_order
    for name, host, engine in stored:
        assert f"{host}/{engine}" == name

    models = load_entries(snapshot_dir, METADATA, "models")
    first_seen = list(dict.fromkeys(m["name"] for m in models))
    stored_models = synced.query(
        "SELECT name FROM models WHERE is_placeholder = 0 ORDER BY position"
    )
    assert [name for (name,) in stored_models] == first_seen


# Known defects of v0.5.12 --------------------------------------------------------------------


def test_v0512_reports_the_18_identical_duplicate_deployments_with_both_lines(
    sync_snapshot: Callable[[Path], SyncedSnapshot],
) -> None:
    source = snapshot("v0.5.12")
    synced = sync_snapshot(source)
    duplicated = {n: ls for n, ls in entry_lines(source / DEPLOYMENTS).items() if len(ls) > 1}
    assert len(duplicated) == 18

    warnings = synced.warnings("duplicate-name", DEPLOYMENTS)
    assert len(warnings) == 18
    by_line = {w.line: w for w in warnings}
    for name, (first_line, second_line) in duplicated.items():
        warning = by_line[second_line]
        assert repr(name) in warning.message
        assert f"lines {first_line} and {second_line}" in warning.message
        assert "identical" in warning.message
        assert "differ" not in warning.message


def test_v0512_reports_the_duplicate_model_and_the_two_duplicate_tokenizers(
    sync_snapshot: Callable[[Path], SyncedSnapshot],
) -> None:
    source = snapshot("v0.5.12")
    synced = sync_snapshot(source)

    model_dupes = {n: ls for n, ls in entry_lines(source / METADATA).items() if len(ls) > 1}
    assert len(model_dupes) == 1
    [(model, (first, second))] = model_dupes.items()
    [warning] = synced.warnings("duplicate-name", METADATA)
    assert (warning.line, repr(model) in warning.message) == (second, True)
    assert f"lines {first} and {second}" in warning.message
    assert "identical" in warning.message

    tokenizer_dupes = {n: ls for n, ls in entry_lines(source / TOKENIZERS).items() if len(ls) > 1}
    assert len(tokenizer_dupes) == 2
    entries = load_entries(source, TOKENIZERS, "tokenizer_configs")
    warnings = {w.line: w for w in synced.warnings("duplicate-name", TOKENIZERS)}
    assert len(warnings) == 2
    for name, (first, second) in tokenizer_dupes.items():
        copies = [entry for entry in entries if entry["name"] == name]
        warning = warnings[second]
        assert repr(name) in warning.message
        assert f"lines {first} and {second}" in warning.message
        verdict = "identical" if copies[0] == copies[1] else "differ"
        assert verdict in warning.message
        # The later definition wins, as in HELM.
        [(end_token,)] = synced.query(
            "SELECT end_of_text_token FROM tokenizers WHERE name = ?", (name,)
        )
        assert end_token == copies[1]["end_of_text_token"]


def test_v0512_deployment_whose_tokenizer_has_no_config_gets_a_placeholder(
    sync_snapshot: Callable[[Path], SyncedSnapshot],
) -> None:
    source = snapshot("v0.5.12")
    synced = sync_snapshot(source)
    known = {t["name"] for t in load_entries(source, TOKENIZERS, "tokenizer_configs")}
    orphans = [
        d
        for d in load_entries(source, DEPLOYMENTS, "model_deployments")
        if d.get("tokenizer_name") and d["tokenizer_name"] not in known
    ]
    assert len(orphans) == 1
    deployment = orphans[0]
    [warning] = synced.warnings("placeholder-tokenizer", DEPLOYMENTS)
    assert warning.line == entry_lines(source / DEPLOYMENTS)[deployment["name"]][0]
    assert repr(deployment["tokenizer_name"]) in warning.message
    assert synced.query(
        "SELECT is_placeholder, class_name FROM tokenizers WHERE name = ?",
        (deployment["tokenizer_name"],),
    ) == [(1, None)]


def test_v0512_release_instead_of_release_date_suggests_release_date(
    sync_snapshot: Callable[[Path], SyncedSnapshot],
) -> None:
    source = snapshot("v0.5.12")
    synced = sync_snapshot(source)
    release_lines = lines_matching(source / METADATA, r"^\s+release:")
    assert release_lines
    warnings = {
        w.line: w for w in synced.warnings("unknown-key", METADATA) if "'release'" in w.message
    }
    assert sorted(warnings) == release_lines
    for warning in warnings.values():
        assert "'release_date'" in warning.message


def test_v0512_stray_top_level_args_suggests_client_spec_args(
    sync_snapshot: Callable[[Path], SyncedSnapshot],
) -> None:
    source = snapshot("v0.5.12")
    synced = sync_snapshot(source)
    # Entry keys sit at four spaces; an `args:` there is outside client_spec.
    [stray_line] = lines_matching(source / DEPLOYMENTS, r"^    args:")
    [warning] = [w for w in synced.warnings("unknown-key", DEPLOYMENTS) if w.line == stray_line]
    assert "'args'" in warning.message
    assert "client_spec.args" in warning.message


def test_v0512_models_without_release_date_are_fine(
    sync_snapshot: Callable[[Path], SyncedSnapshot],
) -> None:
    source = snapshot("v0.5.12")
    synced = sync_snapshot(source)
    undated = {
        m["name"] for m in load_entries(source, METADATA, "models") if not m.get("release_date")
    }
    assert len(undated) == 19
    stored = synced.query("SELECT name FROM models WHERE release_date IS NULL")
    assert {name for (name,) in stored} == undated
    # Only the misspelt `release:` keys are reported; a missing date alone is no finding.
    assert not [
        w for w in synced.report.warnings if "release_date" in w.message and w.code != "unknown-key"
    ]


def test_v0512_duplicated_display_name_key_is_reported(
    sync_snapshot: Callable[[Path], SyncedSnapshot],
) -> None:
    source = snapshot("v0.5.12")
    synced = sync_snapshot(source)
    text = (source / METADATA).read_text(encoding="utf-8").splitlines()
    repeated = [
        number
        for number in range(2, len(text) + 1)
        if text[number - 1].strip().startswith("display_name:")
        and text[number - 2].strip().startswith("display_name:")
    ]
    assert len(repeated) == 1
    [warning] = synced.warnings("duplicate-key", METADATA)
    assert warning.line == repeated[0]
    assert f"line {repeated[0] - 1}" in warning.message
    assert "'display_name'" in warning.message


def test_v0512_deployment_key_inside_client_spec_is_reported(
    sync_snapshot: Callable[[Path], SyncedSnapshot],
) -> None:
    source = snapshot("v0.5.12")
    synced = sync_snapshot(source)
    key_lines = lines_matching(source / DEPLOYMENTS, r"^      deployment:")
    warnings = [
        w
        for w in synced.warnings("unknown-key", DEPLOYMENTS)
        if "'deployment' in client_spec" in w.message
    ]
    assert key_lines
    assert sorted(w.line for w in warnings) == key_lines


def test_v0512_reports_nothing_else(sync_snapshot: Callable[[Path], SyncedSnapshot]) -> None:
    source = snapshot("v0.5.12")
    synced = sync_snapshot(source)
    release = len(lines_matching(source / METADATA, r"^\s+release:"))
    nested_deployment = len(lines_matching(source / DEPLOYMENTS, r"^      deployment:"))
    assert Counter(w.code for w in synced.report.warnings) == Counter(
        {
            "duplicate-name": 18 + 1 + 2,
            "unknown-key": release + 1 + nested_deployment,
            "placeholder-tokenizer": 1,
            "duplicate-key": 1,
        }
    )


# Known defects of the older snapshots --------------------------------------------------------


@pytest.mark.parametrize("name", ["2023-11-17-pr1903", "v0.5.0"])
def test_tafs_instead_of_tags_suggests_tags(
    name: str, sync_snapshot: Callable[[Path], SyncedSnapshot]
) -> None:
    source = snapshot(name)
    synced = sync_snapshot(source)
    [tafs_line] = lines_matching(source / METADATA, r"^\s+tafs:")
    [warning] = [w for w in synced.warnings("unknown-key", METADATA) if "'tafs'" in w.message]
    assert warning.line == tafs_line
    assert "'tags'" in warning.message
    model = next(m for m in load_entries(source, METADATA, "models") if "tafs" in m)
    assert synced.query(
        "SELECT count(*) FROM model_tags WHERE model_name = ?", (model["name"],)
    ) == [(0,)]


def test_v050_models_with_a_deprecated_key_are_reported(
    sync_snapshot: Callable[[Path], SyncedSnapshot],
) -> None:
    source = snapshot("v0.5.0")
    synced = sync_snapshot(source)
    deprecated_lines = lines_matching(source / METADATA, r"^\s+deprecated:")
    assert len(deprecated_lines) == 2
    warnings = [w for w in synced.warnings("unknown-key", METADATA) if "'deprecated'" in w.message]
    assert sorted(w.line for w in warnings) == deprecated_lines
    assert Counter(w.code for w in synced.report.warnings) == Counter({"unknown-key": 3})


def test_2023_deprecated_with_glued_comment_is_a_suspicious_boolean_read_as_true(
    sync_snapshot: Callable[[Path], SyncedSnapshot],
) -> None:
    source = snapshot("2023-11-17-pr1903")
    synced = sync_snapshot(source)
    [glued_line] = lines_matching(source / DEPLOYMENTS, r"deprecated:\s*true#")
    [warning] = synced.warnings("suspicious-boolean", DEPLOYMENTS)
    assert warning.line == glued_line
    deployment = next(
        d
        for d in load_entries(source, DEPLOYMENTS, "model_deployments")
        if isinstance(d.get("deprecated"), str)
    )
    assert repr(deployment["name"]) in warning.message
    assert synced.query(
        "SELECT deprecated FROM deployments WHERE name = ?", (deployment["name"],)
    ) == [(1,)]
    assert Counter(w.code for w in synced.report.warnings) == Counter(
        {"unknown-key": 1, "suspicious-boolean": 1}
    )
