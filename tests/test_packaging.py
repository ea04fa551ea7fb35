"""The wheel works on its own: built non-editable, installed in a fresh virtualenv, run elsewhere.

Needs the package index (the wheel's dependencies are installed from it); about a minute.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO_ROOT

from catalog import __version__
from catalog.db.revisions import HEAD_REVISION, KNOWN_REVISIONS

HANG_GUARD_SECONDS = 1800


def run(command: list[str | Path], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=HANG_GUARD_SECONDS,
    )
    assert result.returncode == 0, (
        f"{command} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_virtualenv_and_works_from_another_directory(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("CATALOG_DB", None)
    wheels = tmp_path / "wheels"
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, REPO_ROOT],
        cwd=tmp_path,
        env=env,
    )
    [wheel] = wheels.glob("model_catalog-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "catalog/_data/alembic/env.py" in names
    for revision in KNOWN_REVISIONS:
        assert f"catalog/_data/alembic/versions/{revision}.py" in names
    for config in ("model_metadata.yaml", "model_deployments.yaml", "tokenizer_configs.yaml"):
        assert f"catalog/_data/configs/{config}" in names
    assert not [name for name in names if name.startswith(("tests/", "alembic/", "configs/"))]

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv], cwd=tmp_path, env=env)
    python = venv / "bin" / "python"
    run([python, "-m", "pip", "install", "-q", wheel], cwd=tmp_path, env=env)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    located = run(
        [
            python,
            "-c",
            "import catalog, catalog.db.location as r; "
            "print(catalog.__file__); print(r.packaged_data_dir('alembic')); "
            "print(r.packaged_data_dir('configs'))",
        ],
        cwd=elsewhere,
        env=env,
    ).split()
    assert all(Path(path).is_relative_to(venv) for path in located), located

    catalog = venv / "bin" / "catalog"
    database = elsewhere / "bundled.db"
    assert "added:" in run([catalog, "--db", database, "sync"], cwd=elsewhere, env=env)
    assert "up to date" in run([catalog, "--db", database, "sync"], cwd=elsewhere, env=env)
    assert run([catalog, "--db", database, "db", "current"], cwd=elsewhere, env=env).strip() == (
        f"{HEAD_REVISION} (head)"
    )
    history = run([catalog, "db", "history"], cwd=elsewhere, env=env)
    assert len(history.strip().splitlines()) == len(KNOWN_REVISIONS)
    assert "at revision base" in run(
        [catalog, "--db", database, "db", "downgrade", "base", "--force"], cwd=elsewhere, env=env
    )
    assert f"at revision {HEAD_REVISION}" in run(
        [catalog, "--db", database, "db", "upgrade"], cwd=elsewhere, env=env
    )
    assert __version__ in run([catalog, "--version"], cwd=elsewhere, env=env)
    assert sorted(p.name for p in elsewhere.iterdir() if not p.name.endswith(("-wal", "-shm"))) == [
        "bundled.db"
    ]
