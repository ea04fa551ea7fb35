"""Every CLI command answers --help and is documented in the README; the file is plain SQLite."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import REPO_ROOT, run_cli

from catalog import Catalog
from catalog.cli import cli


def _command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    for name, command in sorted(group.commands.items()):
        path = (*prefix, name)
        paths.append(path)
        if isinstance(command, click.Group):
            paths.extend(_command_paths(command, path))
    return paths


COMMANDS = _command_paths(cli)


def test_there_are_commands_to_check() -> None:
    assert {("sync",), ("db", "upgrade"), ("resolve",), ("cache", "migrate")} <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_has_help_text(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    help_body = result.output.split("\n\n", 2)
    assert len(help_body) >= 2 and help_body[1].strip(), f"{' '.join(path)} has no help text"


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_is_in_the_readme(path: tuple[str, ...]) -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert f"catalog {' '.join(path)}" in readme, f"`catalog {' '.join(path)}` is not documented"


def test_version_and_top_level_help() -> None:
    version = run_cli("--version")
    assert version.returncode == 0
    assert "catalog" in version.stdout and "0." in version.stdout
    top = run_cli("--help")
    assert top.returncode == 0
    assert "--db" in top.stdout and "CATALOG_DB" in top.stdout


def _synced(tmp_path: Path) -> Path:
    db = tmp_path / "catalog.db"
    result = run_cli("sync", db=db)
    assert result.returncode == 0, result.stderr
    return db


def _require_tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed")
        pytest.skip(f"{name} is not installed")
    return found


@pytest.mark.slow  # the real sqlite3 shell
def test_the_stock_sqlite3_shell_reads_the_catalog_and_enforces_foreign_keys(
    tmp_path: Path,
) -> None:
    shell = _require_tool("sqlite3")
    db = _synced(tmp_path)
    count = subprocess.run(
        [
            shell,
            str(db),
            "SELECT count(*) FROM deployment_details WHERE host_organization = 'together'",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(count.stdout.strip()) > 0
    insert = subprocess.run(
        [shell, str(db)],
        input=(
            "PRAGMA foreign_keys=ON;\n"
            "INSERT INTO deployments (name, host_organization, engine, model_name, client_class,"
            " deprecated, position, first_position)"
            " VALUES ('x/y', 'x', 'y', 'nobody/nothing', 'c', 0, 999, 999);\n"
        ),
        capture_output=True,
        text=True,
    )
    assert "FOREIGN KEY constraint failed" in insert.stderr


@pytest.mark.slow  # the real sqlite-utils command
def test_the_sqlite_utils_cli_reads_the_catalog(tmp_path: Path) -> None:
    tool = _require_tool("sqlite-utils")
    db = _synced(tmp_path)
    views = subprocess.run(
        [tool, "views", str(db), "--csv"], capture_output=True, text=True, check=True
    )
    for view in (
        "deployment_details",
        "model_default_deployments",
        "model_tag_list",
        "cache_shards",
    ):
        assert view in views.stdout
    rows = subprocess.run(
        [tool, "query", str(db), "SELECT model, default_deployment FROM model_default_deployments"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert '"default_deployment"' in rows.stdout


def _guarantee_references() -> list[tuple[str, str]]:
    """Every (test file, test function) docs/guarantees.md names; `::name` after a file
    reference means the same file."""
    references: list[tuple[str, str]] = []
    text = (REPO_ROOT / "docs" / "guarantees.md").read_text(encoding="utf-8")
    for row in text.splitlines():
        if not row.startswith("|"):
            continue
        current = None
        for code in re.findall(r"`([^`]+)`", row.rsplit("|", 2)[-2]):
            file, _, name = code.partition("::")
            if file.endswith(".py"):
                current = file
            if current is not None and name:
                references.append((current, name))
            elif current is not None and file.endswith(".py") and not name:
                references.append((current, ""))
    return references


def test_every_test_the_guarantees_name_exists() -> None:
    references = _guarantee_references()
    assert len(references) > 100
    defined: dict[str, set[str]] = {}
    missing = []
    for file, name in references:
        if file not in defined:
            path = REPO_ROOT / "tests" / file
            if not path.exists():
                missing.append(file)
                defined[file] = set()
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            defined[file] = {
                node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
            }
        if name and name not in defined[file]:
            missing.append(f"{file}::{name}")
    assert missing == []


def _readme_sql_examples() -> list[str]:
    """The statements of the README's SQL section, each with its comment line."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## SQL\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sql\n", 1)[1].split("```", 1)[0]
    return [statement.strip() for statement in block.split(";") if statement.strip()]


@pytest.mark.parametrize("statement", _readme_sql_examples(), ids=lambda s: s.splitlines()[0])
def test_the_readmes_sql_examples_run_read_only(v0512_template: Path, statement: str) -> None:
    with Catalog.open(v0512_template) as catalog:
        catalog.sql(statement)  # raises if the example is wrong or would not be read-only
