"""The catalog's tables as SQLAlchemy ORM classes: the single source of the schema.

Alembic revisions create exactly this (a test compares them). Nothing here is SQLite-only, so
the same metadata can serve PostgreSQL later. Every constraint is named: SQLite's batch-mode
ALTER rebuilds tables and can only drop constraints it can name.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ACCESS_LEVELS = ("open", "limited", "closed")

NAME_LENGTH = 255
JsonValue = JSON(none_as_null=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Model(Base):
    """A model as its creator published it (HELM's model_metadata.yaml)."""

    __tablename__ = "models"
    __table_args__ = (
        CheckConstraint("access IN ('open', 'limited', 'closed')", name="access"),
        CheckConstraint("num_parameters IS NULL OR num_parameters >= 0", name="num_parameters"),
        Index(None, "creator_prefix"),
    )

    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    creator_prefix: Mapped[str] = mapped_column(String(NAME_LENGTH))
    engine: Mapped[str] = mapped_column(String(NAME_LENGTH))
    creator_organization_name: Mapped[str] = mapped_column(Text)
    display_name: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    access: Mapped[str] = mapped_column(String(16))
    release_date: Mapped[dt.date | None] = mapped_column(Date)
    num_parameters: Mapped[int | None] = mapped_column(BigInteger)
    is_placeholder: Mapped[bool] = mapped_column(Boolean, default=False)
    source_file: Mapped[str | None] = mapped_column(Text)
    source_line: Mapped[int | None] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)


class Tag(Base):
    __tablename__ = "tags"

    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)


class ModelTag(Base):
    """Which tags a model has, in the order its YAML lists them."""

    __tablename__ = "model_tags"
    __table_args__ = (Index(None, "tag_name"),)

    model_name: Mapped[str] = mapped_column(
        ForeignKey("models.name", ondelete="CASCADE"), primary_key=True
    )
    tag_name: Mapped[str] = mapped_column(ForeignKey("tags.name"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)


class Tokenizer(Base):
    """A tokenizer config; placeholders stand for names deployments use but nobody defined."""

    __tablename__ = "tokenizers"

    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    class_name: Mapped[str | None] = mapped_column(Text)
    args: Mapped[Any] = mapped_column(JsonValue, nullable=True)
    end_of_text_token: Mapped[str | None] = mapped_column(Text)
    prefix_token: Mapped[str | None] = mapped_column(Text)
    is_placeholder: Mapped[bool] = mapped_column(Boolean, default=False)
    source_file: Mapped[str | None] = mapped_column(Text)
    source_line: Mapped[int | None] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)


class Deployment(Base):
    """A model served by a host: `together/llama-2-7b` runs `meta/llama-2-7b`.

    `position` is the catalog order of the definition that won (later layers after earlier
    ones). `first_position` is where the name first appeared: HELM keeps every copy of a
    duplicated name in its list, so its first-match rule sees the earliest copy.
    """

    __tablename__ = "deployments"
    __table_args__ = (
        CheckConstraint(
            "max_sequence_length IS NULL OR max_sequence_length > 0", name="max_sequence_length"
        ),
        CheckConstraint(
            "max_request_length IS NULL OR max_request_length > 0", name="max_request_length"
        ),
        CheckConstraint(
            "max_sequence_and_generated_tokens_length IS NULL"
            " OR max_sequence_and_generated_tokens_length > 0",
            name="max_sequence_and_generated_tokens_length",
        ),
        Index(None, "model_name", "position"),
        Index(None, "host_organization"),
        Index(None, "tokenizer_name"),
    )

    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    host_organization: Mapped[str] = mapped_column(String(NAME_LENGTH))
    engine: Mapped[str] = mapped_column(String(NAME_LENGTH))
    model_name: Mapped[str] = mapped_column(ForeignKey("models.name"))
    tokenizer_name: Mapped[str | None] = mapped_column(ForeignKey("tokenizers.name"))
    client_class: Mapped[str] = mapped_column(Text)
    client_args: Mapped[Any] = mapped_column(JsonValue, nullable=True)
    window_service_class: Mapped[str | None] = mapped_column(Text)
    window_service_args: Mapped[Any] = mapped_column(JsonValue, nullable=True)
    max_sequence_length: Mapped[int | None] = mapped_column(Integer)
    max_request_length: Mapped[int | None] = mapped_column(Integer)
    max_sequence_and_generated_tokens_length: Mapped[int | None] = mapped_column(Integer)
    deprecated: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer)
    first_position: Mapped[int] = mapped_column(Integer)
    source_file: Mapped[str | None] = mapped_column(Text)
    source_line: Mapped[int | None] = mapped_column(Integer)


class Sync(Base):
    """One sync that changed the database (or was forced): when, and what it changed."""

    __tablename__ = "syncs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime)
    finished_at: Mapped[dt.datetime] = mapped_column(DateTime)
    tool_version: Mapped[str] = mapped_column(String(64))
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    added: Mapped[Any] = mapped_column(JsonValue)
    changed: Mapped[Any] = mapped_column(JsonValue)
    removed: Mapped[Any] = mapped_column(JsonValue)
    warning_count: Mapped[int] = mapped_column(Integer)


class SyncSource(Base):
    """A file a sync read, with its content hash: the next sync skips when none changed."""

    __tablename__ = "sync_sources"

    sync_id: Mapped[int] = mapped_column(
        ForeignKey("syncs.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)


class Pin(Base):
    """A user's explicit default deployment for a model; it outlives syncs.

    Both keys cascade: a sync that removes the model or the deployment drops the pin (and
    says so), since a pin to nothing would silently change what runs.
    """

    __tablename__ = "pins"
    __table_args__ = (Index(None, "deployment_name"),)

    model_name: Mapped[str] = mapped_column(
        ForeignKey("models.name", ondelete="CASCADE"), primary_key=True
    )
    deployment_name: Mapped[str] = mapped_column(ForeignKey("deployments.name", ondelete="CASCADE"))
    pinned_at: Mapped[dt.datetime] = mapped_column(DateTime)


class Setting(Base):
    """Database-wide settings, such as the default-deployment policy."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
