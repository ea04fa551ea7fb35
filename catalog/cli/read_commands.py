"""`catalog show | list | check | export | query`: reading the catalog.

Each command calls `Catalog` methods and formats what they return; --json prints the dicts
of the Python API's `to_json()` (`show model` adds each deployment's host and deprecated flag).
"""

from __future__ import annotations

import json
from typing import Any

import click

from catalog.cli.completion import complete_deployments, complete_models, complete_tags
from catalog.cli.context import as_of_option, state
from catalog.cli.output import emit_rows, output_options, to_json_text
from catalog.db.schema import DeploymentInfo, ModelInfo, TokenizerInfo


def register(group: click.Group) -> None:
    for command in (show, list_group, check, export, query):
        group.add_command(command)


def _json_flag(function: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(function)


def _where(file: str | None, line: int | None) -> str:
    if file is None:
        return "-"
    return file if line is None else f"{file}:{line}"


def _spec_text(class_name: str | None, args: dict[str, Any] | None) -> str:
    if class_name is None:
        return "-"
    if not args:
        return class_name
    return f"{class_name} {json.dumps(args, ensure_ascii=False)}"


def _lines(pairs: list[tuple[str, Any]]) -> str:
    width = max(len(label) for label, _ in pairs)
    return "\n".join(
        f"{label + ':':<{width + 1}} {'-' if value is None else value}" for label, value in pairs
    )


# show ------------------------------------------------------------------------------------------


@click.group()
def show() -> None:
    """Show one model, deployment or tokenizer in full."""


@show.command("model")
@click.argument("name", shell_complete=complete_models)
@_json_flag
@as_of_option
@click.pass_context
def show_model(context: click.Context, as_of: str | None, name: str, as_json: bool) -> None:
    """A model with its tags and its deployments in catalog order.

    \b
    Example:
      catalog show model meta/llama-2-7b
    """
    catalog = state(context).catalog(as_of=as_of)
    info = catalog.model(name)
    deployments = catalog.deployments(model=info.name)
    if as_json:
        details = [
            {"name": d.name, "host_organization": d.host_organization, "deprecated": d.deprecated}
            for d in deployments
        ]
        click.echo(to_json_text({**info.to_json(), "deployment_details": details}))
        return
    click.echo(_model_text(info, deployments))


def _model_text(info: ModelInfo, deployments: list[DeploymentInfo]) -> str:
    text = _lines(
        [
            ("model", info.name + ("  (placeholder: no metadata)" if info.is_placeholder else "")),
            ("display name", info.display_name),
            ("creator", f"{info.creator_organization_name} ({info.creator_prefix})"),
            ("access", info.access),
            ("release date", info.release_date.isoformat() if info.release_date else None),
            ("parameters", f"{info.num_parameters:,}" if info.num_parameters else None),
            ("tags", ", ".join(info.tags) or None),
            ("source", _where(info.source_file, info.source_line)),
            ("description", info.description),
        ]
    )
    if not deployments:
        return text + "\ndeployments: none"
    rows = [
        f"  {d.name}  host={d.host_organization}{'  deprecated' if d.deprecated else ''}"
        for d in deployments
    ]
    return text + f"\ndeployments ({len(deployments)}, catalog order):\n" + "\n".join(rows)


@show.command("deployment")
@click.argument("name", shell_complete=complete_deployments)
@_json_flag
@as_of_option
@click.pass_context
def show_deployment(context: click.Context, as_of: str | None, name: str, as_json: bool) -> None:
    """A deployment: its model, host, tokenizer, client, limits and source line.

    \b
    Example:
      catalog show deployment together/llama-2-7b
    """
    info = state(context).catalog(as_of=as_of).deployment(name)
    if as_json:
        click.echo(to_json_text(info.to_json()))
        return
    click.echo(
        _lines(
            [
                ("deployment", info.name),
                ("model", info.model_name),
                ("host", info.host_organization),
                ("tokenizer", info.tokenizer_name),
                ("client", _spec_text(info.client_class, info.client_args)),
                (
                    "window service",
                    _spec_text(info.window_service_class, info.window_service_args),
                ),
                ("max sequence length", info.max_sequence_length),
                ("max request length", info.max_request_length),
                (
                    "max sequence and generated tokens",
                    info.max_sequence_and_generated_tokens_length,
                ),
                ("deprecated", "yes" if info.deprecated else "no"),
                ("source", _where(info.source_file, info.source_line)),
            ]
        )
    )


@show.command("tokenizer")
@click.argument("name")
@_json_flag
@as_of_option
@click.pass_context
def show_tokenizer(context: click.Context, as_of: str | None, name: str, as_json: bool) -> None:
    """A tokenizer config and the deployments that use it.

    \b
    Example:
      catalog show tokenizer meta-llama/Llama-2-7b-hf
    """
    info = state(context).catalog(as_of=as_of).tokenizer(name)
    if as_json:
        click.echo(to_json_text(info.to_json()))
        return
    click.echo(_tokenizer_text(info))


def _tokenizer_text(info: TokenizerInfo) -> str:
    text = _lines(
        [
            (
                "tokenizer",
                info.name + ("  (placeholder: no config)" if info.is_placeholder else ""),
            ),
            ("spec", _spec_text(info.class_name, info.args)),
            ("end of text token", info.end_of_text_token),
            ("prefix token", info.prefix_token),
            ("source", _where(info.source_file, info.source_line)),
        ]
    )
    if not info.deployments:
        return text + "\nused by: no deployment"
    used_by = "\n".join(f"  {name}" for name in info.deployments)
    return text + f"\nused by ({len(info.deployments)} deployments):\n" + used_by


# list ------------------------------------------------------------------------------------------


@click.group("list")
def list_group() -> None:
    """List models, deployments, tokenizers or tags, in catalog order, as a table, CSV or JSON."""


def _emit(rows_json: list[dict[str, Any]], table_rows: list[dict[str, Any]], fmt: str) -> None:
    """JSON and CSV carry every field; the text table keeps the columns that fit a screen."""
    emit_rows(table_rows if fmt == "table" else rows_json, fmt)


@list_group.command("models")
@click.option(
    "--tag",
    help="Only models with this tag, e.g. TEXT_MODEL_TAG.",
    shell_complete=complete_tags,
)
@click.option(
    "--creator",
    metavar="ORG",
    help="Only models of this creator: the name prefix (meta) or the organization (Meta).",
)
@click.option("--host", metavar="ORG", help="Only models with a deployment on this host.")
@output_options
@as_of_option
@click.pass_context
def list_models(
    context: click.Context,
    as_of: str | None,
    tag: str | None,
    creator: str | None,
    host: str | None,
    output_format: str,
) -> None:
    """Models in catalog order.

    \b
    Example:
      catalog list models --creator meta --tag TEXT_MODEL_TAG
    """
    models = state(context).catalog(as_of=as_of).models(tag=tag, creator=creator, host=host)
    table = [
        {
            "name": m.name,
            "creator": m.creator_organization_name,
            "access": m.access,
            "release_date": m.release_date,
            "deployments": len(m.deployments),
            "placeholder": "yes" if m.is_placeholder else "",
        }
        for m in models
    ]
    _emit([m.to_json() for m in models], table, output_format)


@list_group.command("deployments")
@click.option("--model", help="Only deployments of this model.", shell_complete=complete_models)
@click.option("--host", metavar="ORG", help="Only deployments on this host, e.g. together.")
@click.option("--tokenizer", help="Only deployments that use this tokenizer.")
@click.option(
    "--include-deprecated/--no-deprecated",
    default=True,
    show_default=True,
    help="Whether deprecated deployments are listed.",
)
@click.option(
    "--cached",
    is_flag=True,
    help="Only deployments with cached responses (by the last `catalog cache scan`).",
)
@output_options
@as_of_option
@click.pass_context
def list_deployments(
    context: click.Context,
    as_of: str | None,
    model: str | None,
    host: str | None,
    tokenizer: str | None,
    include_deprecated: bool,
    cached: bool,
    output_format: str,
) -> None:
    """Deployments in catalog order.

    \b
    Example:
      catalog list deployments --host together --no-deprecated
      catalog list deployments --cached
    """
    deployments = (
        state(context)
        .catalog()
        .deployments(
            model=model,
            host=host,
            tokenizer=tokenizer,
            include_deprecated=include_deprecated,
            cached=cached,
        )
    )
    table = [
        {
            "name": d.name,
            "model": d.model_name,
            "host": d.host_organization,
            "tokenizer": d.tokenizer_name,
            "max_sequence_length": d.max_sequence_length,
            "deprecated": "yes" if d.deprecated else "",
        }
        for d in deployments
    ]
    _emit([d.to_json() for d in deployments], table, output_format)


@list_group.command("tokenizers")
@output_options
@as_of_option
@click.pass_context
def list_tokenizers(context: click.Context, as_of: str | None, output_format: str) -> None:
    """Tokenizers in catalog order, with how many deployments use each.

    \b
    Example:
      catalog list tokenizers --csv
    """
    tokenizers = state(context).catalog(as_of=as_of).tokenizers()
    table = [
        {
            "name": t.name,
            "class_name": t.class_name,
            "deployments": len(t.deployments),
            "placeholder": "yes" if t.is_placeholder else "",
        }
        for t in tokenizers
    ]
    _emit([t.to_json() for t in tokenizers], table, output_format)


@list_group.command("tags")
@output_options
@as_of_option
@click.pass_context
def list_tags(context: click.Context, as_of: str | None, output_format: str) -> None:
    """Every tag, with how many models carry it.

    \b
    Example:
      catalog list tags --json
    """
    rows = [t.to_json() for t in state(context).catalog(as_of=as_of).tags()]
    emit_rows(rows, output_format)


# check, export, query ---------------------------------------------------------------------------


@click.command()
@_json_flag
@click.pass_context
def check(context: click.Context, as_json: bool) -> None:
    """Report what needs attention; exit 1 if any finding is an error.

    Errors: broken foreign keys, pins to a deployment that no longer serves the model.
    Warnings: placeholder models and tokenizers, models without deployments or with only
    deprecated ones. Info: tokenizers no deployment uses.

    \b
    Example:
      catalog check --json
    """
    report = state(context).catalog().check()
    if as_json:
        click.echo(to_json_text(report.to_json()))
    else:
        for finding in report.findings:
            click.echo(str(finding))
        counts = report.counts()
        click.echo(
            f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info"
        )
    if report.has_errors:
        context.exit(1)


@click.command()
@click.argument("out_dir", type=click.Path(file_okay=False, writable=True))
@click.option("--force", is_flag=True, help="Replace the files if OUT_DIR already holds them.")
@click.option(
    "--for-helm",
    "for_helm",
    is_flag=False,
    flag_value="installed",
    default=None,
    metavar="[VERSION]",
    help="Order the deployments so that crfm-helm VERSION (default: the installed one, else the "
    "newest rule) picks the catalog's default of every model, pins included.",
)
@click.pass_context
def export(context: click.Context, out_dir: str, force: bool, for_helm: str | None) -> None:
    """Write model_metadata.yaml, model_deployments.yaml and tokenizer_configs.yaml to OUT_DIR.

    The files are in HELM's format; `catalog sync OUT_DIR` rebuilds the same catalog. A
    directory that already holds any of them is refused unless --force. With --for-helm the
    files are for HELM to read instead (as its config directory or prod_env): HELM applies its
    own rule, not the catalog's pins and policy, so the order makes that rule pick them.

    \b
    Examples:
      catalog export ./exported
      catalog export ./prod_env --for-helm
      catalog export ./helm-config --for-helm 0.5.6
    """
    catalog = state(context).catalog()
    for path in catalog.export(out_dir, force=force, for_helm=for_helm):
        click.echo(str(path))


@click.command()
@click.argument("sql")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="VALUE",
    help="A value for the next `?` placeholder (repeat in order). Values never enter the SQL.",
)
@output_options
@click.pass_context
def query(context: click.Context, sql: str, params: tuple[str, ...], output_format: str) -> None:
    """Run one read-only SQL statement; anything that would write is refused (exit 1).

    Tables: models, deployments, tokenizers, tags, model_tags, pins, settings. Views:
    deployment_details, model_tag_list, model_default_deployments, cache_shards.

    \b
    Example:
      catalog query "SELECT * FROM deployment_details WHERE model = ?" --param meta/llama-2-7b
    """
    rows = state(context).catalog().sql(sql, list(params))
    emit_rows(rows, output_format)
