"""Pins (a user's explicit default deployment per model) and database-wide settings.

Both are written through the catalog's own sqlite3 connection, each write in one
BEGIN IMMEDIATE transaction so that it queues behind a running sync instead of interleaving.
Checks run inside that transaction: a deployment cannot vanish between check and write.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from catalog import resolution
from catalog.database import failure_hint
from catalog.entities import PinInfo
from catalog.errors import (
    DatabaseError,
    PinError,
    SettingError,
    UnknownDeploymentError,
    UnknownModelError,
    suggest,
)


@dataclass(frozen=True)
class SettingSpec:
    """A known setting: its default and how to check a value."""

    default: str
    choices: tuple[str, ...]
    help: str


SETTINGS: dict[str, SettingSpec] = {
    resolution.POLICY_SETTING: SettingSpec(
        default=resolution.DEFAULT_POLICY,
        choices=resolution.POLICIES,
        help="default-deployment policy when none is given: first (HELM PR #1903) or last "
        "(HELM v0.5.7 and later)",
    ),
}


@contextmanager
def _write(connection: sqlite3.Connection) -> Iterator[None]:
    """One write transaction; SQLite's own failures (locked, read-only, full) become errors
    that say what to do, and nothing is left half-written."""
    try:
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        else:
            connection.execute("COMMIT")
    except sqlite3.Error as error:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        hint = failure_hint(error)
        raise DatabaseError(
            f"the change was not written ({error}); the database is unchanged"
            + (f"\nhint: {hint}" if hint else "")
        ) from error
    finally:
        resolution.invalidate(connection)


def _now() -> str:
    """UTC, in the text form SQLAlchemy's DateTime uses on SQLite (what a sync would write)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def pin(connection: sqlite3.Connection, model: str, deployment: str) -> PinInfo:
    """Make `deployment` the default of `model`, whatever the policy; replaces an older pin."""
    with _write(connection):
        _require_model(connection, model)
        row = connection.execute(
            "SELECT model_name FROM deployments WHERE name = ?", (deployment,)
        ).fetchone()
        if row is None:
            raise UnknownDeploymentError(deployment, _names(connection, "deployments"))
        if row[0] != model:
            own = [
                r[0]
                for r in connection.execute(
                    "SELECT name FROM deployments WHERE model_name = ? ORDER BY position",
                    (model,),
                )
            ]
            choices = f"its deployments are {', '.join(own)}" if own else "it has no deployment"
            raise PinError(
                f"cannot pin {model!r} to {deployment!r}: that deployment serves {row[0]!r}; "
                + choices
            )
        pinned_at = _now()
        connection.execute(
            "INSERT INTO pins (model_name, deployment_name, pinned_at) VALUES (?, ?, ?) "
            "ON CONFLICT (model_name) DO UPDATE SET "
            "deployment_name = excluded.deployment_name, pinned_at = excluded.pinned_at",
            (model, deployment, pinned_at),
        )
    return PinInfo(model, deployment, pinned_at)


def unpin(connection: sqlite3.Connection, model: str) -> bool:
    """Remove the pin of `model`; False if it had none (an unknown model is an error)."""
    with _write(connection):
        _require_model(connection, model)
        cursor = connection.execute("DELETE FROM pins WHERE model_name = ?", (model,))
        return cursor.rowcount > 0


def list_pins(connection: sqlite3.Connection) -> list[PinInfo]:
    """Every pin, in catalog order of the models."""
    rows = connection.execute(
        "SELECT p.model_name, p.deployment_name, p.pinned_at FROM pins AS p "
        "JOIN models AS m ON m.name = p.model_name ORDER BY m.position"
    )
    return [PinInfo(model, deployment, str(pinned_at)) for model, deployment, pinned_at in rows]


def get_settings(connection: sqlite3.Connection) -> dict[str, str]:
    """Every known setting with its value: the stored one, else the default."""
    stored = dict(connection.execute("SELECT key, value FROM settings").fetchall())
    return {key: str(stored.get(key, spec.default)) for key, spec in SETTINGS.items()}


def get_setting(connection: sqlite3.Connection, key: str) -> str:
    _spec(key)
    return get_settings(connection)[key]


def set_setting(connection: sqlite3.Connection, key: str, value: str) -> None:
    spec = _spec(key)
    if value not in spec.choices:
        raise SettingError(
            f"{value!r} is not a valid value of setting {key!r}; choose one of "
            f"{', '.join(spec.choices)}"
        )
    with _write(connection):
        connection.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


def _spec(key: str) -> SettingSpec:
    spec = SETTINGS.get(key)
    if spec is None:
        close = suggest(key, SETTINGS)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise SettingError(f"unknown setting {key!r}{hint} (known settings: {', '.join(SETTINGS)})")
    return spec


def _require_model(connection: sqlite3.Connection, model: str) -> None:
    if connection.execute("SELECT 1 FROM models WHERE name = ?", (model,)).fetchone() is None:
        raise UnknownModelError(model, _names(connection, "models"))


_NAME_QUERIES: dict[str, str] = {
    "models": "SELECT name FROM models ORDER BY position",
    "deployments": "SELECT name FROM deployments ORDER BY position",
}


def _names(connection: sqlite3.Connection, table: str) -> list[str]:
    return [row[0] for row in connection.execute(_NAME_QUERIES[table])]


__all__ = [
    "SETTINGS",
    "SettingSpec",
    "get_setting",
    "get_settings",
    "list_pins",
    "pin",
    "set_setting",
    "unpin",
]
