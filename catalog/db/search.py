"""Full-text search over models, deployments and tokenizers: `catalog search` and the search box
of `catalog serve`.

On SQLite the index is three FTS5 tables in the layout sqlite-utils' `enable_fts` makes
(`models_fts` over `models`, external content keyed by rowid, porter stemming), so Datasette
finds it by itself and `sqlite-utils search catalog.db models llama` works too. Revision
0005_search creates them with the triggers that keep them in step with every write: a sync
updates the index in its own transaction, so a search never sees half a sync.

All the search SQL of the package is here. PostgreSQL has its own full-text search
(`tsvector`); a PostgreSQL catalog gets a variant of `search` in this module, not a change
elsewhere. Until then it is refused with an explanation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from catalog.db.connection import CatalogConnection
from catalog.db.records import Record
from catalog.errors import CatalogError, UnsupportedDatabaseError

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
    """SQLite's bm25 score, weighted by kind: lower is a better match."""


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
    if connection.dialect != "sqlite":
        raise UnsupportedDatabaseError(
            f"full-text search is not available yet for a {connection.dialect} catalog",
            hint="copy it to SQLite (`catalog copy`) and search that, or use "
            "`catalog query` with LIKE",
        )
    if limit < 1:
        raise CatalogError(f"the limit must be at least 1, not {limit}")
    chosen = list(KINDS) if not kinds else list(dict.fromkeys(kinds))
    unknown = [kind for kind in chosen if kind not in KINDS]
    if unknown:
        raise CatalogError(
            f"unknown kind {unknown[0]!r}", hint="kinds are " + ", ".join(sorted(KINDS))
        )
    match = fts_query(text)
    selects = []
    for kind in chosen:
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
    with connection.read():
        rows = connection.execute(sql, [*([match] * len(chosen)), limit]).fetchall()
    return [SearchHit(kind, name, detail, float(rank)) for kind, name, detail, rank, _ in rows]
