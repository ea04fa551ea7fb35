"""The catalog on PostgreSQL: the same `CatalogConnection`, served by psycopg 3.

The package's SQL is written once, with `?` placeholders; here they become psycopg's `%s`.
Reads take a REPEATABLE READ, READ ONLY transaction, so a multi-query read sees one catalog.
Writes take a transaction-scoped advisory lock first, so two syncs from two machines queue
instead of interleaving, and announce their commit with NOTIFY: every connection LISTENs, so an
engine learns that the catalog changed from its own socket, without a query per answer.

psycopg is imported only here, only for PostgreSQL catalogs (the `postgres` extra).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from catalog.db.connection import CatalogConnection, Rows
from catalog.db.location import DatabaseLocation
from catalog.errors import (
    CatalogError,
    DatabaseBusyError,
    DatabaseError,
    IntegrityViolationError,
    UnsupportedDatabaseError,
)

# One lock for every writer of a catalog database (pg_advisory_xact_lock takes a bigint).
WRITE_LOCK_KEY = 0x6D6F64656C636174  # "modelcat"
CHANNEL = "catalog_changes"
LOCK_WAIT = "30s"  # as long as SQLite's busy timeout

# A `?` outside quotes becomes `%s`; a `%` becomes `%%` (psycopg reads `%` as a placeholder).
_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/|\?|%", re.S)


def to_pyformat(sql: str) -> str:
    """SQL written with `?` placeholders, in psycopg's `%s` style."""

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "?":
            return "%s"
        if token == "%":
            return "%%"
        return token

    return _TOKENS.sub(replace, sql)


def psycopg_module() -> Any:
    try:
        import psycopg
    except ImportError as error:
        raise UnsupportedDatabaseError(
            "a PostgreSQL catalog needs the psycopg driver, which is not installed",
            hint="pip install 'model-catalog[postgres]'",
        ) from error
    return psycopg


