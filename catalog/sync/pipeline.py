"""`catalog sync`: HELM-format YAML layers into the database, atomically and idempotently.

The run has three stages. Read: every file is hashed; if the same files were synced last time,
nothing is parsed (catalog.sync.sources). Check: every entry is validated and the layers are
merged (catalog.sync.merge). Write: one transaction that brings the tables to exactly the
merged content and records the sync (catalog.sync.writer); on any error it rolls back and the
database is as it was.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from catalog import __version__
from catalog.db import rows
from catalog.errors import Finding, HelmNotInstalledError, Severity, SourceError
from catalog.history.recorder import recorded_event
from catalog.resolve.engine import Snapshot
from catalog.sync import writer
from catalog.sync.merge import merge_sources
from catalog.sync.report import SyncReport
from catalog.sync.sources import SourceFile, installed_helm_version, read_sources, source_dirs
from catalog.sync.yaml_loader import YamlLimits

if TYPE_CHECKING:
    from catalog.db.connection import CatalogConnection


def sync(
    connection: CatalogConnection,
    dirs: Sequence[str | Path] = (),
    *,
    helm: bool = False,
    strict: bool = False,
    dry_run: bool = False,
    force: bool = False,
    limits: YamlLimits | None = None,
) -> SyncReport:
    """Bring the catalog to exactly the union of `dirs` (see the module docstring).

    Raises SyncError (with `.report`) when the sources have errors, or warnings under `strict`;
    the database is then unchanged.
    """
    limits = limits or YamlLimits()
    try:
        directories = source_dirs(dirs, helm=helm)
    except SourceError as error:
        report = SyncReport(dry_run=dry_run)
        code = "helm-not-installed" if isinstance(error, HelmNotInstalledError) else "bad-source"
        report.errors.append(Finding(Severity.ERROR, code, str(error)))
        raise report.failure() from error
    # The crfm-helm whose files a --helm sync read: its rule is the policy when none is set.
    helm_version = installed_helm_version() if helm else None
    files, problems = read_sources(directories, limits.max_file_bytes)
    report = SyncReport(dry_run=dry_run, sources=[f.display for f in files])
    if problems:
        report.errors = problems
        raise report.failure()
    if not force and _same_as_last_sync(connection, files, strict=strict, helm=helm_version):
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
        raise report.failure()

    started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    summary = f"sync of {len(files)} file{'s' if len(files) != 1 else ''}"
    with (
        connection.write("the sync", commit=not dry_run),
        recorded_event(
            connection,
            "sync",
            summary,
            lambda: Snapshot.read(connection, lenient=True).defaults(),
            record=not dry_run,
        ) as recorder,
    ):
        writer.apply(connection, merged, report, recorder, strict=strict)
        if not dry_run:
            recorder.sync_id = writer.record_sync(
                connection, files, report, started, forced=force, helm_version=helm_version
            )
    report.changes = recorder.changes
    return report


def _catalog_order(files: list[SourceFile]) -> Callable[[Finding], tuple[int, int]]:
    """Sort key: findings by source file in layer order, then by line."""
    file_positions = {source.display: position for position, source in enumerate(files)}

    def key(finding: Finding) -> tuple[int, int]:
        position = file_positions.get(finding.file or "", len(file_positions))
        return position, finding.line or 0

    return key


def _same_as_last_sync(
    connection: CatalogConnection, files: list[SourceFile], *, strict: bool, helm: str | None
) -> bool:
    """The same files, byte for byte, as the last sync by this version of the tool, read the
    same way (with --helm or not: the recorded crfm-helm version decides the policy).

    Under --strict a last sync that had warnings does not count: they must fail this run.
    """
    last = connection.execute(
        "SELECT id, tool_version, warning_count, helm_version FROM syncs ORDER BY id DESC LIMIT 1"
    ).fetchone()
    if last is None or last[1] != __version__ or (strict and last[2]) or last[3] != helm:
        return False
    recorded = connection.execute(
        "SELECT path, kind, sha256 FROM sync_sources WHERE sync_id = ? ORDER BY position",
        (last[0],),
    ).fetchall()
    current = [(str(f.path), f.kind, f.sha256) for f in files]
    if [tuple(row) for row in recorded] != current:
        return False
    # The same files; but a catalog edited around the tool (rows deleted with foreign keys
    # off) must be rewritten, not called up to date.
    (counts,) = connection.execute(
        "SELECT row_counts FROM syncs WHERE id = ?", (last[0],)
    ).fetchone()
    # (A sync made before revision 0003_history recorded no counts.)
    if counts is not None and rows.decode_json(counts) != writer.row_counts(connection):
        return False
    return not connection.foreign_key_violations()
