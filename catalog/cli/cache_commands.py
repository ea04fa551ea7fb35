"""`catalog cache plan | migrate`: HELM response caches from creator shards to host shards."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from catalog.cache.report import CacheMigrationReport, CachePlan, ShardMigration, ShardPlan
from catalog.cache.store import CONFLICT_POLICIES
from catalog.cli.context import echo_err, state
from catalog.cli.output import format_rows, to_json_text
from catalog.resolve.policies import POLICIES

if TYPE_CHECKING:
    from catalog.cache.scan import CacheScan

_KEY_WIDTH = 100


def register(group: click.Group) -> None:
    group.add_command(cache)


@click.group()
def cache() -> None:
    """Move HELM response caches to the shards HELM reads since PR #1903.

    Before PR #1903 HELM cached a response in the shard of the model's creator
    (meta.sqlite); since then in the shard of the deployment's host (together.sqlite).
    """


def _routing_options(function: Any) -> Any:
    function = click.option(
        "--policy",
        type=click.Choice(POLICIES),
        help="Default-deployment rule that picks each model's host (default: the catalog's).",
    )(function)
    return click.option(
        "--aliases",
        type=click.Path(dir_okay=False, path_type=Path),
        help="YAML file mapping cache identifiers to model or deployment names.",
    )(function)


_CACHE_DIR = click.Path(file_okay=False, path_type=Path)


@cache.command("plan")
@click.argument("cache_dir", type=_CACHE_DIR)
@_routing_options
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.pass_context
def plan_command(
    context: click.Context,
    cache_dir: Path,
    aliases: Path | None,
    policy: str | None,
    as_json: bool,
) -> None:
    """Show where each shard's entries would go; nothing is written.

    Exit 1 if any shard could not be read (the others are planned).

    \b
    Example:
      catalog cache plan ~/helm/prod_env/cache
    """
    result = (
        state(context).catalog().plan_cache_migration(cache_dir, aliases=aliases, policy=policy)
    )
    if as_json:
        click.echo(to_json_text(result.to_json()))
    else:
        click.echo(_plan_text(result))
    for problem in result.problems:
        echo_err(f"error: {cache_dir / problem.file}: {problem.message}")
    if result.problems:
        sys.exit(1)  # as migrate does: a shard that cannot be read is not planned


@cache.command("migrate")
@click.argument("cache_dir", type=_CACHE_DIR)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the new layout here; CACHE_DIR is opened read-only and never changed.",
)
@click.option(
    "--in-place",
    is_flag=True,
    help="Move entries within CACHE_DIR; emptied shards are kept as <shard>.sqlite.pre-migration.",
)
@click.option(
    "--on-conflict",
    type=click.Choice(CONFLICT_POLICIES),
    default="keep-target",
    show_default=True,
    help="When the target holds the same key with another value.",
)
@click.option(
    "--prune",
    is_flag=True,
    help="With --in-place: delete verified moved entries from shards that keep others.",
)
@click.option("--dry-run", is_flag=True, help="Report what would be done; write nothing.")
@_routing_options
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar; print only the totals.")
@click.pass_context
def migrate_command(
    context: click.Context,
    cache_dir: Path,
    out_dir: Path | None,
    in_place: bool,
    on_conflict: str,
    prune: bool,
    dry_run: bool,
    aliases: Path | None,
    policy: str | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Move every routed entry of CACHE_DIR to its host's shard, verified.

    Exactly one of --out and --in-place. Values are copied byte for byte and never
    unpickled. Safe to interrupt: running it again finishes the job. Exit 1 if any shard
    could not be migrated (the report says which).

    \b
    Example:
      catalog cache migrate ~/helm/prod_env/cache --out ~/helm/prod_env/cache-by-host
    """
    if (out_dir is None) == (not in_place):
        raise click.UsageError("give exactly one of --out OUT_DIR and --in-place")
    if prune and not in_place:
        raise click.UsageError("--prune applies to --in-place only")
    bar = _ProgressBar() if not (as_json or quiet) and sys.stderr.isatty() else None
    try:
        report = (
            state(context)
            .catalog()
            .migrate_cache(
                cache_dir,
                out=out_dir,
                in_place=in_place,
                on_conflict=on_conflict,
                prune=prune,
                dry_run=dry_run,
                aliases=aliases,
                policy=policy,
                progress=bar,
            )
        )
    finally:
        if bar is not None:
            bar.close()
    if as_json:
        click.echo(to_json_text(report.to_json()))
    else:
        click.echo(_migration_text(report, quiet=quiet))
        for error in report.errors:
            echo_err(f"error: {error}")
    if not report.ok:
        sys.exit(1)


