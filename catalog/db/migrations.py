"""The catalog's schema revisions: creating, checking, upgrading and downgrading.

Alembic is imported only here and only when a schema has to change; opening an up-to-date
catalog reads `alembic_version` with its own connection and compares it with
`catalog.db.revisions`.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from catalog.db.connection import CatalogConnection, connect, connect_raw, create_engine
from catalog.db.failures import open_failure
from catalog.db.location import SQLITE, DatabaseLocation, packaged_data_dir
from catalog.db.revisions import HEAD_REVISION, KNOWN_REVISIONS
from catalog.errors import (
    DatabaseError,
    NoCatalogError,
    NotACatalogError,
    SchemaError,
    SchemaOutdatedError,
    SchemaTooNewError,
)

if TYPE_CHECKING:
    from alembic.config import Config


@dataclass(frozen=True)
class RevisionInfo:
    revision: str
    down_revision: str | None
    description: str
    is_head: bool


def alembic_config(location: DatabaseLocation | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(packaged_data_dir("alembic")))
    if location is not None:
        config.set_main_option("sqlalchemy.url", location.url.replace("%", "%%"))
    return config


def _run(location: DatabaseLocation, command_name: str, revision: str) -> None:
    """Run one Alembic command in a single transaction: it applies completely or not at all.

    On SQLite, its procedure for schema changes is followed: foreign keys off (outside the
    transaction, where the pragma takes effect), then `foreign_key_check` before commit. With
    them on, a batch-mode rebuild (copy, DROP TABLE, rename) would cascade-delete the rows that
    reference the rebuilt table. On PostgreSQL, DDL is transactional and foreign keys are
    checked as it goes; the change waits for the write lock a sync holds.
    """
    from alembic import command
    from alembic.script.revision import RevisionError
    from alembic.util import CommandError
    from sqlalchemy.exc import DBAPIError

    config = alembic_config(location)
    engine = create_engine(location)
    where = location.display
    try:
        with engine.connect() as connection:
            sqlite = location.dialect == SQLITE
            raw_connection: Any = connection.connection.driver_connection
            if sqlite:
                raw_connection.execute("PRAGMA foreign_keys = OFF")
            try:
                with connection.begin():
                    if not sqlite:
                        from catalog.db.postgres import WRITE_LOCK_KEY

                        connection.exec_driver_sql(
                            f"SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})"
                        )
                    config.attributes["connection"] = connection
                    getattr(command, command_name)(config, revision)
                    if sqlite:
                        violations = connection.exec_driver_sql(
                            "PRAGMA foreign_key_check"
                        ).fetchall()
                        if violations:
                            raise DatabaseError(
                                f"{where}: {command_name} to {revision} would leave "
                                f"{len(violations)} row(s) with a dangling foreign key (first: "
                                f"table {violations[0][0]}); nothing was changed"
                            )
            finally:
                if sqlite:
                    raw_connection.execute("PRAGMA foreign_keys = ON")
    except (CommandError, RevisionError) as error:
        raise SchemaError(
            f"{where}: cannot {command_name} to {revision!r}: {error} "
            "(`catalog db history` lists the revisions)"
        ) from error
    except DBAPIError as error:
        raise DatabaseError(
            f"{where}: cannot {command_name} to {revision!r}: {error.orig}; "
            "the database is unchanged"
        ) from error
    except sqlite3.DatabaseError as error:
        raise DatabaseError(f"{where}: {error}") from error
    finally:
        engine.dispose()


def _inspect(location: DatabaseLocation) -> CatalogConnection:
    """A connection for a look at a database that may not be ours: it changes nothing."""
    if location.dialect == SQLITE:
        return CatalogConnection(connect_raw(location, inspect=True), location)
    return connect(location)


def stamped_revision(location: DatabaseLocation) -> str | None:
    """The revision of the database (None if absent, empty or at base), read without changing
    it. NotACatalogError for a file that is not SQLite, or a database of something else."""
    if not location.exists():
        return None
    connection = _inspect(location)
    try:
        revision = current_revision(connection)
        if revision is None and not _is_empty(connection) and not _has_version_table(connection):
            raise NotACatalogError(_not_a_catalog_message(location))
    except sqlite3.DatabaseError as error:
        raise open_failure(location, error) from error
    finally:
        connection.close()
    return revision


def _refuse_foreign(location: DatabaseLocation) -> None:
    """Never touch a database this version cannot vouch for: another application's, or newer."""
    revision = stamped_revision(location)
    if revision is not None and revision not in KNOWN_REVISIONS:
        raise SchemaTooNewError(_too_new_message(location, revision))


def upgrade(location: DatabaseLocation, revision: str = "head") -> None:
    """Upgrade (creating the database if there is none) to `revision`."""
    _refuse_foreign(location)
    if location.dialect != SQLITE:
        _run(location, "upgrade", revision)
        return
    directory = location.path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DatabaseError(
            f"{location.path}: cannot create the directory {error.filename or directory}: "
            f"{error.strerror or error}"
        ) from error
    if not location.exists() and not os.access(directory, os.W_OK):
        raise DatabaseError(
            f"{location.path}: cannot create the catalog there: its directory is read-only"
        )
    _run(location, "upgrade", revision)


