"""Fuzzing the sync with mutated real HELM entries: a clear report or a clear error, never a crash.

Entries come from the real snapshots in ../shared/helm-configs; each example makes one or two
changes to them: a field dropped, retyped, set to an edge value, renamed or copied onto another
(also inside client_spec and tokenizer_spec), a whole entry duplicated or replaced by a scalar,
or a file's top level broken. Whatever comes out:

- only SyncError (a CatalogError) may escape, and then the database is unchanged;
- after a successful sync the foreign keys hold, every JSON column holds valid JSON, and
  `catalog check` agrees with the report (the same placeholder models and tokenizers, at the
  same file:line, and no error).
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import HELM_CONFIGS, dump, real_yaml, require_shared, run_cli
from helm_yaml import DUMPER
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from catalog import Catalog
from catalog.errors import SyncError

FILES = {
    "models": ("model_metadata.yaml", "models"),
    "deployments": ("model_deployments.yaml", "model_deployments"),
    "tokenizers": ("tokenizer_configs.yaml", "tokenizer_configs"),
}
KNOWN_KEYS = {
    "models": ["name", "display_name", "description", "creator_organization_name", "access",
               "release_date", "num_parameters", "tags", "deployment_names"],
    "deployments": ["name", "model_name", "tokenizer_name", "client_spec", "window_service_spec",
                    "max_sequence_length", "max_request_length",
                    "max_sequence_and_generated_tokens_length", "deprecated"],
    "tokenizers": ["name", "tokenizer_spec", "end_of_text_token", "prefix_token"],
}  # fmt: skip
# Renamed keys: typos HELM's own files have had, keys of another level, and nonsense.
RENAMES = ["release", "tafs", "args", "class_name", "model", "nmae", "Name", "", "name "]
ODD_TEXT = ["", " ", "a b", "acme/x", "x/y/z", "modèle/é", "o'brien/x", 'a/"b"', "'; DROP TABLE x",
            "true# x", "2024-13-01", "\ufeffa/b", "a/b\x00"]  # fmt: skip
ODD_NUMBERS = [0, -1, 2**31, 2**63, 10**30, 1e300, float("nan"), float("inf"), float("-inf")]
ALPHABET = "ab/ -_.:'\"é#\t\n\x00"
MUTATIONS = ["drop", "retype", "retype", "set", "set", "rename", "copy", "nested"]


@functools.cache
def real_entries() -> dict[str, list[dict[str, Any]]]:
    """Every entry of two real snapshots, by kind (read once)."""
    entries: dict[str, list[dict[str, Any]]] = {kind: [] for kind in FILES}
    for snapshot in ("2023-11-17-pr1903", "v0.5.12"):
        directory = HELM_CONFIGS / snapshot
        for kind, (file_name, top_key) in FILES.items():
            entries[kind].extend(real_yaml(directory / file_name)[top_key])
    return entries


def random_value(rng: random.Random, depth: int = 0) -> Any:
    """Any type with equal odds; half of the numbers and strings are ones that break programs."""
    kind = rng.randrange(8 if depth < 2 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice(ODD_NUMBERS) if rng.random() < 0.5 else rng.randint(-(10**6), 10**6)
    if kind == 3:
        return rng.uniform(-1e6, 1e6)
    if kind == 4:
        if rng.random() < 0.5:
            return rng.choice(ODD_TEXT)
        return "".join(rng.choices(ALPHABET, k=rng.randint(0, 12)))
    if kind == 5:
        return dt.date(rng.randint(1, 9999), rng.randint(1, 12), rng.randint(1, 28))
    if kind == 6:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice([*RENAMES, "k", "x"]): random_value(rng, depth + 1) for _ in range(3)}


INT_FIELDS = {"num_parameters", "max_sequence_length", "max_request_length",
              "max_sequence_and_generated_tokens_length"}  # fmt: skip
SPEC_FIELDS = {"client_spec", "window_service_spec", "tokenizer_spec"}
EDGE_INTS = [0, 1, -1, 2**31 - 1, 2**31, 2**63 - 1, 2**63, 10**15, 10**15 + 1, 10**30]


def natural_value(rng: random.Random, field: str) -> Any:
    """A value of the field's own type, at its edges: what passes a type check and may still
    break what comes after (a length that overflows, a name with a NUL, args with a NaN)."""
    if field in INT_FIELDS:
        return rng.choice(EDGE_INTS)
    if field == "release_date":
        return rng.choice([dt.date(1, 1, 1), dt.date(9999, 12, 31), "2024-02-29", "0001-01-01"])
    if field == "deprecated":
        return rng.choice([True, False, "true# x", "no"])
    if field in ("tags", "deployment_names"):
        return [rng.choice(ODD_TEXT) for _ in range(rng.randint(0, 4))]
    if field in SPEC_FIELDS:
        return {"class_name": rng.choice(ODD_TEXT), "args": natural_value(rng, "args")}
    if field == "args":
        return {rng.choice(ODD_TEXT): random_value(rng, 1) for _ in range(rng.randint(0, 3))}
    return rng.choice([*ODD_TEXT, "x" * 10_000, "".join(rng.choices(ALPHABET, k=20))])


def new_value(rng: random.Random, field: str) -> Any:
    return natural_value(rng, field) if rng.random() < 0.7 else random_value(rng)


def mutate(rng: random.Random, entry: dict[Any, Any], keys: list[str], nested: bool = True) -> None:
    """One change to `entry`: a field dropped, retyped, set, renamed or copied onto another."""
    if not entry:
        field = rng.choice(keys)
        entry[field] = new_value(rng, field)
        return
    key = rng.choice(sorted(entry, key=str))
    operation = rng.choice(MUTATIONS)
    if operation == "drop":
        del entry[key]
    elif operation == "retype":
        entry[key] = new_value(rng, str(key))
    elif operation == "set":  # perhaps a field the entry did not have
        field = rng.choice(keys)
        entry[field] = new_value(rng, field)
    elif operation == "rename":
        entry[rng.choice(RENAMES + keys)] = entry.pop(key)
    elif operation == "copy":
        entry[rng.choice(keys)] = copy.deepcopy(entry[key])
    elif nested and isinstance(entry[key], dict):  # inside client_spec, tokenizer_spec, args
        mutate(rng, entry[key], ["class_name", "args"], nested=False)


@st.composite
def source_files(draw: st.DrawFn) -> dict[str, Any]:
    """File name -> YAML document: real entries with one to three changes.

    Each change hits one entry (or one file's top level) and the rest stays real, so a refused
    sync is refused because of the change. The choices come from a seeded random generator
    rather than from Hypothesis's own draws, which favour small and early choices: odd values
    would be rare. Hypothesis still keeps the seed of a failure and prints the files.
    """
    rng = draw(st.randoms(use_true_random=True))
    pool = real_entries()
    entries = {
        kind: copy.deepcopy(rng.sample(pool[kind], rng.randint(0, 5)))
        for kind in FILES
        if rng.random() > 1 / 6  # now and then a file is absent
    }
    documents: dict[str, Any] = {FILES[kind][0]: {FILES[kind][1]: e} for kind, e in entries.items()}
    for _ in range(rng.randint(1, 2)):
        if not entries:
            break
        kind = rng.choice(sorted(entries))
        file_name, top_key = FILES[kind]
        listed: list[Any] = entries[kind]
        target = rng.choice(listed) if listed else None
        change = rng.choice(["entry"] * 6 + ["twice", "scalar", "top"])
        if change == "entry" and isinstance(target, dict):
            mutate(rng, target, KNOWN_KEYS[kind])
        elif change == "twice" and listed:  # a name defined twice, maybe differently
            twin = copy.deepcopy(target)
            if isinstance(twin, dict) and rng.random() < 0.5:
                mutate(rng, twin, KNOWN_KEYS[kind])
            listed.insert(rng.randint(0, len(listed)), twin)
        elif change == "scalar":  # an entry that is not a mapping
            listed.insert(rng.randint(0, len(listed)), random_value(rng))
        elif change == "top":
            broken = [{"unknown_key": listed}, {top_key: None}, {top_key: {"x": 1}}, listed, None]
            documents[file_name] = rng.choice(broken)
    return documents


def write_sources(directory: Path, files: dict[str, Any]) -> None:
    directory.mkdir(exist_ok=True)
    for file_name, _ in FILES.values():
        path = directory / file_name
        if file_name in files:
            text = yaml.dump(files[file_name], Dumper=DUMPER, sort_keys=False, allow_unicode=True)
            path.write_text(text, encoding="utf-8")
        else:
            path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def fuzz_catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Catalog, Path]]:
    """One catalog for every example (each sync is forced), and the directory of its sources."""
    require_shared(HELM_CONFIGS / "v0.5.12")
    real_entries()
    directory = tmp_path_factory.mktemp("fuzz")
    with Catalog.open(directory / "catalog.db") as catalog:
        yield catalog, directory / "sources"


def placeholders(diagnostics: list[Any], code: str) -> list[tuple[str | None, int | None]]:
    return sorted((d.file, d.line) for d in diagnostics if d.code == code)


def assert_consistent(catalog: Catalog) -> None:
    connection: sqlite3.Connection = catalog.connection
    assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
    invalid_json = (
        connection.execute(
            "SELECT count(*) FROM deployments WHERE NOT json_valid(coalesce(client_args, 'null')) "
            "OR NOT json_valid(coalesce(window_service_args, 'null'))"
        ).fetchone()[0]
        + connection.execute(
            "SELECT count(*) FROM tokenizers WHERE NOT json_valid(coalesce(args, 'null'))"
        ).fetchone()[0]
    )
    assert invalid_json == 0


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(files=source_files())
def test_mutated_real_entries_sync_or_fail_cleanly(
    fuzz_catalog: tuple[Catalog, Path], files: dict[str, Any]
) -> None:
    catalog, sources = fuzz_catalog
    write_sources(sources, files)
    before = dump(catalog.path)
    try:
        report = catalog.sync([sources], force=True)
    except SyncError as error:
        failed = error.report  # type: ignore[attr-defined]
        assert failed.errors, "a failed sync names its errors"
        for diagnostic in failed.errors:
            assert diagnostic.code and diagnostic.message
            assert diagnostic.file is not None and diagnostic.file.startswith(str(sources))
        assert "nothing was written" in str(error)
        assert dump(catalog.path) == before
        event("refused with an error")
        return
    event("synced" + (" with warnings" if report.warnings else ""))
    assert report.errors == []
    assert all(w.code and w.file for w in report.warnings if w.code != "pin-dropped")
    assert_consistent(catalog)
    check = catalog.check()
    assert not check.has_errors, [str(f) for f in check.findings if f.severity == "error"]
    for code in ("placeholder-model", "placeholder-tokenizer"):
        assert placeholders(report.warnings, code) == placeholders(check.by_code(code), code)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=source_files())
def test_mutated_sources_never_give_a_traceback_on_the_command_line(
    fuzz_catalog: tuple[Catalog, Path], files: dict[str, Any]
) -> None:
    catalog, sources = fuzz_catalog
    write_sources(sources, files)
    before = dump(catalog.path)
    result = run_cli("sync", "--force", sources, db=catalog.path)
    assert "Traceback" not in result.stderr
    assert result.returncode in (0, 1), result.stderr
    if result.returncode == 1:
        assert "nothing was written" in result.stderr
        assert dump(catalog.path) == before
    else:
        assert_consistent(catalog)
