"""Initial schema: models, tags, tokenizers, deployments and sync bookkeeping.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("creator_prefix", sa.String(length=255), nullable=False),
        sa.Column("engine", sa.String(length=255), nullable=False),
        sa.Column("creator_organization_name", sa.Text(), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("access", sa.String(length=16), nullable=False),
        sa.Column("release_date", sa.Date(), nullable=True),
        sa.Column("num_parameters", sa.BigInteger(), nullable=True),
        sa.Column("is_placeholder", sa.Boolean(), nullable=False),
        sa.Column("source_file", sa.Text(), nullable=True),
        sa.Column("source_line", sa.Integer(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "access IN ('open', 'limited', 'closed')", name=op.f("ck_models_access")
        ),
        sa.CheckConstraint(
            "num_parameters IS NULL OR num_parameters >= 0", name=op.f("ck_models_num_parameters")
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_models")),
    )
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_models_creator_prefix"), ["creator_prefix"], unique=False
        )

    op.create_table(
        "syncs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=False),
        sa.Column("tool_version", sa.String(length=64), nullable=False),
        sa.Column("forced", sa.Boolean(), nullable=False),
        sa.Column("added", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("changed", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("removed", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("warning_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_syncs")),
    )
    op.create_table(
        "tags",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_tags")),
    )
    op.create_table(
        "tokenizers",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("class_name", sa.Text(), nullable=True),
        sa.Column("args", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("end_of_text_token", sa.Text(), nullable=True),
        sa.Column("prefix_token", sa.Text(), nullable=True),
        sa.Column("is_placeholder", sa.Boolean(), nullable=False),
        sa.Column("source_file", sa.Text(), nullable=True),
        sa.Column("source_line", sa.Integer(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_tokenizers")),
    )
    op.create_table(
        "deployments",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("host_organization", sa.String(length=255), nullable=False),
        sa.Column("engine", sa.String(length=255), nullable=False),
        sa.Column("model_name", sa.String(length=255), nullable=False),
        sa.Column("tokenizer_name", sa.String(length=255), nullable=True),
        sa.Column("client_class", sa.Text(), nullable=False),
        sa.Column("client_args", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("window_service_class", sa.Text(), nullable=True),
        sa.Column("window_service_args", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("max_sequence_length", sa.Integer(), nullable=True),
        sa.Column("max_request_length", sa.Integer(), nullable=True),
        sa.Column("max_sequence_and_generated_tokens_length", sa.Integer(), nullable=True),
        sa.Column("deprecated", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("first_position", sa.Integer(), nullable=False),
        sa.Column("source_file", sa.Text(), nullable=True),
        sa.Column("source_line", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "max_request_length IS NULL OR max_request_length > 0",
            name=op.f("ck_deployments_max_request_length"),
        ),
        sa.CheckConstraint(
            "max_sequence_and_generated_tokens_length IS NULL"
            " OR max_sequence_and_generated_tokens_length > 0",
            name=op.f("ck_deployments_max_sequence_and_generated_tokens_length"),
        ),
        sa.CheckConstraint(
            "max_sequence_length IS NULL OR max_sequence_length > 0",
            name=op.f("ck_deployments_max_sequence_length"),
        ),
        sa.ForeignKeyConstraint(
            ["model_name"], ["models.name"], name=op.f("fk_deployments_model_name_models")
        ),
        sa.ForeignKeyConstraint(
            ["tokenizer_name"],
            ["tokenizers.name"],
            name=op.f("fk_deployments_tokenizer_name_tokenizers"),
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_deployments")),
    )
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_deployments_host_organization"), ["host_organization"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_deployments_model_name_position"),
            ["model_name", "position"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_deployments_tokenizer_name"), ["tokenizer_name"], unique=False
        )

    op.create_table(
        "model_tags",
        sa.Column("model_name", sa.String(length=255), nullable=False),
        sa.Column("tag_name", sa.String(length=255), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_name"],
            ["models.name"],
            name=op.f("fk_model_tags_model_name_models"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tag_name"], ["tags.name"], name=op.f("fk_model_tags_tag_name_tags")
        ),
        sa.PrimaryKeyConstraint("model_name", "tag_name", name=op.f("pk_model_tags")),
    )
    with op.batch_alter_table("model_tags", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_model_tags_tag_name"), ["tag_name"], unique=False)

    op.create_table(
        "sync_sources",
        sa.Column("sync_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sync_id"],
            ["syncs.id"],
            name=op.f("fk_sync_sources_sync_id_syncs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("sync_id", "position", name=op.f("pk_sync_sources")),
    )


def downgrade() -> None:
    op.drop_table("sync_sources")
    with op.batch_alter_table("model_tags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_tags_tag_name"))

    op.drop_table("model_tags")
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deployments_tokenizer_name"))
        batch_op.drop_index(batch_op.f("ix_deployments_model_name_position"))
        batch_op.drop_index(batch_op.f("ix_deployments_host_organization"))

    op.drop_table("deployments")
    op.drop_table("tokenizers")
    op.drop_table("tags")
    op.drop_table("syncs")
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_models_creator_prefix"))

    op.drop_table("models")
