"""What each SQL view and its columns mean: the one place their descriptions are written.

The views are created by the Alembic revisions (their SQL is frozen there, as a migration's
must be); their documentation lives here, beside the tables' in catalog.db.schema, and
`catalog serve` shows both. A view column that passes a table column through takes that
column's doc from the schema, so nothing is written twice. A test checks that every view of a
new catalog, and each of its columns, is described here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from catalog.db.schema import (
    CACHE_SCAN,
    CHANGE_LOG,
    DEFAULT_CHANGE_LOG,
    DEPLOYMENTS,
    EVENTS,
    MODELS,
    Table,
)


@dataclass(frozen=True)
class View:
    """A view: what one row is, and each column in the view's order."""

    name: str
    doc: str
    columns: tuple[tuple[str, str], ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)


def _same(table: Table, column: str, name: str | None = None) -> tuple[str, str]:
    """A view column that is `table.column` under the name `name` (default: the same)."""
    return (name or column, table.column(column).doc)


_DEFAULT_UNDER = "The deployment HELM's `{}` rule picks, without pins."

VIEWS: tuple[View, ...] = (
    View(
        "deployment_details",
        "One row per deployment, with the facts of its model beside it.",
        (
            _same(DEPLOYMENTS, "name", "deployment"),
            _same(DEPLOYMENTS, "model_name", "model"),
            _same(MODELS, "creator_organization_name"),
            _same(MODELS, "creator_prefix"),
            _same(DEPLOYMENTS, "host_organization"),
            _same(DEPLOYMENTS, "engine"),
            _same(DEPLOYMENTS, "tokenizer_name", "tokenizer"),
            _same(DEPLOYMENTS, "max_sequence_length"),
            _same(DEPLOYMENTS, "max_request_length"),
            _same(DEPLOYMENTS, "max_sequence_and_generated_tokens_length"),
            _same(DEPLOYMENTS, "deprecated"),
            _same(DEPLOYMENTS, "client_class"),
            _same(MODELS, "access"),
            _same(MODELS, "release_date"),
            _same(DEPLOYMENTS, "position"),
            _same(DEPLOYMENTS, "source_file"),
            _same(DEPLOYMENTS, "source_line"),
        ),
    ),
    View(
        "model_tag_list",
        "One row per model, with its tags in YAML order.",
        (
            _same(MODELS, "name", "model"),
            ("tags", "The model's tags, comma-separated, in YAML order."),
            ("tag_count", "How many tags it has."),
        ),
    ),
    View(
        "model_default_deployments",
        "One row per model: its default deployment under each policy, its pin, and the "
        "default in force (the pin, else the policy setting, else the rule of the crfm-helm "
        "the last sync read with --helm, else first), as the resolver answers.",
        (
            _same(MODELS, "name", "model"),
            ("first_policy_deployment", _DEFAULT_UNDER.format("first")),
            ("last_policy_deployment", _DEFAULT_UNDER.format("last")),
            ("pinned_deployment", "The deployment the model is pinned to, if any."),
            ("default_deployment", "The default in force: the pin, else the policy's."),
            ("default_host_organization", "The host of the default deployment."),
        ),
    ),
    View(
        "cache_shards",
        "One row per deployment: the HELM cache shard its responses were written to before "
        "HELM PR #1903 (the creator's) and the one HELM reads now (the host's).",
        (
            _same(DEPLOYMENTS, "model_name", "model"),
            _same(DEPLOYMENTS, "name", "deployment"),
            ("creator_shard", "The shard before PR #1903: the model's creator prefix."),
            ("host_shard", "The shard now: the deployment's host."),
            ("is_default", "1 if the deployment is its model's default in force."),
        ),
    ),
    View(
        "changes",
        "One row per entry an event (sync, pin, unpin, setting) added, removed or changed.",
        (
            _same(CHANGE_LOG, "id"),
            _same(CHANGE_LOG, "event_id"),
            _same(EVENTS, "kind", "event_kind"),
            _same(EVENTS, "occurred_at"),
            _same(EVENTS, "sync_id"),
            _same(CHANGE_LOG, "table_name"),
            _same(CHANGE_LOG, "name"),
            _same(CHANGE_LOG, "change"),
            _same(CHANGE_LOG, "before"),
            _same(CHANGE_LOG, "after"),
        ),
    ),
    View(
        "default_changes",
        "One row per model whose default deployment an event changed, under one policy.",
        (
            _same(DEFAULT_CHANGE_LOG, "event_id"),
            _same(EVENTS, "kind", "event_kind"),
            _same(EVENTS, "occurred_at"),
            _same(EVENTS, "sync_id"),
            _same(DEFAULT_CHANGE_LOG, "policy"),
            _same(DEFAULT_CHANGE_LOG, "model"),
            _same(DEFAULT_CHANGE_LOG, "before"),
            _same(DEFAULT_CHANGE_LOG, "after"),
        ),
    ),
    View(
        "cached_responses",
        "One row per model or deployment that `catalog cache scan` found in a shard of a HELM "
        "cache, with the deployment the entries count for.",
        (
            _same(CACHE_SCAN, "cache_dir"),
            _same(CACHE_SCAN, "shard"),
            _same(CACHE_SCAN, "kind"),
            _same(CACHE_SCAN, "name"),
            ("model", "The model the entries are for."),
            ("deployment", "The deployment they count for (null: only the model)."),
            _same(DEPLOYMENTS, "host_organization"),
            _same(CACHE_SCAN, "entries"),
            _same(CACHE_SCAN, "bytes"),
            _same(CACHE_SCAN, "scanned_at"),
        ),
    ),
)
VIEWS_BY_NAME: Mapping[str, View] = MappingProxyType({view.name: view for view in VIEWS})
