"""One user statement run so that it can only read: `catalog query` and `Catalog.sql`.

SQLite's guards, four of them, each enough alone: the file is opened `mode=ro`, `query_only`
is on, an authorizer denies every action but reading (SQLite asks it about everything a
statement does, also inside a CTE, a view or VACUUM INTO), and a second statement is refused
before SQLite sees any. Values go in parameters, never into the SQL text.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from catalog.db.location import DatabaseLocation
from catalog.errors import DatabaseError, ReadOnlyQueryError

_ALLOWED_ACTIONS = frozenset(
    {
        sqlite3.SQLITE_SELECT,
        sqlite3.SQLITE_READ,
        sqlite3.SQLITE_FUNCTION,
        getattr(sqlite3, "SQLITE_RECURSIVE", 33),
    }
)
_DENIED_FUNCTIONS = frozenset({"load_extension", "fts3_tokenizer"})
# Pragmas that only report; they may name a table or index.
_INTROSPECTION_PRAGMAS = frozenset(
    {
        "table_info",
        "table_xinfo",
        "table_list",
        "index_list",
        "index_info",
        "index_xinfo",
        "foreign_key_list",
        "foreign_key_check",
        "integrity_check",
        "quick_check",
        "collation_list",
        "function_list",
        "module_list",
        "pragma_list",
        "compile_options",
        "database_list",
    }
)
# Pragmas that set a value when given one: allowed only to read it.
_VALUE_PRAGMAS = frozenset(
    {
        "user_version",
        "schema_version",
        "application_id",
        "foreign_keys",
        "journal_mode",
        "page_size",
        "page_count",
        "freelist_count",
        "encoding",
        "data_version",
        "query_only",
        "auto_vacuum",
    }
)
_READ_ONLY_HINT = (
    "only reading is allowed: give one SELECT (or WITH ... SELECT, or a reporting PRAGMA "
    "such as table_info)"
)
_SCHEMA_TABLES = frozenset({"sqlite_master", "sqlite_temp_master"})
_SCHEMA_CHANGES = {
    sqlite3.SQLITE_INSERT: "create a table, index, view or trigger",
    sqlite3.SQLITE_DELETE: "drop a table, index, view or trigger",
    sqlite3.SQLITE_UPDATE: (
        "change the schema (table-valued pragmas such as pragma_table_info() count as that: "
        "write PRAGMA table_info(name) instead)"
    ),
}
_ROW_VERBS = {
    sqlite3.SQLITE_INSERT: "insert into table",
    sqlite3.SQLITE_UPDATE: "update table",
    sqlite3.SQLITE_DELETE: "delete from table",
}


def _action_name(action: int) -> str:
    for name in dir(sqlite3):
        if (
            name.startswith(("SQLITE_CREATE_", "SQLITE_DROP_", "SQLITE_ALTER_"))
            or name in ("SQLITE_REINDEX", "SQLITE_ANALYZE", "SQLITE_DETACH")
        ) and getattr(sqlite3, name) == action:
            return name.removeprefix("SQLITE_").lower().replace("_", " ")
    return f"perform action {action}"


def _describe(action: int, arg1: str | None, arg2: str | None) -> str:
    """What a refused action would have done, in words a user recognises from their SQL."""
    if action in _ROW_VERBS and arg1 in _SCHEMA_TABLES:
        # SQLite asks about the schema table before the statement's own action.
        return _SCHEMA_CHANGES[action]
    if action in _ROW_VERBS:
        return f"{_ROW_VERBS[action]} {arg1}"
    if action == sqlite3.SQLITE_ATTACH:
        return f"attach the database file {arg1!r}"
    if action == sqlite3.SQLITE_PRAGMA:
        return f"set PRAGMA {arg1} = {arg2}" if arg2 is not None else f"run PRAGMA {arg1}"
    if action == sqlite3.SQLITE_FUNCTION:
        return f"call {arg2}()"
    if action == sqlite3.SQLITE_ALTER_TABLE:
        return f"alter table {arg2}"
    if action == sqlite3.SQLITE_TRANSACTION:
        return f"{(arg1 or 'begin').lower()} a transaction"
    if action == sqlite3.SQLITE_SAVEPOINT:
        return f"{(arg1 or '').lower()} savepoint {arg2}".strip()
    return f"{_action_name(action)} {arg1 or ''}".strip()


class _ReadOnlyAuthorizer:
    """SQLite's authorizer callback: permits reading and nothing else; remembers the refusal.

    SQLite asks it about every action while preparing a statement, including the ones hidden
    in a CTE or a view and the ATTACH that VACUUM INTO performs, so no spelling of a write
    gets past it.
    """

    def __init__(self) -> None:
        self.refused: str | None = None

    def __call__(
        self, action: int, arg1: str | None, arg2: str | None, _db: str | None, _src: str | None
    ) -> int:
        if self._allows(action, arg1, arg2):
            return sqlite3.SQLITE_OK
        if self.refused is None:
            self.refused = _describe(action, arg1, arg2)
        return sqlite3.SQLITE_DENY

    @staticmethod
    def _allows(action: int, arg1: str | None, arg2: str | None) -> bool:
        if action == sqlite3.SQLITE_FUNCTION:
            return (arg2 or "").lower() not in _DENIED_FUNCTIONS
        if action == sqlite3.SQLITE_PRAGMA:
            name = (arg1 or "").lower()
            return name in _INTROSPECTION_PRAGMAS or (name in _VALUE_PRAGMAS and arg2 is None)
        return action in _ALLOWED_ACTIONS


def _after_comments(text: str, *, semicolons: bool = False) -> str:
    """`text` from its first token on: whitespace and SQL comments (and semicolons) skipped."""
    rest = text
    while True:
        rest = rest.lstrip()
        if semicolons:
            rest = rest.lstrip(";").lstrip()
        if rest.startswith("--"):
            newline = rest.find("\n")
            rest = "" if newline < 0 else rest[newline + 1 :]
        elif rest.startswith("/*"):
            end = rest.find("*/", 2)
            rest = "" if end < 0 else rest[end + 2 :]
        else:
            return rest


def _only_comments(text: str) -> bool:
    """True if `text` holds nothing but whitespace, semicolons and SQL comments."""
    return _after_comments(text, semicolons=True) == ""


# What a reading statement starts with. Anything else that SQLite runs without asking the
# authorizer (DROP TABLE IF EXISTS of a table that is not there) is refused all the same.
_READING_KEYWORDS = frozenset({"select", "with", "values", "pragma", "explain"})


def _first_keyword(text: str) -> str:
    """The first word of a statement, after whitespace and comments."""
    rest = _after_comments(text)
    word = ""
    for char in rest:
        if not char.isalpha():
            break
        word += char
    return word.lower()


def _check_single_statement(query: str) -> None:
    """Refuse a second statement before SQLite sees any: `SELECT 1; DROP TABLE models`."""
    if _only_comments(query):
        raise ReadOnlyQueryError(f"the query is empty; {_READ_ONLY_HINT}")
    for index, char in enumerate(query):
        if char == ";" and sqlite3.complete_statement(query[: index + 1]):
            if not _only_comments(query[index + 1 :]):
                raise ReadOnlyQueryError(
                    f"refused: the query holds more than one statement; {_READ_ONLY_HINT}"
                )
            return


def _open_readonly(location: DatabaseLocation) -> sqlite3.Connection:
    if not location.path.is_file():
        raise DatabaseError(f"{location.path}: no such catalog database")
    uri = location.path.as_uri() + "?mode=ro"
    try:
        connection = sqlite3.connect(uri, uri=True, isolation_level=None)
        connection.execute("PRAGMA query_only = ON")
    except sqlite3.DatabaseError as error:
        raise DatabaseError(f"{location.path}: cannot open read-only: {error}") from error
    if hasattr(connection, "enable_load_extension"):
        connection.enable_load_extension(False)
    return connection


def run_readonly_query(
    location: DatabaseLocation,
    query: str,
    params: Sequence[Any] | dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Run one user statement that can only read; rows as dicts keyed by column name.

    Four independent locks: the file is opened `mode=ro`, `query_only` is on, an authorizer
    denies every action but reading, and a second statement is refused outright. Values go
    in `params` (`?` or `:name` placeholders), never into the SQL text.
    """
    if location.dialect != "sqlite":
        from catalog.db import readonly_postgres

        return readonly_postgres.run_readonly_query(location, query, params)
    _check_single_statement(query)
    connection = _open_readonly(location)
    try:
        return _run_guarded(connection, query, params)
    finally:
        connection.close()


