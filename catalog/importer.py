"""`catalog sync`: HELM-format YAML layers into the database, atomically and idempotently.

The run has three stages. Read: every file is hashed; if the same files were synced last time,
nothing is parsed. Check: every entry is validated and the layers are merged (later layers win
entry by entry, placeholders stand in for missing models and tokenizers, HELM-style). Write: one
transaction that brings the tables to exactly the merged content and records the sync; on any
error it rolls back and the database is as it was.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from catalog import __version__
from catalog.database import DatabaseLocation, create_engine, failure_hint
from catalog.diagnostics import Diagnostic
from catalog.entries import (
    CheckEntry,
    DeploymentRecord,
    EntryChecker,
    ModelRecord,
    Provenance,
    TokenizerRecord,
    check_deployment,
    check_model,
    check_tokenizer,
    type_name,
)
from catalog.errors import DatabaseError, HelmNotInstalledError, SourceError, SyncError
from catalog.names import split_name
from catalog.sources import TOP_LEVEL_KEYS, SourceFile, read_sources, source_dirs
from catalog.yaml_source import YamlLimits, YamlLoadError, parse_yaml

TABLES = ("models", "deployments", "tokenizers", "tags")
PLACEHOLDER_TAGS = ("TEXT_MODEL_TAG", "FULL_FUNCTIONALITY_TEXT_MODEL_TAG")
_CHECKS: dict[str, CheckEntry] = {
    "models": check_model,
    "deployments": check_deployment,
    "tokenizers": check_tokenizer,
}


def _zero_counts() -> dict[str, int]:
    return dict.fromkeys(TABLES, 0)


@dataclass
class SyncReport:
    """What a sync did (or, with dry_run, would do)."""

    added: dict[str, int] = field(default_factory=_zero_counts)
    changed: dict[str, int] = field(default_factory=_zero_counts)
    removed: dict[str, int] = field(default_factory=_zero_counts)
    warnings: list[Diagnostic] = field(default_factory=list)
    errors: list[Diagnostic] = field(default_factory=list)
    skipped_unchanged: bool = False
    dry_run: bool = False
    sources: list[str] = field(default_factory=list)
    pins_dropped: list[str] = field(default_factory=list)

    @property
    def changed_anything(self) -> bool:
        counts = (*self.added.values(), *self.changed.values(), *self.removed.values())
        return any(counts) or bool(self.pins_dropped)

    def to_json(self) -> dict[str, Any]:
        return {
            "added": dict(self.added),
            "changed": dict(self.changed),
            "removed": dict(self.removed),
            "warnings": [d.to_json() for d in self.warnings],
            "errors": [d.to_json() for d in self.errors],
            "skipped_unchanged": self.skipped_unchanged,
            "dry_run": self.dry_run,
            "sources": list(self.sources),
            "pins_dropped": list(self.pins_dropped),
        }


@dataclass
class MergedCatalog:
    """The union of the sources: table name -> primary key -> row, in catalog order."""

    rows: dict[str, dict[Any, dict[str, Any]]]
    warnings: list[Diagnostic]


def sync(
    location: DatabaseLocation,
    connection: sqlite3.Connection,
    dirs: Sequence[str | Path] = (),
    *,
    helm: bool = False,
    strict: bool = False,
    dry_run: bool = False,
    force: bool = False,
    limits: YamlLimits | None = None,
) -> SyncReport:
    """Bring the catalog at `location` to exactly the union of `dirs` (see module docstring).

    Raises SyncError (with `.report`) when the sources have errors, or warnings under `strict`;
    the database is then unchanged.
    """
    limits = limits or YamlLimits()
    try:
        directories = source_dirs(dirs, helm=helm)
    except SourceError as error:
        report = SyncReport(dry_run=dry_run)
        code = "helm-not-installed" if isinstance(error, HelmNotInstalledError) else "bad-source"
        report.errors.append(Diagnostic("error", code, str(error)))
        raise _failure(report) from error
    files, problems = read_sources(directories, limits.max_file_bytes)
    report = SyncReport(dry_run=dry_run, sources=[f.display for f in files])
    if problems:
        report.errors = problems
        raise _failure(report)
    if not force and _same_as_last_sync(connection, files, strict=strict):
        report.skipped_unchanged = True
        return report

    merged, errors = merge_sources(files, limits)
    in_catalog_order = _catalog_order(files)
    report.warnings = sorted(merged.warnings, key=in_catalog_order)
    report.errors = sorted(errors, key=in_catalog_order)
    if strict and report.warnings:
        promoted = [d.as_error() for d in report.warnings]
        report.errors = sorted(report.errors + promoted, key=in_catalog_order)
        report.warnings = []
    if report.errors:
        raise _failure(report)

    _write(location, merged, files, report, force=force, strict=strict)
    return report


def _catalog_order(files: list[SourceFile]) -> Callable[[Diagnostic], tuple[int, int]]:
    """Sort key: findings by source file in layer order, then by line."""
    file_positions = {source.display: position for position, source in enumerate(files)}

    def key(diagnostic: Diagnostic) -> tuple[int, int]:
        position = file_positions.get(diagnostic.file or "", len(file_positions))
        return position, diagnostic.line or 0

    return key


def _failure(report: SyncReport) -> SyncError:
    count = len(report.errors)
    first = report.errors[0] if report.errors else None
    message = f"sync failed with {count} error{'s' if count != 1 else ''}; nothing was written"
    if first is not None:
        message += f" (first: {first})"
    error = SyncError(message, report.errors)
    error.report = report  # type: ignore[attr-defined]
    return error


def _same_as_last_sync(
    connection: sqlite3.Connection, files: list[SourceFile], *, strict: bool
) -> bool:
    """The same files, byte for byte, as the last sync by this version of the tool.

    Under --strict a last sync that had warnings does not count: they must fail this run.
    """
    last = connection.execute(
        "SELECT id, tool_version, warning_count FROM syncs ORDER BY id DESC LIMIT 1"
    ).fetchone()
    if last is None or last[1] != __version__ or (strict and last[2]):
        return False
    recorded = connection.execute(
        "SELECT path, kind, sha256 FROM sync_sources WHERE sync_id = ? ORDER BY position",
        (last[0],),
    ).fetchall()
    current = [(str(f.path), f.kind, f.sha256) for f in files]
    return [tuple(row) for row in recorded] == current


@dataclass(frozen=True)
class MergedEntry:
    """The definition that won, and where the name first and last appeared in catalog order."""

    record: Any
    first_position: int
    position: int


def merge_sources(
    files: Iterable[SourceFile], limits: YamlLimits
) -> tuple[MergedCatalog, list[Diagnostic]]:
    """Parse, check and merge every file; returns the merged catalog and the errors."""
    diagnostics: list[Diagnostic] = []
    records: dict[str, list[Any]] = {kind: [] for kind in _CHECKS}
    for source in files:
        records[source.kind].extend(_records_of(source, limits, diagnostics))

    rows: dict[str, dict[Any, dict[str, Any]]] = {
        "models": {},
        "tokenizers": {},
        "deployments": {},
        "tags": {},
        "model_tags": {},
    }
    # Models and tokenizers keep the order of first appearance; deployments take the place of
    # the definition that won (an override in a later layer moves to the end, as in HELM).
    for entry in _merge_kind(records["models"], "model", diagnostics).values():
        rows["models"][entry.record.name] = _model_row(entry.record, entry.first_position)
        _add_tags(rows, entry.record.name, entry.record.tags)
    for entry in _merge_kind(records["tokenizers"], "tokenizer", diagnostics).values():
        rows["tokenizers"][entry.record.name] = _tokenizer_row(entry.record, entry.first_position)
    deployments = _merge_kind(records["deployments"], "deployment", diagnostics)
    next_model_position = len(records["models"])
    next_tokenizer_position = len(records["tokenizers"])
    for entry in sorted(deployments.values(), key=lambda e: e.position):
        deployment: DeploymentRecord = entry.record
        if deployment.model_name not in rows["models"]:
            _add_placeholder_model(rows, deployment, next_model_position, diagnostics)
            next_model_position += 1
        if deployment.tokenizer_name and deployment.tokenizer_name not in rows["tokenizers"]:
            _add_placeholder_tokenizer(rows, deployment, next_tokenizer_position, diagnostics)
            next_tokenizer_position += 1
        rows["deployments"][deployment.name] = _deployment_row(
            deployment, entry.position, entry.first_position
        )
    errors = [d for d in diagnostics if d.severity == "error"]
    return MergedCatalog(rows, [d for d in diagnostics if d.severity == "warning"]), errors


def _records_of(source: SourceFile, limits: YamlLimits, diagnostics: list[Diagnostic]) -> list[Any]:
    file = source.display
    try:
        loaded = parse_yaml(source.data, file, limits)
    except YamlLoadError as error:
        diagnostics.append(error.diagnostic)
        return []
    diagnostics.extend(loaded.warnings)
    document = loaded.document
    top_key = TOP_LEVEL_KEYS[source.kind]
    if document is None:
        diagnostics.append(
            Diagnostic(
                "warning", "empty-file", f"the file defines nothing (no {top_key!r})", file, 1
            )
        )
        return []
    if not isinstance(document, dict):
        diagnostics.append(
            Diagnostic(
                "error",
                "wrong-type",
                f"the file must be a mapping with a {top_key!r} list at the top",
                file,
                getattr(document, "line", 1),
            )
        )
        return []
    key_lines: dict[Any, int] = getattr(document, "key_lines", {})
    checker = EntryChecker(file)
    for key in document:
        if key != top_key:
            checker.warning(
                "unknown-top-level-key",
                f"unknown top-level key {key!r} (this file defines {top_key!r}); it is ignored",
                key_lines.get(key, 1),
            )
    entries = document.get(top_key)
    if top_key not in document:
        checker.warning("empty-file", f"the file has no {top_key!r} list", 1)
        entries = []
    elif entries is None:
        checker.warning(
            "empty-file",
            f"{top_key!r} is empty (null): the file defines nothing; write `{top_key}: []` "
            "to say so",
            key_lines.get(top_key, 1),
        )
        entries = []
    elif not isinstance(entries, list):
        checker.error(
            "wrong-type",
            f"{top_key!r} must be a list of entries, not {type_name(entries)}",
            key_lines.get(top_key, 1),
        )
        entries = []
    check = _CHECKS[source.kind]
    records = []
    item_lines: list[int] = getattr(entries, "item_lines", [])
    for index, entry in enumerate(entries):
        checker.entry_line = item_lines[index] if index < len(item_lines) else None
        record = check(entry, checker)
        if record is not None:
            where = Provenance(file, record.source.line, source.layer, index)
            records.append(replace(record, source=where))
    diagnostics.extend(checker.finish())
    return records


def _merge_kind(
    records: list[Any], noun: str, diagnostics: list[Diagnostic]
) -> dict[str, MergedEntry]:
    """Later definitions win; a name defined twice in one layer is a warning.

    `records` are in catalog order (layer, then file order); positions index into it.
    """
    merged: dict[str, MergedEntry] = {}
    for position, record in enumerate(records):
        previous = merged.get(record.name)
        if previous is None:
            merged[record.name] = MergedEntry(record, position, position)
            continue
        earlier = previous.record
        if earlier.source.layer == record.source.layer:
            diagnostics.append(_duplicate_warning(noun, earlier, record))
        merged[record.name] = MergedEntry(record, previous.first_position, position)
    return merged


def _duplicate_warning(noun: str, earlier: Any, later: Any) -> Diagnostic:
    identical = replace(earlier, source=later.source) == later
    where = f"lines {earlier.source.line} and {later.source.line}"
    if earlier.source.file != later.source.file:
        where = f"{earlier.source.file}:{earlier.source.line} and line {later.source.line}"
    verdict = "the copies are identical" if identical else "the copies differ; the later one wins"
    return Diagnostic(
        "warning",
        "duplicate-name",
        f"{noun} {later.name!r} is defined twice, at {where}; {verdict}",
        later.source.file,
        later.source.line,
    )


def _model_row(model: ModelRecord, position: int) -> dict[str, Any]:
    prefix, engine = split_name(model.name)
    return {
        "name": model.name,
        "creator_prefix": prefix,
        "engine": engine,
        "creator_organization_name": model.creator_organization_name,
        "display_name": model.display_name,
        "description": model.description,
        "access": model.access,
        "release_date": model.release_date,
        "num_parameters": model.num_parameters,
        "is_placeholder": False,
        "source_file": model.source.file,
        "source_line": model.source.line,
        "position": position,
    }


def _tokenizer_row(tokenizer: TokenizerRecord, position: int) -> dict[str, Any]:
    return {
        "name": tokenizer.name,
        "class_name": tokenizer.class_name,
        "args": tokenizer.args,
        "end_of_text_token": tokenizer.end_of_text_token,
        "prefix_token": tokenizer.prefix_token,
        "is_placeholder": False,
        "source_file": tokenizer.source.file,
        "source_line": tokenizer.source.line,
        "position": position,
    }


def _deployment_row(deployment: DeploymentRecord, position: int, first: int) -> dict[str, Any]:
    host, engine = split_name(deployment.name)
    return {
        "name": deployment.name,
        "host_organization": host,
        "engine": engine,
        "model_name": deployment.model_name,
        "tokenizer_name": deployment.tokenizer_name,
        "client_class": deployment.client_class,
        "client_args": deployment.client_args,
        "window_service_class": deployment.window_service_class,
        "window_service_args": deployment.window_service_args,
        "max_sequence_length": deployment.max_sequence_length,
        "max_request_length": deployment.max_request_length,
        "max_sequence_and_generated_tokens_length": (
            deployment.max_sequence_and_generated_tokens_length
        ),
        "deprecated": deployment.deprecated,
        "position": position,
        "first_position": first,
        "source_file": deployment.source.file,
        "source_line": deployment.source.line,
    }


def _add_tags(rows: dict[str, dict[Any, dict[str, Any]]], model: str, tags: Iterable[str]) -> None:
    for position, tag in enumerate(tags):
        rows["tags"].setdefault(tag, {"name": tag})
        rows["model_tags"][(model, tag)] = {
            "model_name": model,
            "tag_name": tag,
            "position": position,
        }


def _add_placeholder_model(
    rows: dict[str, dict[Any, dict[str, Any]]],
    deployment: DeploymentRecord,
    position: int,
    diagnostics: list[Diagnostic],
) -> None:
    """HELM's stand-in for a model with no metadata: creator Unknown, generic text tags."""
    name = deployment.model_name
    prefix, engine = split_name(name)
    rows["models"][name] = {
        "name": name,
        "creator_prefix": prefix,
        "engine": engine,
        "creator_organization_name": "Unknown",
        "display_name": name,
        "description": name,
        "access": "open",
        "release_date": None,
        "num_parameters": None,
        "is_placeholder": True,
        "source_file": deployment.source.file,
        "source_line": deployment.source.line,
        "position": position,
    }
    _add_tags(rows, name, PLACEHOLDER_TAGS)
    diagnostics.append(
        Diagnostic(
            "warning",
            "placeholder-model",
            f"deployment {deployment.name!r} serves model {name!r}, which has no metadata; a "
            "placeholder model was created (creator Unknown, tags "
            + ", ".join(PLACEHOLDER_TAGS)
            + ")",
            deployment.source.file,
            deployment.source.line,
        )
    )


