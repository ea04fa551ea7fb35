"""A throw-away PostgreSQL server for the tests: `initdb` into a temporary directory, the
`postgres` binary started on a free port (as the `postgres` OS user when the tests run as
root: the server refuses to run as root), stopped when the session ends, even if it is killed.

Not pytest-postgresql: its process fixture runs `pg_ctl` as the current OS user, which
PostgreSQL refuses when that user is root (as CI runs), and it has no way to name another user.

Outside CI, tests that need it skip with a one-line reason when no server binaries are found;
under CI they fail instead (see `postgres_or_skip`).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import psycopg
import pytest

from catalog.db import migrations
from catalog.db.location import DatabaseLocation

PG_MAJOR_WANTED = 15
SUPERUSER = "postgres"  # database role created by initdb -U
TMP_PREFIX = "pgtest-"
OWNER_MARK = ".pgtest-owner-pid"  # the pytest pid that owns a temp dir (stale-dir cleanup)


# --------------------------------------------------------------------------- binaries


def _major(bindir: Path) -> int:
    out = subprocess.run(
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout  # "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
    m = re.search(r"\(PostgreSQL\) (\d+)", out)
    if not m:
        raise RuntimeError(f"cannot parse postgres --version: {out!r}")
    return int(m.group(1))


def find_bindir() -> Path:
    """Directory with initdb + postgres: $PG_BINDIR, else /usr/lib/postgresql/15/bin, else
    ``pg_config --bindir``, else the newest /usr/lib/postgresql/*/bin, else initdb on PATH.

    Debian installs the server binaries only in /usr/lib/postgresql/<major>/bin (not on PATH);
    this machine image adds symlinks in /usr/local/bin, a fresh Debian does not."""

    def ok(d: Path) -> bool:
        return (d / "initdb").is_file() and (d / "postgres").is_file()

    if env := os.environ.get("PG_BINDIR"):
        if not ok(Path(env)):
            raise RuntimeError(f"PG_BINDIR={env} has no initdb/postgres")
        return Path(env)
    candidates: list[Path] = [Path(f"/usr/lib/postgresql/{PG_MAJOR_WANTED}/bin")]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        candidates.append(Path(out))
    candidates += sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else -1,
        reverse=True,
    )
    if which := shutil.which("initdb"):
        candidates.append(Path(which).resolve().parent)
    for d in candidates:
        if ok(d):
            return d
    raise RuntimeError(
        "PostgreSQL server binaries not found; on Debian: apt-get install -y postgresql-15"
    )


# --------------------------------------------------------------------------- server


def free_port() -> int:
    return _free_port()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _set_pdeathsig() -> None:  # runs in the child between fork and exec (after setuid)
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_PDEATHSIG = 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGQUIT)  # SIGQUIT = postmaster immediate shutdown


def remove_stale_dirs() -> None:
    """Remove temp dirs left by a pytest process that was killed (its pid is gone)."""
    for d in Path(tempfile.gettempdir()).glob(TMP_PREFIX + "*"):
        mark = d / OWNER_MARK
        try:
            pid = int(mark.read_text())
        except (OSError, ValueError):
            continue
        if not _pid_alive(pid):
            pm = d / "data" / "postmaster.pid"
            with contextlib.suppress(OSError, ValueError, IndexError):
                pm_pid = int(pm.read_text().splitlines()[0])
                if _pid_alive(pm_pid):
                    continue  # server still up (pdeathsig not yet delivered?); leave it
            shutil.rmtree(d, ignore_errors=True)


class PostgresServer:
    """A throw-away PostgreSQL cluster. ``start()``/``stop()``; ``stop()`` is idempotent."""

    def __init__(
        self,
        bindir: Path | None = None,
        os_user: str | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.bindir = bindir or find_bindir()
        self.extra_settings = settings or {}
        self.major = _major(self.bindir)
        self.host = "127.0.0.1"
        self.port = 0
        self.user = SUPERUSER
        self.proc: subprocess.Popen[bytes] | None = None
        self.tmp: Path | None = None
        self._log: IO[bytes] | None = None
        self.timings: dict[str, float] = {}
        # Run the binaries as another OS user only when we are root (None = don't switch).
        self._uid, self._gid = os.getuid(), os.getgid()
        self._run_uid: int | None = None
        self._run_gid: int | None = None
        self._run_groups: list[int] | None = None
        if os.geteuid() == 0:
            name = os_user or os.environ.get("PG_TEST_OS_USER", "postgres")
            try:
                pw = pwd.getpwnam(name)
            except KeyError:
                raise RuntimeError(
                    f"running as root: PostgreSQL must run as another OS user, and {name!r} does"
                    " not exist (installing postgresql-15 creates 'postgres'; or set"
                    " PG_TEST_OS_USER)"
                ) from None
            self._uid, self._gid = pw.pw_uid, pw.pw_gid
            self._run_uid, self._run_gid, self._run_groups = pw.pw_uid, pw.pw_gid, []

    # paths
    @property
    def sockdir(self) -> Path:
        assert self.tmp
        return self.tmp

    @property
    def datadir(self) -> Path:
        assert self.tmp
        return self.tmp / "data"

    @property
    def logfile(self) -> Path:
        assert self.tmp
        return self.tmp / "postgres.log"

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C.UTF-8", LANG="C.UTF-8", HOME=str(self.tmp), TZ="UTC")
        return env

    def initdb(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX))  # 0700, in /tmp (1777)
        (self.tmp / OWNER_MARK).write_text(str(os.getpid()))
        os.chown(self.tmp, self._uid, self._gid)
        t = time.perf_counter()
        r = subprocess.run(
            [
                str(self.bindir / "initdb"),
                "-D", str(self.datadir),
                "-U", self.user,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
                "--no-instructions",
            ],
            cwd=self.tmp, env=self._env(), capture_output=True, text=True,
            user=self._run_uid, group=self._run_gid, extra_groups=self._run_groups,
        )  # fmt: skip
        self.timings["initdb"] = time.perf_counter() - t
        if r.returncode != 0:
            raise RuntimeError(f"initdb failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        # One role logs in with a password (to test a wrong one); everyone else is trusted.
        hba = self.datadir / "pg_hba.conf"
        hba.write_text(f"host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())

    def _spawn(self, port: int) -> subprocess.Popen[bytes]:
        settings = {
            "listen_addresses": self.host,
            "port": str(port),
            "unix_socket_directories": str(self.sockdir),
            "fsync": "off",  # throw-away data: no durability needed
            "synchronous_commit": "off",
            "full_page_writes": "off",
            # Autovacuum workers connected to the template make CREATE DATABASE ... TEMPLATE
            # wait in 100 ms steps (and fail after 5 s): not needed for short-lived test data.
            "autovacuum": "off",
            "max_connections": "100",
            "logging_collector": "off",
            "log_min_messages": "warning",
            **self.extra_settings,
        }
        args = [str(self.bindir / "postgres"), "-D", str(self.datadir)]
        for k, v in settings.items():
            args += ["-c", f"{k}={v}"]
        self._log = self.logfile.open("ab")
        return subprocess.Popen(
            args,
            cwd=self.tmp,
            env=self._env(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: Ctrl-C in the terminal doesn't hit it
            preexec_fn=_set_pdeathsig,
            user=self._run_uid,
            group=self._run_gid,
            extra_groups=self._run_groups,
        )

    def start(self, timeout: float = 30.0, attempts: int = 5) -> None:
        t0 = time.perf_counter()
        remove_stale_dirs()
        atexit.register(self.stop)
        self.initdb()
        for _ in range(attempts):  # a free port can be taken between probe and bind: retry
            self.port = _free_port()
            offset = self.logfile.stat().st_size if self.logfile.exists() else 0
            self.proc = self._spawn(self.port)
            if self._wait_ready(timeout):
                self.timings["start_total"] = time.perf_counter() - t0
                return
            with self.logfile.open("rb") as f:
                f.seek(offset)
                log = f.read().decode(errors="replace")
            self._reap()
            if self.proc.poll() is not None and "could not create any TCP/IP sockets" in log:
                continue  # port taken by someone else meanwhile; postgres exited: try another
            raise RuntimeError(f"postgres did not start; log {self.logfile}:\n{log[-4000:]}")
        raise RuntimeError(f"no free port after {attempts} attempts")

    def _wait_ready(self, timeout: float) -> bool:
        t = time.perf_counter()
        deadline = time.monotonic() + timeout
        assert self.proc
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                psycopg.connect(self.dsn("postgres"), connect_timeout=2).close()
                self.timings["spawn_to_ready"] = time.perf_counter() - t
                return True
            except psycopg.OperationalError:
                time.sleep(0.02)
        return False

    def _reap(self) -> None:
        if self._log:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            t = time.perf_counter()
            for sig, wait in ((signal.SIGINT, 15), (signal.SIGQUIT, 5)):  # fast, immediate
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, sig)
                try:
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            self.timings["stop"] = time.perf_counter() - t
        self._reap()
        if self.tmp and not os.environ.get("PG_TEST_KEEP"):
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    # connection strings
    def dsn(self, dbname: str, user: str | None = None) -> str:
        """libpq URI over TCP: ``postgresql://postgres@127.0.0.1:PORT/dbname``."""
        return f"postgresql://{user or self.user}@{self.host}:{self.port}/{dbname}"

    def url(self, dbname: str, user: str | None = None) -> str:
        """SQLAlchemy 2 URL for psycopg 3: ``postgresql+psycopg://postgres@127.0.0.1:PORT/db``."""
        return f"postgresql+psycopg://{user or self.user}@{self.host}:{self.port}/{dbname}"

    def socket_dsn(self, dbname: str) -> str:
        """libpq URI over the unix socket (host = socket directory)."""
        return f"postgresql://{self.user}@/{dbname}?host={self.sockdir}&port={self.port}"

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.dsn("postgres"), autocommit=True)


# Fixtures: one server per test session, a fresh database per test --------------------------


_counter = itertools.count(1)
CATALOG_TEMPLATE = "catalog_template"
PASSWORD_ROLE = "catalog_password_user"
PASSWORD = "right-password"


def postgres_or_skip() -> Path:
    """The server binaries; in CI their absence is a failure, elsewhere a skip."""
    try:
        return find_bindir()
    except RuntimeError as error:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is needed in CI: {error}")
        pytest.skip(f"no PostgreSQL server binaries here ({error})")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A running server: superuser `postgres` with trust, and a role that needs a password."""
    server = PostgresServer(bindir=postgres_or_skip())
    try:
        server.start()
        with server.admin() as admin:
            admin.execute(f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{PASSWORD}'")
            admin.execute(f"CREATE DATABASE {CATALOG_TEMPLATE}")
        migrations.upgrade(DatabaseLocation.parse(server.dsn(CATALOG_TEMPLATE)))
        yield server
    finally:
        server.stop()


def new_database(server: PostgresServer, *, with_catalog: bool) -> str:
    """A fresh database (empty, or holding an empty catalog at head); its URL."""
    name = f"t{os.getpid()}_{next(_counter)}"
    template = f" TEMPLATE {CATALOG_TEMPLATE}" if with_catalog else ""
    with server.admin() as admin:
        admin.execute(f"CREATE DATABASE {name}{template}")
    return server.dsn(name)


def drop_database(server: PostgresServer, url: str) -> None:
    with server.admin() as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database (no catalog yet)."""
    url = new_database(postgres_server, with_catalog=False)
    try:
        yield url
    finally:
        drop_database(postgres_server, url)