# What each revision holds that no source can rebuild: a downgrade past it would lose it.
# (revision, what it is called, the SQL that counts it)
_USER_DATA: tuple[tuple[str, str, str], ...] = (
    ("0002_query_layer", "pins", "SELECT count(*) FROM pins"),
    ("0002_query_layer", "settings", "SELECT count(*) FROM settings"),
    ("0003_history", "history events", "SELECT count(*) FROM events WHERE kind != 'baseline'"),
)


def user_data_lost(location: DatabaseLocation, revision: str) -> dict[str, int]:
    """What a downgrade to `revision` would delete that a sync cannot bring back, by kind."""
    stamped = stamped_revision(location)
    if stamped is None or stamped not in KNOWN_REVISIONS:
        return {}
    if revision == "base":
        keep = 0
    elif revision in KNOWN_REVISIONS:
        keep = KNOWN_REVISIONS.index(revision) + 1
    else:
        return {}  # Alembic refuses it, or it is relative: Alembic checks it below
    dropped = set(KNOWN_REVISIONS[keep : KNOWN_REVISIONS.index(stamped) + 1])
    connection = _inspect(location)
    try:
        lost = {
            what: int(connection.execute(sql).fetchone()[0])
            for owner, what, sql in _USER_DATA
            if owner in dropped
        }
    finally:
        connection.close()
    return {what: count for what, count in lost.items() if count}


def downgrade(location: DatabaseLocation, revision: str, *, force: bool = False) -> None:
    """Downgrade to `revision`; refused if that would delete pins, settings or history,
    unless `force`."""
    if not location.exists():
        raise DatabaseError(f"{location.display}: no catalog database there to downgrade")
    _refuse_foreign(location)
    lost = user_data_lost(location, revision)
    if lost and not force:
        listed = ", ".join(f"{count} {what}" for what, count in lost.items())
        raise SchemaError(
            f"{location.display}: downgrading to {revision} would delete {listed}, which no sync "
            "can bring back; nothing was changed",
            hint="keep pins first with `catalog pins --json > pins.json` (after upgrading again: "
            "`catalog pins --restore pins.json`), then downgrade with --force",
        )
    _run(location, "downgrade", revision)


def history() -> list[RevisionInfo]:
    """Every revision, newest first, as `alembic history` lists them."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    heads = set(script.get_heads())
    infos = []
    for rev in script.walk_revisions():
        down = rev.down_revision
        infos.append(
            RevisionInfo(
                revision=rev.revision,
                down_revision=down if isinstance(down, str) or down is None else ",".join(down),
                description=(rev.doc or "").strip(),
                is_head=rev.revision in heads,
            )
        )
    return infos


def current_revision(connection: CatalogConnection) -> str | None:
    """The revision stamped in the database, None for a database without one."""
    if not _has_version_table(connection):
        return None
    row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    return None if row is None else str(row[0])


def _has_version_table(connection: CatalogConnection) -> bool:
    return "alembic_version" in connection.table_names()


def _is_empty(connection: CatalogConnection) -> bool:
    return not connection.table_names()


def _upgrade_hint(location: DatabaseLocation) -> str:
    return f"run `catalog db upgrade` on it (catalog --db {location.display} db upgrade)"


def _not_a_catalog_message(location: DatabaseLocation) -> str:
    return (
        f"{location.display} is not a model-catalog database (it has tables but no schema "
        "revision); give another --db, or move this one away"
    )


def _too_new_message(location: DatabaseLocation, revision: str) -> str:
    return (
        f"{location.display} is at schema revision {revision!r}, which this version of "
        f"model-catalog does not know (it knows up to {HEAD_REVISION}): the database was made "
        "by a newer model-catalog; upgrade model-catalog to use it"
    )


def check_schema(
    connection: CatalogConnection, location: DatabaseLocation, *, create: bool = True
) -> None:
    """Refuse a database at another revision; never alter it silently.

    The one thing done here is creating the schema of a database that has no table at all
    (if `create`; else NoCatalogError: only a sync makes a catalog).
    """
    revision = current_revision(connection)
    if revision == HEAD_REVISION:
        return
    if revision in KNOWN_REVISIONS:
        raise SchemaOutdatedError(
            f"{location.display} is at schema revision {revision}, this version needs "
            f"{HEAD_REVISION}: {_upgrade_hint(location)}"
        )
    if revision is not None:
        raise SchemaTooNewError(_too_new_message(location, revision))
    if _is_empty(connection):
        # No table at all: a new database (created by another tool, or by a first open that
        # was interrupted before its schema transaction committed).
        if not create:
            raise NoCatalogError(
                f"no catalog in {location.display} (the database is empty)",
                hint="run `catalog sync` to create one",
            )
        upgrade(location)
        return
    if _has_version_table(connection):
        # Downgraded to base: the user chose that; bringing it back is their call too.
        raise SchemaOutdatedError(
            f"{location.display} holds no catalog schema (revision base): {_upgrade_hint(location)}"
        )
    raise NotACatalogError(_not_a_catalog_message(location))
