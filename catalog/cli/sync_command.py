"""`catalog sync`: the importer behind a command line."""

from __future__ import annotations

import sys

import click

from catalog.cli.changes_text import change_lines
from catalog.cli.context import echo_err, state
from catalog.cli.output import to_json_text
from catalog.errors import SyncError
from catalog.sync.report import COUNTED_TABLES, SyncReport
from catalog.sync.yaml_loader import MAX_YAML_DEPTH, YamlLimits

_DEFAULT_LIMITS = YamlLimits()


def register(group: click.Group) -> None:
    group.add_command(sync)


@click.command()
@click.argument("source_dirs", nargs=-1, type=click.Path(path_type=str))
@click.option("--strict", is_flag=True, help="Treat every warning as an error (for CI gates).")
@click.option("--dry-run", is_flag=True, help="Report what would change; write nothing.")
@click.option("--force", is_flag=True, help="Re-read the files even if their hashes are unchanged.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--helm",
    is_flag=True,
    help="Put the built-in configs of the installed crfm-helm package first.",
)
@click.option(
    "--max-file-mb",
    type=click.FloatRange(min=0.001),
    default=_DEFAULT_LIMITS.max_file_bytes / 2**20,
    show_default=True,
    help="Refuse a source file larger than this.",
)
@click.option(
    "--max-yaml-nodes",
    type=click.IntRange(min=1),
    default=_DEFAULT_LIMITS.max_nodes,
    show_default=True,
    help="Refuse a file that expands (aliases included) to more nodes than this.",
)
@click.option(
    "--max-yaml-depth",
    type=click.IntRange(min=2, max=MAX_YAML_DEPTH),
    default=_DEFAULT_LIMITS.max_depth,
    show_default=True,
    help=f"Refuse a file nested deeper than this (at most {MAX_YAML_DEPTH}).",
)
@click.pass_context
def sync(
    context: click.Context,
    source_dirs: tuple[str, ...],
    strict: bool,
    dry_run: bool,
    force: bool,
    as_json: bool,
    helm: bool,
    max_file_mb: float,
    max_yaml_nodes: int,
    max_yaml_depth: int,
) -> None:
    """Make the catalog exactly the union of SOURCE_DIRS (HELM-format directories).

    Later directories override earlier ones entry by entry, as a private prod_env/ overrides
    HELM's built-in files. Without SOURCE_DIRS the bundled catalog is synced. Exit 1 if any
    error was found; the database is then unchanged.
    """
    limits = YamlLimits(
        max_file_bytes=int(max_file_mb * 2**20),
        max_nodes=max_yaml_nodes,
        max_depth=max_yaml_depth,
    )
    catalog = state(context).catalog(create=True)
    try:
        report = catalog.sync(
            source_dirs, helm=helm, strict=strict, dry_run=dry_run, force=force, limits=limits
        )
    except SyncError as error:
        failed = error.report
        if failed is None:
            raise
        _print_report(failed, as_json)
        if not as_json:
            count = len(failed.errors)
            echo_err(
                f"error: sync failed with {count} error{'s' if count != 1 else ''} "
                "(listed above); nothing was written"
            )
        sys.exit(1)
    _print_report(report, as_json)


def _print_report(report: SyncReport, as_json: bool) -> None:
    if as_json:
        click.echo(to_json_text(report.to_json()))
        return
    for diagnostic in report.warnings + report.errors:
        echo_err(str(diagnostic))
    if report.errors:
        return
    prefix = "dry run: would have " if report.dry_run else ""
    if report.skipped_unchanged:
        click.echo("catalog is up to date: the source files are unchanged since the last sync")
        return
    if not report.changed_anything:
        click.echo(f"{prefix}nothing changed" if prefix else "nothing changed")
    else:
        for verb, counts in (
            ("added", report.added),
            ("changed", report.changed),
            ("removed", report.removed),
        ):
            parts = [f"{counts[t]} {t}" for t in COUNTED_TABLES if counts[t]]
            if parts:
                click.echo(f"{prefix}{verb}: " + ", ".join(parts))
        for model in report.pins_dropped:
            click.echo(f"{prefix}dropped the pin of {model}")
        for line in change_lines(report.changes, policies=("in_force",)):
            click.echo(line)
    if report.warnings:
        click.echo(f"{len(report.warnings)} warning(s); see above")
