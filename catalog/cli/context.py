"""What every command shares: the opened catalog and the translation of errors to exit codes."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import click

from catalog.api import Catalog
from catalog.errors import CatalogError


@dataclass
class CliState:
    db: str
    _catalog: Catalog | None = field(default=None, repr=False)

    def catalog(self) -> Catalog:
        """The catalog named by --db, opened once per command (created at head if new)."""
        if self._catalog is None:
            self._catalog = Catalog.open(self.db)
            context = click.get_current_context(silent=True)
            if context is not None:
                # Closed when the command ends, so its WAL is checkpointed and removed.
                context.find_root().call_on_close(self._catalog.close)
        return self._catalog


def state(context: click.Context) -> CliState:
    obj = context.find_root().obj
    assert isinstance(obj, CliState)
    return obj


def fail(message: str, exit_code: int = 1) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(exit_code)


def run_guarded(command: click.Group, argv: Sequence[str] | None) -> None:
    """Run the CLI; library errors become `error: ...` and exit 1, never a traceback."""
    try:
        command.main(args=list(argv) if argv is not None else None, prog_name="catalog")
    except CatalogError as error:
        fail(str(error))
    except sqlite3.DatabaseError as error:
        fail(f"database error: {error}")
    except OSError as error:
        fail(f"{getattr(error, 'filename', None) or ''}: {error.strerror or error}".lstrip(": "))


def echo_err(message: Any) -> None:
    click.echo(message, err=True)
