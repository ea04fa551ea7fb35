"""Shared fixtures: the real HELM snapshots beside the checkout, fresh catalogs, the CLI."""

from __future__ import annotations

import contextlib
import functools
import io
import locale
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import pytest
import yaml
from helm_yaml import empty_database
from pg_server import postgres_server, postgres_url  # noqa: F401 (fixtures)

from catalog import Catalog
from catalog.sync.report import SyncReport

# The suite starts about a hundred fresh interpreters (the slow tests) and a worker per core, each
# of which would compile the package from source again where PYTHONDONTWRITEBYTECODE is set (as on
# CI machines): the suite writes bytecode caches (__pycache__/, ignored by git) whatever it says.
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = Path(os.environ.get("CATALOG_SHARED_DIR", REPO_ROOT.parent / "shared"))
HELM_CONFIGS = SHARED_DIR / "helm-configs"
SNAPSHOTS = ("2023-11-17-pr1903", "v0.5.0", "v0.5.12")
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# Temporary files on a memory file system. Every catalog a test writes commits with fsync, and
# on a disk those waits were most of the suite's time. /dev/shm is used unless TMPDIR names a
# place; `disk_tmp_path` is on the disk, for what a memory file system lacks (chattr +i).
DISK_TEMP = Path(tempfile.gettempdir())
_MEMORY_TEMP = Path("/dev/shm")
if "TMPDIR" not in os.environ and _MEMORY_TEMP.is_dir() and os.access(_MEMORY_TEMP, os.W_OK):
    tempfile.tempdir = str(_MEMORY_TEMP)


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
def disk_tmp_path() -> Iterator[Path]:
    """A temporary directory on the disk, removed afterwards (tmp_path is in memory)."""
    path = Path(tempfile.mkdtemp(prefix="catalog-test-", dir=DISK_TEMP))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "catalog.db"


@pytest.fixture
def catalog(db_path: Path) -> Iterator[Catalog]:
    """An empty catalog at the head revision (a copy of the session's empty database)."""
    with Catalog.open(empty_database(db_path)) as opened:
        yield opened


@pytest.fixture
def synced_v0512(
    v0512_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Catalog]:
    """A catalog synced from v0.5.12 (fresh per test, so tests may write)."""
    with copy_catalog(v0512_template, tmp_path_factory.mktemp("v0512") / "catalog.db") as opened:
        yield opened


# Catalogs made once per session and copied for each test ---------------------------------------
# Creating a database runs the Alembic migrations, and syncing a real snapshot takes about half
# a second: each is done once, into a template that tests copy and never open themselves.


@dataclass(frozen=True)
class SnapshotTemplate:
    source: Path
    path: Path
    """A closed catalog synced from `source` alone (no -wal or -shm beside it)."""
    report: SyncReport
    """What that sync reported."""


@pytest.fixture(scope="session")
def snapshot_template(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[str], SnapshotTemplate]:
    """Snapshot name -> its template, synced at the first request."""
    made: dict[str, SnapshotTemplate] = {}

    def template(name: str) -> SnapshotTemplate:
        if name not in made:
            source = require_shared(HELM_CONFIGS / name)
            path = tmp_path_factory.mktemp(f"template-{name}") / "catalog.db"
            with Catalog.open(empty_database(path)) as opened:
                report = opened.sync([source])
                opened.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            made[name] = SnapshotTemplate(source, path, report)
        return made[name]

    return template


@pytest.fixture(scope="session")
def pr1903_template(snapshot_template: Callable[[str], SnapshotTemplate]) -> Path:
    return snapshot_template("2023-11-17-pr1903").path


@pytest.fixture(scope="session")
def v050_template(snapshot_template: Callable[[str], SnapshotTemplate]) -> Path:
    return snapshot_template("v0.5.0").path


@pytest.fixture(scope="session")
def v0512_template(snapshot_template: Callable[[str], SnapshotTemplate]) -> Path:
    return snapshot_template("v0.5.12").path


def copy_catalog(template: Path, destination: Path) -> Catalog:
    """A catalog opened from a fresh copy of `template`."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, destination)
    return Catalog.open(destination)


@pytest.fixture
def pr1903(pr1903_template: Path, tmp_path: Path) -> Iterator[Catalog]:
    with copy_catalog(pr1903_template, tmp_path / "catalog.db") as copied:
        yield copied


@pytest.fixture
def v0512(v0512_template: Path, tmp_path: Path) -> Iterator[Catalog]:
    with copy_catalog(v0512_template, tmp_path / "catalog.db") as copied:
        yield copied


@functools.cache
def real_yaml(path: Path) -> Any:
    """A real HELM file as PyYAML's safe loader reads it, read once per session (libyaml's
    parser when there is one: the same objects as HELM's `yaml.safe_load`, only faster).

    The same objects for every caller: copy before changing anything.
    """
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(require_shared(path).read_text(encoding="utf-8"), Loader=loader)


# Running the `catalog` command ------------------------------------------------------------------

# Variables that act only when an interpreter starts: a call that sets one needs a process.
_START_UP_VARIABLES = ("PYTHON", "LD_", "LC_", "LANG")


def _argv(args: tuple[str | os.PathLike[str], ...], db: Path | None) -> list[str]:
    return [*(["--db", str(db)] if db is not None else []), *map(str, args)]


def _stream(like: TextIO | None, default_errors: str) -> tuple[io.BytesIO, io.TextIOWrapper]:
    """A text stream encoding as the interpreter's own stream `like` does, and its bytes."""
    data = io.BytesIO()
    encoding = getattr(like, "encoding", None) or locale.getpreferredencoding(False)
    errors = getattr(like, "errors", None) or default_errors
    return data, io.TextIOWrapper(data, encoding=encoding, errors=errors, write_through=True)


