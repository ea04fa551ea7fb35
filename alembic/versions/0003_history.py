"""History: every change of the catalog, name by name, and of every model's default deployment.

Revision ID: 0003_history
Revises: 0002_query_layer
Create Date: 2026-12-01

`events` is the log of what changed the catalog (a sync, a pin, an unpin, a setting); each
event's row changes are in `change_log` (fields before and after, as JSON) and its default
changes in `default_change_log`. A catalog upgraded to this revision starts its history with one
`baseline` event at its current state. `shadowed_deployments` keeps the earlier copies of a
deployment defined again by a later layer, which HELM's own list still holds, and
`syncs.row_counts` what a sync left in each table, so that a later sync can tell a catalog
edited around it from one it wrote; `syncs.helm_version` the crfm-helm whose configs a sync
read with --helm.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0003_history"
down_revision = "0002_query_layer"
branch_labels = None
depends_on = None

VIEWS = {
    "changes": """
CREATE VIEW changes AS
SELECT c.id AS id, c.event_id AS event_id, e.kind AS event_kind, e.occurred_at AS occurred_at,
    e.sync_id AS sync_id, c.table_name AS table_name, c.name AS name, c.change AS change,
    c.before AS before, c.after AS after
FROM change_log AS c JOIN events AS e ON e.id = c.event_id
ORDER BY c.id
""",
    "default_changes": """
CREATE VIEW default_changes AS
SELECT d.event_id AS event_id, e.kind AS event_kind, e.occurred_at AS occurred_at,
    e.sync_id AS sync_id, d.policy AS policy, d.model AS model, d.before AS before,
    d.after AS after
FROM default_change_log AS d JOIN events AS e ON e.id = d.event_id
ORDER BY d.event_id, d.policy, d.model
""",
}


def upgrade() -> None:
    # Rebuilt rather than ALTERed, so its DDL reads as a new catalog's does.
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table(
        "syncs", schema=None, recreate="always" if sqlite else "auto"
    ) as batch_op:
        batch_op.add_column(sa.Column("row_counts", sa.JSON(none_as_null=True), nullable=True))
        batch_op.add_column(sa.Column("helm_version", sa.String(length=32), nullable=True))
    events = op.create_table(
        "events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("sync_id", sa.Integer(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("tool_version", sa.String(length=64), nullable=False),
        sa.CheckConstraint(
            "kind IN ('baseline', 'sync', 'pin', 'unpin', 'setting')", name=op.f("ck_events_kind")
        ),
        sa.ForeignKeyConstraint(
            ["sync_id"],
            ["syncs.id"],
            name=op.f("fk_events_sync_id_syncs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_events_occurred_at"), ["occurred_at"], unique=False)
    op.create_table(
        "change_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("table_name", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("change", sa.String(length=16), nullable=False),
        sa.Column("before", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("after", sa.JSON(none_as_null=True), nullable=True),
        sa.CheckConstraint(
            "change IN ('added', 'removed', 'changed', 'moved')", name=op.f("ck_change_log_change")
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            name=op.f("fk_change_log_event_id_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_log")),
    )
    with op.batch_alter_table("change_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_change_log_event_id"), ["event_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_change_log_table_name_name"), ["table_name", "name"], unique=False
        )
    op.create_table(
        "default_change_log",
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("policy", sa.String(length=16), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("before", sa.String(length=255), nullable=True),
        sa.Column("after", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            name=op.f("fk_default_change_log_event_id_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("event_id", "policy", "model", name=op.f("pk_default_change_log")),
    )
    with op.batch_alter_table("default_change_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_default_change_log_model"), ["model"], unique=False)
    op.create_table(
        "shadowed_deployments",
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("model_name", sa.String(length=255), nullable=False),
        sa.Column("deprecated", sa.Boolean(), nullable=False),
        sa.Column("source_file", sa.Text(), nullable=True),
        sa.Column("source_line", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["name"],
            ["deployments.name"],
            name=op.f("fk_shadowed_deployments_name_deployments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_shadowed_deployments")),
    )
    with op.batch_alter_table("shadowed_deployments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_shadowed_deployments_name"), ["name"], unique=False)
    for create_sql in VIEWS.values():
        op.execute(create_sql)
    # History starts here: one baseline event at the catalog's current state.
    op.bulk_insert(
        events,
        [
            {
                "kind": "baseline",
                "occurred_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
                "sync_id": None,
                "summary": "history starts (schema revision 0003_history)",
                "tool_version": "0003_history",
            }
        ],
    )


def downgrade() -> None:
    for view_name in reversed(list(VIEWS)):
        op.execute(f"DROP VIEW IF EXISTS {view_name}")
    with op.batch_alter_table("shadowed_deployments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shadowed_deployments_name"))
    op.drop_table("shadowed_deployments")
    with op.batch_alter_table("default_change_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_default_change_log_model"))
    op.drop_table("default_change_log")
    with op.batch_alter_table("change_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_change_log_table_name_name"))
        batch_op.drop_index(batch_op.f("ix_change_log_event_id"))
    op.drop_table("change_log")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_occurred_at"))
    op.drop_table("events")
    with op.batch_alter_table("syncs", schema=None) as batch_op:
        batch_op.drop_column("helm_version")
        batch_op.drop_column("row_counts")
