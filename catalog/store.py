"""Reading the catalog with the standard library's sqlite3: lookups, listings, user queries.

Every lookup is one indexed query per table it needs (name primary keys, the indexes on
model_tags.tag_name, deployments.model_name/host_organization/tokenizer_name), so a `show`
costs the same on a catalog of ten models or ten thousand. The full name list is read only
on the error path, to suggest close names.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from catalog.database import DatabaseLocation
from catalog.entities import DeploymentInfo, ModelInfo, TagInfo, TokenizerInfo
from catalog.errors import (
    DatabaseError,
    ReadOnlyQueryError,
    UnknownDeploymentError,
    UnknownModelError,
    UnknownTagError,
    UnknownTokenizerError,
)

_MODEL_COLUMNS = (
    "name",
    "creator_prefix",
    "engine",
    "creator_organization_name",
    "display_name",
    "description",
    "access",
    "release_date",
    "num_parameters",
    "is_placeholder",
    "source_file",
    "source_line",
    "position",
)
_DEPLOYMENT_COLUMNS = (
    "name",
    "model_name",
    "host_organization",
    "engine",
    "tokenizer_name",
    "client_class",
    "client_args",
    "window_service_class",
    "window_service_args",
    "max_sequence_length",
    "max_request_length",
    "max_sequence_and_generated_tokens_length",
    "deprecated",
    "source_file",
    "source_line",
    "position",
)
_TOKENIZER_COLUMNS = (
    "name",
    "class_name",
    "args",
    "end_of_text_token",
    "prefix_token",
    "is_placeholder",
    "source_file",
    "source_line",
    "position",
)


def _select(columns: Sequence[str], table: str, alias: str) -> str:
    return "SELECT " + ", ".join(f"{alias}.{c}" for c in columns) + f" FROM {table} AS {alias}"


_DAMAGED = (
    "the database file may be damaged (`catalog query 'PRAGMA integrity_check'` tells): restore "
    "it from a backup, or run `catalog sync` on a new --db to build the catalog again"
)


def _json_value(text: Any) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except (ValueError, TypeError) as error:
        raise DatabaseError(
            f"a JSON column holds {_preview(text)}, not JSON; {_DAMAGED}"
        ) from error


def _date(text: Any) -> dt.date | None:
    if text is None:
        return None
    if isinstance(text, dt.date):
        return text
    try:
        return dt.date.fromisoformat(str(text)[:10])
    except ValueError as error:
        raise DatabaseError(
            f"a date column holds {_preview(text)}, not a date; {_DAMAGED}"
        ) from error


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _model(row: Sequence[Any], tags: Iterable[str], deployments: Iterable[str]) -> ModelInfo:
    values = dict(zip(_MODEL_COLUMNS, row, strict=True))
    return ModelInfo(
        name=values["name"],
        creator_prefix=values["creator_prefix"],
        engine=values["engine"],
        creator_organization_name=values["creator_organization_name"],
        display_name=values["display_name"],
        description=values["description"],
        access=values["access"],
        release_date=_date(values["release_date"]),
        num_parameters=values["num_parameters"],
        is_placeholder=bool(values["is_placeholder"]),
        tags=tuple(tags),
        deployments=tuple(deployments),
        source_file=values["source_file"],
        source_line=values["source_line"],
        position=values["position"],
    )


def _deployment(row: Sequence[Any]) -> DeploymentInfo:
    values = dict(zip(_DEPLOYMENT_COLUMNS, row, strict=True))
    values["client_args"] = _json_value(values["client_args"])
    values["window_service_args"] = _json_value(values["window_service_args"])
    values["deprecated"] = bool(values["deprecated"])
    return DeploymentInfo(**values)


def _tokenizer(row: Sequence[Any], deployments: Iterable[str]) -> TokenizerInfo:
    values = dict(zip(_TOKENIZER_COLUMNS, row, strict=True))
    values["args"] = _json_value(values["args"])
    values["is_placeholder"] = bool(values["is_placeholder"])
    return TokenizerInfo(**values, deployments=tuple(deployments))


def _names(connection: sqlite3.Connection, table: str) -> list[str]:
    """Every name of `table` (a fixed table name), for suggestions on the error path only."""
    return [row[0] for row in connection.execute(f"SELECT name FROM {table} ORDER BY position")]


def _column(connection: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Any]:
    return [row[0] for row in connection.execute(sql, params)]


@contextmanager
def read_snapshot(connection: sqlite3.Connection) -> Iterator[None]:
    """One read transaction around a multi-query read, so a concurrent sync is seen whole.

    Inside a caller's transaction the caller's view is already consistent; nothing to do.
    """
    if connection.in_transaction:
        yield
        return
    connection.execute("BEGIN")
    try:
        yield
    finally:
        if connection.in_transaction:
            connection.execute("COMMIT")


# Single lookups --------------------------------------------------------------------------------


def get_model(connection: sqlite3.Connection, name: str) -> ModelInfo:
    with read_snapshot(connection):
        return _get_model(connection, name)


def _get_model(connection: sqlite3.Connection, name: str) -> ModelInfo:
    row = connection.execute(_select(_MODEL_COLUMNS, "models", "m") + " WHERE m.name = ?", (name,))
    found = row.fetchone()
    if found is None:
        raise UnknownModelError(name, _names(connection, "models"))
    tags = _column(
        connection,
        "SELECT tag_name FROM model_tags WHERE model_name = ? ORDER BY position",
        (name,),
    )
    deployments = _column(
        connection, "SELECT name FROM deployments WHERE model_name = ? ORDER BY position", (name,)
    )
    return _model(found, tags, deployments)


def get_deployment(connection: sqlite3.Connection, name: str) -> DeploymentInfo:
    cursor = connection.execute(
        _select(_DEPLOYMENT_COLUMNS, "deployments", "d") + " WHERE d.name = ?", (name,)
    )
    found = cursor.fetchone()
    if found is None:
        raise UnknownDeploymentError(name, _names(connection, "deployments"))
    return _deployment(found)


def get_tokenizer(connection: sqlite3.Connection, name: str) -> TokenizerInfo:
    with read_snapshot(connection):
        return _get_tokenizer(connection, name)


def _get_tokenizer(connection: sqlite3.Connection, name: str) -> TokenizerInfo:
    cursor = connection.execute(
        _select(_TOKENIZER_COLUMNS, "tokenizers", "t") + " WHERE t.name = ?", (name,)
    )
    found = cursor.fetchone()
    if found is None:
        raise UnknownTokenizerError(name, _names(connection, "tokenizers"))
    deployments = _column(
        connection,
        "SELECT name FROM deployments WHERE tokenizer_name = ? ORDER BY position",
        (name,),
    )
    return _tokenizer(found, deployments)


# Listings ---------------------------------------------------------------------------------------


def _require_tag(connection: sqlite3.Connection, tag: str) -> None:
    if connection.execute("SELECT 1 FROM tags WHERE name = ?", (tag,)).fetchone() is None:
        known = [row[0] for row in connection.execute("SELECT name FROM tags ORDER BY name")]
        raise UnknownTagError(tag, known)


def _require_name(connection: sqlite3.Connection, table: str, name: str) -> None:
    if connection.execute(f"SELECT 1 FROM {table} WHERE name = ?", (name,)).fetchone() is None:
        error = UnknownModelError if table == "models" else UnknownTokenizerError
        raise error(name, _names(connection, table))


def list_models(
    connection: sqlite3.Connection,
    *,
    tag: str | None = None,
    creator: str | None = None,
    host: str | None = None,
) -> list[ModelInfo]:
    """Models in catalog order; filters combine with AND.

    `creator` matches the name prefix (`meta`) or, ignoring case, the creator organization
    name (`Meta`). An unknown tag raises UnknownTagError (a typo should not look like "none").
    """
    conditions: list[str] = []
    params: list[Any] = []
    if tag is not None:
        _require_tag(connection, tag)
        conditions.append("m.name IN (SELECT model_name FROM model_tags WHERE tag_name = ?)")
        params.append(tag)
    if creator is not None:
        conditions.append(
            "(m.creator_prefix = ? OR m.creator_organization_name = ? COLLATE NOCASE)"
        )
        params += [creator, creator]
    if host is not None:
        conditions.append(
            "m.name IN (SELECT model_name FROM deployments WHERE host_organization = ?)"
        )
        params.append(host)
    where = " WHERE " + " AND ".join(conditions) if conditions else ""
    with read_snapshot(connection):
        return _models_where(connection, where, params)


def _models_where(connection: sqlite3.Connection, where: str, params: list[Any]) -> list[ModelInfo]:
    """Models matching `where` (fixed SQL text; values in `params`) with tags and deployments."""
    selected = f"SELECT m.name FROM models AS m{where}"
    rows = connection.execute(
        _select(_MODEL_COLUMNS, "models", "m") + where + " ORDER BY m.position", params
    ).fetchall()
    tags: dict[str, list[str]] = {}
    for model_name, tag_name in connection.execute(
        f"SELECT model_name, tag_name FROM model_tags WHERE model_name IN ({selected}) "
        "ORDER BY model_name, position",
        params,
    ):
        tags.setdefault(model_name, []).append(tag_name)
    deployments: dict[str, list[str]] = {}
    for model_name, deployment_name in connection.execute(
        f"SELECT model_name, name FROM deployments WHERE model_name IN ({selected}) "
        "ORDER BY position",
        params,
    ):
        deployments.setdefault(model_name, []).append(deployment_name)
    return [_model(row, tags.get(row[0], ()), deployments.get(row[0], ())) for row in rows]


def list_deployments(
    connection: sqlite3.Connection,
    *,
    model: str | None = None,
    host: str | None = None,
    tokenizer: str | None = None,
    include_deprecated: bool = True,
) -> list[DeploymentInfo]:
    """Deployments in catalog order; an unknown model or tokenizer raises with suggestions."""
    conditions: list[str] = []
    params: list[Any] = []
    if model is not None:
        _require_name(connection, "models", model)
        conditions.append("d.model_name = ?")
        params.append(model)
    if host is not None:
        conditions.append("d.host_organization = ?")
        params.append(host)
    if tokenizer is not None:
        _require_name(connection, "tokenizers", tokenizer)
        conditions.append("d.tokenizer_name = ?")
        params.append(tokenizer)
    if not include_deprecated:
        conditions.append("d.deprecated = 0")
    where = " WHERE " + " AND ".join(conditions) if conditions else ""
    cursor = connection.execute(
        _select(_DEPLOYMENT_COLUMNS, "deployments", "d") + where + " ORDER BY d.position", params
    )
    return [_deployment(row) for row in cursor]


def list_tokenizers(connection: sqlite3.Connection) -> list[TokenizerInfo]:
    with read_snapshot(connection):
        return _list_tokenizers(connection)


def _list_tokenizers(connection: sqlite3.Connection) -> list[TokenizerInfo]:
    """Tokenizers in catalog order, each with the deployments that use it."""
    users: dict[str, list[str]] = {}
    for tokenizer_name, deployment_name in connection.execute(
        "SELECT tokenizer_name, name FROM deployments WHERE tokenizer_name IS NOT NULL "
        "ORDER BY position"
    ):
        users.setdefault(tokenizer_name, []).append(deployment_name)
    cursor = connection.execute(
        _select(_TOKENIZER_COLUMNS, "tokenizers", "t") + " ORDER BY t.position"
    )
    return [_tokenizer(row, users.get(row[0], ())) for row in cursor]


def list_tags(connection: sqlite3.Connection) -> list[TagInfo]:
    """Every tag by name, with how many models carry it."""
    cursor = connection.execute(
        "SELECT t.name, count(mt.model_name) FROM tags AS t "
        "LEFT JOIN model_tags AS mt ON mt.tag_name = t.name GROUP BY t.name ORDER BY t.name"
    )
    return [TagInfo(name, count) for name, count in cursor]


# User queries -----------------------------------------------------------------------------------

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


def _only_comments(text: str) -> bool:
    """True if `text` holds nothing but whitespace, semicolons and SQL comments."""
    rest = text
    while True:
        rest = rest.lstrip().lstrip(";").lstrip()
        if rest.startswith("--"):
            newline = rest.find("\n")
            rest = "" if newline < 0 else rest[newline + 1 :]
        elif rest.startswith("/*"):
            end = rest.find("*/", 2)
            rest = "" if end < 0 else rest[end + 2 :]
        else:
            return rest == ""


# What a reading statement starts with. Anything else that SQLite runs without asking the
# authorizer (DROP TABLE IF EXISTS of a table that is not there) is refused all the same.
_READING_KEYWORDS = frozenset({"select", "with", "values", "pragma", "explain"})


def _first_keyword(text: str) -> str:
    """The first word of a statement, after whitespace and comments."""
    rest = text
    while True:
        rest = rest.lstrip()
        if rest.startswith("--"):
            newline = rest.find("\n")
            rest = "" if newline < 0 else rest[newline + 1 :]
        elif rest.startswith("/*"):
            end = rest.find("*/", 2)
            rest = "" if end < 0 else rest[end + 2 :]
        else:
            break
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
    _check_single_statement(query)
    bound: Sequence[Any] | dict[str, Any] = () if params is None else params
    connection = _open_readonly(location)
    authorizer = _ReadOnlyAuthorizer()
    try:
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
    finally:
        connection.close()


def _is_write_refusal(error: Exception) -> bool:
    text = str(error).lower()
    markers = ("readonly", "read-only", "one statement at a time", "may not be modified")
    return any(marker in text for marker in markers)
