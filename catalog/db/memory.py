"""Catalogs in memory: the catalog as of an earlier event, and HELM directories loaded for a
`catalog diff`, answered with the same code as a catalog on disk but written nowhere."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from catalog.db.connection import CatalogConnection, apply_connection_pragmas
from catalog.db.location import DatabaseLocation


def _memory_connection() -> sqlite3.Connection:
    connection = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    apply_connection_pragmas(connection, writable=False)
    return connection


def copy_of(source: CatalogConnection, label: str) -> CatalogConnection:
    """The whole catalog copied into memory (SQLite's backup: pages, not rows), named `label`."""
    memory = _memory_connection()
    source.raw.backup(memory)
    return CatalogConnection(memory, DatabaseLocation(Path(label)))


def new_empty(label: str) -> CatalogConnection:
    """An empty in-memory catalog at the newest schema, made by the Alembic revisions."""
    from alembic import command
    from sqlalchemy import create_engine
    from sqlalchemy.pool import StaticPool

    from catalog.db.migrations import alembic_config

    scratch = _memory_connection()
    engine = create_engine("sqlite://", creator=lambda: scratch, poolclass=StaticPool)
    memory = _memory_connection()
    try:
        with engine.connect() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            with connection.begin():
                command.upgrade(config, "head")
        scratch.backup(memory)  # the engine closes its connection when disposed
    finally:
        engine.dispose()
    return CatalogConnection(memory, DatabaseLocation(Path(label)))


def copy_rows(target: CatalogConnection, table: str, columns: list[str], rows: list[Any]) -> None:
    if rows:
        marks = ", ".join("?" for _ in columns)
        target.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
