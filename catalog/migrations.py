"""The catalog's schema revisions: creating, checking, upgrading and downgrading.

Alembic is imported only here and only when a schema has to change; opening an up-to-date
catalog reads `alembic_version` with sqlite3 and compares it with `catalog.revisions`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING

from catalog.database import DatabaseLocation, create_engine
from catalog.errors import (
    DatabaseError,
    NotACatalogError,
    SchemaOutdatedError,
    SchemaTooNewError,
)
from catalog.resources import alembic_dir
from catalog.revisions import HEAD_REVISION, KNOWN_REVISIONS

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
    config.set_main_option("script_location", str(alembic_dir()))
    if location is not None:
        config.set_main_option("sqlalchemy.url", location.url.replace("%", "%%"))
    return config


def _run(location: DatabaseLocation, command_name: str, revision: str) -> None:
    from alembic import command

    config = alembic_config(location)
    engine = create_engine(location)
    try:
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            getattr(command, command_name)(config, revision)
            connection.commit()
    except sqlite3.DatabaseError as error:
        raise DatabaseError(f"{location.path}: {error}") from error
    finally:
        engine.dispose()


def upgrade(location: DatabaseLocation, revision: str = "head") -> None:
    location.path.parent.mkdir(parents=True, exist_ok=True)
    _run(location, "upgrade", revision)


def downgrade(location: DatabaseLocation, revision: str) -> None:
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


def current_revision(connection: sqlite3.Connection) -> str | None:
    """The revision stamped in the database, None for a database without one."""
    try:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError as error:
        if "no such table" in str(error):
            return None
        raise
    return None if row is None else str(row[0])


def is_empty(connection: sqlite3.Connection) -> bool:
    row = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    return int(row[0]) == 0


def check_schema(connection: sqlite3.Connection, location: DatabaseLocation) -> None:
    """Refuse a database at another revision; never alter it silently."""
    revision = current_revision(connection)
    if revision == HEAD_REVISION:
        return
    if revision is None:
        raise NotACatalogError(
            f"{location.path} is not a model-catalog database (it has no schema revision); "
            "give another --db path, or move this file away"
        )
    if revision in KNOWN_REVISIONS:
        raise SchemaOutdatedError(
            f"{location.path} is at schema revision {revision}, this version needs "
            f"{HEAD_REVISION}: run `catalog --db {location.path} db upgrade`"
        )
    raise SchemaTooNewError(
        f"{location.path} is at schema revision {revision!r}, which this version of "
        f"model-catalog does not know (it knows up to {HEAD_REVISION}): the database was made "
        "by a newer model-catalog; upgrade the tool, or if this revision is older, run "
        f"`catalog --db {location.path} db upgrade`"
    )
