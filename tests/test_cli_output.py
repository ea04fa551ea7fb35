"""The command line's conventions, as in sqlite-utils and Datasette: five output formats from one
decorator on every command that prints rows, shell completion of names from the catalog, and a
typed package."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.shell_completion import BashComplete
from conftest import FIXTURES, REPO_ROOT, run_cli
from helm_yaml import empty_database

from catalog import Catalog
from catalog.cli import cli
from catalog.cli.output import FORMATS, format_rows

MINI = FIXTURES / "read" / "mini"
# Commands whose output is rows (one line or object per row), with arguments that give some.
ROW_COMMANDS = [
    ("list", "models"),
    ("list", "deployments"),
    ("list", "tokenizers"),
    ("list", "tags"),
    ("query", "SELECT name, access FROM models ORDER BY position"),
    ("resolve", "model=text"),
    ("pins",),
    ("settings", "list"),
    ("history", "acme/alpha"),
    ("search", "acme"),
]


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = empty_database(tmp_path_factory.mktemp("output") / "catalog.db")
    with Catalog.open(path) as catalog:
        catalog.sync([MINI])
        catalog.pin("acme/alpha", "hostco/alpha")
    return path


def _commands(
    group: click.Group, prefix: tuple[str, ...] = ()
) -> dict[tuple[str, ...], click.Command]:
    found: dict[tuple[str, ...], click.Command] = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found.update(_commands(command, (*prefix, name)))
        else:
            found[(*prefix, name)] = command
    return found


def test_every_row_command_offers_the_five_formats_from_one_decorator() -> None:
    commands = _commands(cli)
    with_formats = {
        path
        for path, command in commands.items()
        if any(p.name == "output_format" for p in command.params)
    }
    assert {tuple(c[: 2 if c[0] in ("list", "settings") else 1]) for c in ROW_COMMANDS} == (
        with_formats
    )
    for path in with_formats:
        flags = {
            flag
            for param in commands[path].params
            if param.name == "output_format"
            for flag in param.opts
        }
        assert flags == {f"--{name}" for name in FORMATS}, path


@pytest.mark.parametrize("command", ROW_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_each_format_carries_the_same_rows(mini: Path, command: tuple[str, ...]) -> None:
    outputs = {}
    for name in ("json", "nl", "csv", "tsv"):
        result = run_cli(*command, f"--{name}", db=mini)
        assert result.returncode == 0, result.stderr
        outputs[name] = result.stdout
    as_json = json.loads(outputs["json"])
    assert as_json, "the command gave no rows to compare"
    assert [json.loads(line) for line in outputs["nl"].splitlines()] == as_json
    from_csv = list(csv.DictReader(io.StringIO(outputs["csv"])))
    from_tsv = list(csv.DictReader(io.StringIO(outputs["tsv"]), delimiter="\t"))
    assert from_csv == from_tsv
    assert [row[next(iter(row))] for row in from_csv] == [
        "" if row[next(iter(row))] is None else str(row[next(iter(row))]) for row in as_json
    ]
    assert run_cli(*command, "--table", db=mini).returncode == 0


def test_formats_of_no_rows_and_of_awkward_values() -> None:
    assert format_rows([], "nl") == "" and format_rows([], "json") == "[]"
    rows = [{"a": 'tab\there "q"', "b": None, "c": {"k": [1]}}]
    assert json.loads(format_rows(rows, "nl")) == rows[0]
    tsv = list(csv.reader(io.StringIO(format_rows(rows, "tsv")), delimiter="\t"))
    assert tsv == [["a", "b", "c"], ['tab\there "q"', "", '{"k": [1]}']]


def _complete(args: str, incomplete: str, env: dict[str, str]) -> list[str]:
    """What bash completion offers for `catalog ARGS INCOMPLETE`: click's own completion, run
    in this process (the script `_CATALOG_COMPLETE=bash_source` installs asks the same)."""
    saved = dict(os.environ)
    os.environ.pop("CATALOG_DB", None)
    os.environ.update(env)
    try:
        completer = BashComplete(cli, {}, "catalog", "_CATALOG_COMPLETE")
        return [item.value for item in completer.get_completions(args.split(), incomplete)]
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_shell_completion_offers_names_from_the_catalog(mini: Path, tmp_path: Path) -> None:
    env = {"CATALOG_DB": str(mini)}
    assert _complete("show model", "acme/", env) == ["acme/alpha", "acme/beta"]
    assert _complete(f"--db {mini} pin acme/alpha", "host", {}) == [
        "hostco/alpha",
        "hostco/beta-old",
        "hostco/ghost",
    ]
    assert "TEXT_MODEL_TAG" in _complete("list models --tag", "TEXT", env)
    missing = tmp_path / "none.db"
    assert _complete("explain", "acme", {"CATALOG_DB": str(missing)}) == []
    assert not missing.exists()  # completing never creates a catalog


def test_the_shell_completion_script_is_what_the_readme_says() -> None:
    script = subprocess.run(
        [sys.executable, "-m", "catalog.cli"],
        env={**os.environ, "_CATALOG_COMPLETE": "bash_source"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "_catalog_completion" in script.stdout
    assert "_CATALOG_COMPLETE=bash_source catalog" in (REPO_ROOT / "README.md").read_text()


def test_the_package_is_typed() -> None:
    assert (REPO_ROOT / "catalog" / "py.typed").is_file()
