"""Hostile sizes: alias bombs, deep nesting and huge files are refused with bounded memory.

Each sync runs in a child of a small wrapper process, which reports the child's peak memory
(getrusage(RUSAGE_CHILDREN).ru_maxrss): the wrapper has no other children, so the figure is
that one sync's. The bounds are generous on purpose (an idle `catalog` process takes about
60 MB); no test has a time limit, but every refusal happens before the expensive work.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import FIXTURES, dump, run_cli
from helm_yaml import empty_database

from catalog import Catalog

BASE = FIXTURES / "sync" / "base"
MEMORY_BOUND_MB = 300
MODEL = (
    "models:\n"
    "  - name: acme/big\n"
    "    display_name: Big\n"
    "    description: A model in a very large file.\n"
    "    creator_organization_name: Acme\n"
    "    access: open\n"
)

_WRAPPER = textwrap.dedent(
    """
    import json, resource, subprocess, sys
    child = subprocess.run(sys.argv[1:], capture_output=True, text=True)
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"returncode": child.returncode, "stdout": child.stdout,
                      "stderr": child.stderr, "peak_mb": peak_kb / 1024}))
    """
)


@dataclass(frozen=True)
class Measured:
    returncode: int
    stdout: str
    stderr: str
    peak_mb: float


def run_measured(*command: str | Path) -> Measured:
    """Run `command` as the only child of a fresh wrapper; its exit, output and peak memory."""
    wrapper = subprocess.run(
        [sys.executable, "-c", _WRAPPER, *map(str, command)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,  # a guard against a hang, as in conftest.run_cli; not a speed check
    )
    return Measured(**json.loads(wrapper.stdout))


def catalog_sync(db: Path, *args: str | Path) -> Measured:
    return run_measured(sys.executable, "-m", "catalog.cli", "--db", db, "sync", *args)


@pytest.fixture(scope="module")
def base_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = empty_database(tmp_path_factory.mktemp("bombs") / "base.db")
    with Catalog.open(path) as catalog:
        catalog.sync([BASE])
    return path


@pytest.fixture
def db(base_db: Path, tmp_path: Path) -> Path:
    return Path(shutil.copy(base_db, tmp_path / "catalog.db"))


def layer(tmp_path: Path, file_name: str, text: str) -> Path:
    directory = tmp_path / "layer"
    directory.mkdir()
    (directory / file_name).write_text(text, encoding="utf-8")
    return directory / file_name


def assert_refused(result: Measured, path: Path, code: str, line: int | None) -> None:
    assert result.returncode == 1, result.stderr
    where = f"{path}:{line}:" if line is not None else f"{path}: "
    assert any(
        text.startswith(where) and text.endswith(f"[{code}]") for text in result.stderr.splitlines()
    ), result.stderr
    assert "nothing was written" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.peak_mb < MEMORY_BOUND_MB, f"peak memory {result.peak_mb:.0f} MB"


def laughs(levels: int, *, mappings: bool) -> str:
    """Each level holds ten aliases of the one before: 10**levels leaves from a 1 kB file."""
    if mappings:
        lines = ["    lol0: &l0 {a: lol, b: lol, c: lol, d: lol, e: lol}"]
        for level in range(1, levels):
            merged = ", ".join(f"k{i}: *l{level - 1}" for i in range(10))
            lines.append(f"    lol{level}: &l{level} {{{merged}}}")
    else:
        lines = ["    lol0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
        for level in range(1, levels):
            lines.append(f"    lol{level}: &l{level} [{', '.join([f'*l{level - 1}'] * 10)}]")
    return MODEL + "    tags:\n" + "\n".join(lines).replace("    lol", "      lol") + "\n"


@pytest.mark.slow  # peak memory of a child process (getrusage of the wrapper's children)
@pytest.mark.parametrize(
    ("mappings", "line"),
    # Level n holds about 1.1 * 10**(n+1) nodes (1.2 * 10**(n+1) for the mappings): the
    # default limit of 1,000,000 is passed on level 5, line 13.
    [(False, 13), (True, 13)],
    ids=["lists", "mappings"],
)
def test_billion_laughs_is_refused_at_the_node_limit(
    mappings: bool, line: int, db: Path, tmp_path: Path
) -> None:
    bomb = layer(tmp_path, "model_metadata.yaml", laughs(10, mappings=mappings))
    assert bomb.stat().st_size < 2000
    before = dump(db)
    result = catalog_sync(db, BASE, bomb.parent)
    assert_refused(result, bomb, "yaml-too-many-nodes", line)
    assert "--max-yaml-nodes" in result.stderr
    assert dump(db) == before


def test_the_node_limit_can_be_lowered_and_counts_what_aliases_expand_to(
    db: Path, tmp_path: Path
) -> None:
    bomb = layer(tmp_path, "model_metadata.yaml", laughs(4, mappings=False))
    before = dump(db)
    refused = run_cli("sync", "--max-yaml-nodes", "5000", BASE, bomb.parent, db=db)
    assert refused.returncode == 1
    assert "more than 5000 nodes" in refused.stderr
    assert dump(db) == before
    # The same 12,000 nodes pass the default limit; the file is then refused by the entry
    # check (`tags` is a mapping, not a list), which is not a limit.
    checked = run_cli("sync", BASE, bomb.parent, db=db)
    assert "[yaml-too-many-nodes]" not in checked.stderr
    assert "[wrong-type]" in checked.stderr


@pytest.mark.slow  # a crash would be a signal of a child process; its peak memory is measured
@pytest.mark.parametrize(
    ("depth", "style"),
    [(100_000, "flow"), (1_000_000, "flow"), (1_000_000, "block")],
    ids=["100k-flow", "1m-flow", "1m-block"],
)
def test_deep_nesting_is_a_clean_error_not_a_crash(
    depth: int, style: str, db: Path, tmp_path: Path
) -> None:
    nested = "[" * depth + "]" * depth if style == "flow" else "- " * depth + "x"
    bomb = layer(tmp_path, "model_metadata.yaml", f"models:\n  {nested}\n")
    before = dump(db)
    result = catalog_sync(db, BASE, bomb.parent)
    assert result.returncode == 1  # not a negative code: no signal, no segfault
    assert_refused(result, bomb, "yaml-too-deep", 2)
    assert dump(db) == before


@pytest.mark.slow  # peak memory of a child process (getrusage of the wrapper's children)
def test_libyaml_reads_a_million_levels_as_events_without_recursing(tmp_path: Path) -> None:
    """The parser itself, in a child process: it stops with an error, it does not crash."""
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 1_000_000 + "]" * 1_000_000 + "\n")
    script = textwrap.dedent(
        f"""
        import yaml
        events = 0
        try:
            for _ in yaml.parse(open({str(deep)!r}, "rb").read(), Loader=yaml.CSafeLoader):
                events += 1
        except yaml.YAMLError as error:
            print("refused after", events, "events:", str(error).splitlines()[1])
        """
    )
    result = run_measured(sys.executable, "-c", script)
    assert result.returncode == 0, result.stderr
    assert "exceeded maximum nesting depth" in result.stdout
    assert result.peak_mb < MEMORY_BOUND_MB


@pytest.mark.slow  # peak memory of a child process (getrusage of the wrapper's children)
def test_nesting_up_to_the_highest_depth_limit_syncs_and_exports(db: Path, tmp_path: Path) -> None:
    """The cap on --max-yaml-depth (200) is one that every later stage can handle."""
    levels = 200 - 5  # document, list, entry, client_spec, args
    text = (
        "model_deployments:\n  - name: acme/deep\n    model_name: acme/alpha-1\n"
        "    client_spec:\n      class_name: X\n"
        f"      args: {{k: {'[' * levels}1{']' * levels}}}\n"
    )
    deep = layer(tmp_path, "model_deployments.yaml", text)
    refused = catalog_sync(db, "--max-yaml-depth", "199", BASE, deep.parent)
    assert_refused(refused, deep, "yaml-too-deep", 6)
    accepted = catalog_sync(db, "--max-yaml-depth", "200", BASE, deep.parent)
    assert accepted.returncode == 0, accepted.stderr
    too_high = catalog_sync(db, "--max-yaml-depth", "201", BASE, deep.parent)
    assert too_high.returncode == 2 and "201" in too_high.stderr

    out = tmp_path / "export"
    exported = run_measured(sys.executable, "-m", "catalog.cli", "--db", db, "export", out)
    assert exported.returncode == 0, exported.stderr
    with Catalog.open(db) as catalog:
        args = catalog.deployment("acme/deep").client_args
    assert isinstance(args, dict)
    assert json.dumps(args).count("[") == levels


@pytest.fixture(scope="module")
def file_80mb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An 80 MB model_metadata.yaml: one model, then comment lines (cheap for libyaml)."""
    directory = tmp_path_factory.mktemp("big")
    path = directory / "model_metadata.yaml"
    line = "#" + "x" * 98 + "\n"
    with path.open("w", encoding="utf-8") as stream:
        stream.write(MODEL)
        for _ in range(80 * 2**20 // len(line) // 1000):
            stream.write(line * 1000)
    return path


@pytest.mark.slow  # peak memory of a child process (getrusage of the wrapper's children)
def test_a_file_over_the_size_limit_is_refused_without_being_read(
    file_80mb: Path, db: Path
) -> None:
    assert 64 * 2**20 < file_80mb.stat().st_size < 81 * 2**20
    before = dump(db)
    result = catalog_sync(db, BASE, file_80mb.parent)
    assert_refused(result, file_80mb, "file-too-large", None)
    assert "--max-file-mb" in result.stderr
    assert result.peak_mb < 150  # the file was never read into memory
    assert dump(db) == before


@pytest.mark.slow  # peak memory of a child process (getrusage of the wrapper's children)
def test_max_file_mb_raises_the_size_limit(file_80mb: Path, db: Path) -> None:
    result = catalog_sync(db, "--max-file-mb", "100", BASE, file_80mb.parent)
    assert result.returncode == 0, result.stderr
    assert "added: 1 models" in result.stdout
    # 80 MB held as bytes, checked as UTF-8 once, parsed in place.
    assert result.peak_mb < MEMORY_BOUND_MB
    with Catalog.open(db) as catalog:
        assert catalog.model("acme/big").display_name == "Big"


@pytest.mark.slow  # peak memory of a child process (getrusage of the wrapper's children)
def test_a_long_flat_file_is_refused_at_the_node_limit(db: Path, tmp_path: Path) -> None:
    """No aliases: 1.1 million list items in a 4.4 MB file, under the size limit."""
    flat = layer(tmp_path, "model_metadata.yaml", "models:\n" + "- a\n" * 1_100_000)
    before = dump(db)
    result = catalog_sync(db, BASE, flat.parent)
    # The mapping, its key, the list and 999,998 items: node 1,000,001 is on line 999,999.
    assert_refused(result, flat, "yaml-too-many-nodes", 999_999)
    assert dump(db) == before


@pytest.mark.slow  # peak memory of a child process (getrusage of the wrapper's children)
def test_a_flood_of_findings_is_listed_up_to_a_cap(db: Path, tmp_path: Path) -> None:
    """100,000 unknown keys: the first 1,000 are listed, the rest counted in one line."""
    keys = "".join(f"    k{i:06d}: 1\n" for i in range(100_000))
    flood = layer(tmp_path, "model_metadata.yaml", MODEL + keys)
    result = catalog_sync(db, BASE, flood.parent)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stderr.splitlines()
    assert sum(1 for text in lines if text.endswith("[unknown-key]")) == 1000
    assert f"{flood}: warning: 99000 more warnings in this file are not listed" in result.stderr
    assert result.peak_mb < MEMORY_BOUND_MB

    strict = catalog_sync(db, "--strict", "--force", BASE, flood.parent)
    assert strict.returncode == 1
    assert "99000 more warnings" in strict.stderr