class _ProgressBar:
    """A click progress bar on stderr, created at the first report (when the total is known)."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._shown = 0

    def __call__(self, done: int, total: int) -> None:
        if self._bar is None:
            self._bar = click.progressbar(
                length=max(total, 1), label="migrating", file=sys.stderr, show_pos=True
            )
            self._bar.__enter__()
        self._bar.length = max(total, 1)  # in place, a shard may grow after it was counted
        self._bar.update(done - self._shown)
        self._shown = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


@cache.command("scan")
@click.argument("cache_dir", type=_CACHE_DIR)
@click.option(
    "--aliases",
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML file mapping cache identifiers to model or deployment names.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@click.pass_context
def scan_command(
    context: click.Context, cache_dir: Path, aliases: Path | None, as_json: bool
) -> None:
    """Count what CACHE_DIR holds, per shard and per model or deployment, and record it.

    The cache is only read (SQLite's mode=ro, a few thousand rows per statement), so HELM
    may go on writing it. The counts replace the last scan of CACHE_DIR in the catalog
    (table cache_scan, view cached_responses), where `catalog explain MODEL` and
    `catalog list deployments --cached` read them. Exit 1 if a shard could not be read.

    \b
    Example:
      catalog cache scan ~/helm/prod_env/cache
    """
    result = state(context).catalog().scan_cache(cache_dir, aliases=aliases)
    if as_json:
        click.echo(to_json_text(result.to_json()))
    else:
        click.echo(_scan_text(result))
        for error in result.errors:
            echo_err(f"error: {error}")
    if not result.ok:
        sys.exit(1)


def _scan_text(result: CacheScan) -> str:
    rows: list[dict[str, Any]] = [
        {
            "shard": s.shard,
            "kind": n.kind,
            "name": n.name or "-",
            "entries": n.entries,
            "bytes": n.bytes,
        }
        for s in result.shards
        for n in s.names
    ]
    totals = result.totals
    rows.append(
        {
            "shard": "(total)",
            "kind": "",
            "name": "",
            "entries": totals["entries"],
            "bytes": totals["bytes"],
        }
    )
    lines = [format_rows(rows, "table")]
    if result.ignored_files:
        lines.append("ignored (not shards): " + ", ".join(result.ignored_files))
    lines.append(f"recorded in the catalog: {totals['shards']} shards of {result.cache_dir}")
    return "\n".join(lines)


def _hosts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{host}: {n}" for host, n in counts.items()) or "-"


def _short(key: str) -> str:
    return key if len(key) <= _KEY_WIDTH else key[: _KEY_WIDTH - 3] + "..."


def _plan_text(plan: CachePlan) -> str:
    rows = [
        {
            "shard": s.shard,
            "entries": s.entries,
            "moves": _hosts(s.moves),
            "stays": s.stays,
            "unrouted": s.unrouted,
        }
        for s in plan.shards
    ]
    totals = plan.totals
    rows.append({**totals, "shard": "(total)", "moves": _hosts(totals["moves"])})
    lines = [f"policy: {plan.policy}", format_rows(rows, "table")]
    lines += _unrouted_lines(plan.shards)
    if plan.ignored_files:
        lines.append("ignored (not shards): " + ", ".join(plan.ignored_files))
    return "\n".join(lines)


def _unrouted_lines(shards: Sequence[ShardPlan] | Sequence[ShardMigration]) -> list[str]:
    lines: list[str] = []
    for shard in shards:
        if not shard.unrouted:
            continue
        lines.append(f"unrouted in {shard.shard}:")
        for reason, count in shard.unrouted_reasons.items():
            lines.append(f"  {count} {'entry' if count == 1 else 'entries'}: {reason}")
        for example in shard.unrouted_examples:
            lines.append(f"    e.g. {_short(example.key)}")
    return lines


def _conflicts(shard: ShardMigration) -> str:
    parts = []
    if shard.conflicts.kept_target:
        parts.append(f"kept target: {shard.conflicts.kept_target}")
    if shard.conflicts.took_source:
        parts.append(f"took source: {shard.conflicts.took_source}")
    return ", ".join(parts) or "-"


def _outcome(shard: ShardMigration) -> str:
    if shard.backup:
        return f"renamed to {shard.backup}"
    if shard.pruned:
        return f"pruned {shard.pruned}"
    if shard.errors:
        return "error"
    return "-"


def _migration_text(report: CacheMigrationReport, *, quiet: bool) -> str:
    totals = report.totals
    prefix = "dry run: would have " if report.dry_run else ""
    moved = sum(totals["moved"].values())
    summary = (
        f"{prefix}moved {moved} entries ({_hosts(totals['moved'])}), "
        f"{totals['already_present']} already present, "
        f"{totals['conflicts']['kept_target'] + totals['conflicts']['took_source']} conflicts, "
        f"{totals['stayed']} stayed, {totals['unrouted']} unrouted"
    )
    lines: list[str] = []
    if not quiet:
        rows = [
            {
                "shard": s.shard,
                "entries": s.entries,
                "moved": _hosts(s.moved),
                **({"received": s.received} if report.in_place else {}),
                "stayed": s.stayed,
                "unrouted": s.unrouted,
                "present": s.already_present,
                "conflicts": _conflicts(s),
                "source": _outcome(s),
            }
            for s in report.shards
        ]
        lines.append(format_rows(rows, "table"))
        lines += _unrouted_lines(report.shards)
    lines.append(summary)
    if report.dry_run:
        lines.append("dry run: nothing was written")
    elif not report.changed and report.ok:
        lines.append("nothing changed: every entry is already in its host's shard")
    elif report.verified:
        lines.append("verified: every moved entry was read back from its target")
    return "\n".join(lines)
