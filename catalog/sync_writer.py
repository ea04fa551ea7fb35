"""The write half of a sync: bring each table to the merged content inside one transaction.

Rows are compared with what the database holds, so a second sync of the same sources writes
nothing. Writes go in foreign-key order (tokenizers and models before the deployments that
reference them, removals of referenced rows last), with executemany, never a commit per row.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.schema import Table

from catalog import __version__
from catalog.diagnostics import Diagnostic
from catalog.schema import Deployment, Model, ModelTag, Pin, Sync, SyncSource, Tag, Tokenizer

if TYPE_CHECKING:
    from catalog.importer import SyncReport
    from catalog.sources import SourceFile

_PLACE_COLUMNS = frozenset({"position", "first_position", "source_file", "source_line"})


class TableDiff:
    """Keys to add, update (content or place), and remove; `changed` counts content changes."""

    def __init__(self, existing: dict[Any, dict[str, Any]], wanted: dict[Any, dict[str, Any]]):
        self.added = [key for key in wanted if key not in existing]
        self.removed = [key for key in existing if key not in wanted]
        self.changed: list[Any] = []
        self.moved: list[Any] = []
        for key, row in wanted.items():
            old = existing.get(key)
            if old is None or old == row:
                continue
            if any(old[c] != row[c] for c in row if c not in _PLACE_COLUMNS):
                self.changed.append(key)
            else:
                self.moved.append(key)


def _table(orm_class: Any) -> Table:
    table: Table = orm_class.__table__
    return table


def _existing(connection: Connection, table: Table) -> dict[Any, dict[str, Any]]:
    key_columns = [c.name for c in table.primary_key.columns]
    rows: dict[Any, dict[str, Any]] = {}
    for row in connection.execute(select(table)).mappings():
        key = row[key_columns[0]] if len(key_columns) == 1 else tuple(row[c] for c in key_columns)
        rows[key] = dict(row)
    return rows


def _insert(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    if rows:
        connection.execute(insert(table), rows)


def _update(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    statement = table.update().where(table.c.name == bindparam("_key"))
    connection.execute(statement, [{**row, "_key": row["name"]} for row in rows])


def _delete(connection: Connection, table: Table, keys: list[Any]) -> None:
    if keys:
        connection.execute(
            delete(table).where(table.c.name == bindparam("_key")), [{"_key": k} for k in keys]
        )


def _tag_lists(rows: dict[Any, dict[str, Any]]) -> dict[str, list[str]]:
    lists: dict[str, list[tuple[int, str]]] = {}
    for row in rows.values():
        lists.setdefault(row["model_name"], []).append((row["position"], row["tag_name"]))
    return {model: [tag for _, tag in sorted(pairs)] for model, pairs in lists.items()}


def apply(
    connection: Connection,
    wanted: dict[str, dict[Any, dict[str, Any]]],
    report: SyncReport,
    *,
    strict: bool = False,
) -> None:
    """Make the tables hold exactly `wanted`; fill the counts of `report`."""
    models, deployments, tokenizers = _table(Model), _table(Deployment), _table(Tokenizer)
    tags, model_tags, pins = _table(Tag), _table(ModelTag), _table(Pin)

    model_diff = TableDiff(_existing(connection, models), wanted["models"])
    deployment_diff = TableDiff(_existing(connection, deployments), wanted["deployments"])
    tokenizer_diff = TableDiff(_existing(connection, tokenizers), wanted["tokenizers"])
    tag_diff = TableDiff(_existing(connection, tags), wanted["tags"])
    old_tag_lists = _tag_lists(_existing(connection, model_tags))
    new_tag_lists = _tag_lists(wanted["model_tags"])
    retagged = [
        m
        for m in wanted["models"]
        if m in old_tag_lists or m in new_tag_lists
        if old_tag_lists.get(m, []) != new_tag_lists.get(m, [])
    ]
    changed_models = set(model_diff.changed) | {m for m in retagged if m not in model_diff.added}

    _drop_broken_pins(connection, pins, wanted["deployments"], report, strict=strict)

    # Tag links of removed or retagged models go first; they are rewritten below.
    stale_links = [m for m in retagged if m in old_tag_lists]
    if stale_links:
        connection.execute(
            delete(model_tags).where(model_tags.c.model_name == bindparam("_key")),
            [{"_key": m} for m in stale_links],
        )
    _delete(connection, deployments, deployment_diff.removed)
    _insert(connection, tokenizers, [wanted["tokenizers"][k] for k in tokenizer_diff.added])
    _update(
        connection,
        tokenizers,
        [wanted["tokenizers"][k] for k in tokenizer_diff.changed + tokenizer_diff.moved],
    )
    _insert(connection, models, [wanted["models"][k] for k in model_diff.added])
    _update(
        connection, models, [wanted["models"][k] for k in model_diff.changed + model_diff.moved]
    )
    _insert(connection, tags, [wanted["tags"][k] for k in tag_diff.added])
    retagged_set = set(retagged)
    _insert(
        connection,
        model_tags,
        [row for (model, _tag), row in wanted["model_tags"].items() if model in retagged_set],
    )
    _insert(connection, deployments, [wanted["deployments"][k] for k in deployment_diff.added])
    _update(
        connection,
        deployments,
        [wanted["deployments"][k] for k in deployment_diff.changed + deployment_diff.moved],
    )
    _delete(connection, models, model_diff.removed)
    _delete(connection, tokenizers, tokenizer_diff.removed)
    _delete(connection, tags, tag_diff.removed)

    report.added = _counts(
        model_diff.added, deployment_diff.added, tokenizer_diff.added, tag_diff.added
    )
    report.changed = {
        "models": len(changed_models),
        "deployments": len(deployment_diff.changed),
        "tokenizers": len(tokenizer_diff.changed),
        "tags": 0,
    }
    report.removed = _counts(
        model_diff.removed, deployment_diff.removed, tokenizer_diff.removed, tag_diff.removed
    )


def _counts(*lists: list[Any]) -> dict[str, int]:
    return dict(
        zip(("models", "deployments", "tokenizers", "tags"), (len(x) for x in lists), strict=True)
    )


def _drop_broken_pins(
    connection: Connection,
    pins: Table,
    wanted_deployments: dict[Any, dict[str, Any]],
    report: SyncReport,
    *,
    strict: bool,
) -> None:
    """A pin whose deployment is gone, or now serves another model, is dropped with a warning."""
    from catalog.errors import SyncError

    broken = []
    for model_name, deployment_name in connection.execute(
        select(pins.c.model_name, pins.c.deployment_name)
    ):
        deployment = wanted_deployments.get(deployment_name)
        if deployment is None:
            reason = f"deployment {deployment_name!r} is no longer in the sources"
        elif deployment["model_name"] != model_name:
            reason = f"deployment {deployment_name!r} now serves {deployment['model_name']!r}"
        else:
            continue
        broken.append(model_name)
        report.pins_dropped.append(model_name)
        diagnostic = Diagnostic(
            "warning",
            "pin-dropped",
            f"the pin of model {model_name!r} was dropped: {reason}",
        )
        if strict:
            report.errors.append(diagnostic.as_error())
        else:
            report.warnings.append(diagnostic)
    if strict and broken:
        raise SyncError(
            f"sync would drop {len(broken)} pin(s) and --strict is set; nothing was written",
            report.errors,
        )
    if broken:
        connection.execute(
            delete(pins).where(pins.c.model_name == bindparam("_key")),
            [{"_key": m} for m in broken],
        )


def record_sync(
    connection: Connection,
    files: list[SourceFile],
    report: SyncReport,
    started: dt.datetime,
    *,
    forced: bool,
) -> None:
    """Remember what was read (paths and sha256) so that an unchanged re-sync can be skipped."""
    result = connection.execute(
        insert(_table(Sync)).values(
            started_at=started,
            finished_at=dt.datetime.now(dt.UTC).replace(tzinfo=None),
            tool_version=__version__,
            forced=forced,
            added=report.added,
            changed=report.changed,
            removed=report.removed,
            warning_count=len(report.warnings),
        )
    )
    sync_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
    _insert(
        connection,
        _table(SyncSource),
        [
            {
                "sync_id": sync_id,
                "position": position,
                "path": str(source.path),
                "kind": source.kind,
                "sha256": source.sha256,
                "size_bytes": len(source.data),
            }
            for position, source in enumerate(files)
        ],
    )


__all__ = ["apply", "record_sync"]
