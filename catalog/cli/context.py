"""What every command shares: the opened catalog and the translation of errors to exit codes."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import click

from catalog.api import Catalog
from catalog.database import DatabaseLocation, failure_hint
from catalog.errors import CatalogError


@dataclass
class CliState:
    db: str
    _catalog: Catalog | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        _states.append(self)

    def catalog(self) -> Catalog:
        """The catalog named by --db, opened once per command (created at head if new)."""
        if self._catalog is None:
            self._catalog = Catalog.open(self.db)
            context = click.get_current_context(silent=True)
            if context is not None:
                # Closed when the command ends, so its WAL is checkpointed and removed.
                context.find_root().call_on_close(self._catalog.close)
        return self._catalog


# The state of the running command, for the damage check of an unexpected error.
_states: list[CliState] = []


def state(context: click.Context) -> CliState:
    obj = context.find_root().obj
    assert isinstance(obj, CliState)
    return obj


def fail(message: str, exit_code: int = 1) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(exit_code)


def with_hint(message: str, error: BaseException) -> str:
    """`message`, followed by what to do when SQLite's error says (unless already said)."""
    hint = failure_hint(error)
    if hint is None or hint in message:
        return message
    return f"{message}\nhint: {hint}"


def run_guarded(command: click.Group, argv: Sequence[str] | None) -> None:
    """Run the CLI; library errors become `error: ...` and exit 1, never a traceback."""
    _states.clear()  # a process may run several commands (tests do): only this one counts
    try:
        command.main(args=list(argv) if argv is not None else None, prog_name="catalog")
    except CatalogError as error:
        fail(with_hint(str(error), error))
    except sqlite3.Error as error:
        fail(with_hint(f"database error: {error}", error))
    except OSError as error:
        where = getattr(error, "filename", None) or ""
        fail(with_hint(f"{where}: {error.strerror or error}".lstrip(": "), error))
    except Exception:
        # Not an error of ours: a bug, or garbage that a damaged database file handed over.
        # Only the second is the user's to fix, so only then is it an error message.
        damage = _damaged_database()
        if damage is None:
            raise
        fail(damage)


def _damaged_database() -> str | None:
    """What SQLite's quick_check finds wrong with the command's catalog, or None."""
    for cli_state in _states:
        try:
            location = DatabaseLocation.parse(cli_state.db)
        except CatalogError:
            continue
        if not location.path.is_file():
            continue
        try:
            connection = sqlite3.connect(f"{location.path.as_uri()}?mode=ro", uri=True)
            try:
                rows = connection.execute("PRAGMA quick_check(3)").fetchall()
            finally:
                connection.close()
        except sqlite3.Error as error:
            code = (getattr(error, "sqlite_errorcode", None) or 0) & 0xFF
            if code not in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
                continue  # could not look: no reason to blame the file
            problem = str(error)
        else:
            if rows == [("ok",)]:
                continue
            problem = str(rows[0][0]).replace("\n", " ")[:200]
        return (
            f"{location.path}: the database file is damaged ({problem}); restore it from a "
            "backup, or move it away and run `catalog sync` to build the catalog again"
        )
    return None


def echo_err(message: Any) -> None:
    click.echo(message, err=True)
