"""What is cached: the counts of `catalog cache scan`, and the view cached_responses.

Revision ID: 0004_cache_scan
Revises: 0003_history
Create Date: 2026-12-01

`catalog cache scan` records, per shard of a HELM cache and per model or deployment its keys
name, how many entries and bytes, and when: `cache_scan` holds one row per (cache directory,
shard, kind, name). The view `cached_responses` joins it to the deployments and models: an
entry naming a deployment counts for it, and one naming a model counts for the model's default
deployment when that deployment's host is the shard (where HELM reads it); otherwise only for
the model.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_cache_scan"
down_revision = "0003_history"
branch_labels = None
depends_on = None

VIEWS = {
    "cached_responses": """
CREATE VIEW cached_responses AS
SELECT
    s.cache_dir AS cache_dir,
    s.shard AS shard,
    s.kind AS kind,
    s.name AS name,
    COALESCE(d.model_name, m.name) AS model,
    d.name AS deployment,
    d.host_organization AS host_organization,
    s.entries AS entries,
    s.bytes AS bytes,
    s.scanned_at AS scanned_at
FROM cache_scan AS s
LEFT JOIN model_default_deployments AS dd
    ON s.kind = 'model' AND dd.model = s.name AND dd.default_host_organization = s.shard
LEFT JOIN deployments AS d
    ON d.name = CASE s.kind WHEN 'deployment' THEN s.name ELSE dd.default_deployment END
LEFT JOIN models AS m ON s.kind = 'model' AND m.name = s.name
ORDER BY s.cache_dir, s.shard, s.kind, s.name
""",
}


def upgrade() -> None:
    op.create_table(
        "cache_scan",
        sa.Column("cache_dir", sa.Text(), nullable=False),
        sa.Column("shard", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("entries", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("scanned_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('model', 'deployment', 'tokenizer', 'several', 'none')",
            name=op.f("ck_cache_scan_kind"),
        ),
        sa.PrimaryKeyConstraint("cache_dir", "shard", "kind", "name", name=op.f("pk_cache_scan")),
    )
    with op.batch_alter_table("cache_scan", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cache_scan_kind_name"), ["kind", "name"], unique=False)
    for create_sql in VIEWS.values():
        op.execute(create_sql)


def downgrade() -> None:
    for view_name in reversed(list(VIEWS)):
        op.execute(f"DROP VIEW IF EXISTS {view_name}")
    with op.batch_alter_table("cache_scan", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cache_scan_kind_name"))
    op.drop_table("cache_scan")
