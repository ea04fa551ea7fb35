"""`Catalog.check()` and `catalog check`: each finding on a catalog made to have it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FIXTURES, dump, run_cli
from helm_yaml import empty_database

from catalog import Catalog
from catalog.errors import Finding
from catalog.query.checks import CheckReport

MINI = FIXTURES / "read" / "mini"


def _write_catalog(directory: Path, models: str, deployments: str, tokenizers: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model_metadata.yaml").write_text("models:\n" + models)
    (directory / "model_deployments.yaml").write_text("model_deployments:\n" + deployments)
    (directory / "tokenizer_configs.yaml").write_text("tokenizer_configs:\n" + tokenizers)
    return directory


CLEAN_MODELS = """
  - name: acme/one
    display_name: One
    description: d
    creator_organization_name: Acme
    access: open
"""
CLEAN_DEPLOYMENTS = """
  - name: acme/one
    model_name: acme/one
    tokenizer_name: acme/tok
    client_spec:
      class_name: C
  - name: other/one
    model_name: acme/one
    tokenizer_name: acme/tok
    client_spec:
      class_name: C
"""
CLEAN_TOKENIZERS = """
  - name: acme/tok
    tokenizer_spec:
      class_name: T
"""


@pytest.fixture
def clean(tmp_path: Path) -> Iterator[Catalog]:
    source = _write_catalog(tmp_path / "src", CLEAN_MODELS, CLEAN_DEPLOYMENTS, CLEAN_TOKENIZERS)
    with Catalog.open(empty_database(tmp_path / "catalog.db")) as catalog:
        catalog.sync([source])
        yield catalog


@pytest.fixture
def mini(tmp_path: Path) -> Iterator[Catalog]:
    with Catalog.open(empty_database(tmp_path / "mini.db")) as catalog:
        catalog.sync([MINI])
        yield catalog


def test_a_clean_catalog_has_no_findings(clean: Catalog) -> None:
    report = clean.check()
    assert isinstance(report, CheckReport)
    assert report.findings == []
    assert report.has_errors is False
    assert report.to_json() == {
        "has_errors": False,
        "counts": {"error": 0, "warning": 0, "info": 0},
        "findings": [],
    }


def test_fixture_findings_with_file_and_line(mini: Catalog) -> None:
    report = mini.check()
    codes = [(f.severity, f.code, f.subject) for f in report.findings]
    assert codes == [
        ("warning", "placeholder-model", "ghost/model"),
        ("warning", "placeholder-tokenizer", "ghost/tok"),
        ("warning", "model-without-deployments", "zeta/gamma"),
        ("warning", "all-deployments-deprecated", "acme/beta"),
        ("info", "unused-tokenizer", "acme/unused"),
    ]
    assert report.has_errors is False
    deployments_file = str(MINI / "model_deployments.yaml")
    ghost_line = _line_of(MINI / "model_deployments.yaml", "- name: hostco/ghost")
    for code in ("placeholder-model", "placeholder-tokenizer"):
        (finding,) = report.by_code(code)
        assert (finding.file, finding.line) == (deployments_file, ghost_line)
        assert "hostco/ghost" in finding.message
    (gamma,) = report.by_code("model-without-deployments")
    assert gamma.file == str(MINI / "model_metadata.yaml")
    assert gamma.line == _line_of(MINI / "model_metadata.yaml", "- name: zeta/gamma")
    assert str(gamma).startswith(f"{gamma.file}:{gamma.line}: warning: ")


def _line_of(path: Path, text: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} not in {path}")


def test_one_live_deployment_clears_the_deprecated_warning(tmp_path: Path) -> None:
    deployments = CLEAN_DEPLOYMENTS.replace(
        "  - name: other/one\n", "  - name: other/one\n    deprecated: true\n"
    )
    source = _write_catalog(tmp_path / "src", CLEAN_MODELS, deployments, CLEAN_TOKENIZERS)
    with Catalog.open(empty_database(tmp_path / "c.db")) as catalog:
        catalog.sync([source])
        assert catalog.check().findings == []


def test_pin_to_a_deployment_of_another_model_is_an_error(mini: Catalog) -> None:
    mini.connection.execute(
        "INSERT INTO pins (model_name, deployment_name, pinned_at) VALUES (?, ?, ?)",
        ("acme/beta", "hostco/alpha", "2026-01-01 00:00:00"),
    )
    report = mini.check()
    assert report.has_errors is True
    first = report.findings[0]
    assert (first.severity, first.code, first.subject) == ("error", "broken-pin", "acme/beta")
    assert "'hostco/alpha' serves 'acme/alpha'" in first.message


def test_pin_to_a_missing_deployment_is_an_error(mini: Catalog) -> None:
    connection = mini.connection
    connection.execute("PRAGMA foreign_keys = OFF")
    try:
        connection.execute(
            "INSERT INTO pins (model_name, deployment_name, pinned_at) VALUES (?, ?, ?)",
            ("acme/alpha", "gone/away", "2026-01-01 00:00:00"),
        )
    finally:
        connection.execute("PRAGMA foreign_keys = ON")
    report = mini.check()
    broken = report.by_code("broken-pin")
    assert [f.subject for f in broken] == ["acme/alpha"]
    assert "no longer exists" in broken[0].message
    violations = report.by_code("foreign-key-violation")
    assert [f.severity for f in violations] == ["error"]
    assert "pins.deployment_name = 'gone/away'" in violations[0].message


def test_foreign_key_violation_is_reported(clean: Catalog) -> None:
    connection = clean.connection
    connection.execute("PRAGMA foreign_keys = OFF")
    try:
        connection.execute(
            "UPDATE deployments SET model_name = ? WHERE name = ?", ("x/y", "other/one")
        )
    finally:
        connection.execute("PRAGMA foreign_keys = ON")
    report = clean.check()
    (violation,) = report.by_code("foreign-key-violation")
    assert violation.severity == "error"
    assert violation.subject == "x/y"
    assert "deployments.model_name = 'x/y'" in violation.message
    assert "refers to a missing row of models" in violation.message


def test_v0512_findings(synced_v0512: Catalog) -> None:
    report = synced_v0512.check()
    assert report.has_errors is False
    (tokenizer,) = report.by_code("placeholder-tokenizer")
    assert tokenizer.subject == "huggingface/openthaigpt-1.0.0-7b-chat"
    assert tokenizer.file is not None and tokenizer.file.endswith("v0.5.12/model_deployments.yaml")
    assert tokenizer.line == 2053
    assert report.by_code("placeholder-model") == []
    assert len(report.by_code("all-deployments-deprecated")) == 7
    without = {f.subject for f in report.by_code("model-without-deployments")}
    for name in without:
        assert synced_v0512.model(name).deployments == ()
    counts = report.counts()
    assert counts["error"] == 0
    assert counts["warning"] == len([f for f in report.findings if f.severity == "warning"])
    data = json.loads(json.dumps(report.to_json()))
    assert data["counts"] == counts


def test_findings_are_sorted_errors_first(mini: Catalog) -> None:
    mini.connection.execute(
        "INSERT INTO pins (model_name, deployment_name, pinned_at) VALUES (?, ?, ?)",
        ("acme/beta", "hostco/alpha", "2026-01-01 00:00:00"),
    )
    order = {"error": 0, "warning": 1, "info": 2}
    ranks = [order[f.severity] for f in mini.check().findings]
    assert ranks == sorted(ranks)


def test_finding_json_shape() -> None:
    finding = Finding("info", "unused-tokenizer", "m", "a/b", "f.yaml", 3)
    assert finding.to_json() == {
        "severity": "info",
        "code": "unused-tokenizer",
        "message": "m",
        "subject": "a/b",
        "file": "f.yaml",
        "line": 3,
    }
    assert str(finding) == "f.yaml:3: info: m [unused-tokenizer]"


# CLI ---------------------------------------------------------------------------------------------


def test_cli_check_exits_0_on_warnings_only(mini: Catalog) -> None:
    result = run_cli("check", db=mini.path)
    assert result.returncode == 0, result.stderr
    assert "warning: model 'zeta/gamma' has no deployment" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "0 error(s), 4 warning(s), 1 info"


def test_cli_check_exits_1_on_an_error(mini: Catalog) -> None:
    mini.connection.execute(
        "INSERT INTO pins (model_name, deployment_name, pinned_at) VALUES (?, ?, ?)",
        ("acme/beta", "hostco/alpha", "2026-01-01 00:00:00"),
    )
    result = run_cli("check", "--json", db=mini.path)
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert data["has_errors"] is True
    assert data["findings"][0]["code"] == "broken-pin"


def test_check_does_not_write(mini: Catalog) -> None:
    before = dump(mini.path)
    mini.check()
    assert dump(mini.path) == before
