"""A sync is one transaction: a failure or a SIGKILL midway leaves the database as it was."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES, HELM_CONFIGS, dump, require_shared

from catalog import Catalog, DatabaseError
from catalog.db import connection as database
from catalog.sync import writer as sync_writer

BASE = FIXTURES / "sync" / "base"
PRIVATE = FIXTURES / "sync" / "private"


class InjectedFailure(Exception):
    pass


def fail_after_inserts(
    monkeypatch: pytest.MonkeyPatch, successful_inserts: int
) -> Callable[[], int]:
    """Make sync_writer's bulk insert raise once `successful_inserts` batches were written."""
    original = sync_writer._insert
    written = 0

    def insert_then_fail(connection: Any, table: Any, rows: list[dict[str, Any]]) -> None:
        nonlocal written
        if written >= successful_inserts and rows:
            raise InjectedFailure(f"injected after {written} inserts")
        original(connection, table, rows)
        if rows:
            written += 1

    monkeypatch.setattr(sync_writer, "_insert", insert_then_fail)
    return lambda: written


def sanity(path: Path) -> None:
    connection = sqlite3.connect(path)
    try:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        connection.close()


@pytest.mark.parametrize("successful_inserts", [1, 3])
def test_failure_midway_through_a_first_sync_leaves_the_database_empty(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch, successful_inserts: int
) -> None:
    before = dump(catalog.path)
    written = fail_after_inserts(monkeypatch, successful_inserts)
    with pytest.raises(InjectedFailure):
        catalog.sync([BASE, PRIVATE])
    assert written() == successful_inserts
    assert dump(catalog.path) == before
    sanity(catalog.path)


def test_failure_midway_through_an_update_leaves_the_database_as_it_was(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog.sync([BASE])
    before = dump(catalog.path)
    written = fail_after_inserts(monkeypatch, 1)
    with pytest.raises(InjectedFailure):
        catalog.sync([BASE, PRIVATE], force=True)
    assert written() == 1
    assert dump(catalog.path) == before
    monkeypatch.undo()
    report = catalog.sync([BASE, PRIVATE])
    assert report.added["deployments"] == 1


def test_failure_while_recording_the_sync_rolls_back_the_content(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = dump(catalog.path)

    def broken_record(*_args: Any, **_kwargs: Any) -> None:
        raise InjectedFailure("while recording")

    monkeypatch.setattr(sync_writer, "record_sync", broken_record)
    with pytest.raises(InjectedFailure):
        catalog.sync([BASE])
    assert dump(catalog.path) == before


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from catalog import Catalog
    from catalog.sync import writer as sync_writer

    original = sync_writer._insert
    written = 0

    def insert_then_die(connection, table, rows):
        global written
        original(connection, table, rows)
        if rows:
            written += 1
            if written == int(sys.argv[3]):
                os.kill(os.getpid(), signal.SIGKILL)

    sync_writer._insert = insert_then_die
    with Catalog.open(sys.argv[1]) as catalog:
        catalog.sync([sys.argv[2]], force=True)
    """
)


def sync_and_die(database: Path, source: Path, after_inserts: int) -> None:
    result = subprocess.run(
        [sys.executable, "-c", KILLER, str(database), str(source), str(after_inserts)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr


@pytest.mark.slow  # a child process kills itself with SIGKILL midway through a sync
@pytest.mark.parametrize("after_inserts", [1, 4])
def test_sigkill_midway_leaves_the_database_as_it_was(tmp_path: Path, after_inserts: int) -> None:
    real = require_shared(HELM_CONFIGS / "v0.5.12")
    database = tmp_path / "catalog.db"
    with Catalog.open(database) as catalog:
        catalog.sync([BASE])
    before = dump(database)

    sync_and_die(database, real, after_inserts)

    sanity(database)
    assert dump(database) == before
    with Catalog.open(database) as catalog:
        report = catalog.sync([real])
    assert report.added["deployments"] > 500
    sanity(database)


@pytest.mark.slow  # a child process kills itself with SIGKILL midway through a sync
def test_sigkill_during_a_first_sync_leaves_an_empty_usable_catalog(tmp_path: Path) -> None:
    database = tmp_path / "catalog.db"
    Catalog.open(database).close()
    before = dump(database)

    sync_and_die(database, BASE, 1)

    sanity(database)
    assert dump(database) == before
    with Catalog.open(database) as catalog:
        assert catalog.sync([BASE]).added["models"] == 3


def test_a_locked_database_is_a_clear_error_and_nothing_is_written(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog.sync([BASE])
    before = dump(catalog.path)
    catalog.connection.raw.execute("PRAGMA busy_timeout = 50")
    holder = database.connect(catalog.location)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(DatabaseError, match="locked"):
            catalog.sync([BASE, PRIVATE])
        holder.execute("ROLLBACK")
    finally:
        holder.close()
    assert dump(catalog.path) == before
    assert catalog.sync([BASE, PRIVATE]).added["deployments"] == 1
