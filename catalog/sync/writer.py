"""The write half of a sync: bring each table to the merged content inside one transaction.

Rows are compared with what the database holds, so a second sync of the same sources writes
nothing. Writes go in foreign-key order (tokenizers and models before the deployments that
reference them, removals of referenced rows last), with executemany, never a commit per row.
The caller owns the transaction (CatalogConnection.write): nothing here commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from catalog import __version__
from catalog.db import rows
from catalog.db.schema import (
    DEPLOYMENTS,
    MODEL_TAGS,
    MODELS,
    PINS,
    PLACE_COLUMNS,
    SHADOWED_DEPLOYMENTS,
    SYNC_SOURCES,
    SYNCS,
    TAGS,
    TOKENIZERS,
    Table,
)
from catalog.errors import Finding, Severity, SyncError
from catalog.history.changes import compare_table
from catalog.history.recorder import EventRecorder
from catalog.resolve.policies import helm_rule

SYNCED_TABLES = (MODELS, TAGS, MODEL_TAGS, TOKENIZERS, DEPLOYMENTS, SHADOWED_DEPLOYMENTS)

if TYPE_CHECKING:
    from catalog.db.connection import CatalogConnection
    from catalog.sync.merge import MergedCatalog
    from catalog.sync.report import SyncReport
    from catalog.sync.sources import SourceFile

Values = dict[str, Any]


class TableDiff:
    """Keys to add, update (content or place), and remove; `changed` are content changes."""

    def __init__(self, existing: Mapping[Any, Values], wanted: Mapping[Any, Values]) -> None:
        self.existing = existing
        self.wanted = wanted
        self.added = [key for key in wanted if key not in existing]
        self.removed = [key for key in existing if key not in wanted]
        self.changed: list[Any] = []
        self.moved: list[Any] = []
        for key, row in wanted.items():
            old = existing.get(key)
            if old is None or old == row:
                continue
            if any(old[c] != row[c] for c in row if c not in PLACE_COLUMNS):
                self.changed.append(key)
            else:
                self.moved.append(key)

    @property
    def updated(self) -> list[Any]:
        return self.changed + self.moved


def _existing(connection: CatalogConnection, table: Table) -> dict[Any, Values]:
    reader = rows.RecordReader[Any](table)
    found: dict[Any, Values] = {}
    for row in connection.execute(f"SELECT {rows.column_list(table)} FROM {table.name}"):
        values = reader.values(row)
        found[rows.key_of(table, values)] = values
    return found


def _wanted(table: Table, records: Iterable[Any]) -> dict[Any, Values]:
    names = table.column_names
    return {
        rows.key_of(table, record): {name: getattr(record, name) for name in names}
        for record in records
    }


def _insert(connection: CatalogConnection, table: Table, values: list[Values]) -> None:
    batch = [rows.encode_row(table, row) for row in values]
    if batch:
        connection.executemany(rows.insert_sql(table), batch)


def _update(connection: CatalogConnection, table: Table, values: Iterable[Values]) -> None:
    batch = [rows.update_params(table, row) for row in values]
    if batch:
        connection.executemany(rows.update_sql(table), batch)


def _delete(connection: CatalogConnection, table: Table, keys: Iterable[Any]) -> None:
    batch = [key if isinstance(key, tuple) else (key,) for key in keys]
    if batch:
        connection.executemany(rows.delete_sql(table), batch)


def _tag_lists(links: Mapping[Any, Values]) -> dict[str, list[str]]:
    lists: dict[str, list[tuple[int, str]]] = {}
    for row in links.values():
        lists.setdefault(row["model_name"], []).append((row["position"], row["tag_name"]))
    return {model: [tag for _, tag in sorted(pairs)] for model, pairs in lists.items()}


def apply(
    connection: CatalogConnection,
    merged: MergedCatalog,
    report: SyncReport,
    recorder: EventRecorder,
    *,
    strict: bool = False,
) -> None:
    """Make the tables hold exactly `merged`; fill the counts of `report`, and tell `recorder`
    every entry before and after."""
    wanted_models = _wanted(MODELS, merged.models.values())
    wanted_deployments = _wanted(DEPLOYMENTS, merged.deployments.values())
    wanted_tokenizers = _wanted(TOKENIZERS, merged.tokenizers.values())
    wanted_tags = {tag: {"name": tag} for tag in merged.tags}
    model_diff = TableDiff(_existing(connection, MODELS), wanted_models)
    deployment_diff = TableDiff(_existing(connection, DEPLOYMENTS), wanted_deployments)
    tokenizer_diff = TableDiff(_existing(connection, TOKENIZERS), wanted_tokenizers)
    tag_diff = TableDiff(_existing(connection, TAGS), wanted_tags)
    old_tag_lists = _tag_lists(_existing(connection, MODEL_TAGS))
    retagged = [
        name
        for name, model in merged.models.items()
        if old_tag_lists.get(name, []) != list(model.tags)
    ]
    changed_models = set(model_diff.changed) | {m for m in retagged if m not in model_diff.added}
    _tell(recorder, model_diff, deployment_diff, tokenizer_diff, old_tag_lists, merged)

    _drop_broken_pins(connection, merged, report, recorder, strict=strict)

    # Tag links of removed or retagged models go first; they are rewritten below.
    _delete_links(connection, [m for m in retagged if m in old_tag_lists])
    _delete(connection, DEPLOYMENTS, deployment_diff.removed)
    _insert(connection, TOKENIZERS, [wanted_tokenizers[k] for k in tokenizer_diff.added])
    _update(connection, TOKENIZERS, (wanted_tokenizers[k] for k in tokenizer_diff.updated))
    _insert(connection, MODELS, [wanted_models[k] for k in model_diff.added])
    _update(connection, MODELS, (wanted_models[k] for k in model_diff.updated))
    _insert(connection, TAGS, [wanted_tags[k] for k in tag_diff.added])
    _insert(
        connection,
        MODEL_TAGS,
        [
            {"model_name": name, "tag_name": tag, "position": position}
            for name in retagged
            for position, tag in enumerate(merged.models[name].tags)
        ],
    )
    _insert(connection, DEPLOYMENTS, [wanted_deployments[k] for k in deployment_diff.added])
    _update(connection, DEPLOYMENTS, (wanted_deployments[k] for k in deployment_diff.updated))
    _delete(connection, MODELS, model_diff.removed)
    _delete(connection, TOKENIZERS, tokenizer_diff.removed)
    _delete(connection, TAGS, tag_diff.removed)
    _write_shadowed(connection, merged)

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


def _tell(
    recorder: EventRecorder,
    models: TableDiff,
    deployments: TableDiff,
    tokenizers: TableDiff,
    old_tag_lists: dict[str, list[str]],
    merged: MergedCatalog,
) -> None:
    """Each entry before and after, as history and the report see them (a model with its tags)."""
    old_models = {
        name: {**values, "tags": old_tag_lists.get(name, [])}
        for name, values in models.existing.items()
    }
    new_models = {
        name: {**values, "tags": list(merged.models[name].tags)}
        for name, values in models.wanted.items()
    }
    for table, before, after in (
        ("models", old_models, new_models),
        ("deployments", deployments.existing, deployments.wanted),
        ("tokenizers", tokenizers.existing, tokenizers.wanted),
    ):
        recorder.rows(table, before, after)
        compare_table(recorder.changes, table, before, after)


def _write_shadowed(connection: CatalogConnection, merged: MergedCatalog) -> None:
    """The earlier copies of redefined deployments, kept as HELM's list keeps them."""
    table = SHADOWED_DEPLOYMENTS
    diff = TableDiff(_existing(connection, table), _wanted(table, merged.shadowed.values()))
    _delete(connection, table, diff.removed + diff.updated)
    _insert(connection, table, [diff.wanted[k] for k in diff.added + diff.updated])


