"""What a sync does with small hand-written layers: layering, errors, warnings, idempotence."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES, dump
from helm_yaml import empty_database
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog import Catalog, SyncError
from catalog.errors import Finding as Diagnostic
from catalog.names import name_problem, split_name
from catalog.sync.report import SyncReport
from catalog.sync.yaml_loader import YamlLimits

BASE = FIXTURES / "sync" / "base"
PRIVATE = FIXTURES / "sync" / "private"
METADATA = "model_metadata.yaml"
DEPLOYMENTS = "model_deployments.yaml"
TOKENIZERS = "tokenizer_configs.yaml"
CONTENT_TABLES = ("models", "tags", "model_tags", "tokenizers", "deployments", "pins", "settings")
ZERO = {"models": 0, "deployments": 0, "tokenizers": 0, "tags": 0}


def counts(**values: int) -> dict[str, int]:
    return {**ZERO, **values}


def copy_layer(tmp_path: Path, name: str, source: Path = BASE) -> Path:
    return Path(shutil.copytree(source, tmp_path / name))


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def line_of(path: Path, needle: str, occurrence: int = 1) -> int:
    """1-based line of the `occurrence`-th line containing `needle`."""
    found = [
        number
        for number, text in enumerate(
            path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1
        )
        if needle in text
    ]
    assert len(found) >= occurrence, f"{needle!r} not in {path}"
    return found[occurrence - 1]


def content(database: Path) -> dict[str, list[tuple[Any, ...]]]:
    """The catalog tables (not the sync bookkeeping), to show what a sync changed."""
    connection = sqlite3.connect(database)
    try:
        return {
            table: sorted(connection.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
            for table in CONTENT_TABLES
        }
    finally:
        connection.close()


def query(database: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(database)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


def where(diagnostics: list[Diagnostic]) -> set[tuple[str | None, int | None, str]]:
    return {(d.file, d.line, d.code) for d in diagnostics}


def failed_sync(catalog: Catalog, sources: list[Path], **options: Any) -> SyncReport:
    with pytest.raises(SyncError) as raised:
        catalog.sync(sources, **options)
    report: SyncReport = raised.value.report  # type: ignore[attr-defined]
    assert raised.value.diagnostics == report.errors
    return report


@pytest.fixture
def synced_base(catalog: Catalog) -> Iterator[Catalog]:
    catalog.sync([BASE])
    yield catalog


# Layering ------------------------------------------------------------------------------------


def test_base_fixture_is_clean_under_strict(catalog: Catalog) -> None:
    report = catalog.sync([BASE], strict=True)
    assert report.warnings == []
    assert report.added == counts(models=3, deployments=4, tokenizers=2, tags=5)


def test_private_layer_overrides_one_deployment_and_adds_one(catalog: Catalog) -> None:
    report = catalog.sync([BASE, PRIVATE], strict=True)
    assert report.added == counts(models=3, deployments=5, tokenizers=2, tags=5)
    assert report.warnings == []

    rows = query(
        catalog.path,
        "SELECT name, max_sequence_length, client_args, source_file, position, first_position "
        "FROM deployments ORDER BY position",
    )
    names = [row[0] for row in rows]
    assert names == [
        "acme/alpha-1",
        "together/alpha-2-chat",
        "beta/b-large",
        "together/alpha-1",
        "mycorp/alpha-2-chat",
    ]
    by_name = {row[0]: row for row in rows}
    override = by_name["together/alpha-1"]
    assert override[1] == 8192
    assert override[2] == '{"together_model": "acme/Alpha-1-long"}'
    assert override[3] == str(PRIVATE / DEPLOYMENTS)
    base_positions = [row[4] for row in rows if row[3] == str(BASE / DEPLOYMENTS)]
    assert override[4] > max(base_positions)
    assert override[5] < min(base_positions)  # the name first appeared in the base layer
    added = by_name["mycorp/alpha-2-chat"]
    assert added[2] == '{"base_url": "https://llm.mycorp.example/v1"}'
    assert query(
        catalog.path, "SELECT model_name FROM deployments WHERE name = ?", (added[0],)
    ) == [("acme/alpha-2-chat",)]


def test_adding_then_dropping_the_private_layer(synced_base: Catalog) -> None:
    before = content(synced_base.path)
    report = synced_base.sync([BASE, PRIVATE])
    assert (report.added, report.changed, report.removed) == (
        counts(deployments=1),
        counts(deployments=1),
        ZERO,
    )
    report = synced_base.sync([BASE])
    assert (report.added, report.changed, report.removed) == (
        ZERO,
        counts(deployments=1),
        counts(deployments=1),
    )
    assert content(synced_base.path) == before


# Errors: exit non-zero, write nothing, report file and line ----------------------------------


def _wrong_length(layer: Path) -> tuple[str, str, str]:
    edit(layer / DEPLOYMENTS, "max_sequence_length: 32768", 'max_sequence_length: "abc"')
    return DEPLOYMENTS, 'max_sequence_length: "abc"', "wrong-type"


def _tags_not_a_list(layer: Path) -> tuple[str, str, str]:
    edit(
        layer / METADATA,
        "tags: [TEXT_MODEL_TAG, LIMITED_FUNCTIONALITY_TEXT_MODEL_TAG]",
        "tags: TEXT_MODEL_TAG",
    )
    return METADATA, "tags: TEXT_MODEL_TAG", "wrong-type"


def _deployment_without_name(layer: Path) -> tuple[str, str, str]:
    edit(layer / DEPLOYMENTS, "  - name: beta/b-large", "  - model_name_alias: beta/b-large")
    return DEPLOYMENTS, "- model_name_alias: beta/b-large", "missing-field"


def _deployment_without_client_spec(layer: Path) -> tuple[str, str, str]:
    edit(
        layer / DEPLOYMENTS,
        '    client_spec:\n      class_name: "helm.clients.openai_client.OpenAIClient"\n',
        "",
    )
    return DEPLOYMENTS, "- name: beta/b-large", "missing-field"


def _name_without_org(layer: Path) -> tuple[str, str, str]:
    edit(layer / DEPLOYMENTS, "  - name: beta/b-large", "  - name: b-large")
    return DEPLOYMENTS, "- name: b-large", "bad-name"


def _invalid_access(layer: Path) -> tuple[str, str, str]:
    edit(layer / METADATA, "access: limited", "access: public")
    return METADATA, "access: public", "bad-access"


ERROR_CASES: dict[str, Callable[[Path], tuple[str, str, str]]] = {
    "max_sequence_length-not-a-number": _wrong_length,
    "tags-not-a-list": _tags_not_a_list,
    "deployment-without-name": _deployment_without_name,
    "deployment-without-client_spec": _deployment_without_client_spec,
    "name-not-org-slash-engine": _name_without_org,
    "invalid-access": _invalid_access,
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_an_error_fails_the_sync_with_file_and_line_and_writes_nothing(
    case: str, synced_base: Catalog, tmp_path: Path
) -> None:
    layer = copy_layer(tmp_path, "broken")
    file_name, needle, code = ERROR_CASES[case](layer)
    before = dump(synced_base.path)

    report = failed_sync(synced_base, [layer])

    assert (str(layer / file_name), line_of(layer / file_name, needle), code) in where(
        report.errors
    )
    assert dump(synced_base.path) == before


def test_yaml_syntax_error_gives_file_line_and_column(synced_base: Catalog, tmp_path: Path) -> None:
    layer = copy_layer(tmp_path, "broken")
    edit(layer / METADATA, "description: A small open test model.", "description: Small: open")
    before = dump(synced_base.path)

    report = failed_sync(synced_base, [layer])

    [error] = report.errors
    line = line_of(layer / METADATA, "description: Small: open")
    text = (layer / METADATA).read_text(encoding="utf-8").splitlines()[line - 1]
    assert (error.file, error.line, error.column, error.code) == (
        str(layer / METADATA),
        line,
        text.index(": open") + 1,
        "yaml-syntax",
    )
    assert f"{layer / METADATA}:{line}:{error.column}:" in str(error)
    assert dump(synced_base.path) == before


def test_non_utf8_file_is_an_error_with_its_position(synced_base: Catalog, tmp_path: Path) -> None:
    layer = copy_layer(tmp_path, "latin1")
    path = layer / METADATA
    path.write_bytes(path.read_bytes().replace(b"Beta Labs", "Bêta Labs".encode("latin-1")))
    before = dump(synced_base.path)

    report = failed_sync(synced_base, [layer])

    [error] = report.errors
    line = line_of(layer / METADATA, "creator_organization_name: B")
    assert (error.file, error.line, error.code) == (str(path), line, "not-utf8")
    assert error.column == len("    creator_organization_name: B") + 1
    assert dump(synced_base.path) == before


def test_all_problems_of_a_run_are_reported_together(synced_base: Catalog, tmp_path: Path) -> None:
    layer = copy_layer(tmp_path, "broken")
    expected = [
        _wrong_length(layer),
        _tags_not_a_list(layer),
        _name_without_org(layer),
        _invalid_access(layer),
    ]
    edit(layer / DEPLOYMENTS, "  - name: together/alpha-2-chat", "  - name_typo: x/y")
    expected.append((DEPLOYMENTS, "- name_typo: x/y", "missing-field"))
    edit(
        layer / DEPLOYMENTS,
        '      class_name: "helm.clients.huggingface_client.HuggingFaceClient"\n',
        "",
    )
    expected.append((DEPLOYMENTS, "- name: acme/alpha-1", "missing-field"))  # null client_spec
    edit(layer / TOKENIZERS, 'prefix_token: "<s>"', 'prefix_token: ["<s>"')
    second = copy_layer(tmp_path, "second", PRIVATE)
    (second / METADATA).write_bytes(b"models:\n  - name: acme/\xff\n")
    before = dump(synced_base.path)

    report = failed_sync(synced_base, [layer, second])

    found = where(report.errors)
    for file_name, needle, code in expected:
        assert (str(layer / file_name), line_of(layer / file_name, needle), code) in found
    assert [e.file for e in report.errors if e.code == "yaml-syntax"] == [str(layer / TOKENIZERS)]
    assert (str(second / METADATA), 2, "not-utf8") in found
    assert dump(synced_base.path) == before


def test_missing_source_directory_is_an_error(synced_base: Catalog, tmp_path: Path) -> None:
    before = dump(synced_base.path)
    report = failed_sync(synced_base, [BASE, tmp_path / "nowhere", tmp_path])
    assert where(report.errors) == {
        (str(tmp_path / "nowhere"), None, "bad-source-dir"),
        (str(tmp_path), None, "no-catalog-files"),
    }
    assert dump(synced_base.path) == before


def test_files_over_the_size_limit_are_refused_before_parsing(synced_base: Catalog) -> None:
    before = dump(synced_base.path)
    report = failed_sync(synced_base, [BASE], limits=YamlLimits(max_file_bytes=200))
    assert {(e.file, e.code) for e in report.errors} == {
        (str(BASE / name), "file-too-large")
        for name in (METADATA, DEPLOYMENTS, TOKENIZERS)
        if (BASE / name).stat().st_size > 200
    }
    assert dump(synced_base.path) == before


# Warnings, and --strict ----------------------------------------------------------------------

PLACEHOLDER_DEPLOYMENT = """
  - name: gamma/unknown-7b
    model_name: gamma/unknown-7b
    tokenizer_name: gamma/unknown-tokenizer
    max_sequence_length: 2048
    client_spec:
      class_name: "helm.clients.huggingface_client.HuggingFaceClient"
