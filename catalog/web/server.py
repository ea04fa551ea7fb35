"""`catalog serve`: which file to serve and how, and the Datasette server around it.

Serving must never write to the catalog and never show a half-written one:

- A catalog that can be opened read-only is served live: Datasette opens it `mode=ro`, so each
  query sees the last committed sync (WAL gives every read transaction one whole state) and a
  new sync shows without a restart. `-i`/immutable is never used on a live file: SQLite would
  ignore its WAL (stale pages), keep cached pages across a checkpoint (torn reads), or find no
  tables at all after a crash.
- `--snapshot`, or a catalog that cannot be opened read-only (a read-only directory, where
  SQLite cannot create the `-shm` it needs even to read), is served from a copy made with
  `VACUUM INTO` in one read transaction, checkpointed and compact, opened immutable. The copy
  lives in a temporary directory that is removed when the server stops.

Datasette and uvicorn are imported here and only here (the `web` extra): `import catalog`
and every other command stay without them.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import sqlite3
import tempfile
import threading
import webbrowser
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalog.db import migrations
from catalog.db.connection import CatalogConnection
from catalog.db.location import DatabaseLocation
from catalog.errors import CatalogError, DatabaseError, NoCatalogError, UnsupportedDatabaseError
from catalog.web import site

if TYPE_CHECKING:
    from datasette.app import Datasette

WEB_EXTRA_HINT = "pip install 'model-catalog[web]'"
PLUGIN_NAME = "model-catalog"
TEMPLATES = Path(__file__).resolve().parent / "templates"
"""The catalog's pages, and its home page (Datasette's own, with a search box added)."""


def require_web_extra() -> None:
    """Datasette is an optional dependency: say how to install it rather than fail on import."""
    try:
        import datasette  # noqa: F401
        import datasette_dashboards  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as error:
        raise CatalogError(
            f"catalog serve needs the web extra ({error.name} is not installed)",
            hint=WEB_EXTRA_HINT,
        ) from error


@dataclass(frozen=True)
class ServedFile:
    """The file Datasette opens, and how."""

    source: Path
    """The catalog the user named."""
    path: Path
    """What is served: the catalog itself, or a snapshot of it."""
    immutable: bool
    """True for a snapshot: nothing will ever write it, so SQLite may skip all locking."""
    notice: str | None
    """Why a snapshot is served, for the user."""


def _probe_live(location: DatabaseLocation) -> sqlite3.Connection | None:
    """A read-only connection to the catalog if SQLite can open it so; None if it cannot (it
    needs to create `-shm` beside the file, which a read-only directory refuses)."""
    connection = sqlite3.connect(location.path.as_uri() + "?mode=ro", uri=True)
    try:
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError:
        connection.close()
        return None
    except sqlite3.DatabaseError:
        connection.close()
        raise
    return connection


def _check(connection: sqlite3.Connection, location: DatabaseLocation) -> None:
    """Serve only a catalog at this version's revision: an older one needs `catalog db
    upgrade`, a newer one a newer model-catalog (the same refusal as every command)."""
    try:
        migrations.check_schema(CatalogConnection(connection, location), location, create=False)
    except sqlite3.DatabaseError as error:
        raise DatabaseError(f"{location.path}: not a usable SQLite database: {error}") from error


@contextlib.contextmanager
def served_file(location: DatabaseLocation, *, snapshot: bool) -> Iterator[ServedFile]:
    """The file to serve for the catalog at `location`; a snapshot's temporary directory is
    removed when the block ends."""
    if not location.is_file:
        raise UnsupportedDatabaseError(
            "catalog serve serves SQLite catalogs (Datasette reads SQLite files)",
            hint="copy the catalog to a file with `catalog copy` and serve that",
        )
    if not location.exists():
        raise NoCatalogError(f"no catalog at {location.path}", hint="run `catalog sync` first")
    live = _probe_live(location)
    notice = None
    if live is None:
        if Path(f"{location.path}-wal").exists():
            raise DatabaseError(
                f"{location.path}: cannot open the catalog read-only, and its -wal file may hold "
                "committed changes that a copy made without it would miss",
                hint="run any catalog command where the directory is writable (it folds the "
                "-wal into the catalog), or copy the catalog and its -wal elsewhere",
            )
        # Without a -wal the file alone is the whole catalog: immutable=1 reads it as it is.
        live = sqlite3.connect(location.path.as_uri() + "?immutable=1", uri=True)
        snapshot = True
        notice = (
            f"{location.path.parent} is read-only: serving a snapshot of the catalog "
            "(restart to see later syncs)"
        )
    elif snapshot:
        notice = "serving a snapshot of the catalog (restart to see later syncs)"
    try:
        _check(live, location)
        if not snapshot:
            live.close()
            yield ServedFile(location.path, location.path, immutable=False, notice=None)
            return
        scratch = Path(tempfile.mkdtemp(prefix="catalog-serve-"))
        try:
            copy = scratch / location.path.name
            try:
                # One read transaction: a whole committed state, in rollback-journal mode.
                live.execute("VACUUM INTO ?", (str(copy),))
            except sqlite3.Error as error:
                raise DatabaseError(
                    f"{location.path}: cannot make a snapshot in {scratch}: {error}",
                    hint="set TMPDIR to a directory with space",
                ) from error
            live.close()
            yield ServedFile(location.path, copy, immutable=True, notice=notice)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    finally:
        live.close()


def build_datasette(served: ServedFile) -> Datasette:
    """Datasette with the catalog's metadata and pages, serving `served` as `catalog`."""
    require_web_extra()
    from datasette.app import Datasette
    from datasette.database import Database
    from datasette.plugins import pm

    from catalog.web import plugin

    # Registered here, not as an entry point: the catalog's pages belong to `catalog serve`
    # alone, not to every Datasette installed beside model-catalog.
    if pm.get_plugin(PLUGIN_NAME) is None:
        pm.register(plugin, name=PLUGIN_NAME)
    datasette = Datasette(
        metadata=site.metadata(),
        settings=dict(site.SETTINGS),
        template_dir=str(TEMPLATES),
    )
    database = Database(datasette, path=str(served.path), is_mutable=not served.immutable)
    datasette.add_database(database, name=site.DATABASE)
    return datasette


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the server starts (port 0: any free port), so the
    URL printed is the one that answers and no other process can take the port meanwhile."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise CatalogError(
            f"cannot listen on {host}:{port}: {error.strerror or error}",
            hint="choose another --port (0 picks a free one)",
        ) from error
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def serve(
    location: DatabaseLocation,
    *,
    host: str = "127.0.0.1",
    port: int = 8001,
    snapshot: bool = False,
    open_browser: bool = False,
    on_ready: Callable[[str, ServedFile], None] | None = None,
) -> None:
    """Serve the catalog until interrupted (Ctrl-C or SIGTERM end it cleanly)."""
    require_web_extra()
    import uvicorn

    with served_file(location, snapshot=snapshot) as served:
        datasette = build_datasette(served)
        sock = bind(host, port)
        url = url_of(sock)

        def ready() -> None:
            if on_ready is not None:
                on_ready(url, served)
            if open_browser:
                webbrowser.open(url)

        config = uvicorn.Config(
            datasette.app(), log_level="warning", lifespan="on", access_log=False
        )
        server = _Server(config, ready)
        with _stopped_cleanly():
            try:
                server.run(sockets=[sock])
            finally:
                sock.close()


@contextlib.contextmanager
def _stopped_cleanly() -> Iterator[None]:
    """Ctrl-C and SIGTERM end serving with the snapshot's directory removed.

    uvicorn shuts down on either signal and then raises it again with the handler it found;
    SIGTERM's default handler would end the process on the spot, so it becomes SystemExit,
    and both unwind through the `finally` blocks that remove the snapshot.
    """

    def stop(_signum: int, _frame: Any) -> None:
        raise SystemExit(0)

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, stop) if in_main_thread else None
    try:
        yield
    except KeyboardInterrupt:
        pass
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _server_class() -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, which says when it answers: after the app's startup (Datasette's
        plugins) and once the socket listens."""

        def __init__(self, config: uvicorn.Config, ready: Callable[[], None]) -> None:
            super().__init__(config)
            self._ready = ready

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                self._ready()

    return Server


def _Server(config: Any, ready: Callable[[], None]) -> Any:
    return _server_class()(config, ready)
