"""Portable views: the same rows in the same order on both backends, defaults as the resolver's.

Revision ID: 0006_portable_views
Revises: 0005_search
Create Date: 2026-12-01

`deployment_details` had no ORDER BY, so its row order was whatever each database's plan gave;
it now follows the YAML order (`position`). `model_default_deployments` read only the `policy`
setting, so on a catalog synced with `--helm` and no setting its `default_deployment` was the
`first` rule's where the resolver used the rule of that crfm-helm. The rule of the crfm-helm a
sync read is now stored beside its version (`syncs.helm_rule`: SQL cannot compare version
strings portably), and the view takes, like the resolver: the pin, else the `policy` setting,
else the rule of the last sync's crfm-helm, else `first`. `model_tag_list` is written for each
backend's aggregate (group_concat on SQLite, string_agg on PostgreSQL) in this one file.

On PostgreSQL it also makes the text search configuration `catalog_search` (English Snowball
stemming, no stop words: what SQLite's FTS5 porter tokenizer does for `catalog search`), which
catalog.db.search uses there.

The views that read `model_default_deployments` (`cache_shards`, `cached_responses`) are dropped
and made again around it, as PostgreSQL requires. A downgrade brings back the definitions of the
revisions that made them, read from their own files.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision = "0006_portable_views"
down_revision = "0005_search"
branch_labels = None
depends_on = None


def _earlier(module_file: str) -> ModuleType:
    """An earlier revision of this directory, loaded from its file: its view SQL is frozen
    there, and this revision builds on it rather than writing it again."""
    path = Path(__file__).with_name(module_file)
    spec = importlib.util.spec_from_file_location(f"_catalog_revision_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_QUERY_LAYER = _earlier("0002_query_layer.py")
_CACHE_SCAN = _earlier("0004_cache_scan.py")

# The policy in force without a pin: the setting, else the rule of the crfm-helm the last sync
# read with --helm, else `first` (0002 read the setting alone).
_SETTING_ONLY = "(SELECT value FROM settings WHERE key = 'policy')"
POLICY_IN_FORCE_SQL = """COALESCE(
            (SELECT value FROM settings WHERE key = 'policy'),
            (SELECT s.helm_rule FROM syncs AS s ORDER BY s.id DESC LIMIT 1),
            'first')"""

DEPLOYMENT_DETAILS = _QUERY_LAYER.VIEWS["deployment_details"].rstrip() + "\nORDER BY d.position\n"
MODEL_TAG_LIST = {
    "sqlite": _QUERY_LAYER.VIEWS["model_tag_list"],  # an ordered subquery keeps its order
    "postgresql": _QUERY_LAYER.MODEL_TAG_LIST_POSTGRESQL,  # string_agg(... ORDER BY ...)
}
MODEL_DEFAULT_DEPLOYMENTS = _QUERY_LAYER.VIEWS["model_default_deployments"].replace(
    _SETTING_ONLY, POLICY_IN_FORCE_SQL
)
assert _SETTING_ONLY not in MODEL_DEFAULT_DEPLOYMENTS.replace(POLICY_IN_FORCE_SQL, "")

# PostgreSQL's text search configuration for `catalog search`: every kind of word stemmed by the
# English Snowball stemmer, with no stop-word list (FTS5's porter tokenizer drops none).
SEARCH_CONFIGURATION = (
    "CREATE TEXT SEARCH DICTIONARY catalog_stem (TEMPLATE = snowball, Language = english)",
    "CREATE TEXT SEARCH CONFIGURATION catalog_search (COPY = simple)",
    "ALTER TEXT SEARCH CONFIGURATION catalog_search ALTER MAPPING FOR asciiword, word, numword, "
    "asciihword, hword, numhword, hword_asciipart, hword_part, hword_numpart WITH catalog_stem",
)
DROP_SEARCH_CONFIGURATION = (
    "DROP TEXT SEARCH CONFIGURATION IF EXISTS catalog_search",
    "DROP TEXT SEARCH DICTIONARY IF EXISTS catalog_stem",
)

# Views in the order they are made; dropped in the reverse order.
RECREATED = (
    "deployment_details",
    "model_tag_list",
    "model_default_deployments",
    "cache_shards",
    "cached_responses",
)


def _rule(version: str) -> str | None:
    """The default-deployment rule of a crfm-helm version (`last` since 0.5.7), frozen here for
    the syncs recorded before this revision; None for a string that is no version."""
    numbers = []
    for part in version.strip().split("."):
        digits = re.match(r"\d*", part)
        if digits is None or not digits.group():
            break
        numbers.append(int(digits.group()))
        if len(digits.group()) < len(part):
            break
    if not numbers:
        return None
    return "last" if tuple(numbers) >= (0, 5, 7) else "first"


def _drop_views() -> None:
    for name in reversed(RECREATED):
        op.execute(f"DROP VIEW IF EXISTS {name}")


def _fill_helm_rules() -> None:
    syncs = sa.table(
        "syncs", sa.column("id", sa.Integer), sa.column("helm_version"), sa.column("helm_rule")
    )
    bind = op.get_bind()
    for sync_id, version in bind.execute(
        sa.select(syncs.c.id, syncs.c.helm_version).where(syncs.c.helm_version.is_not(None))
    ).fetchall():
        bind.execute(
            syncs.update().where(syncs.c.id == sync_id).values(helm_rule=_rule(str(version)))
        )


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    _drop_views()
    # Rebuilt on SQLite rather than ALTERed, so its DDL reads as a new catalog's does.
    with op.batch_alter_table(
        "syncs", schema=None, recreate="always" if dialect == "sqlite" else "auto"
    ) as batch_op:
        batch_op.add_column(sa.Column("helm_rule", sa.String(length=8), nullable=True))
    _fill_helm_rules()
    op.execute(DEPLOYMENT_DETAILS)
    op.execute(MODEL_TAG_LIST[dialect])
    op.execute(MODEL_DEFAULT_DEPLOYMENTS)
    op.execute(_QUERY_LAYER.VIEWS["cache_shards"])
    op.execute(_CACHE_SCAN.VIEWS["cached_responses"])
    if dialect == "postgresql":
        for statement in SEARCH_CONFIGURATION:
            op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        for statement in DROP_SEARCH_CONFIGURATION:
            op.execute(statement)
    _drop_views()
    with op.batch_alter_table(
        "syncs", schema=None, recreate="always" if dialect == "sqlite" else "auto"
    ) as batch_op:
        batch_op.drop_column("helm_rule")
    op.execute(_QUERY_LAYER.VIEWS["deployment_details"])
    op.execute(MODEL_TAG_LIST[dialect])
    op.execute(_QUERY_LAYER.VIEWS["model_default_deployments"])
    op.execute(_QUERY_LAYER.VIEWS["cache_shards"])
    op.execute(_CACHE_SCAN.VIEWS["cached_responses"])