def _add_placeholder_tokenizer(
    rows: dict[str, dict[Any, dict[str, Any]]],
    deployment: DeploymentRecord,
    position: int,
    diagnostics: list[Diagnostic],
) -> None:
    name = deployment.tokenizer_name
    assert name is not None
    rows["tokenizers"][name] = {
        "name": name,
        "class_name": None,
        "args": None,
        "end_of_text_token": None,
        "prefix_token": None,
        "is_placeholder": True,
        "source_file": deployment.source.file,
        "source_line": deployment.source.line,
        "position": position,
    }
    diagnostics.append(
        Diagnostic(
            "warning",
            "placeholder-tokenizer",
            f"deployment {deployment.name!r} uses tokenizer {name!r}, which has no config; a "
            "placeholder tokenizer was created",
            deployment.source.file,
            deployment.source.line,
        )
    )


def _write(
    location: DatabaseLocation,
    merged: MergedCatalog,
    files: list[SourceFile],
    report: SyncReport,
    *,
    force: bool,
    strict: bool,
) -> None:
    from sqlalchemy.exc import DBAPIError

    from catalog import sync_writer

    engine = create_engine(location)
    started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    try:
        with engine.connect() as connection:
            transaction = connection.begin()
            try:
                sync_writer.apply(connection, merged.rows, report, strict=strict)
                if not report.dry_run:
                    sync_writer.record_sync(connection, files, report, started, forced=force)
            except SyncError as error:
                transaction.rollback()
                error.report = report  # type: ignore[attr-defined]
                raise
            except BaseException:
                transaction.rollback()
                raise
            if report.dry_run:
                transaction.rollback()
            else:
                transaction.commit()
    except DBAPIError as error:
        hint = failure_hint(error.orig or error)
        raise DatabaseError(
            f"{location.path}: the sync could not be written ({error.orig}); "
            "the database is unchanged" + (f"\nhint: {hint}" if hint else "")
        ) from error
    finally:
        engine.dispose()