def row_counts(connection: CatalogConnection) -> dict[str, int]:
    """How many rows each table a sync writes holds: a later sync compares them."""
    return {
        table.name: int(connection.execute(f"SELECT count(*) FROM {table.name}").fetchone()[0])
        for table in SYNCED_TABLES
    }


def _delete_links(connection: CatalogConnection, models: list[str]) -> None:
    if models:
        connection.executemany(
            f"DELETE FROM {MODEL_TAGS.name} WHERE model_name = ?", [(m,) for m in models]
        )


def _counts(*lists: list[Any]) -> dict[str, int]:
    return dict(
        zip(("models", "deployments", "tokenizers", "tags"), (len(x) for x in lists), strict=True)
    )


def _drop_broken_pins(
    connection: CatalogConnection,
    merged: MergedCatalog,
    report: SyncReport,
    recorder: EventRecorder,
    *,
    strict: bool,
) -> None:
    """A pin whose deployment is gone, or now serves another model, is dropped with a warning,
    and recorded as removed by this sync, so that the catalog as of an earlier event has it."""
    broken: dict[str, Values] = {}
    deprecated_before = {
        name for (name,) in connection.execute("SELECT name FROM deployments WHERE deprecated")
    }
    for model_name, deployment_name, pinned_at in connection.execute(
        f"SELECT model_name, deployment_name, pinned_at FROM {PINS.name}"
    ).fetchall():
        deployment = merged.deployments.get(deployment_name)
        if deployment is None:
            reason = f"deployment {deployment_name!r} is no longer in the sources"
        elif deployment.model_name != model_name:
            reason = f"deployment {deployment_name!r} now serves {deployment.model_name!r}"
        else:
            if deployment.deprecated and deployment_name not in deprecated_before:
                _report(
                    report,
                    Finding(
                        Severity.WARNING,
                        "pin-deprecated",
                        f"model {model_name!r} is pinned to {deployment_name!r}, which this sync "
                        "makes deprecated; the pin still wins: pin another deployment or unpin",
                        model_name,
                    ),
                    strict=strict,
                )
            continue
        broken[model_name] = {"deployment_name": deployment_name, "pinned_at": pinned_at}
        report.pins_dropped.append(model_name)
        finding = Finding(
            Severity.WARNING,
            "pin-dropped",
            f"the pin of model {model_name!r} was dropped: {reason}",
            subject=model_name,
        )
        _report(report, finding, strict=strict)
    if strict and report.errors:
        what = f"drop {len(broken)} pin(s)" if broken else "deprecate a pinned deployment"
        raise SyncError(
            f"sync would {what} and --strict is set; nothing was written",
            report.errors,
            report=report,
        )
    recorder.rows(PINS.name, broken, {})
    _delete(connection, PINS, list(broken))


