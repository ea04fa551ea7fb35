"""Alembic environment for the catalog schema.

Run by `catalog db ...` (which hands over a connection inside its own transaction) or by the
`alembic` command from a checkout (which uses sqlalchemy.url from alembic.ini). Batch mode is on
for SQLite, online and offline, because SQLite can only ALTER a table by rebuilding it; DDL is
transactional, so an interrupted upgrade leaves the database at its old revision.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from catalog.db.connection import create_engine
from catalog.db.location import DatabaseLocation
from catalog.db.metadata import build_metadata
from catalog.db.search import is_search_table

config = context.config
target_metadata = build_metadata()


def include_name(name: str | None, kind: str, _parent: object) -> bool:
    """Autogenerate leaves out the full-text index: SQLite's FTS5 tables, made by 0005_search."""
    return kind != "table" or not is_search_table(str(name))


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        include_name=include_name,
        literal_binds=True,
        render_as_batch=True,
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_with_connection(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_name=include_name,
        render_as_batch=True,
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_with_connection(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or ""
    engine = create_engine(DatabaseLocation.parse(url))
    try:
        with engine.connect() as new_connection:
            run_with_connection(new_connection)
            new_connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
