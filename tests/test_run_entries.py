"""Run-entry syntax, HELM's run-entries conf files, and resolving a whole file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SHARED_DIR, copy_catalog, require_shared, run_cli
from helm_yaml import deployment, model, synced_catalog, write_sources
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog import Catalog
from catalog.errors import RunEntrySyntaxError
from catalog.resolve.conf_files import parse_conf
from catalog.resolve.run_entries import parse_run_entry, rewrite_args

RUN_ENTRIES = SHARED_DIR / "helm-run-entries" / "run_specs-2023-11-17.conf"


# One run entry ------------------------------------------------------------------------------


def test_named_entry() -> None:
    entry = parse_run_entry("mmlu:subject=anatomy,model=text,data_augmentation=canonical")
    assert entry.name == "mmlu"
    assert entry.model == "text" and entry.model_deployment is None
    assert entry.other_args == (("subject", "anatomy"), ("data_augmentation", "canonical"))


def test_bare_arguments_and_names_with_colons() -> None:
    entry = parse_run_entry("model=mistralai/amazon-mistral-7b-instruct-v0:2")
    assert entry.name is None
    assert entry.model == "mistralai/amazon-mistral-7b-instruct-v0:2"
    named = parse_run_entry("boolq:model=mistralai/x-v0:2,model_deployment=aws/x-v0:2")
    assert named.name == "boolq"
    assert named.model_deployment == "aws/x-v0:2"


def test_empty_values_other_than_model_are_kept_as_helm_does() -> None:
    entry = parse_run_entry("big_bench:model=text,task=spider,subtask=")
    assert entry.get("subtask") == ""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        (":model=text", "column 1: the name before ':' is empty"),
        ("mm lu:model=text", "column 1"),
        ("mmlu:", "column 6: no arguments"),
        ("mmlu:model=text,", "column 17: an empty argument"),
        ("mmlu:model=text,,x=1", "column 17: an empty argument"),
        ("mmlu:model", "column 6: 'model' is not of the form key=value"),
        ("mmlu:=x,model=text", "column 6: an empty key"),
        ("mmlu:model=", "column 12: model= has no value"),
        ("mmlu:model= text", "column 12: model= has spaces"),
        ("  mmlu:x=1,y", "column 12: 'y' is not of the form"),
    ],
)
def test_syntax_errors_name_the_problem_and_column(text: str, message: str) -> None:
    with pytest.raises(RunEntrySyntaxError, match=message):
        parse_run_entry(text)


def test_rewriting_fills_model_and_deployment_in_place() -> None:
    args = (("a", "1"), ("model", "text"), ("b", "2"))
    assert rewrite_args(args, "x/m", "h/m") == [
        ("a", "1"),
        ("model", "x/m"),
        ("model_deployment", "h/m"),
        ("b", "2"),
    ]
    only_deployment = (("model_deployment", "h/m"), ("b", "2"))
    assert rewrite_args(only_deployment, "x/m", "h/m") == [
        ("model", "x/m"),
        ("model_deployment", "h/m"),
        ("b", "2"),
    ]
    assert rewrite_args(args, "x/m", None) == [("a", "1"), ("model", "x/m"), ("b", "2")]


_KEYS = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda k: k not in ("model", "model_deployment")
)
_VALUES = st.from_regex(r"[A-Za-z0-9_./:\-]{0,12}", fullmatch=True)


@settings(max_examples=60, deadline=None)
@given(
    name=st.none() | st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True),
    args=st.dictionaries(_KEYS, _VALUES, max_size=4),
    model_name=st.from_regex(r"[a-z0-9]{1,6}/[a-z0-9:.\-]{1,8}", fullmatch=True),
)
def test_parse_and_rewrite_round_trip(
    name: str | None, args: dict[str, str], model_name: str
) -> None:
    pairs = [*args.items(), ("model", model_name)]
    text = ",".join(f"{k}={v}" for k, v in pairs)
    if name is not None:
        text = f"{name}:{text}"
    entry = parse_run_entry(text)
    assert entry.name == name
    assert entry.model == model_name
    assert list(entry.other_args) == list(args.items())
    assert entry.with_model(model_name, None) == text
    rewritten = parse_run_entry(entry.with_model("x/y", "h/y"))
    assert (rewritten.model, rewritten.model_deployment) == ("x/y", "h/y")
    assert rewritten.other_args == entry.other_args


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_any_text_parses_or_raises_a_syntax_error(text: str) -> None:
    try:
        entry = parse_run_entry(text)
    except RunEntrySyntaxError:
        return
    # HELM's own forms: a name (`arabic_content_generation`), arguments, or both.
    assert entry.name is not None or entry.args


# Conf files ---------------------------------------------------------------------------------


def test_real_conf_file_is_read_entirely() -> None:
    path = require_shared(RUN_ENTRIES)
    entries = parse_conf(path.read_text(), str(path))
    assert len(entries) == 448
    assert all(e.error is None for e in entries)
    assert entries[0].line == 14
    assert entries[0].description == "boolq:model=text,data_augmentation=canonical"
    assert entries[0].priority == 1
    commented = "numeracy:model=text_code,run_solver=True,relation_type=linear,mode=function"
    assert commented not in {e.description for e in entries}


BROKEN_CONF = """\
# comments and // comments are skipped
entries: [
  {description: "a:model=text", priority: 1}
  {description: "broken, priority: 2}
  {description: "c:model=text", priority: high}
  {priority: 3}  // no description
  {description: "d:model=text" priority: 4, groups: ["x", "y"]}
  {description: "e\\q:model=text"}
  {description = "f:model=text"},
]
"""


def test_broken_entries_are_reported_with_their_line() -> None:
    entries = parse_conf(BROKEN_CONF, "broken.conf")
    summary = [(e.line, e.description, e.error is None) for e in entries]
    assert summary == [
        (3, "a:model=text", True),
        (4, None, False),
        (5, "c:model=text", False),
        (6, None, False),
        (7, "d:model=text", True),
        (8, None, False),
        (9, "f:model=text", True),
    ]
    assert entries[1].error == "a string is not closed before the end of its line"
    assert entries[4].groups == ("x", "y")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no `entries"),
        ("runs: []", "unknown top-level key 'runs'"),
        ('entries: [\n {description: "a:model=x"}\n', "never closed"),
        ("entries {", "expected '\\['"),
    ],
)
def test_a_file_of_the_wrong_shape_is_an_error(text: str, message: str) -> None:
    with pytest.raises(RunEntrySyntaxError, match=message):
        parse_conf(text, "x.conf")


# Resolving a file ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    root = tmp_path_factory.mktemp("entries")
    source = write_sources(
        root / "src",
        [model("a/one"), model("a/two"), model("a/lonely")],
        [deployment("h/one", "a/one"), deployment("h/two", "a/two")],
    )
    catalog = synced_catalog(root, source)
    yield catalog
    catalog.close()


def test_file_summary_groups_failures_by_reason(small: Catalog, tmp_path: Path) -> None:
    conf = tmp_path / "runs.conf"
    conf.write_text(
        "entries: [\n"
        '  {description: "boolq:model=a/one", priority: 1}\n'
        '  {description: "boolq:model=text", priority: 1}\n'
        '  {description: "boolq:model=a/nope", priority: 1}\n'
        '  {description: "boolq:model_deployment=h/one,model=a/two", priority: 1}\n'
        '  {description: "boolq:subject=x", priority: 1}\n'
        '  {description: "unclosed, priority: 1}\n'
        '  {description: "boolq:model=ablation", priority: 1}\n'
        '  {description: "opinions_qa:model=opinions_qa_ai21", priority: 1}\n'
        "]\n"
    )
    report = small.resolve_file(conf)
    assert [o.ok for o in report.outcomes] == [True, False, False, False, False, False, True, False]
    assert report.empty == 1  # no ablation model in this catalog
    # HELM's fixed `opinions_qa_ai21` list names ai21/j1-grande, which this catalog lacks (and
    # for which HELM has no generator).
    assert "not in the catalog" in (report.outcomes[-1].error or "")
    assert report.failures_by_reason() == {
        "model without deployment": 2,
        "unknown model": 1,
        "incompatible deployment": 1,
        "no model given": 1,
        "unreadable entry": 1,
    }
    assert report.summary()["resolved"] == 2
    assert report.runs == 1 + 3 + 3
    assert f"{conf}:7:" in (report.outcomes[5].error or "")

    result = run_cli("resolve", "--file", conf, db=small.path)
    assert result.returncode == 1
    assert f"{conf}:7: unreadable entry" in result.stderr
    assert "8 entries: 2 resolved (7 runs, 1 of them with no run), 6 failed" in result.stderr
    as_json = json.loads(run_cli("resolve", "--file", conf, "--json", db=small.path).stdout)
    assert as_json["summary"]["failed"] == 6
    assert as_json["entries"][0]["resolutions"][0]["model_deployment"] == "h/one"


def test_real_conf_file_resolves_on_v0512(tmp_path: Path, v0512_template: Path) -> None:
    conf = require_shared(RUN_ENTRIES)
    catalog = copy_catalog(v0512_template, tmp_path / "catalog.db")
    try:
        report = catalog.resolve_file(conf)
    finally:
        catalog.close()
    assert report.failed == 0
    assert report.resolved == 448
    text_runs = [o for o in report.outcomes if o.description and "model=text," in o.description]
    assert all(len(o.resolutions) > 400 for o in text_runs)
    result = run_cli("resolve", "--file", conf, "--policy", "last", db=catalog.path)
    assert result.returncode == 0, result.stderr
    assert "448 entries: 448 resolved" in result.stderr