"""


def _duplicate_identical(layer: Path) -> list[tuple[str, str, str]]:
    path = layer / DEPLOYMENTS
    text = path.read_text(encoding="utf-8")
    first = text[text.index("  - name: beta/b-large") :]
    path.write_text(text + "\n" + first, encoding="utf-8")
    return [(DEPLOYMENTS, "- name: beta/b-large#2", "duplicate-name")]


def _placeholders(layer: Path) -> list[tuple[str, str, str]]:
    with (layer / DEPLOYMENTS).open("a", encoding="utf-8") as stream:
        stream.write(PLACEHOLDER_DEPLOYMENT)
    return [
        (DEPLOYMENTS, "- name: gamma/unknown-7b", "placeholder-model"),
        (DEPLOYMENTS, "- name: gamma/unknown-7b", "placeholder-tokenizer"),
    ]


def _release_typo(layer: Path) -> list[tuple[str, str, str]]:
    edit(layer / METADATA, "release_date: 2024-06-01", "release: 2024-06-01")
    return [(METADATA, "release: 2024-06-01", "unknown-key")]


def _tafs_typo(layer: Path) -> list[tuple[str, str, str]]:
    edit(layer / METADATA, "tags: [TEXT_MODEL_TAG, CHATML", "tafs: [TEXT_MODEL_TAG, CHATML")
    return [(METADATA, "tafs: [TEXT_MODEL_TAG", "unknown-key")]


WARNING_CASES: dict[str, Callable[[Path], list[tuple[str, str, str]]]] = {
    "duplicate": _duplicate_identical,
    "placeholders": _placeholders,
    "release-typo": _release_typo,
    "tafs-typo": _tafs_typo,
}


def _expected_locations(
    layer: Path, expected: list[tuple[str, str, str]]
) -> set[tuple[str | None, int | None, str]]:
    locations = set()
    for file_name, needle, code in expected:
        text, _, nth = needle.partition("#")
        line = line_of(layer / file_name, text, int(nth) if nth else 1)
        locations.add((str(layer / file_name), line, code))
    return locations


@pytest.mark.parametrize("case", sorted(WARNING_CASES))
def test_warnings_carry_file_line_and_code(case: str, catalog: Catalog, tmp_path: Path) -> None:
    layer = copy_layer(tmp_path, "warned")
    expected = _expected_locations(layer, WARNING_CASES[case](layer))
    report = catalog.sync([layer])
    assert where(report.warnings) == expected
    assert report.errors == []


@pytest.mark.parametrize("case", sorted(WARNING_CASES))
def test_strict_turns_each_warning_into_an_error_and_writes_nothing(
    case: str, synced_base: Catalog, tmp_path: Path
) -> None:
    layer = copy_layer(tmp_path, "warned")
    expected = _expected_locations(layer, WARNING_CASES[case](layer))
    before = dump(synced_base.path)

    report = failed_sync(synced_base, [layer], strict=True)

    assert where(report.errors) == expected
    assert all(e.severity == "error" for e in report.errors)
    assert report.warnings == []
    assert dump(synced_base.path) == before


def test_duplicate_that_differs_says_so_and_the_later_wins(
    catalog: Catalog, tmp_path: Path
) -> None:
    layer = copy_layer(tmp_path, "dupes")
    path = layer / TOKENIZERS
    text = path.read_text(encoding="utf-8")
    copy = text[text.index("  - name: beta/b-tokenizer") :].replace("<|endoftext|>", "<|end|>")
    path.write_text(text + "\n" + copy, encoding="utf-8")

    report = catalog.sync([layer])

    [warning] = report.warnings
    first = line_of(path, "- name: beta/b-tokenizer")
    second = line_of(path, "- name: beta/b-tokenizer", 2)
    assert (warning.code, warning.line) == ("duplicate-name", second)
    assert f"lines {first} and {second}" in warning.message
    assert "differ" in warning.message
    assert query(
        catalog.path,
        "SELECT end_of_text_token, source_line FROM tokenizers WHERE name = 'beta/b-tokenizer'",
    ) == [("<|end|>", second)]


def test_identical_duplicate_says_identical(catalog: Catalog, tmp_path: Path) -> None:
    layer = copy_layer(tmp_path, "dupes")
    _duplicate_identical(layer)
    [warning] = catalog.sync([layer]).warnings
    assert "identical" in warning.message
    assert query(catalog.path, "SELECT count(*) FROM deployments") == [(4,)]
    second = line_of(layer / DEPLOYMENTS, "- name: beta/b-large", 2)
    assert query(
        catalog.path, "SELECT source_line FROM deployments WHERE name = 'beta/b-large'"
    ) == [(second,)]


def test_placeholder_model_and_tokenizer_rows_are_helm_like(
    catalog: Catalog, tmp_path: Path
) -> None:
    layer = copy_layer(tmp_path, "placeholders")
    _placeholders(layer)
    catalog.sync([layer])
    assert query(
        catalog.path,
        "SELECT creator_organization_name, is_placeholder, release_date, creator_prefix, engine "
        "FROM models WHERE name = 'gamma/unknown-7b'",
    ) == [("Unknown", 1, None, "gamma", "unknown-7b")]
    assert query(
        catalog.path,
        "SELECT tag_name FROM model_tags WHERE model_name = 'gamma/unknown-7b' ORDER BY position",
    ) == [("TEXT_MODEL_TAG",), ("FULL_FUNCTIONALITY_TEXT_MODEL_TAG",)]
    assert query(
        catalog.path,
        "SELECT is_placeholder, class_name FROM tokenizers WHERE name = 'gamma/unknown-tokenizer'",
    ) == [(1, None)]


def test_unknown_keys_suggest_the_key_meant(catalog: Catalog, tmp_path: Path) -> None:
    layer = copy_layer(tmp_path, "typos")
    _release_typo(layer)
    _tafs_typo(layer)
    messages = sorted(w.message for w in catalog.sync([layer]).warnings)
    assert "'release'" in messages[0] and "did you mean 'release_date'?" in messages[0]
    assert "'tafs'" in messages[1] and "did you mean 'tags'?" in messages[1]
    assert query(
        catalog.path, "SELECT release_date FROM models WHERE name = 'acme/alpha-2-chat'"
    ) == [(None,)]


# Idempotence and change tracking -------------------------------------------------------------


def test_second_sync_is_skipped_and_changes_nothing(synced_base: Catalog) -> None:
    before = dump(synced_base.path)
    report = synced_base.sync([BASE])
    assert report.skipped_unchanged
    assert (report.added, report.changed, report.removed) == (ZERO, ZERO, ZERO)
    assert dump(synced_base.path) == before


def test_force_rereads_and_changes_nothing(synced_base: Catalog) -> None:
    before = content(synced_base.path)
    report = synced_base.sync([BASE], force=True)
    assert not report.skipped_unchanged
    assert (report.added, report.changed, report.removed) == (ZERO, ZERO, ZERO)
    assert content(synced_base.path) == before
    assert query(synced_base.path, "SELECT forced FROM syncs ORDER BY id") == [(0,), (1,)]


def test_strict_after_a_lenient_sync_with_warnings_is_not_skipped(
    catalog: Catalog, tmp_path: Path
) -> None:
    layer = copy_layer(tmp_path, "warned")
    _release_typo(layer)
    assert len(catalog.sync([layer]).warnings) == 1
    report = failed_sync(catalog, [layer], strict=True)
    assert [e.code for e in report.errors] == ["unknown-key"]


def test_changing_one_file_changes_exactly_the_expected_rows(
    synced_base: Catalog, tmp_path: Path
) -> None:
    layer = copy_layer(tmp_path, "edited")
    before = content(synced_base.path)
    # One deployment changes, one model (with its only deployment) goes, one tag goes with it.
    edit(layer / DEPLOYMENTS, "max_sequence_length: 32768", "max_sequence_length: 65536")
    deployments = layer / DEPLOYMENTS
    text = deployments.read_text(encoding="utf-8")
    deployments.write_text(text[: text.index("  - name: beta/b-large")], encoding="utf-8")
    metadata = layer / METADATA
    text = metadata.read_text(encoding="utf-8")
    metadata.write_text(text[: text.index("  - name: beta/b-large")], encoding="utf-8")

    report = synced_base.sync([layer])

    assert report.added == ZERO
    assert report.changed == counts(deployments=1)
    assert report.removed == counts(models=1, deployments=1, tags=1)
    after = content(synced_base.path)
    assert {row[0] for row in after["models"]} == {"acme/alpha-1", "acme/alpha-2-chat"}
    assert "LIMITED_FUNCTIONALITY_TEXT_MODEL_TAG" not in {row[0] for row in after["tags"]}
    assert query(
        synced_base.path,
        "SELECT max_sequence_length FROM deployments WHERE name = 'together/alpha-2-chat'",
    ) == [(65536,)]
    # The tokenizer only beta/b-large used stays: it is still defined in the sources.
    assert [row[:6] for row in after["tokenizers"]] == [row[:6] for row in before["tokenizers"]]
    assert query(synced_base.path, "PRAGMA foreign_key_check") == []


def test_retagging_a_model_counts_as_a_change(synced_base: Catalog, tmp_path: Path) -> None:
    layer = copy_layer(tmp_path, "retagged")
    edit(
        layer / METADATA,
        "tags: [TEXT_MODEL_TAG, FULL_FUNCTIONALITY_TEXT_MODEL_TAG]",
        "tags: [FULL_FUNCTIONALITY_TEXT_MODEL_TAG, TEXT_MODEL_TAG, NEW_TAG]",
    )
    report = synced_base.sync([layer])
    assert (report.added, report.changed, report.removed) == (
        counts(tags=1),
        counts(models=1),
        ZERO,
    )
    assert query(
        synced_base.path,
        "SELECT tag_name FROM model_tags WHERE model_name = 'acme/alpha-1' ORDER BY position",
    ) == [("FULL_FUNCTIONALITY_TEXT_MODEL_TAG",), ("TEXT_MODEL_TAG",), ("NEW_TAG",)]


def test_dry_run_writes_nothing_and_reports_the_same_counts(
    synced_base: Catalog, tmp_path: Path
) -> None:
    before = dump(synced_base.path)
    dry = synced_base.sync([BASE, PRIVATE], dry_run=True)
    assert dry.dry_run
    assert dump(synced_base.path) == before
    real = synced_base.sync([BASE, PRIVATE])
    assert (dry.added, dry.changed, dry.removed) == (real.added, real.changed, real.removed)
    assert dry.added == counts(deployments=1)


def test_sync_drops_a_pin_whose_deployment_is_gone(synced_base: Catalog) -> None:
    synced_base.sync([BASE, PRIVATE])
    with sqlite3.connect(synced_base.path) as connection:
        connection.execute(
            "INSERT INTO pins (model_name, deployment_name, pinned_at) "
            "VALUES ('acme/alpha-2-chat', 'mycorp/alpha-2-chat', '2025-01-01 00:00:00')"
        )
    connection.close()
    report = synced_base.sync([BASE])
    assert report.pins_dropped == ["acme/alpha-2-chat"]
    assert [w.code for w in report.warnings] == ["pin-dropped"]
    assert query(synced_base.path, "SELECT count(*) FROM pins") == [(0,)]


# Property: an incremental sync lands exactly where a fresh sync of the same sources does ------

MODEL_NAMES = [f"org{i % 3}/model-{i}" for i in range(6)]
TAG_NAMES = ["TEXT_MODEL_TAG", "CHATML_MODEL_TAG", "VISION_LANGUAGE_MODEL_TAG", "ABLATION_TAG"]


@st.composite
def catalogs(draw: st.DrawFn) -> dict[str, str]:
    """The three files of a random small catalog."""
    models = draw(st.lists(st.sampled_from(MODEL_NAMES), unique=True, max_size=6))
    model_lines = ["models:"]
    for name in models:
        tags = draw(st.lists(st.sampled_from(TAG_NAMES), unique=True, max_size=3))
        model_lines += [
            f"  - name: {name}",
            f"    display_name: {name.upper()}",
            f"    description: {draw(st.sampled_from(['one', 'two']))}",
            "    creator_organization_name: Org",
            f"    access: {draw(st.sampled_from(['open', 'limited', 'closed']))}",
            f"    tags: [{', '.join(tags)}]",
        ]
    deployment_lines = ["model_deployments:"]
    hosts = draw(st.lists(st.sampled_from(["h1", "h2", "h3"]), unique=True, min_size=1))
    for host in hosts:
        for model in draw(st.lists(st.sampled_from(MODEL_NAMES), unique=True, max_size=4)):
            deployment_lines += [
                f"  - name: {host}/{model.partition('/')[2]}",
                f"    model_name: {model}",
                f"    tokenizer_name: tok/{draw(st.sampled_from(['a', 'b']))}",
                f"    max_sequence_length: {draw(st.sampled_from([2048, 4096]))}",
                f"    deprecated: {draw(st.booleans())}",
                "    client_spec:",
                "      class_name: helm.clients.simple_client.SimpleClient",
            ]
    tokenizer_lines = ["tokenizer_configs:"]
    for name in draw(st.lists(st.sampled_from(["tok/a", "tok/b"]), unique=True)):
        tokenizer_lines += [
            f"  - name: {name}",
            "    tokenizer_spec:",
            f"      class_name: {draw(st.sampled_from(['X', 'Y']))}",
        ]
    return {
        METADATA: "\n".join(model_lines) + "\n",
        DEPLOYMENTS: "\n".join(deployment_lines) + "\n",
        TOKENIZERS: "\n".join(tokenizer_lines) + "\n",
    }


@pytest.fixture(scope="module")
def empty_catalog_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return empty_database(tmp_path_factory.mktemp("template") / "empty.db")


def _write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=catalogs(), second=catalogs())
def test_incremental_sync_equals_a_fresh_sync(
    first: dict[str, str], second: dict[str, str], empty_catalog_file: Path
) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        incremental = Path(shutil.copy(empty_catalog_file, work / "incremental.db"))
        fresh = Path(shutil.copy(empty_catalog_file, work / "fresh.db"))
        source = _write(work / "src", first)
        with Catalog.open(incremental) as catalog:
            catalog.sync([source])
            _write(source, second)
            catalog.sync([source])
        with Catalog.open(fresh) as catalog:
            catalog.sync([source])
        assert content(incremental) == content(fresh)


# Names ---------------------------------------------------------------------------------------

NAME_PART = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:+@\-]{0,20}", fullmatch=True)


@given(organization=NAME_PART, engine=NAME_PART)
def test_org_slash_engine_names_are_accepted_and_split_once(organization: str, engine: str) -> None:
    name = f"{organization}/{engine}"
    assert name_problem(name) is None
    assert split_name(name) == (organization, engine)


@given(name=st.text(max_size=30))
def test_a_name_is_accepted_only_in_org_slash_engine_form(name: str) -> None:
    problem = name_problem(name)
    well_formed = (
        name.count("/") == 1
        and all(part and part[0].isascii() and part[0].isalnum() for part in name.split("/"))
        and all(ch.isascii() and (ch.isalnum() or ch in "._:+@-/") for ch in name)
    )
    assert (problem is None) == well_formed
    if problem is not None:
        assert repr(name) in problem or name == ""
