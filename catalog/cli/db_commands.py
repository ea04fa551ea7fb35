"""`catalog db ...`: the schema's Alembic revisions."""

from __future__ import annotations

import click

from catalog.cli.context import state
from catalog.db import migrations
from catalog.db.location import DatabaseLocation
from catalog.db.revisions import HEAD_REVISION, KNOWN_REVISIONS


def register(group: click.Group) -> None:
    group.add_command(db)


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
