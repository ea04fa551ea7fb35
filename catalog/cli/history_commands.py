"""`catalog history NAME` and `catalog diff A B`: what changed, when, and between any two
catalogs."""

from __future__ import annotations

import sys
from typing import Any

import click

from catalog.api import Catalog
from catalog.cli.changes_text import change_lines
from catalog.cli.context import echo_err, state
from catalog.cli.output import emit_rows, output_options, to_json_text
from catalog.errors import CatalogError, with_hint


def register(group: click.Group) -> None:
    group.add_command(history)
    group.add_command(diff)


@click.command()
@click.argument("name")
@output_options
@click.pass_context
def history(context: click.Context, name: str, output_format: str) -> None:
    """Every recorded change of a model, deployment or tokenizer, and of its default.

    One row per change, oldest first: the event (sync, pin, unpin, setting), when, the sync id,
    what changed (added, removed, changed; for `defaults`, the policy) and the values.

    \b
    Example:
      catalog history meta/llama-3.1-8b-instruct
    """
    entries = state(context).catalog().history(name)
    if output_format != "table":
        emit_rows([e.to_json() for e in entries], output_format)
        return
    rows = [
        {
            "event": e.event_id,
            "kind": e.event_kind,
            "at (UTC)": e.occurred_at[:19],
            "sync": e.sync_id,
            "what": e.table,
            "change": e.change,
            "before": _short(e.before),
            "after": _short(e.after),
        }
        for e in entries
    ]
    emit_rows(rows, "table")


def _short(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        text = ", ".join(f"{k}={v}" for k, v in value.items())
    else:
        text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


@click.command()
@click.argument("sides", nargs=-1, metavar="[A B]")
@click.option("--a", "a_dirs", multiple=True, metavar="DIR", help="Side A: HELM directories.")
@click.option("--b", "b_dirs", multiple=True, metavar="DIR", help="Side B: HELM directories.")
@click.option("--json", "as_json", is_flag=True, help="Print the difference as JSON.")
@click.pass_context
def diff(
    context: click.Context,
    sides: tuple[str, ...],
    a_dirs: tuple[str, ...],
    b_dirs: tuple[str, ...],
    as_json: bool,
) -> None:
    """What differs from catalog A to catalog B; exit 0 if equal, 1 if not, 2 on error.

    A and B are each a catalog file, a HELM config directory, or @SYNC_ID / @DATE of the
    catalog named by --db. --a DIR... and --b DIR... give layered HELM directories instead.
    HELM directories are loaded in memory: nothing is written.

    \b
    Examples:
      catalog diff ../helm-0.5.0/config ../helm-0.5.12/config
      catalog diff @3 @5 --json
      catalog diff @2026-03-01 catalog.db
      catalog diff --a helm/config --b helm/config --b prod_env
    """
    try:
        before, after = _sides(context, sides, a_dirs, b_dirs)
        changes = before.diff(after)
    except CatalogError as error:
        echo_err(f"error: {with_hint(str(error), None)}")
        sys.exit(2)
    if as_json:
        click.echo(to_json_text(changes.to_json()))
    else:
        lines = change_lines(changes, policies=("first", "last"))
        click.echo("\n".join(lines) if lines else "no difference")
    sys.exit(0 if changes.empty else 1)


def _sides(
    context: click.Context, sides: tuple[str, ...], a_dirs: tuple[str, ...], b_dirs: tuple[str, ...]
) -> tuple[Catalog, Catalog]:
    if bool(a_dirs) != bool(b_dirs):
        raise click.UsageError("give both --a and --b, or neither")
    if a_dirs:
        if sides:
            raise click.UsageError("give either A B or --a/--b, not both")
        return Catalog.from_helm_dirs(a_dirs), Catalog.from_helm_dirs(b_dirs)
    if len(sides) != 2:
        raise click.UsageError("give two catalogs to compare: A B")
    opened = [
        state(context).catalog().open_other(spec)
        if spec.startswith("@")
        else Catalog.open_side(spec)
        for spec in sides
    ]
    return opened[0], opened[1]
