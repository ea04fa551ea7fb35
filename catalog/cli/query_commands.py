"""`catalog resolve | explain | pin | unpin | pins | settings`: which deployment runs a model.

Warnings of a resolution go to stderr in the table and CSV formats (stdout stays
machine-readable) and into each object's `warnings` with --json.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from catalog.api import Catalog
from catalog.cli.completion import complete_deployments, complete_models
from catalog.cli.context import as_of_option, echo_err, state
from catalog.cli.output import JSON_FORMATS, emit_rows, output_options, to_json_text
from catalog.resolve.engine import Explanation, Resolution
from catalog.resolve.policies import POLICIES

if TYPE_CHECKING:
    from catalog.cache.scan import CachedCounts

_POLICY = click.Choice(POLICIES)


def register(group: click.Group) -> None:
    for command in (resolve, explain, pin, unpin, pins, settings):
        group.add_command(command)


def _policy_option(function: Any) -> Any:
    return click.option(
        "--policy",
        type=_POLICY,
        default=None,
        help="Default-deployment policy: first (HELM PR #1903) or last (HELM v0.5.7+); "
        "default: the database's setting, else first.",
    )(function)


def _resolution_rows(resolutions: list[Resolution]) -> list[dict[str, Any]]:
    return [r.to_json() for r in resolutions]


def _table_rows(resolutions: list[Resolution]) -> list[dict[str, Any]]:
    return [
        {
            "model": r.model,
            "model_deployment": r.model_deployment,
            "host_organization": r.host_organization,
            "chosen_by": r.chosen_by,
            "run_entry": r.run_entry,
        }
        for r in resolutions
    ]


class _HelmRunOptions(click.Command):
    """helm-run takes several values after --models-to-run and --groups-to-run (argparse's
    nargs="+"); so does `catalog resolve`, so that a helm-run command line can be copied.

    The values that follow such an option, up to the next option or the first word holding '='
    (a run entry), become one value, which the command splits again.
    """

    GREEDY = ("--models-to-run", "--groups-to-run")

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rewritten: list[str] = []
        index = 0
        while index < len(args):
            rewritten.append(args[index])
            index += 1
            if rewritten[-1] in self.GREEDY:
                values = []
                while (
                    index < len(args) and not args[index].startswith("-") and "=" not in args[index]
                ):
                    values.append(args[index])
                    index += 1
                if values:
                    rewritten.append(" ".join(values))
        return super().parse_args(ctx, rewritten)


@click.command(cls=_HelmRunOptions)
@click.argument("run_entry", required=False)
@click.option(
    "--file",
    "conf_file",
    type=click.Path(exists=True, dir_okay=False, path_type=str),
    help="Resolve every entry of a HELM run-entries (.conf) file instead.",
)
@_policy_option
@click.option(
    "--ignore-deprecated",
    is_flag=True,
    help="Never choose a deprecated deployment (a model with only those gets none).",
)
@click.option(
    "--models-to-run",
    "models_to_run",
    multiple=True,
    metavar="MODEL...",
    help="As helm-run's: entries without model= or with a group run on these models instead, "
    "and only runs of these models are kept (several names may follow, as for helm-run).",
)
@click.option(
    "--groups-to-run",
    "groups_to_run",
    multiple=True,
    metavar="GROUP...",
    help="As helm-run's: keep runs whose run spec has one of these groups (needs crfm-helm).",
)
@click.option(
    "--priority",
    type=int,
    default=None,
    help="As helm-run's: skip entries of the file whose priority is above this.",
)
@output_options
@as_of_option
@click.pass_context
def resolve(
    context: click.Context,
    as_of: str | None,
    run_entry: str | None,
    conf_file: str | None,
    policy: str | None,
    ignore_deprecated: bool,
    models_to_run: tuple[str, ...],
    groups_to_run: tuple[str, ...],
    priority: int | None,
    output_format: str,
) -> None:
    """Turn a HELM run entry into the (model, deployment) pairs it runs.

    RUN_ENTRY is HELM's `name:key=value,...` (or bare `model=...`): a model, a model group such
    as `text`, or an explicit model_deployment. --models-to-run, --groups-to-run and
    --priority mean what they mean to helm-run, so the pairs are those helm-run would run.

    \b
    Examples:
      catalog resolve mmlu:subject=anatomy,model=text
      catalog resolve model=meta/llama-2-7b --policy last --json
      catalog resolve --file run_specs.conf
      catalog resolve --file run_specs.conf --models-to-run openai/gpt2 meta/llama-2-7b
    """
    if (run_entry is None) == (conf_file is None):
        raise click.UsageError("give either RUN_ENTRY or --file FILE (exactly one)")
    if priority is not None and conf_file is None:
        raise click.UsageError("--priority applies to the entries of a --file")
    models = _names(models_to_run)
    groups = _names(groups_to_run)
    catalog = state(context).catalog(as_of=as_of)
    if conf_file is not None:
        _resolve_file(
            catalog, conf_file, policy, ignore_deprecated, models, groups, priority, output_format
        )
        return
    assert run_entry is not None
    resolutions = catalog.resolve(
        run_entry,
        policy=policy,
        ignore_deprecated=ignore_deprecated,
        models_to_run=models,
        groups_to_run=groups,
    )
    if output_format in JSON_FORMATS:
        emit_rows(_resolution_rows(resolutions), output_format)
        return
    # A warning of the entry itself (a key given twice) comes with every run: say it once.
    for warning in dict.fromkeys(w for r in resolutions for w in r.warnings):
        echo_err(f"warning: {warning}")
    emit_rows(_table_rows(resolutions), output_format)


def _names(values: tuple[str, ...]) -> list[str]:
    """helm-run takes several names after one option; here they may share one value."""
    return [name for value in values for name in value.replace(",", " ").split()]


def _resolve_file(
    catalog: Catalog,
    path: str,
    policy: str | None,
    ignore_deprecated: bool,
    models_to_run: list[str],
    groups_to_run: list[str],
    priority: int | None,
    output_format: str,
) -> None:
    report = catalog.resolve_file(
        path,
        policy=policy,
        ignore_deprecated=ignore_deprecated,
        models_to_run=models_to_run,
        groups_to_run=groups_to_run,
        priority=priority,
    )
    if output_format == "json":
        click.echo(to_json_text(report.to_json()))
    else:
        rows = [
            {
                "line": o.line,
                "description": o.description,
                "runs": len(o.resolutions),
                "status": ("skipped" if o.skipped else "ok") if o.ok else o.reason,
            }
            for o in report.outcomes
        ]
        emit_rows(rows, output_format)
        for outcome in report.outcomes:
            if not outcome.ok:
                echo_err(f"{path}:{outcome.line}: {outcome.reason}: {outcome.error}")
            for note in outcome.notes:
                echo_err(f"{path}:{outcome.line}: note: {note}")
        summary = report.summary()
        reasons = ", ".join(f"{n} {reason}" for reason, n in summary["failures_by_reason"].items())
        empty = f", {summary['empty']} of them with no run" if summary["empty"] else ""
        skipped = f", {summary['skipped']} skipped by --priority" if summary["skipped"] else ""
        echo_err(
            f"{summary['entries']} entries: {summary['resolved']} resolved "
            f"({summary['runs']} runs{empty}){skipped}, {summary['failed']} failed"
            + (f" ({reasons})" if reasons else "")
            + f"; policy {summary['policy']}"
        )
    if report.failed:
        sys.exit(1)


@click.command()
@click.argument("model", shell_complete=complete_models)
@_policy_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@as_of_option
@click.pass_context
def explain(
    context: click.Context, as_of: str | None, model: str, policy: str | None, as_json: bool
) -> None:
    """Show why MODEL runs on the deployment it runs on.

    \b
    Example:
      catalog explain meta/llama-2-7b
    """
    catalog = state(context).catalog(as_of=as_of)
    explanation = catalog.explain(model, policy=policy)
    # What the last cache scans found: for the catalog now (a scan has no history).
    cached = catalog.cached_counts(explanation.model) if as_of is None else None
    if cached is not None and not cached.scans:
        cached = None
    if as_json:
        data = explanation.to_json()
        data["cached_responses"] = cached.to_json() if cached is not None else None
        click.echo(to_json_text(data))
    else:
        text = explanation_text(explanation)
        click.echo(text if cached is None else f"{text}\n{cached_text(explanation, cached)}")


def cached_text(explanation: Explanation, cached: CachedCounts) -> str:
    scans = ", ".join(f"{s.cache_dir} at {s.scanned_at[:19]} UTC" for s in cached.scans)
    lines = [f"cached responses (catalog cache scan of {scans}):"]
    for d in explanation.deployments:
        lines.append(f"  {d.name}: {cached.deployments.get(d.name, 0)}")
    if cached.model_only:
        lines.append(
            f"  naming the model in a shard HELM does not read for it: {cached.model_only} "
            "(catalog cache migrate moves them)"
        )
    return "\n".join(lines)


def explanation_text(explanation: Explanation) -> str:
    order = "first appearance" if explanation.policy == "first" else "position"
    lines = [f"model {explanation.model}"]
    if explanation.deployments:
        lines.append(f"deployments (catalog order by {order}):")
        for d in explanation.deployments:
            marks = [d.host_organization]
            if d.deprecated:
                marks.append("deprecated")
            if d.name == explanation.chosen:
                marks.append("CHOSEN")
            lines.append(f"  {d.name}  ({', '.join(marks)})")
    else:
        lines.append("deployments: none")
    if explanation.same_name_deployment and not any(
        d.name == explanation.same_name_deployment for d in explanation.deployments
    ):
        lines.append(
            f"same-name deployment: {explanation.same_name_deployment} (serves another model)"
        )
    lines.append(f"pin: {explanation.pinned or 'none'}")
    lines.append(f"policy: {explanation.policy} ({explanation.policy_reason})")
    if explanation.chosen is None:
        lines.append("chosen: none (no deployment qualifies)")
    else:
        lines.append(f"chosen: {explanation.chosen} by rule {explanation.chosen_by}")
    if explanation.generator_note:
        lines.append(explanation.generator_note)
    for choice in explanation.policy_choices:
        if choice.policy != explanation.policy or explanation.pinned:
            what = f"{choice.deployment} ({choice.chosen_by})" if choice.deployment else "none"
            lines.append(f"policy {choice.policy} alone would choose: {what}")
    lines += [f"note: {note}" for note in explanation.notes]
    return "\n".join(lines)


@click.command()
@click.argument("model", shell_complete=complete_models)
@click.argument("deployment", shell_complete=complete_deployments)
@click.pass_context
def pin(context: click.Context, model: str, deployment: str) -> None:
    """Make DEPLOYMENT the default of MODEL, whatever the policy (kept across syncs).

    \b
    Example:
      catalog pin meta/llama-2-7b together/llama-2-7b
    """
    info = state(context).catalog().pin(model, deployment)
    click.echo(f"pinned {info.model_name} to {info.deployment_name}")


@click.command()
@click.argument("model", shell_complete=complete_models)
@click.pass_context
def unpin(context: click.Context, model: str) -> None:
    """Remove the pin of MODEL; its policy default applies again.

    \b
    Example:
      catalog unpin meta/llama-2-7b
    """
    if state(context).catalog().unpin(model):
        click.echo(f"unpinned {model}")
    else:
        click.echo(f"{model} had no pin")


@click.command()
@click.option(
    "--restore",
    "restore",
    type=click.Path(dir_okay=False, exists=True),
    help="Pin every model listed in FILE, the JSON that `catalog pins --json` prints.",
)
@output_options
@click.pass_context
def pins(context: click.Context, restore: str | None, output_format: str) -> None:
    """List every pin, or restore pins saved with --json.

    \b
    Examples:
      catalog pins --json > pins.json
      catalog pins --restore pins.json
    """
    catalog = state(context).catalog()
    if restore is not None:
        for info in catalog.restore_pins(restore):
            click.echo(f"pinned {info.model_name} to {info.deployment_name}")
        return
    emit_rows([p.to_json() for p in catalog.pins()], output_format)


@click.group()
def settings() -> None:
    """Database-wide settings (e.g. the default-deployment policy)."""


@settings.command("list")
@output_options
@click.pass_context
def settings_list(context: click.Context, output_format: str) -> None:
    """Every setting with its value and where the value comes from.

    The policy's value is the one in force: set by the user, else the rule of the crfm-helm
    that `catalog sync --helm` read (last since 0.5.7), else first.

    \b
    Example:
      catalog settings list
    """
    from catalog.resolve.policies import POLICY_SETTING
    from catalog.resolve.settings import SETTINGS

    catalog = state(context).catalog()
    values = catalog.settings()
    sources = {POLICY_SETTING: catalog.policy_reason()[1]}
    rows = [
        {
            "key": key,
            "value": value,
            "source": sources.get(key),
            "default": SETTINGS[key].default,
            "help": SETTINGS[key].help,
        }
        for key, value in values.items()
    ]
    emit_rows(rows, output_format)


@settings.command("get")
@click.argument("key")
@click.pass_context
def settings_get(context: click.Context, key: str) -> None:
    """Print the value of setting KEY.

    \b
    Example:
      catalog settings get policy
    """
    click.echo(state(context).catalog().setting(key))


@settings.command("set")
@click.argument("key")
@click.argument("value")
@click.pass_context
def settings_set(context: click.Context, key: str, value: str) -> None:
    """Set KEY to VALUE.

    \b
    Example:
      catalog settings set policy last
    """
    state(context).catalog().set_setting(key, value)
    click.echo(f"{key} = {value}")
