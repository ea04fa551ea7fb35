"""Full-text search: FTS5 indexes of models, deployments and tokenizers, kept in step by triggers.

Revision ID: 0005_search
Revises: 0004_cache_scan
Create Date: 2026-12-01

Each index is an FTS5 table over its table's rows (external content, keyed by rowid, porter
stemming), in the layout sqlite-utils' `enable_fts(..., create_triggers=True)` makes: Datasette
finds it and shows a search box, and `sqlite-utils search` works on it. The DDL is written out
here rather than run through sqlite-utils because `enable_fts` uses `executescript`, which
commits: a revision must be one transaction. The triggers index every insert, update and delete
in the writer's own transaction, so a sync and its index commit together.

SQLite only: on PostgreSQL this revision does nothing (its search will use PostgreSQL's own
full-text search, in a revision of its own).
"""

from __future__ import annotations

from alembic import op

revision = "0005_search"
down_revision = "0004_cache_scan"
branch_labels = None
depends_on = None

# Frozen here, as a migration's SQL must be (catalog.db.search reads these tables).
INDEXES = {
    "models": ("name", "display_name", "description", "creator_organization_name"),
    "deployments": ("name", "model_name", "host_organization"),
    "tokenizers": ("name", "class_name"),
}


def _statements(table: str, columns: tuple[str, ...]) -> list[str]:
    fts = f"{table}_fts"
    listed = ", ".join(f"[{column}]" for column in columns)
    new = ", ".join(f"new.[{column}]" for column in columns)
    old = ", ".join(f"old.[{column}]" for column in columns)
    return [
        f"CREATE VIRTUAL TABLE [{fts}] USING FTS5 (\n    {listed},\n"
        f"    tokenize='porter',\n    content=[{table}]\n)",
        f"INSERT INTO [{fts}] (rowid, {listed}) SELECT rowid, {listed} FROM [{table}]",
        f"CREATE TRIGGER [{table}_ai] AFTER INSERT ON [{table}] BEGIN\n"
        f"  INSERT INTO [{fts}] (rowid, {listed}) VALUES (new.rowid, {new});\nEND",
        f"CREATE TRIGGER [{table}_ad] AFTER DELETE ON [{table}] BEGIN\n"
        f"  INSERT INTO [{fts}] ([{fts}], rowid, {listed}) "
        f"VALUES('delete', old.rowid, {old});\nEND",
        f"CREATE TRIGGER [{table}_au] AFTER UPDATE ON [{table}] BEGIN\n"
        f"  INSERT INTO [{fts}] ([{fts}], rowid, {listed}) "
        f"VALUES('delete', old.rowid, {old});\n"
        f"  INSERT INTO [{fts}] (rowid, {listed}) VALUES (new.rowid, {new});\nEND",
    ]


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table, columns in INDEXES.items():
        for statement in _statements(table, columns):
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in reversed(list(INDEXES)):
        for suffix in ("_au", "_ad", "_ai"):
            op.execute(f"DROP TRIGGER IF EXISTS [{table}{suffix}]")
        op.execute(f"DROP TABLE IF EXISTS [{table}_fts]")
