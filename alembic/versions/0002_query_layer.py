"""Query layer: pins, settings and the SQL views users query.

Revision ID: 0002_query_layer
Revises: 0001_initial
Create Date: 2026-11-25

The view definitions are frozen here, as a migration must be; a later change to a view is a
new revision that drops and recreates it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_query_layer"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

# HELM's two default-deployment rules, in SQL. `first` (PR #1903): a deployment named like the
# model, else the first non-deprecated by first appearance, else the first. `last` (v0.5.7+):
# the last non-deprecated, else the last, else a deployment named like the model.
FIRST_POLICY_SQL = """COALESCE(
        (SELECT same.name FROM deployments AS same WHERE same.name = m.name),
        (SELECT d.name FROM deployments AS d WHERE d.model_name = m.name
         ORDER BY d.deprecated, d.first_position LIMIT 1))"""
LAST_POLICY_SQL = """COALESCE(
        (SELECT d.name FROM deployments AS d WHERE d.model_name = m.name
         ORDER BY d.deprecated, d.position DESC LIMIT 1),
        (SELECT same.name FROM deployments AS same WHERE same.name = m.name))"""

VIEWS = {
    "deployment_details": """
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
""",
    # Tags in YAML order: an aggregate over an ordered subquery keeps its order (a join does not).
    "model_tag_list": """
CREATE VIEW model_tag_list AS
SELECT
    m.name AS model,
    (SELECT group_concat(o.tag_name, ',') FROM
        (SELECT t.tag_name FROM model_tags AS t WHERE t.model_name = m.name ORDER BY t.position)
        AS o) AS tags,
    (SELECT count(*) FROM model_tags AS c WHERE c.model_name = m.name) AS tag_count
FROM models AS m
ORDER BY m.position
""",
    "model_default_deployments": f"""
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
            CASE WHEN (SELECT value FROM settings WHERE key = 'policy') = 'last'
                THEN last_policy_deployment ELSE first_policy_deployment END
        ) AS default_deployment
    FROM defaults LEFT JOIN pins AS p ON p.model_name = defaults.model
)
SELECT chosen.model, chosen.first_policy_deployment, chosen.last_policy_deployment,
    chosen.pinned_deployment, chosen.default_deployment,
    d.host_organization AS default_host_organization
FROM chosen LEFT JOIN deployments AS d ON d.name = chosen.default_deployment
ORDER BY chosen.position
""",
    "cache_shards": """
CREATE VIEW cache_shards AS
SELECT
    d.model_name AS model,
    d.name AS deployment,
    m.creator_prefix AS creator_shard,
    d.host_organization AS host_shard,
    d.name = dd.default_deployment AS is_default
FROM deployments AS d
JOIN models AS m ON m.name = d.model_name
LEFT JOIN model_default_deployments AS dd ON dd.model = d.model_name
ORDER BY d.position
""",
}

# PostgreSQL has no group_concat: the same view with string_agg (a later revision defines every
# view for both backends, with a defined row order).
MODEL_TAG_LIST_POSTGRESQL = """
CREATE VIEW model_tag_list AS
SELECT
    m.name AS model,
    (SELECT string_agg(t.tag_name, ',' ORDER BY t.position) FROM model_tags AS t
        WHERE t.model_name = m.name) AS tags,
    (SELECT count(*) FROM model_tags AS c WHERE c.model_name = m.name) AS tag_count
FROM models AS m
ORDER BY m.position
"""


def upgrade() -> None:
    op.create_table(
        "settings",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_settings")),
    )
    op.create_table(
        "pins",
        sa.Column("model_name", sa.String(length=255), nullable=False),
        sa.Column("deployment_name", sa.String(length=255), nullable=False),
        sa.Column("pinned_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_name"],
            ["deployments.name"],
            name=op.f("fk_pins_deployment_name_deployments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["model_name"],
            ["models.name"],
            name=op.f("fk_pins_model_name_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_name", name=op.f("pk_pins")),
    )
    with op.batch_alter_table("pins", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pins_deployment_name"), ["deployment_name"], unique=False
        )
    for name, create_sql in VIEWS.items():
        if name == "model_tag_list" and op.get_bind().dialect.name == "postgresql":
            create_sql = MODEL_TAG_LIST_POSTGRESQL
        op.execute(create_sql)


def downgrade() -> None:
    for view_name in reversed(list(VIEWS)):
        op.execute(f"DROP VIEW IF EXISTS {view_name}")
    with op.batch_alter_table("pins", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pins_deployment_name"))
    op.drop_table("pins")
    op.drop_table("settings")
