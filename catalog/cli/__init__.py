"""The `catalog` command: a thin layer over `catalog.Catalog` and `catalog.db.migrations`.

Each command parses its options, calls one library function, and prints the result. Errors
of this package become a one-line message on stderr and exit code 1 (2 for usage errors).
"""

from __future__ import annotations

from typing import Any

import click

from catalog import __version__
from catalog.cli import (
    cache_commands,
    db_commands,
    history_commands,
    query_commands,
    read_commands,
    sync_command,
    web_commands,
)
from catalog.cli.context import CliState, run_guarded

COMMAND_MODULES: tuple[Any, ...] = (
    sync_command,
    db_commands,
    read_commands,
    query_commands,
    cache_commands,
    history_commands,
    web_commands,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    "db",
    envvar="CATALOG_DB",
    default="catalog.db",
    show_default=True,
    metavar="PATH_OR_SQLALCHEMY_URL",
    help="The catalog database: a file path or a sqlite:/// URL (env CATALOG_DB).",
)
@click.version_option(__version__, prog_name="catalog")
@click.pass_context
def cli(context: click.Context, db: str) -> None:
    """model-catalog: HELM's models, deployments and tokenizers in a SQLite catalog."""
    if not isinstance(context.obj, CliState):
        context.obj = CliState()
    context.obj.db = db


for _module in COMMAND_MODULES:
    _module.register(cli)


def main(argv: list[str] | None = None) -> None:
    run_guarded(cli, argv)
