"""Full-text search over models, deployments and tokenizers: `catalog search` and the search box
of `catalog serve`.

On SQLite the index is three FTS5 tables in the layout sqlite-utils' `enable_fts` makes
(`models_fts` over `models`, external content keyed by rowid, porter stemming), so Datasette
finds it by itself and `sqlite-utils search catalog.db models llama` works too. Revision
0005_search creates them with the triggers that keep them in step with every write: a sync
updates the index in its own transaction, so a search never sees half a sync.

All the search SQL of the package is here. On PostgreSQL the same search is made with its own
full-text search: each row's words as a weighted `tsvector` (the name weighing most), built in
the query itself. A catalog has a few thousand rows, so a search reads them all in milliseconds
and no index has to be kept in step. Both backends split text into words at every character
that is not a letter or digit, read the words of one query word as a phrase, require every query
word and take the last as a prefix, and stem English words without dropping any (PostgreSQL's
configuration `catalog_search`, made by revision 0006_portable_views, is English Snowball with
no stop words, as FTS5's porter tokenizer is). Scores differ in scale between the two.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from catalog.db.connection import CatalogConnection
from catalog.db.records import Record
from catalog.errors import CatalogError

# What each index holds, in the column order of its FTS5 table, with the weight bm25() gives a
# match in that column: a match in a name says more than one in a description.
INDEXED_COLUMNS: Mapping[str, tuple[tuple[str, float], ...]] = MappingProxyType(
    {
        "models": (
            ("name", 10.0),
            ("display_name", 5.0),
            ("description", 1.0),
            ("creator_organization_name", 3.0),
        ),
        "deployments": (("name", 10.0), ("model_name", 3.0), ("host_organization", 3.0)),
        "tokenizers": (("name", 10.0), ("class_name", 1.0)),
    }
)
KINDS: Mapping[str, str] = MappingProxyType(
    {"model": "models", "deployment": "deployments", "tokenizer": "tokenizers"}
)
"""The kinds of result, and the table each comes from."""
# How much a match of each kind counts against the others: people search for models first,
# then where they run. (A tokenizer's short entry would otherwise outrank every model.)
_KIND_WEIGHTS = {"model": 3.0, "deployment": 2.0, "tokenizer": 1.0}

# What each kind shows beside its name.
_DETAIL_COLUMN = {"models": "display_name", "deployments": "model_name", "tokenizers": "class_name"}
# The tables FTS5 makes for each index (its "shadow tables"), beside the index itself; an
# external-content index has no `_content` of its own.
_SHADOW_SUFFIXES = ("_data", "_idx", "_docsize", "_config")

SEARCH_TABLES: frozenset[str] = frozenset(
    f"{table}_fts{suffix}" for table in INDEXED_COLUMNS for suffix in ("", *_SHADOW_SUFFIXES)
)
"""Every table of the search index. Not part of the declared schema (catalog.db.schema): the
ORM-against-migrations comparison and Alembic's autogenerate leave them out by this list."""

SEARCH_TRIGGERS: frozenset[str] = frozenset(
    f"{table}{suffix}" for table in INDEXED_COLUMNS for suffix in ("_ai", "_ad", "_au")
)


@contextlib.contextmanager
def rebuilt_once_after(connection: CatalogConnection) -> Iterator[None]:
    """Inside the block, writes leave the SQLite search index alone; after it, the index is
    rebuilt once from the tables. For thousands of writes in a row (an as-of copy undoing every
    later change), where the triggers would update the index at each one, most of the time.
    Call it inside a write transaction; on PostgreSQL there is no index to keep."""
    if connection.dialect != "sqlite":
        yield
        return
    names = sorted(SEARCH_TRIGGERS)
    triggers = connection.execute(
        "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger' AND name IN "
        f"({', '.join('?' for _ in names)}) ORDER BY name",
        names,
    ).fetchall()
    for name, _, _ in triggers:
        connection.execute(f'DROP TRIGGER "{name}"')
    yield
    for _, _, sql in triggers:
        connection.execute(sql)
    for table in sorted({table for _, table, _ in triggers}):
        connection.execute(f"INSERT INTO {table}_fts ({table}_fts) VALUES ('rebuild')")


def is_search_table(name: str) -> bool:
    """True for the FTS5 tables of the search index and their shadow tables."""
    return name in SEARCH_TABLES


@dataclass(frozen=True)
class SearchHit(Record):
    """One model, deployment or tokenizer that matches, best first."""

    kind: str
    """model, deployment or tokenizer."""
    name: str
    detail: str | None
    """A model's display name, a deployment's model, a tokenizer's class."""
    rank: float
    """The match's score, weighted by kind: lower is better (SQLite's bm25; on PostgreSQL
    minus ts_rank)."""