class PostgresConnection(CatalogConnection):
    """A catalog in a PostgreSQL database."""

    dialect = "postgresql"

    def __init__(self, raw: Any, location: DatabaseLocation) -> None:
        # Not CatalogConnection.__init__: nothing of sqlite3's applies.
        self.raw = raw
        self.location = location
        self._statements: dict[str, str] = {}
        self._changes_seen = 0
        self._own_commits = 0
        self._in_transaction = False

    def _sql(self, sql: str) -> str:
        translated = self._statements.get(sql)
        if translated is None:
            translated = self._statements[sql] = to_pyformat(sql)
        return translated

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Rows:
        try:
            cursor: Rows = self.raw.execute(self._sql(sql), tuple(params) if params else None)
        except self._errors().Error as error:
            raise self._failure(error) from error
        return cursor

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Rows:
        cursor = self.raw.cursor()
        try:
            cursor.executemany(self._sql(sql), [tuple(row) for row in rows])
        except self._errors().Error as error:
            raise self._failure(error) from error
        result: Rows = cursor
        return result

    @staticmethod
    def _errors() -> Any:
        return psycopg_module()

    def _failure(self, error: Exception) -> CatalogError:
        """A driver error as the project's: the connection lost, a constraint, another error."""
        errors = psycopg_module().errors
        if isinstance(error, errors.IntegrityError):
            return IntegrityViolationError(f"{self.location.display}: {error}".strip())
        if isinstance(error, errors.LockNotAvailable):
            return DatabaseBusyError(
                f"{self.location.display}: another process kept the catalog locked for longer "
                f"than {LOCK_WAIT}",
                hint="run the command again once that one has finished",
            )
        if isinstance(error, (errors.AdminShutdown, errors.OperationalError)):
            return DatabaseError(
                f"{self.location.display}: the connection to the server was lost ({error})",
                hint="check that the server is up and run the command again",
            )
        return DatabaseError(f"{self.location.display}: {str(error).strip()}")

    @property
    def in_transaction(self) -> bool:
        return self._in_transaction

    def data_version(self) -> tuple[int, int]:
        """Changes when any connection commits a write: their NOTIFY arrives on this
        connection's socket and is counted here without a round trip to the server."""
        if not self._in_transaction:
            pgconn = self.raw.pgconn
            pgconn.consume_input()
            while pgconn.notifies() is not None:
                self._changes_seen += 1
        return self._changes_seen, self._own_commits

    @contextmanager
    def read(self) -> Iterator[None]:
        if self._in_transaction:
            yield
            return
        self._begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            yield
        finally:
            self._end("COMMIT")

    @contextmanager
    def write(self, what: str = "the change", *, commit: bool = True) -> Iterator[None]:
        """One transaction under the catalog's write lock (waiting up to 30 s for it): commit
        (and NOTIFY every listening connection) or roll back."""
        self._begin("BEGIN")
        try:
            self.raw.execute(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'")
            self.raw.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK_KEY,))
            yield
        except BaseException as error:
            self._end("ROLLBACK")
            if isinstance(error, psycopg_module().Error):
                raise self._failure(error) from error
            raise
        if commit:
            try:
                self.raw.execute(f"NOTIFY {CHANNEL}")
                self._end("COMMIT")
            except psycopg_module().Error as error:
                self._end("ROLLBACK")
                raise self._failure(error) from error
            self._own_commits += 1
        else:
            self._end("ROLLBACK")

    def _begin(self, statement: str) -> None:
        try:
            self.raw.execute(statement)
        except psycopg_module().Error as error:
            raise self._failure(error) from error
        self._in_transaction = True

    def _end(self, statement: str) -> None:
        self._in_transaction = False
        if self.raw.closed:
            return
        try:
            self.raw.execute(statement)
        except psycopg_module().Error:
            if statement == "COMMIT":
                raise

    def reset_sequences(self, columns: Sequence[tuple[str, str]]) -> None:
        """After rows were inserted with their ids, each id sequence continues after them."""
        for table, column in columns:
            self.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                f"coalesce(max({column}), 0) + 1, false) FROM {table}"
            )

    def table_names(self) -> set[str]:
        return {
            row[0]
            for row in self.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
            )
        }

    def equals_ignoring_case(self, column: str) -> str:
        return f"lower({column}) = lower(?)"

    def foreign_key_violations(self) -> list[tuple[str, int | None, str, int]]:
        """None: PostgreSQL enforces foreign keys on every connection, always."""
        return []

    def foreign_key_columns(self, table: str, key_id: int) -> list[str]:
        return []

    def close(self) -> None:
        self.raw.close()


def connect_postgres(location: DatabaseLocation) -> PostgresConnection:
    """A connection in autocommit mode (transactions are begun explicitly), listening for the
    commits of other connections. Failures to connect say what to check."""
    psycopg = psycopg_module()
    assert location.conninfo is not None
    try:
        raw = psycopg.connect(location.conninfo, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as error:
        raise _connect_failure(location, error) from error
    raw.execute(f"LISTEN {CHANNEL}")
    return PostgresConnection(raw, location)


def _connect_failure(location: DatabaseLocation, error: Exception) -> DatabaseError:
    text = str(error).strip()
    lowered = text.lower()
    where = location.display
    if "password" in lowered or "authentication" in lowered:
        hint = "check the user and password in the URL (or ~/.pgpass)"
        return DatabaseError(
            f"{where}: the server refused the login: {_last_line(text)}", hint=hint
        )
    if "role" in lowered and "does not exist" in lowered:
        return DatabaseError(f"{where}: {_last_line(text)}", hint="check the user name in the URL")
    if "does not exist" in lowered:
        return DatabaseError(
            f"{where}: {_last_line(text)}",
            hint="create the database first (createdb, or CREATE DATABASE as its owner)",
        )
    return DatabaseError(
        f"{where}: cannot connect to the server: {_last_line(text)}",
        hint="check the host and port, and that the server is running and reachable",
    )


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else text
