"""SQLAlchemy metadata built from catalog.db.schema, for Alembic (revisions and the drift test).

Imported only where the schema changes: reading and syncing never load SQLAlchemy.
"""

from __future__ import annotations

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
from sqlalchemy import Column as SqlColumn
from sqlalchemy import Table as SqlTable

from catalog.db.schema import TABLES, Column, ColumnType, Table

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _sql_type(column: Column) -> Any:
    kind = column.type
    if kind is ColumnType.STRING:
        return String(column.length)
    simple = {
        ColumnType.TEXT: Text,
        ColumnType.INTEGER: Integer,
        ColumnType.BIG_INTEGER: BigInteger,
        ColumnType.BOOLEAN: Boolean,
        ColumnType.DATE: Date,
        ColumnType.DATETIME: DateTime,
    }
    if kind is ColumnType.JSON:
        return JSON(none_as_null=True)
    return simple[kind]()


def _sql_column(column: Column) -> SqlColumn[Any]:
    arguments: list[Any] = [column.name, _sql_type(column)]
    if column.references is not None:
        arguments.append(ForeignKey(column.references, ondelete=column.on_delete))
    return SqlColumn(
        *arguments,
        primary_key=column.primary_key,
        nullable=column.nullable,
        autoincrement=column.autoincrement if column.primary_key else "auto",
        comment=None,
    )


def _sql_table(metadata: MetaData, table: Table) -> SqlTable:
    parts: list[Any] = [_sql_column(c) for c in table.columns]
    parts += [CheckConstraint(check.sql, name=check.name) for check in table.checks]
    parts += [Index(None, *columns) for columns in table.indexes]
    return SqlTable(table.name, metadata, *parts)


def build_metadata() -> MetaData:
    """The catalog's tables as SQLAlchemy sees them (views are created by the revisions)."""
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    for table in TABLES:
        _sql_table(metadata, table)
    return metadata
