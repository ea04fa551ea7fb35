"""What every command shares: the opened catalog and the translation of errors to exit codes."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import click

from catalog.api import Catalog
from catalog.db.failures import DAMAGED_HINT, INCONSISTENT_HINT, damage_report, failure_hint
from catalog.db.location import DatabaseLocation
from catalog.errors import CatalogError, with_hint


@dataclass
class CliState:
    """The command's options that every subcommand reads, and its catalog once opened."""

    db: str | None = None
    _catalog: Catalog | None = field(default=None, repr=False)

    def catalog(self, *, create: bool = False, as_of: str | None = None) -> Catalog:
        """The catalog named by --db, opened once per command; with `as_of`, the catalog as
        of that sync or date (read-only).

        Only a sync creates a catalog where there is none: any other command on a missing
        catalog says so (NoCatalogError) and creates nothing.
        """
        if self._catalog is None:
            self._catalog = Catalog.open(self.db, create=create)
            context = click.get_current_context(silent=True)
            if context is not None:
                # Closed when the command ends, so its WAL is checkpointed and removed.
                context.find_root().call_on_close(self._catalog.close)
        if as_of is not None:
            return self._catalog.at(as_of)
        return self._catalog


def as_of_option(function: Any) -> Any:
    """`--as-of SYNC_ID|DATE`: answer from the catalog as it was then."""
    return click.option(
        "--as-of",
        "as_of",
        metavar="SYNC_ID|DATE",
        help="Answer as the catalog was right after this sync, or at the end of this date "
        "(YYYY-MM-DD, UTC) or this time (YYYY-MM-DDTHH:MM).",
    )(function)


def state(context: click.Context) -> CliState:
    obj = context.find_root().obj
    assert isinstance(obj, CliState)
    return obj


def fail(message: str, exit_code: int = 1) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(exit_code)


def run_guarded(command: click.Group, argv: Sequence[str] | None) -> None:
    """Run the CLI; library errors become `error: ...` and exit 1, never a traceback."""
    cli_state = CliState()
    try:
        command.main(
            args=list(argv) if argv is not None else None, prog_name="catalog", obj=cli_state
        )
    except CatalogError as error:
        fail(with_hint(str(error), failure_hint(error)))
    except sqlite3.Error as error:
        fail(with_hint(f"database error: {error}", failure_hint(error)))
    except OSError as error:
        where = getattr(error, "filename", None) or ""
        message = f"{where}: {error.strerror or error}".lstrip(": ")
        fail(with_hint(message, failure_hint(error)))
    except Exception:
        # Not an error of ours: a bug, or garbage that a damaged database file handed over.
        # Only the second is the user's to fix, so only then is it an error message.
        damage = _damage(cli_state)
        if damage is None:
            raise
        hint = INCONSISTENT_HINT if "inconsistent" in damage else DAMAGED_HINT
        fail(with_hint(damage, hint))


def _damage(cli_state: CliState) -> str | None:
    try:
        location = DatabaseLocation.parse(cli_state.db)
    except CatalogError:
        return None
    return damage_report(location)


def echo_err(message: Any) -> None:
    click.echo(message, err=True)
