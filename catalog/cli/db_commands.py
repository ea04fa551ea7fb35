"""`catalog db ...`: the schema's Alembic revisions."""

from __future__ import annotations

import click

from catalog.api import Catalog
from catalog.cli.context import state
from catalog.cli.output import to_json_text
from catalog.db import migrations
from catalog.db.location import DatabaseLocation
from catalog.db.revisions import HEAD_REVISION, KNOWN_REVISIONS


def register(group: click.Group) -> None:
    group.add_command(db)
    group.add_command(copy_command)


@click.group()
def db() -> None:
    """Upgrade, downgrade and inspect the catalog's schema revision."""


@db.command()
@click.argument("revision", default="head")
@click.pass_context
def upgrade(context: click.Context, revision: str) -> None:
    """Upgrade the database to REVISION (default: head); creates it if absent."""
    location = DatabaseLocation.parse(state(context).db)
    migrations.upgrade(location, revision)
    click.echo(f"{location.path}: at revision {_current(location)}")


@db.command()
@click.argument("revision")
@click.option(
    "--force",
    is_flag=True,
    help="Delete pins, settings or history that the downgrade removes (refused without it).",
)
@click.pass_context
def downgrade(context: click.Context, revision: str, force: bool) -> None:
    """Downgrade the database to REVISION (`base` removes every table).

    Refused, with what would be lost, if the revisions removed hold pins, settings or history
    (no sync can bring them back) unless --force.
    """
    location = DatabaseLocation.parse(state(context).db)
    if force:
        for what, count in migrations.user_data_lost(location, revision).items():
            click.echo(f"deleting {count} {what}", err=True)
    migrations.downgrade(location, revision, force=force)
    click.echo(f"{location.path}: at revision {_current(location) or 'base'}")


@db.command()
@click.pass_context
def current(context: click.Context) -> None:
    """Print the database's revision and whether it is the head."""
    location = DatabaseLocation.parse(state(context).db)
    revision = _current(location)
    head = HEAD_REVISION
    if revision is None:
        click.echo("base (no schema)")
    elif revision == head:
        click.echo(f"{revision} (head)")
    elif revision in KNOWN_REVISIONS:
        click.echo(f"{revision} (head is {head}: run `catalog db upgrade`)")
    else:
        click.echo(f"{revision} (unknown to this version of model-catalog, whose head is {head})")


@db.command()
def history() -> None:
    """List every schema revision, newest first."""
    for info in migrations.history():
        marker = " (head)" if info.is_head else ""
        click.echo(
            f"{info.down_revision or '<base>'} -> {info.revision}{marker}: {info.description}"
        )


def _current(location: DatabaseLocation) -> str | None:
    return migrations.stamped_revision(location)


@click.command("copy")
@click.argument("source", metavar="SRC")
@click.argument("target", metavar="DST")
@click.option("--force", is_flag=True, help="Replace the catalog DST already holds.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def copy_command(source: str, target: str, force: bool, as_json: bool) -> None:
    """Copy a whole catalog from SRC to DST (paths or URLs), verified table by table.

    Entries, pins, settings, syncs and history move; each table's row count and content hash
    are compared on both sides. DST is created if it is a new SQLite file (a PostgreSQL
    database must exist: it may be empty). Refused if DST holds a catalog, unless --force.

    \b
    Examples:
      catalog copy catalog.db postgresql://catalog_owner@db.example.org/catalog
      catalog copy postgresql://catalog_owner@db.example.org/catalog snapshot.db
    """
    with Catalog.open(source, create=False) as origin, Catalog.open(target) as destination:
        report = origin.copy_to(destination, force=force)
    if as_json:
        click.echo(to_json_text(report.to_json()))
        return
    for table in report.tables:
        click.echo(f"{table.table:<20} {table.rows:>8} rows  sha256 {table.sha256[:16]}  verified")
    click.echo(f"copied {report.source} to {report.target}: every table verified")
