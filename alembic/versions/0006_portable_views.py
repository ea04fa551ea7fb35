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

# HELM's two rules, as 0002_query_layer wrote them (frozen here).
FIRST_POLICY_SQL = """COALESCE(
        (SELECT same.name FROM deployments AS same WHERE same.name = m.name),
        (SELECT d.name FROM deployments AS d WHERE d.model_name = m.name
         ORDER BY d.deprecated, d.first_position LIMIT 1))"""
LAST_POLICY_SQL = """COALESCE(
        (SELECT d.name FROM deployments AS d WHERE d.model_name = m.name
         ORDER BY d.deprecated, d.position DESC LIMIT 1),
        (SELECT same.name FROM deployments AS same WHERE same.name = m.name))"""

# The policy in force without a pin: the setting, else the rule of the crfm-helm the last sync
# read with --helm, else `first`.
POLICY_IN_FORCE_SQL = """COALESCE(
            (SELECT value FROM settings WHERE key = 'policy'),
            (SELECT s.helm_rule FROM syncs AS s ORDER BY s.id DESC LIMIT 1),
            'first')"""

DEPLOYMENT_DETAILS = """
CREATE VIEW deployment_details AS
SELECT
    d.name AS deployment,
    d.model_name AS model,
    m.creator_organization_name AS creator_organization_name,
    m.creator_prefix AS creator_prefix,
    d.host_organization AS host_organization,
    d.engine AS engine,
    d.tokenizer_name AS tokenizer,
    d.max_sequence_length AS max_sequence_length,
    d.max_request_length AS max_request_length,
    d.max_sequence_and_generated_tokens_length AS max_sequence_and_generated_tokens_length,
    d.deprecated AS deprecated,
    d.client_class AS client_class,
    m.access AS access,
    m.release_date AS release_date,
    d.position AS position,
    d.source_file AS source_file,
    d.source_line AS source_line
FROM deployments AS d
JOIN models AS m ON m.name = d.model_name
ORDER BY d.position
"""

# Tags in YAML order. SQLite: an aggregate over an ordered subquery keeps its order.
TAG_LIST_SQLITE = """(SELECT group_concat(o.tag_name, ',') FROM
        (SELECT t.tag_name FROM model_tags AS t WHERE t.model_name = m.name ORDER BY t.position)
        AS o)"""
TAG_LIST_POSTGRESQL = """(SELECT string_agg(t.tag_name, ',' ORDER BY t.position)
        FROM model_tags AS t WHERE t.model_name = m.name)"""
MODEL_TAG_LIST = """
CREATE VIEW model_tag_list AS
SELECT
    m.name AS model,
    {tags} AS tags,
    (SELECT count(*) FROM model_tags AS c WHERE c.model_name = m.name) AS tag_count
FROM models AS m
ORDER BY m.position
"""

MODEL_DEFAULT_DEPLOYMENTS = f"""
CREATE VIEW model_default_deployments AS
WITH defaults AS (
    SELECT m.name AS model, m.position AS position,
        {FIRST_POLICY_SQL} AS first_policy_deployment,
        {LAST_POLICY_SQL} AS last_policy_deployment
    FROM models AS m
), chosen AS (
    SELECT defaults.*, p.deployment_name AS pinned_deployment,
        COALESCE(
            p.deployment_name,
            CASE WHEN {POLICY_IN_FORCE_SQL} = 'last'
                THEN last_policy_deployment ELSE first_policy_deployment END
        ) AS default_deployment
    FROM defaults LEFT JOIN pins AS p ON p.model_name = defaults.model
)
SELECT chosen.model, chosen.first_policy_deployment, chosen.last_policy_deployment,
    chosen.pinned_deployment, chosen.default_deployment,
    d.host_organization AS default_host_organization
FROM chosen LEFT JOIN deployments AS d ON d.name = chosen.default_deployment
ORDER BY chosen.position
"""

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


def _earlier(module_file: str) -> ModuleType:
    """An earlier revision of this directory, loaded from its file for its frozen view SQL."""
    path = Path(__file__).with_name(module_file)
    spec = importlib.util.spec_from_file_location(f"_catalog_revision_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    _drop_views()
    sqlite = not postgresql
    with op.batch_alter_table(
        "syncs", schema=None, recreate="always" if sqlite else "auto"
    ) as batch_op:
        batch_op.add_column(sa.Column("helm_rule", sa.String(length=8), nullable=True))
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
    op.execute(DEPLOYMENT_DETAILS)
    op.execute(MODEL_TAG_LIST.format(tags=TAG_LIST_POSTGRESQL if postgresql else TAG_LIST_SQLITE))
    op.execute(MODEL_DEFAULT_DEPLOYMENTS)
    op.execute(_earlier("0002_query_layer.py").VIEWS["cache_shards"])
    op.execute(_earlier("0004_cache_scan.py").VIEWS["cached_responses"])
    if postgresql:
        for statement in SEARCH_CONFIGURATION:
            op.execute(statement)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        for statement in DROP_SEARCH_CONFIGURATION:
            op.execute(statement)
    _drop_views()
    with op.batch_alter_table(
        "syncs", schema=None, recreate="auto" if postgresql else "always"
    ) as batch_op:
        batch_op.drop_column("helm_rule")
    query_layer = _earlier("0002_query_layer.py")
    for name in ("deployment_details", "model_tag_list", "model_default_deployments"):
        create_sql = query_layer.VIEWS[name]
        if name == "model_tag_list" and postgresql:
            create_sql = query_layer.MODEL_TAG_LIST_POSTGRESQL
        op.execute(create_sql)
    op.execute(query_layer.VIEWS["cache_shards"])
    op.execute(_earlier("0004_cache_scan.py").VIEWS["cached_responses"])
