"""Shared fixtures: the real HELM snapshots beside the checkout, fresh catalogs, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog import Catalog

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = Path(os.environ.get("CATALOG_SHARED_DIR", REPO_ROOT.parent / "shared"))
HELM_CONFIGS = SHARED_DIR / "helm-configs"
SNAPSHOTS = ("2023-11-17-pr1903", "v0.5.0", "v0.5.12")
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def require_shared(path: Path) -> Path:
    """The shared test data; in CI its absence is a failure, elsewhere a skip."""
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"shared test data missing: {path}")
        pytest.skip(f"shared test data not found at {path}")
    return path


@pytest.fixture(params=SNAPSHOTS)
def snapshot_dir(request: pytest.FixtureRequest) -> Path:
    """Each real HELM snapshot in turn."""
    return require_shared(HELM_CONFIGS / str(request.param))


@pytest.fixture
def v0512_dir() -> Path:
    return require_shared(HELM_CONFIGS / "v0.5.12")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "catalog.db"


@pytest.fixture
def catalog(db_path: Path) -> Iterator[Catalog]:
    """An empty catalog at the head revision."""
    with Catalog.open(db_path) as opened:
        yield opened


@pytest.fixture
def synced_v0512(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    """A catalog synced from v0.5.12 (fresh per test, so tests may write)."""
    source = require_shared(HELM_CONFIGS / "v0.5.12")
    path = tmp_path_factory.mktemp("v0512") / "catalog.db"
    with Catalog.open(path) as opened:
        opened.sync([source])
        yield opened


def run_cli(
    *args: str | os.PathLike[str],
    db: Path | None = None,
    cwd: Path | None = None,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `catalog ...` in a subprocess, as a user would."""
    command = [sys.executable, "-m", "catalog.cli"]
    if db is not None:
        command += ["--db", str(db)]
    command += [str(a) for a in args]
    return subprocess.run(
        command, capture_output=True, text=True, cwd=cwd, input=input_text, timeout=300
    )


def dump(path: Path) -> str:
    """The database's full SQL dump, to prove a failed run changed nothing."""
    import sqlite3

    connection = sqlite3.connect(path)
    try:
        return "\n".join(connection.iterdump())
    finally:
        connection.close()


# Catalogs for the cache tests: each real snapshot synced once per module, copied per test.


@pytest.fixture(scope="module")
def pr1903_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.cache_helpers import synced_template

    return synced_template(tmp_path_factory, "2023-11-17-pr1903")


@pytest.fixture(scope="module")
def v0512_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.cache_helpers import synced_template

    return synced_template(tmp_path_factory, "v0.5.12")


@pytest.fixture
def pr1903(pr1903_template: Path, tmp_path: Path) -> Iterator[Catalog]:
    from tests.cache_helpers import synced_copy

    with synced_copy(pr1903_template, tmp_path / "catalog.db") as copied:
        yield copied


@pytest.fixture
def v0512(v0512_template: Path, tmp_path: Path) -> Iterator[Catalog]:
    from tests.cache_helpers import synced_copy

    with synced_copy(v0512_template, tmp_path / "catalog.db") as copied:
        yield copied
