"""`export` then `sync` gives back the same catalog: every snapshot, table by table, in order."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import FIXTURES, SnapshotTemplate, run_cli
from helm_yaml import empty_database

from catalog import Catalog, ExportError

MINI = FIXTURES / "read" / "mini"

MODEL_COLUMNS = (
    "name, creator_prefix, engine, creator_organization_name, display_name, description, "
    "access, release_date, num_parameters, is_placeholder"
)
TOKENIZER_COLUMNS = "name, class_name, args, end_of_text_token, prefix_token, is_placeholder"
DEPLOYMENT_COLUMNS = (
    "name, host_organization, engine, model_name, tokenizer_name, client_class, client_args, "
    "window_service_class, window_service_args, max_sequence_length, max_request_length, "
    "max_sequence_and_generated_tokens_length, deprecated"
)
JSON_COLUMNS = {"args", "client_args", "window_service_args"}


def catalog_content(path: Path) -> dict[str, list[Any]]:
    """Everything a catalog says, in catalog order; positions compared as order, not numbers."""
    connection = sqlite3.connect(path)
    try:

        def rows(sql: str) -> list[dict[str, Any]]:
            cursor = connection.execute(sql)
            names = [c[0] for c in cursor.description]
            result = []
            for row in cursor:
                record = dict(zip(names, row, strict=True))
                for column in JSON_COLUMNS & record.keys():
                    if record[column] is not None:
                        record[column] = json.loads(record[column])
                result.append(record)
            return result

        return {
            "models": rows(f"SELECT {MODEL_COLUMNS} FROM models ORDER BY position"),
            "model_tags": rows(
                "SELECT model_name, tag_name FROM model_tags ORDER BY model_name, position"
            ),
            "tags": rows("SELECT name FROM tags ORDER BY name"),
            "tokenizers": rows(f"SELECT {TOKENIZER_COLUMNS} FROM tokenizers ORDER BY position"),
            "deployments": rows(f"SELECT {DEPLOYMENT_COLUMNS} FROM deployments ORDER BY position"),
            "deployments_first_seen": rows("SELECT name FROM deployments ORDER BY first_position"),
        }
    finally:
        connection.close()


def assert_round_trip(
    sources: list[Path], tmp_path: Path, synced: Path | None = None
) -> dict[str, list[Any]]:
    """Export the catalog synced from `sources` (a copy of `synced` if given, a catalog already
    synced from them), sync the export into a new catalog, and compare the two."""
    first = tmp_path / "first.db"
    if synced is not None:
        shutil.copyfile(synced, first)
    with Catalog.open(first if synced is not None else empty_database(first)) as catalog:
        if synced is None:
            catalog.sync(sources)
        written = catalog.export(tmp_path / "exported")
    assert [p.name for p in written] == [
        "model_metadata.yaml",
        "model_deployments.yaml",
        "tokenizer_configs.yaml",
    ]
    second = tmp_path / "second.db"
    with Catalog.open(empty_database(second)) as catalog:
        report = catalog.sync([tmp_path / "exported"])
    # Nothing the export wrote is unknown: only placeholders are announced again, and the
    # deployments a later layer redefined, which the export writes twice (identical copies),
    # where their name first appeared and where it won, as HELM's list holds them.
    with Catalog.open(first) as original:
        redefined = {d.name for d in original.deployments() if d.first_position != d.position}
    duplicates = [w for w in report.warnings if w.code == "duplicate-name"]
    assert {w.code for w in report.warnings} <= {
        "placeholder-model",
        "placeholder-tokenizer",
        "duplicate-name",
    }
    assert all("identical" in w.message for w in duplicates)
    assert {w.message.split("'")[1] for w in duplicates} == redefined
    expected = catalog_content(first)
    actual = catalog_content(second)
    for table in expected:
        assert actual[table] == expected[table], table
    return expected


def test_round_trip_of_every_snapshot(
    snapshot_dir: Path, tmp_path: Path, snapshot_template: Callable[[str], SnapshotTemplate]
) -> None:
    synced = snapshot_template(snapshot_dir.name).path
    content = assert_round_trip([snapshot_dir], tmp_path, synced)
    assert len(content["models"]) > 100
    assert len(content["deployments"]) > 100


def test_round_trip_of_the_fixture(tmp_path: Path) -> None:
    content = assert_round_trip([MINI], tmp_path)
    assert [m["name"] for m in content["models"]] == [
        "acme/alpha",
        "acme/beta",
        "zeta/gamma",
        "ghost/model",
    ]


def test_round_trip_of_two_layers(tmp_path: Path) -> None:
    """An override in a later layer moves the deployment to the end; the export keeps that."""
    layer = tmp_path / "layer"
    layer.mkdir()
    (layer / "model_deployments.yaml").write_text(
        "model_deployments:\n"
        "  - name: acme/alpha\n"
        "    model_name: acme/alpha\n"
        "    max_sequence_length: 999\n"
        "    client_spec:\n"
        "      class_name: helm.clients.acme_client.AcmeClient2\n"
    )
    content = assert_round_trip([MINI, layer], tmp_path / "rt")
    names = [d["name"] for d in content["deployments"]]
    assert names[-1] == "acme/alpha"
    assert content["deployments"][-1]["max_sequence_length"] == 999


def _exported(tmp_path: Path, *, force: bool = False) -> dict[str, Any]:
    with Catalog.open(empty_database(tmp_path / "c.db")) as catalog:
        catalog.sync([MINI])
        catalog.export(tmp_path / "out", force=force)
    return {
        name: yaml.load((tmp_path / "out" / name).read_text(), Loader=yaml.CSafeLoader)
        for name in ("model_metadata.yaml", "model_deployments.yaml", "tokenizer_configs.yaml")
    }


def test_export_is_helm_format(tmp_path: Path) -> None:
    files = _exported(tmp_path)
    models = files["model_metadata.yaml"]["models"]
    assert [m["name"] for m in models] == ["acme/alpha", "acme/beta", "zeta/gamma"]
    assert list(models[0]) == [
        "name",
        "display_name",
        "description",
        "creator_organization_name",
        "access",
        "num_parameters",
        "release_date",
        "tags",
    ]
    assert "release_date" not in models[1]  # null fields are omitted
    tokenizers = files["tokenizer_configs.yaml"]["tokenizer_configs"]
    assert [t["name"] for t in tokenizers] == ["acme/tok", "acme/unused"]  # no placeholder
    assert tokenizers[1] == {
        "name": "acme/unused",
        "tokenizer_spec": {"class_name": "helm.tokenizers.simple_tokenizer.SimpleTokenizer"},
        "end_of_text_token": "",
    }
    deployments = {d["name"]: d for d in files["model_deployments.yaml"]["model_deployments"]}
    assert "deprecated" not in deployments["acme/alpha"]
    assert deployments["acme/beta"]["deprecated"] is True
    assert list(deployments["hostco/alpha"]) == [
        "name",
        "model_name",
        "tokenizer_name",
        "max_sequence_length",
        "max_request_length",
        "max_sequence_and_generated_tokens_length",
        "client_spec",
        "window_service_spec",
    ]
    assert deployments["hostco/alpha"]["window_service_spec"]["args"] == {
        "gpt2_window_service": {},
        "mode": "strict",
    }


def test_export_writes_dates_and_tags_as_helm_does(tmp_path: Path) -> None:
    _exported(tmp_path)
    text = (tmp_path / "out" / "model_metadata.yaml").read_text()
    assert "release_date: 2023-05-01\n" in text
    assert "tags: [TEXT_MODEL_TAG, FULL_FUNCTIONALITY_TEXT_MODEL_TAG]\n" in text
    assert "ünïcode" in text
    assert "ghost/model" not in text


def test_export_refuses_existing_files_and_replaces_them_with_force_keeping_modes(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "model_metadata.yaml").write_text("stale")
    (out / "model_metadata.yaml").chmod(0o640)
    with pytest.raises(ExportError, match=r"already holds model_metadata\.yaml"):
        _exported(tmp_path)
    assert (out / "model_metadata.yaml").read_text() == "stale"
    assert sorted(p.name for p in out.iterdir()) == ["model_metadata.yaml"]
    _exported(tmp_path, force=True)
    assert (out / "model_metadata.yaml").read_text().startswith("#")
    assert (out / "model_metadata.yaml").stat().st_mode & 0o777 == 0o640
    umask = os.umask(0o022)
    os.umask(umask)
    assert (out / "tokenizer_configs.yaml").stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in out.iterdir()) == [
        "model_deployments.yaml",
        "model_metadata.yaml",
        "tokenizer_configs.yaml",
    ]


def test_cli_export(tmp_path: Path) -> None:
    db = empty_database(tmp_path / "c.db")
    with Catalog.open(db) as catalog:
        catalog.sync([MINI])
    result = run_cli("export", tmp_path / "out", db=db)
    assert result.returncode == 0, result.stderr
    printed = result.stdout.strip().splitlines()
    assert printed == [
        str(tmp_path / "out" / "model_metadata.yaml"),
        str(tmp_path / "out" / "model_deployments.yaml"),
        str(tmp_path / "out" / "tokenizer_configs.yaml"),
    ]
    synced = run_cli("sync", tmp_path / "out", db=tmp_path / "again.db")
    assert synced.returncode == 0, synced.stderr
    assert catalog_content(tmp_path / "again.db") == catalog_content(db)


def test_cli_export_to_a_file_path_fails_cleanly(tmp_path: Path) -> None:
    db = empty_database(tmp_path / "c.db")
    with Catalog.open(db) as catalog:
        catalog.sync([MINI])
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = run_cli("export", blocker, db=db)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert blocker.read_text() == "x"