def _report(report: SyncReport, finding: Finding, *, strict: bool) -> None:
    """A finding of the write stage: an error under --strict, else a warning."""
    if strict:
        report.errors.append(finding.as_error())
    else:
        report.warnings.append(finding)


def record_sync(
    connection: CatalogConnection,
    files: list[SourceFile],
    report: SyncReport,
    started: dt.datetime,
    *,
    forced: bool,
    helm_version: str | None = None,
) -> int:
    """Remember what was read (paths and sha256) so that an unchanged re-sync can be skipped."""
    values = {
        "started_at": started,
        "finished_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
        "tool_version": __version__,
        "forced": forced,
        "added": report.added,
        "changed": report.changed,
        "removed": report.removed,
        "warning_count": len(report.warnings),
        "row_counts": row_counts(connection),
        "helm_version": helm_version,
        "helm_rule": None if helm_version is None else helm_rule(helm_version),
    }
    columns = [c for c in SYNCS.columns if c.name in values]
    sync_id = int(
        connection.execute(
            f"INSERT INTO {SYNCS.name} ({', '.join(c.name for c in columns)}) "
            f"VALUES ({', '.join('?' for _ in columns)}) RETURNING id",
            [rows.encode_value(c.type, values[c.name]) for c in columns],
        ).fetchone()[0]
    )
    _insert(
        connection,
        SYNC_SOURCES,
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
    return sync_id
