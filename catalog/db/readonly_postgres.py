"""One user statement run so that it can only read, on a PostgreSQL catalog.

A READ ONLY transaction refuses every write, also inside functions, and a statement timeout
bounds a runaway query. What a read-only transaction still lets a privileged role do is refused
before the server sees it: anything but one reading statement (SET ROLE, COPY ... TO PROGRAM,
transaction control, a second statement), and the functions that reach outside the database or
run SQL of their own (pg_read_file, lo_export, dblink, query_to_xml, ...). The statement is sent
prepared, and the server refuses a second command in a prepared statement. Readers should still
connect as a role that may only SELECT: README, "A team catalog on PostgreSQL".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from catalog.db.location import DatabaseLocation
from catalog.db.postgres import connect_postgres, psycopg_module, to_pyformat
from catalog.errors import DatabaseError, ReadOnlyQueryError

STATEMENT_TIMEOUT = "30s"
_READING = frozenset({"select", "with", "values", "table", "explain", "show"})
_HINT = "only reading is allowed: give one SELECT (or WITH ... SELECT, VALUES, TABLE, EXPLAIN)"
# Functions that act outside the database, run SQL text of their own, or change the session.
_REFUSED_FUNCTIONS = frozenset(
    {
        "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "pg_ls_logdir",
        "pg_ls_waldir", "pg_ls_tmpdir", "pg_ls_archive_statusdir",
        "lo_import", "lo_export", "lo_from_bytea", "lo_create", "lo_creat", "lo_open",
        "lowrite", "lo_put", "lo_truncate", "lo_unlink", "lo_get",
        "dblink", "dblink_exec", "dblink_connect", "dblink_connect_u", "dblink_send_query",
        "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema", "cursor_to_xml",
        "table_to_xml", "database_to_xml", "schema_to_xml",
        "set_config", "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf",
        "pg_rotate_logfile", "pg_switch_wal", "pg_promote", "pg_notify",
        "pg_advisory_lock", "pg_advisory_xact_lock", "pg_advisory_lock_shared",
        "pg_advisory_xact_lock_shared", "pg_try_advisory_lock", "pg_try_advisory_xact_lock",
        "pg_try_advisory_lock_shared", "pg_try_advisory_xact_lock_shared",
        "txid_current", "pg_current_xact_id", "pg_sleep", "pg_sleep_for", "pg_sleep_until",
    }
)  # fmt: skip
_TOKEN = re.compile(
    r"(?P<string>'(?:[^']|'')*'|E'(?:[^'\\]|\\.|'')*'|\$(?P<tag>[A-Za-z_]*)\$.*?\$(?P=tag)\$)"
    r"|(?P<comment>--[^\n]*|/\*.*?\*/)"
    r"|(?P<quoted>\"(?:[^\"]|\"\")*\")"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_$]*)"
    r"|(?P<punct>[;(.])"
    r"|(?P<other>\S)",
    re.S,
)


def _tokens(query: str) -> list[tuple[str, str]]:
    """(kind, text) of each token that matters: words (lower case, quotes removed), `;`, `(`."""
    found = []
    for match in _TOKEN.finditer(query):
        kind = match.lastgroup
        if kind in ("string", "comment", "other"):
            continue
        text = match.group(0)
        if kind == "quoted":
            found.append(("word", text[1:-1].replace('""', '"')))
        elif kind == "word":
            found.append(("word", text.lower()))
        elif kind == "punct":
            found.append(("punct", text))
    return found


def check_statement(query: str) -> None:
    """Refuse, before the server sees it, what a read-only transaction would not stop."""
    tokens = _tokens(query)
    words = [text for kind, text in tokens if kind == "word"]
    if not words:
        raise ReadOnlyQueryError(f"the query is empty; {_HINT}")
    statements = [i for i, token in enumerate(tokens) if token == ("punct", ";")]
    if statements and any(tokens[i + 1 :] for i in statements[:1]):
        raise ReadOnlyQueryError(f"refused: the query holds more than one statement; {_HINT}")
    if words[0] not in _READING:
        raise ReadOnlyQueryError(f"refused: {words[0].upper()} is not a reading statement; {_HINT}")
    for index, (kind, text) in enumerate(tokens[:-1]):
        if kind == "word" and tokens[index + 1] == ("punct", "(") and text in _REFUSED_FUNCTIONS:
            raise ReadOnlyQueryError(f"refused: the query would call {text}(); {_HINT}")


def run_readonly_query(
    location: DatabaseLocation,
    query: str,
    params: Sequence[Any] | dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Rows as dicts keyed by column name; `?` placeholders, values in `params`."""
    check_statement(query)
    if isinstance(params, dict):
        raise ReadOnlyQueryError("give the values of a PostgreSQL query in order, for `?` marks")
    connection = connect_postgres(location)
    raw = connection.raw
    psycopg = psycopg_module()
    try:
        raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        raw.execute(f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'")
        try:
            cursor = raw.execute(to_pyformat(query), tuple(params or ()), prepare=True)
            columns = [column.name for column in cursor.description or ()]
            return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
        except psycopg.errors.ReadOnlySqlTransaction as error:
            raise ReadOnlyQueryError(f"refused: {_first_line(error)}; {_HINT}") from error
        except psycopg.errors.QueryCanceled as error:
            raise DatabaseError(
                f"the query ran longer than {STATEMENT_TIMEOUT} and was stopped"
            ) from error
        except psycopg.Error as error:
            if "multiple commands" in str(error):
                raise ReadOnlyQueryError(
                    f"refused: the query holds more than one statement; {_HINT}"
                ) from error
            raise DatabaseError(f"the query failed: {_first_line(error)}") from error
    finally:
        if not raw.closed:
            raw.execute("ROLLBACK")
        connection.close()


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
