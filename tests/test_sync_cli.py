"""`catalog sync` as a user runs it: exit codes, text and JSON output, --helm."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES, dump, run_cli, run_cli_process

from catalog.errors import HelmNotInstalledError
from catalog.sync import sources as sources

BASE = FIXTURES / "sync" / "base"
PRIVATE = FIXTURES / "sync" / "private"
TABLE_KEYS = {"models", "deployments", "tokenizers", "tags"}
DIAGNOSTIC_KEYS = {"file", "line", "code", "message"}


def sync_json(*args: str | Path, db: Path, env: dict[str, str] | None = None) -> tuple[int, Any]:
    result = run_cli("sync", "--json", *args, db=db, env=env)
    return result.returncode, json.loads(result.stdout)


def assert_documented_shape(report: dict[str, Any]) -> None:
    assert {"added", "changed", "removed", "warnings", "errors", "skipped_unchanged"} <= set(report)
    for key in ("added", "changed", "removed"):
        assert set(report[key]) == TABLE_KEYS
        assert all(isinstance(n, int) for n in report[key].values())
    for key in ("warnings", "errors"):
        assert isinstance(report[key], list)
        for diagnostic in report[key]:
            assert set(diagnostic) >= DIAGNOSTIC_KEYS
            assert isinstance(diagnostic["code"], str)
            assert isinstance(diagnostic["message"], str)
    assert isinstance(report["skipped_unchanged"], bool)


def test_json_report_has_the_documented_shape(db_path: Path) -> None:
    code, first = sync_json(BASE, PRIVATE, db=db_path)
    assert code == 0
    assert_documented_shape(first)
    assert first["added"] == {"models": 3, "deployments": 5, "tokenizers": 2, "tags": 5}
    assert first["skipped_unchanged"] is False

    code, second = sync_json(BASE, PRIVATE, db=db_path)
    assert code == 0
    assert_documented_shape(second)
    assert second["skipped_unchanged"] is True
    assert second["added"] == {"models": 0, "deployments": 0, "tokenizers": 0, "tags": 0}


def test_json_warnings_carry_file_line_code_message(db_path: Path, tmp_path: Path) -> None:
    layer = Path(shutil.copytree(BASE, tmp_path / "layer"))
    metadata = layer / "model_metadata.yaml"
    metadata.write_text(
        metadata.read_text(encoding="utf-8").replace("release_date: 2024-06-01", "release: x"),
        encoding="utf-8",
    )
    code, report = sync_json(layer, db=db_path)
    assert code == 0
    assert_documented_shape(report)
    [warning] = report["warnings"]
    line = metadata.read_text(encoding="utf-8").splitlines().index("    release: x") + 1
    assert (warning["file"], warning["line"], warning["code"]) == (
        str(metadata),
        line,
        "unknown-key",
    )
    assert "release_date" in warning["message"]


def test_errors_exit_1_list_every_location_and_write_nothing(db_path: Path, tmp_path: Path) -> None:
    assert run_cli("sync", BASE, db=db_path).returncode == 0
    before = dump(db_path)
    layer = Path(shutil.copytree(BASE, tmp_path / "layer"))
    deployments = layer / "model_deployments.yaml"
    text = deployments.read_text(encoding="utf-8")
    deployments.write_text(
        text.replace("max_sequence_length: 32768", "max_sequence_length: abc").replace(
            "  - name: beta/b-large", "  - name: b-large"
        ),
        encoding="utf-8",
    )
    lines = deployments.read_text(encoding="utf-8").splitlines()

    result = run_cli("sync", layer, db=db_path)

    assert result.returncode == 1
    assert f"{deployments}:{lines.index('    max_sequence_length: abc') + 1}: error:" in (
        result.stderr
    )
    assert f"{deployments}:{lines.index('  - name: b-large') + 1}: error:" in result.stderr
    assert "[wrong-type]" in result.stderr and "[bad-name]" in result.stderr
    assert "nothing was written" in result.stderr
    assert dump(db_path) == before

    code, report = sync_json(layer, db=db_path)
    assert code == 1
    assert_documented_shape(report)
    assert sorted(e["code"] for e in report["errors"]) == ["bad-name", "wrong-type"]
    assert dump(db_path) == before


def test_strict_exits_1_on_a_warning(db_path: Path, tmp_path: Path) -> None:
    layer = Path(shutil.copytree(BASE, tmp_path / "layer"))
    with (layer / "model_metadata.yaml").open("a", encoding="utf-8") as stream:
        stream.write("    tafs: [X]\n")
    result = run_cli("sync", "--strict", layer, db=db_path)
    assert result.returncode == 1
    assert "error: unknown key 'tafs'" in result.stderr
    assert run_cli("sync", layer, db=db_path).returncode == 0


def test_text_output_dry_run_and_up_to_date(db_path: Path) -> None:
    dry = run_cli("sync", "--dry-run", BASE, db=db_path)
    assert dry.returncode == 0
    assert dry.stdout.startswith("dry run: would have added: 3 models, 4 deployments")
    real = run_cli("sync", BASE, db=db_path)
    assert real.stdout.startswith("added: 3 models, 4 deployments, 2 tokenizers, 5 tags")
    again = run_cli("sync", BASE, db=db_path)
    assert "up to date" in again.stdout
    forced = run_cli("sync", "--force", BASE, db=db_path)
    assert forced.stdout.strip() == "nothing changed"


def test_sqlalchemy_url_and_environment_variable_name_the_database(tmp_path: Path) -> None:
    database = tmp_path / "via-url.db"
    result = run_cli("--db", f"sqlite:///{database}", "sync", BASE)
    assert result.returncode == 0, result.stderr
    env_result = run_cli("sync", BASE, db=database, env={"CATALOG_DB": "ignored.db"})
    assert "up to date" in env_result.stdout
    from_env = run_cli("sync", BASE, env={"CATALOG_DB": str(database)}, cwd=tmp_path)
    assert "up to date" in from_env.stdout
    assert not (tmp_path / "catalog.db").exists()


# --helm --------------------------------------------------------------------------------------


@pytest.fixture
def without_crfm_helm(monkeypatch: pytest.MonkeyPatch, db_path: Path) -> None:
    """This interpreter as it is where crfm-helm is not installed (CI installs it for the HELM
    tests): no directory on sys.path holds its distribution and no `helm` module is loaded.
    What the command needs from that directory is imported first, and the catalog created."""
    from catalog import Catalog
    from catalog.sync import pipeline  # noqa: F401

    Catalog.open(db_path).close()
    kept = [entry for entry in sys.path if not any(Path(entry).glob("crfm_helm-*.dist-info"))]
    monkeypatch.setattr(sys, "path", kept)
    for name in [n for n in sys.modules if n == "helm" or n.startswith("helm.")]:
        monkeypatch.delitem(sys.modules, name)


@pytest.mark.usefixtures("without_crfm_helm")
def test_helm_without_crfm_helm_installed_is_a_clear_error(db_path: Path) -> None:
    result = run_cli("sync", "--helm", db=db_path)
    assert result.returncode == 1
    assert "crfm-helm" in result.stderr
    assert "not installed" in result.stderr
    assert "Traceback" not in result.stderr
    code, report = sync_json("--helm", db=db_path)
    assert code == 1
    assert [e["code"] for e in report["errors"]] == ["helm-not-installed"]


@pytest.mark.usefixtures("without_crfm_helm")
def test_helm_not_installed_raises_helm_not_installed_error() -> None:
    with pytest.raises(HelmNotInstalledError, match="crfm-helm"):
        sources.helm_config_dir()


def fake_helm_install(site: Path) -> Path:
    """A site directory where crfm-helm 0.0.0 seems installed; importing `helm` would fail."""
    dist_info = site / "crfm_helm-0.0.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: crfm-helm\nVersion: 0.0.0\n", encoding="utf-8"
    )
    config = site / "helm" / "config"
    config.mkdir(parents=True)
    (site / "helm" / "__init__.py").write_text(
        'raise ImportError("model-catalog must not import helm")\n', encoding="utf-8"
    )
    records = ["helm/__init__.py,,"]
    for source in BASE.iterdir():
        shutil.copy(source, config / source.name)
        records.append(f"helm/config/{source.name},,")
    records += ["crfm_helm-0.0.0.dist-info/METADATA,,", "crfm_helm-0.0.0.dist-info/RECORD,,"]
    (dist_info / "RECORD").write_text("\n".join(records) + "\n", encoding="utf-8")
    return config


def test_helm_configs_are_found_without_importing_helm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = fake_helm_install(tmp_path / "site")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    for name in [n for n in sys.modules if n == "helm" or n.startswith("helm.")]:
        monkeypatch.delitem(sys.modules, name)  # a real crfm-helm another test imported
    assert sources.helm_config_dir() == config
    assert "helm" not in sys.modules
    assert sources.source_dirs([PRIVATE], helm=True) == [config, PRIVATE]


@pytest.mark.slow  # crfm-helm is found on the PYTHONPATH of a fresh interpreter
def test_helm_layer_comes_first_and_a_private_layer_overrides_it(
    tmp_path: Path, db_path: Path
) -> None:
    config = fake_helm_install(tmp_path / "site")
    pythonpath = os.pathsep.join(
        filter(None, [str(tmp_path / "site"), os.environ.get("PYTHONPATH")])
    )
    result = run_cli_process(
        "sync", "--json", "--strict", "--helm", PRIVATE, db=db_path, env={"PYTHONPATH": pythonpath}
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["added"]["deployments"] == 5
    assert report["sources"][0] == str(config / "tokenizer_configs.yaml")
    assert report["sources"][-1] == str(PRIVATE / "model_deployments.yaml")
