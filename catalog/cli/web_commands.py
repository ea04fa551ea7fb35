"""`catalog serve` and `catalog search`: browsing the catalog, and finding things in it by word.

Both are thin: `Catalog.serve` and `Catalog.search` do the work. `serve` imports Datasette only
when it runs, so every other command starts without it, and without the `web` extra it says
how to install it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from catalog.api import Catalog
from catalog.cli.context import echo_err, state
from catalog.cli.output import emit_rows, output_options
from catalog.db.search import KINDS

if TYPE_CHECKING:
    from catalog.web.server import ServedFile


def register(group: click.Group) -> None:
    group.add_command(serve)
    group.add_command(search)


def print_ready(url: str, served: ServedFile) -> None:
    """Said once the first page can be loaded: the URL on stdout (a script may read it, with
    --port 0 too), why a snapshot is served on stderr."""
    if served.notice is not None:
        echo_err(f"note: {served.notice}")
    click.echo(f"serving {served.source} at {url} (Ctrl-C to stop)")


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="The address to listen on (0.0.0.0: every interface; the catalog is read-only).",
)
@click.option("-p", "--port", default=8001, show_default=True, help="The port; 0 picks a free one.")
@click.option(
    "--snapshot",
    is_flag=True,
    help="Serve an immutable copy of the catalog as it is now (later syncs show after a "
    "restart), e.g. to publish it.",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the catalog in a web browser.")
@click.pass_context
def serve(context: click.Context, host: str, port: int, snapshot: bool, open_browser: bool) -> None:
    """Browse the catalog in Datasette: search, a page per model, charts, canned queries.

    The catalog is served read-only and never written to. Each sync shows at the next page
    load, without a restart, and a page never shows half a sync. A catalog in a read-only
    directory is served from a snapshot. Needs the web extra: pip install 'model-catalog[web]'.

    \b
    Examples:
      catalog serve --open
      catalog serve --port 0 --snapshot
    """
    Catalog.serve(
        state(context).db,
        host=host,
        port=port,
        snapshot=snapshot,
        open_browser=open_browser,
        on_ready=print_ready,
    )


@click.command()
@click.argument("text")
@click.option(
    "--kind",
    "kinds",
    type=click.Choice(list(KINDS)),
    multiple=True,
    help="Only this kind of entry (repeat for several); default: all three.",
)
@click.option("--limit", default=20, show_default=True, help="At most this many results.")
@output_options
@click.pass_context
def search(
    context: click.Context, text: str, kinds: tuple[str, ...], limit: int, output_format: str
) -> None:
    """Models, deployments and tokenizers matching every word of TEXT, best match first.

    Models are searched by name, display name, description and creator; deployments by name,
    model and host; tokenizers by name and class. The last word also matches as a prefix.

    \b
    Examples:
      catalog search llama
      catalog search "llama 3 instruct" --kind model --nl
    """
    hits = state(context).catalog().search(text, kinds=kinds, limit=limit)
    emit_rows([hit.to_json() for hit in hits], output_format)