def run_readonly_on(
    connection: sqlite3.Connection,
    query: str,
    params: Sequence[Any] | dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The same, on a connection of the caller's (an in-memory catalog: the catalog as of an
    earlier event): `query_only` and the authorizer for the statement, then as before."""
    _check_single_statement(query)
    connection.execute("PRAGMA query_only = ON")
    try:
        return _run_guarded(connection, query, params)
    finally:
        connection.set_authorizer(None)
        connection.execute("PRAGMA query_only = OFF")


def _connect_virtual_tables(connection: sqlite3.Connection) -> None:
    """Connect the catalog's virtual tables (the search index) before the authorizer is on.

    Connecting one declares its columns, which SQLite reports to the authorizer as updates of
    sqlite_master, so a search (`... WHERE models_fts MATCH 'llama'`) would be refused as a
    schema change. Once connected, a table stays so for the connection, and the user's
    statement is then asked about its reads only."""
    virtual = connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%'"
    ).fetchall()
    for (name,) in virtual:
        quoted = name.replace('"', '""')
        connection.execute(f'SELECT 1 FROM "{quoted}" LIMIT 0').fetchall()


def _run_guarded(
    connection: sqlite3.Connection,
    query: str,
    params: Sequence[Any] | dict[str, Any] | None,
) -> list[dict[str, Any]]:
    bound: Sequence[Any] | dict[str, Any] = () if params is None else params
    _connect_virtual_tables(connection)
    authorizer = _ReadOnlyAuthorizer()
    connection.set_authorizer(authorizer)
    try:
        cursor = connection.execute(query, bound)
        keyword = _first_keyword(query)
        if keyword not in _READING_KEYWORDS:
            raise ReadOnlyQueryError(
                f"refused: {keyword.upper() or 'the statement'} is not a reading statement; "
                f"{_READ_ONLY_HINT}"
            )
        columns = [column[0] for column in cursor.description or ()]
        return [dict(zip(columns, row, strict=True)) for row in cursor]
    except (sqlite3.DatabaseError, sqlite3.ProgrammingError) as error:
        if authorizer.refused is not None:
            raise ReadOnlyQueryError(
                f"refused: the query would {authorizer.refused}; {_READ_ONLY_HINT}"
            ) from error
        if _is_write_refusal(error):
            raise ReadOnlyQueryError(f"refused: {error}; {_READ_ONLY_HINT}") from error
        raise DatabaseError(f"the query failed: {error}") from error


def _is_write_refusal(error: Exception) -> bool:
    text = str(error).lower()
    markers = ("readonly", "read-only", "one statement at a time", "may not be modified")
    return any(marker in text for marker in markers)