def fts_query(text: str) -> str:
    """The words of `text` as an FTS5 query that cannot be a syntax error: each word quoted
    (so `-`, `:`, `*` and quotes are only characters), all words required, the last one also
    as a prefix (`llam` finds llama)."""
    words = text.replace("\x00", " ").split()  # FTS5 would read a NUL as the query's end
    if not words:
        raise CatalogError(
            "nothing to search for", hint='give one or more words: catalog search "llama 3"'
        )
    quoted = ['"' + word.replace('"', '""') + '"' for word in words]
    quoted[-1] += "*"
    return " ".join(quoted)


def search(
    connection: CatalogConnection,
    text: str,
    *,
    kinds: Sequence[str] | None = None,
    limit: int = 20,
) -> list[SearchHit]:
    """Models, deployments and tokenizers matching every word of `text`, best first."""
    if limit < 1:
        raise CatalogError(f"the limit must be at least 1, not {limit}")
    chosen = list(KINDS) if not kinds else list(dict.fromkeys(kinds))
    unknown = [kind for kind in chosen if kind not in KINDS]
    if unknown:
        raise CatalogError(
            f"unknown kind {unknown[0]!r}", hint="kinds are " + ", ".join(sorted(KINDS))
        )
    if connection.dialect == "postgresql":
        query = tsquery(text)
        if query is None:  # only separators: nothing any row's words can match
            return []
        sql, parameters = _postgresql_sql(chosen, query)
    else:
        match = fts_query(text)
        sql, parameters = _sqlite_sql(chosen, match)
    with connection.read():
        rows = connection.execute(sql, [*parameters, limit]).fetchall()
    return [SearchHit(kind, name, detail, float(rank)) for kind, name, detail, rank, _ in rows]


def _sqlite_sql(kinds: list[str], match: str) -> tuple[str, list[str]]:
    selects = []
    for kind in kinds:
        table = KINDS[kind]
        weights = ", ".join(str(weight) for _, weight in INDEXED_COLUMNS[table])
        selects.append(
            f"SELECT '{kind}' AS kind, t.name AS name, t.{_DETAIL_COLUMN[table]} AS detail, "
            f"bm25({table}_fts, {weights}) * {_KIND_WEIGHTS[kind]} AS rank, "
            f"t.position AS position "
            f"FROM {table}_fts JOIN {table} AS t ON t.rowid = {table}_fts.rowid "
            f"WHERE {table}_fts MATCH ?"
        )
    sql = " UNION ALL ".join(selects) + " ORDER BY rank, position LIMIT ?"
    return sql, [match] * len(kinds)


# PostgreSQL's four weight classes, most telling first, and what ts_rank gives each (its array
# runs D, C, B, A). The columns' weights above map to these by their order.
_CLASSES = ("A", "B", "C", "D")
_CLASS_WEIGHTS = "'{0.1, 0.3, 0.5, 1.0}'::float4[]"


def _words(text: str) -> list[str]:
    """The words of `text` as both backends index them: runs of letters and digits."""
    return "".join(c if c.isalnum() else " " for c in text).split()


def tsquery(text: str) -> str | None:
    """The words of `text` as a PostgreSQL tsquery that cannot be a syntax error: only letters
    and digits pass, the parts of one query word (`llama-3.1`) must follow each other, every
    query word is required and the last part is also a prefix; None if no word is left."""
    if not text.replace("\x00", " ").split():
        raise CatalogError(
            "nothing to search for", hint='give one or more words: catalog search "llama 3"'
        )
    phrases = [" <-> ".join(parts) for parts in map(_words, text.split()) if parts]
    if not phrases:
        return None
    return " & ".join(phrases) + ":*"


def _document(table: str) -> str:
    """A row's words as a weighted tsvector, its columns in the order of INDEXED_COLUMNS."""
    columns = INDEXED_COLUMNS[table]
    ordered = sorted({weight for _, weight in columns}, reverse=True)
    parts = [
        f"setweight(to_tsvector('catalog_search', regexp_replace(coalesce(t.{name}, ''), "
        f"'[^[:alnum:]]+', ' ', 'g')), '{_CLASSES[min(ordered.index(weight), 3)]}')"
        for name, weight in columns
    ]
    return " || ".join(parts)


def _postgresql_sql(kinds: list[str], query: str) -> tuple[str, list[str]]:
    selects = []
    for kind in kinds:
        table = KINDS[kind]
        selects.append(
            f"SELECT '{kind}' AS kind, s.name AS name, s.detail AS detail, "
            f"-ts_rank({_CLASS_WEIGHTS}, s.document, q.query) * {_KIND_WEIGHTS[kind]} AS rank, "
            f"s.position AS position "
            f"FROM (SELECT t.name AS name, t.{_DETAIL_COLUMN[table]} AS detail, "
            f"t.position AS position, {_document(table)} AS document FROM {table} AS t) AS s, "
            f"(SELECT to_tsquery('catalog_search', ?) AS query) AS q "
            f"WHERE s.document @@ q.query"
        )
    sql = " UNION ALL ".join(selects) + " ORDER BY rank, position LIMIT ?"
    return sql, [query] * len(kinds)
