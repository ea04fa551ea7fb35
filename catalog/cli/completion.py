"""Shell completion of model, deployment and tag names, read from the catalog being used.

click completes options and commands by itself (`eval "$(_CATALOG_COMPLETE=bash_source
catalog)"`); these callbacks add the names. They read the catalog named by --db on the command
line being completed, else $CATALOG_DB, else ./catalog.db, and never create one: with no
catalog there, or one that cannot be read, a name simply does not complete. A completion must
never print an error into the user's prompt.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click
from click.shell_completion import CompletionItem

from catalog.api import Catalog
from catalog.db.location import DB_ENV_VAR, DEFAULT_DB

_LIMIT = 200  # a shell shows no more than this usefully


def _catalog_of(context: click.Context) -> Catalog | None:
    root = context.find_root()
    db = root.params.get("db") or os.environ.get(DB_ENV_VAR) or DEFAULT_DB
    try:
        return Catalog.open(db, create=False)
    except Exception:  # completing must never fail loudly, whatever the file holds
        return None


def _completer(names: Callable[[Catalog], list[str]]) -> Callable[..., list[CompletionItem]]:
    def complete(context: click.Context, _param: Any, incomplete: str) -> list[CompletionItem]:
        catalog = _catalog_of(context)
        if catalog is None:
            return []
        try:
            found = [name for name in names(catalog) if name.startswith(incomplete)]
        except Exception:
            return []
        finally:
            catalog.close()
        return [CompletionItem(name) for name in found[:_LIMIT]]

    return complete


complete_models = _completer(lambda catalog: catalog.model_names())
complete_deployments = _completer(lambda catalog: [d.name for d in catalog.deployments()])
complete_tags = _completer(lambda catalog: [t.name for t in catalog.tags()])
