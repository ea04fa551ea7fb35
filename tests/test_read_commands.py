"""The reading commands as a user runs them: `catalog show | list | check | export | query`."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from conftest import FIXTURES, dump, run_cli
from helm_yaml import empty_database

from catalog import Catalog

MINI = FIXTURES / "read" / "mini"


@pytest.fixture(scope="module")
def mini_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = empty_database(tmp_path_factory.mktemp("cli-mini") / "catalog.db")
    with Catalog.open(path) as catalog:
        catalog.sync([MINI])
    return path


@pytest.fixture(scope="module")
def v0512_db(tmp_path_factory: pytest.TempPathFactory, v0512_template: Path) -> Path:
    path = tmp_path_factory.mktemp("cli-v0512") / "catalog.db"
    shutil.copyfile(v0512_template, path)
    return path


# show --------------------------------------------------------------------------------------------


def test_show_model_lists_tags_and_deployments_in_order(v0512_db: Path) -> None:
    result = run_cli("show", "model", "openai/gpt-4-0613", db=v0512_db)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "model:        openai/gpt-4-0613" in out
    assert "creator:      OpenAI (openai)" in out
    assert "tags:         TEXT_MODEL_TAG, OPENAI_CHATGPT_MODEL_TAG" in out
    first = out.index("stanfordhealthcare/gpt-4-0613  host=stanfordhealthcare")
    second = out.index("openai/gpt-4-0613  host=openai")
    assert first < second


def test_show_model_marks_deprecated_deployments(mini_db: Path) -> None:
    result = run_cli("show", "model", "acme/beta", db=mini_db)
    assert result.returncode == 0, result.stderr
    assert "hostco/beta-old  host=hostco  deprecated" in result.stdout
    assert "acme/beta  host=acme  deprecated" in result.stdout


def test_show_model_json(mini_db: Path) -> None:
    result = run_cli("show", "model", "acme/alpha", "--json", db=mini_db)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["name"] == "acme/alpha"
    assert data["display_name"] == 'Alpha "Q" (7B)'
    assert data["release_date"] == "2023-05-01"
    assert data["tags"] == ["TEXT_MODEL_TAG", "FULL_FUNCTIONALITY_TEXT_MODEL_TAG"]
    assert data["deployments"] == ["acme/alpha", "hostco/alpha"]
    assert data["deployment_details"] == [
        {"name": "acme/alpha", "host_organization": "acme", "deprecated": False},
        {"name": "hostco/alpha", "host_organization": "hostco", "deprecated": False},
    ]


def test_show_deployment(mini_db: Path) -> None:
    result = run_cli("show", "deployment", "hostco/alpha", db=mini_db)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for expected in (
        "model:                             acme/alpha",
        "host:                              hostco",
        "tokenizer:                         acme/tok",
        "client:                            helm.clients.hostco_client.HostcoClient",
        "window service:                    helm.benchmark.window_services.default_window_service"
        '.DefaultWindowService {"gpt2_window_service": {}, "mode": "strict"}',
        "max sequence length:               4096",
        "max request length:                4097",
        "max sequence and generated tokens: 8192",
        "deprecated:                        no",
        f"source:                            {MINI / 'model_deployments.yaml'}:12",
    ):
        assert expected in out


def test_show_deployment_json(mini_db: Path) -> None:
    result = run_cli("show", "deployment", "acme/alpha", "--json", db=mini_db)
    data = json.loads(result.stdout)
    assert data["client_args"] == {"endpoint": "https://api.acme.example/v1", "retries": 3}
    assert data["deprecated"] is False
    assert data["source_line"] == 2


def test_show_tokenizer(mini_db: Path) -> None:
    result = run_cli("show", "tokenizer", "acme/tok", db=mini_db)
    assert result.returncode == 0, result.stderr
    assert "end of text token: </s>" in result.stdout
    assert "used by (3 deployments):\n  acme/alpha\n  hostco/alpha\n  hostco/beta-old" in (
        result.stdout
    )
    placeholder = run_cli("show", "tokenizer", "ghost/tok", "--json", db=mini_db)
    data = json.loads(placeholder.stdout)
    assert data["is_placeholder"] is True
    assert data["deployments"] == ["hostco/ghost"]


@pytest.mark.parametrize(
    ("kind", "typo", "suggestion"),
    [
        ("model", "acme/alpah", "acme/alpha"),
        ("deployment", "hostco/alpah", "hostco/alpha"),
        ("tokenizer", "acme/tk", "acme/tok"),
    ],
)
def test_show_unknown_name_suggests(mini_db: Path, kind: str, typo: str, suggestion: str) -> None:
    result = run_cli("show", kind, typo, db=mini_db)
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: unknown {kind} {typo!r}; did you mean")
    assert repr(suggestion) in result.stderr
    assert result.stdout == ""


HOSTILE = "x'); DROP TABLE models; --"


def test_hostile_arguments_do_no_harm(mini_db: Path) -> None:
    before = dump(mini_db)
    shown = run_cli("show", "model", HOSTILE, db=mini_db)
    assert shown.returncode == 1
    assert "unknown model" in shown.stderr
    for args in (
        ("list", "models", "--creator", HOSTILE),
        ("list", "models", "--host", HOSTILE),
        ("list", "deployments", "--host", HOSTILE),
    ):
        result = run_cli(*args, "--json", db=mini_db)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == []
    tagged = run_cli("list", "models", "--tag", HOSTILE, db=mini_db)
    assert tagged.returncode == 1
    assert "unknown tag" in tagged.stderr
    assert dump(mini_db) == before


# list --------------------------------------------------------------------------------------------


def test_list_models_table(mini_db: Path) -> None:
    result = run_cli("list", "models", db=mini_db)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "name",
        "creator",
        "access",
        "release_date",
        "deployments",
        "placeholder",
    ]
    names = [line.split()[0] for line in lines[2:]]
    assert names == ["acme/alpha", "acme/beta", "zeta/gamma", "ghost/model"]
    assert lines[-1].split()[-1] == "yes"  # the placeholder


def test_list_models_filters(mini_db: Path) -> None:
    def names(*args: str) -> list[str]:
        result = run_cli("list", "models", *args, "--json", db=mini_db)
        assert result.returncode == 0, result.stderr
        return [m["name"] for m in json.loads(result.stdout)]

    assert names("--creator", "Acme Labs") == ["acme/alpha", "acme/beta"]
    assert names("--tag", "CODE_MODEL_TAG") == ["zeta/gamma"]
    assert names("--host", "hostco") == ["acme/alpha", "acme/beta", "ghost/model"]
    assert names("--host", "hostco", "--tag", "FULL_FUNCTIONALITY_TEXT_MODEL_TAG") == [
        "acme/alpha",
        "ghost/model",
    ]


def test_list_deployments_csv_and_deprecated_switch(mini_db: Path) -> None:
    result = run_cli("list", "deployments", "--csv", db=mini_db)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["name"] for r in rows] == [
        "acme/alpha",
        "hostco/alpha",
        "hostco/beta-old",
        "acme/beta",
        "hostco/ghost",
    ]
    assert json.loads(rows[0]["client_args"])["retries"] == 3
    current = run_cli("list", "deployments", "--no-deprecated", "--json", db=mini_db)
    assert [d["name"] for d in json.loads(current.stdout)] == [
        "acme/alpha",
        "hostco/alpha",
        "hostco/ghost",
    ]
    on_host = run_cli(
        "list", "deployments", "--host", "hostco", "--model", "acme/beta", "--json", db=mini_db
    )
    assert [d["name"] for d in json.loads(on_host.stdout)] == ["hostco/beta-old"]


def test_list_tokenizers_and_tags(mini_db: Path) -> None:
    tokenizers = run_cli("list", "tokenizers", "--json", db=mini_db)
    data = json.loads(tokenizers.stdout)
    assert [(t["name"], len(t["deployments"])) for t in data] == [
        ("acme/tok", 3),
        ("acme/unused", 0),
        ("ghost/tok", 1),
    ]
    tags = run_cli("list", "tags", "--csv", db=mini_db)
    assert tags.stdout.splitlines() == [
        "name,model_count",
        "CODE_MODEL_TAG,1",
        "FULL_FUNCTIONALITY_TEXT_MODEL_TAG,2",
        "TEXT_MODEL_TAG,4",
    ]


def test_list_on_real_data(v0512_db: Path) -> None:
    result = run_cli("list", "deployments", "--host", "together", "--json", db=v0512_db)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == 101
    assert {r["host_organization"] for r in rows} == {"together"}


# check, export, query ----------------------------------------------------------------------------


def test_check_text_and_json(mini_db: Path) -> None:
    text = run_cli("check", db=mini_db)
    assert text.returncode == 0, text.stderr
    assert f"{MINI / 'model_deployments.yaml'}:39: warning: model 'ghost/model'" in text.stdout
    as_json = run_cli("check", "--json", db=mini_db)
    data = json.loads(as_json.stdout)
    assert data["counts"] == {"error": 0, "warning": 4, "info": 1}


def test_export_then_sync_gives_the_same_listing(mini_db: Path, tmp_path: Path) -> None:
    exported = run_cli("export", tmp_path / "out", db=mini_db)
    assert exported.returncode == 0, exported.stderr
    again = tmp_path / "again.db"
    assert run_cli("sync", tmp_path / "out", db=again).returncode == 0
    for kind in ("models", "deployments", "tokenizers", "tags"):
        first = json.loads(run_cli("list", kind, "--json", db=mini_db).stdout)
        second = json.loads(run_cli("list", kind, "--json", db=again).stdout)
        strip = ("source_file", "source_line", "position")
        assert [{k: v for k, v in row.items() if k not in strip} for row in second] == [
            {k: v for k, v in row.items() if k not in strip} for row in first
        ]


def test_query_table_output(mini_db: Path) -> None:
    result = run_cli(
        "query",
        "SELECT model, default_deployment FROM model_default_deployments WHERE model = ?",
        "--param",
        "acme/alpha",
        db=mini_db,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[2].split() == ["acme/alpha", "acme/alpha"]


def test_query_write_is_refused_and_db_untouched(mini_db: Path) -> None:
    before = dump(mini_db)
    result = run_cli("query", "DELETE FROM models", db=mini_db)
    assert result.returncode == 1
    assert result.stderr.startswith("error: refused: the query would delete from table models")
    assert dump(mini_db) == before


# help --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ("show",),
        ("show", "model"),
        ("show", "deployment"),
        ("show", "tokenizer"),
        ("list",),
        ("list", "models"),
        ("list", "deployments"),
        ("list", "tokenizers"),
        ("list", "tags"),
        ("check",),
        ("export",),
        ("query",),
    ],
)
def test_every_command_has_help(command: tuple[str, ...]) -> None:
    result = run_cli(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: catalog " + " ".join(command))
    description = result.stdout.split("\n\n")[1].strip()
    assert len(description) > 20
