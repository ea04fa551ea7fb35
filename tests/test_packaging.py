"""The wheel works on its own: built non-editable, installed in a fresh virtualenv, run elsewhere.

The wheel is built without build isolation (hatchling is a test dependency) and installed with
`--no-deps` into a virtualenv that sees this environment's packages after its own: the test is
about what the wheel holds and where it runs from, not about pip's resolver, so it needs no
package index and takes seconds. The dependencies the wheel declares are checked by name.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from packaging.requirements import Requirement

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
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            wheels,
            REPO_ROOT,
        ],
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
    [metadata_name] = [name for name in names if name.endswith(".dist-info/METADATA")]
    metadata = zipfile.ZipFile(wheel).read(metadata_name).decode()
    requirements = [
        Requirement(line.split(":", 1)[1])
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:")
    ]
    required = {r.name.lower() for r in requirements if r.marker is None}
    assert required == {"sqlalchemy", "alembic", "sqlite-utils", "click", "pyyaml"}

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path, env=env)
    python = venv / "bin" / "python"
    # This environment's packages after the venv's own: a path line in a .pth file adds the
    # directory and runs none of its .pth files, so the editable checkout is not seen there.
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = Path(run([python, "-c", purelib], cwd=tmp_path, env=env).strip())
    (site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel],
        cwd=tmp_path, env=env)  # fmt: skip

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