def _as_text(data: bytes) -> str:
    """Bytes decoded as by `subprocess.run(..., text=True)`: locale encoding, universal newlines."""
    text = data.decode(locale.getpreferredencoding(False))
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _restore_environ(saved: dict[str, str]) -> None:
    for name in set(os.environ) - set(saved):
        del os.environ[name]
    for name, value in saved.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


def _interpreter_warnings() -> None:
    """The warning filters of a fresh interpreter (no -W, no PYTHONWARNINGS), shown on stderr."""
    warnings.resetwarnings()
    for category in (ResourceWarning, ImportWarning, PendingDeprecationWarning):
        warnings.simplefilter("ignore", category)
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")
    warnings.showwarning = _show_warning


def run_cli(
    *args: str | os.PathLike[str],
    db: Path | None = None,
    cwd: Path | None = None,
    input_text: str | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`catalog ARGS` run in this process, as `run_cli_process` would run it in a fresh one.

    The real entry point (`catalog.cli.main`, what the console script calls) with stdin, stdout
    and stderr of its own (stdin empty unless `input_text`; none of them a terminal), `env`
    added to the environment and `cwd` as the current directory for the call only. As in a
    process, SystemExit becomes the exit code, an exception that escapes is printed as the
    interpreter prints it (a traceback on stderr, exit code 1), warnings and log records of
    WARNING and above go to stderr. The environment, the current directory and the logging
    and warnings set-up are restored afterwards; the command closes its own catalog.
    """
    from catalog.cli import main

    for name in env or {}:
        if name.startswith(_START_UP_VARIABLES):
            raise ValueError(f"{name} acts only at interpreter start-up: use run_cli_process")
    argv = _argv(args, db)
    stdin_bytes, stdin = _stream(sys.__stdin__, "strict")
    stdin_bytes.write((input_text or "").encode(stdin.encoding, stdin.errors))
    stdin_bytes.seek(0)
    stdout_bytes, stdout = _stream(sys.__stdout__, "strict")
    stderr_bytes, stderr = _stream(sys.__stderr__, "backslashreplace")
    saved_environ = dict(os.environ)
    saved_cwd = os.getcwd()
    saved_stdin = sys.stdin
    log_handler = logging.StreamHandler(stderr)
    log_handler.setLevel(logging.WARNING)
    root_logger = logging.getLogger()
    code = 0
    try:
        os.environ.update(env or {})
        if cwd is not None:
            os.chdir(cwd)
        sys.stdin = stdin
        root_logger.addHandler(log_handler)
        with (
            contextlib.redirect_stdout(stdout),
            contextlib.redirect_stderr(stderr),
            warnings.catch_warnings(),
        ):
            _interpreter_warnings()
            try:
                main(argv)
            except SystemExit as exit_:
                code = _exit_code(exit_, stderr)
            except Exception as error:
                traceback.print_exception(error, file=stderr)
                code = 1
    finally:
        root_logger.removeHandler(log_handler)
        sys.stdin = saved_stdin
        os.chdir(saved_cwd)
        _restore_environ(saved_environ)
    return subprocess.CompletedProcess(
        ["catalog", *argv],
        code,
        _as_text(stdout_bytes.getvalue()),
        _as_text(stderr_bytes.getvalue()),
    )


def _exit_code(exit_: SystemExit, stderr: TextIO) -> int:
    """What the interpreter makes of SystemExit: None is 0, a number itself, else printed and 1."""
    if exit_.code is None:
        return 0
    if isinstance(exit_.code, int):
        return exit_.code
    print(exit_.code, file=stderr)
    return 1


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def run_cli_process(
    *args: str | os.PathLike[str],
    db: Path | None = None,
    cwd: Path | None = None,
    input_text: str | None = None,
    env: Mapping[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`python -m catalog.cli ARGS` in a fresh process, with `env` added to the environment.

    Only for tests whose subject needs a process of its own (a kill, a resource limit, a real
    terminal, start-up variables such as PYTHONPATH, what a fresh interpreter imports): every
    other test uses `run_cli`, which runs the same code in this process.
    """
    return subprocess.run(
        [sys.executable, "-m", "catalog.cli", *_argv(args, db)],
        capture_output=True,
        text=True,
        cwd=cwd,
        input=input_text or "",  # like run_cli: an empty stdin unless given
        env={**os.environ, **env} if env is not None else None,
        preexec_fn=preexec_fn,
        timeout=300,
    )


def dump(path: Path) -> str:
    """The database's full SQL dump, to prove a failed run changed nothing."""
    import sqlite3

    connection = sqlite3.connect(path)
    try:
        return "\n".join(connection.iterdump())
    finally:
        connection.close()
