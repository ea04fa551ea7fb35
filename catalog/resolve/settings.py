"""Database-wide settings (today: the default-deployment policy), read and written checked."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from catalog.errors import SettingError, suggest
from catalog.history.recorder import recorded_event
from catalog.resolve import policies
from catalog.resolve.engine import Snapshot

if TYPE_CHECKING:
    from catalog.db.connection import CatalogConnection


@dataclass(frozen=True)
class SettingSpec:
    """A known setting: its default and the values it may take."""

    default: str
    choices: tuple[str, ...]
    help: str


SETTINGS = MappingProxyType(
    {
        policies.POLICY_SETTING: SettingSpec(
            default=policies.DEFAULT_POLICY,
            choices=policies.POLICIES,
            help="default-deployment policy when none is given: first (HELM PR #1903) or last "
            "(HELM v0.5.7 and later)",
        ),
    }
)


def get_settings(connection: CatalogConnection) -> dict[str, str]:
    """Every known setting with its value: the stored one, else the default."""
    stored = dict(connection.execute("SELECT key, value FROM settings").fetchall())
    return {key: str(stored.get(key, spec.default)) for key, spec in SETTINGS.items()}


def get_setting(connection: CatalogConnection, key: str) -> str:
    _spec(key)
    return get_settings(connection)[key]


def set_setting(connection: CatalogConnection, key: str, value: str) -> None:
    spec = _spec(key)
    if value not in spec.choices:
        raise SettingError(
            f"{value!r} is not a valid value of setting {key!r}; choose one of "
            f"{', '.join(spec.choices)}"
        )
    with (
        connection.write("the setting"),
        recorded_event(
            connection,
            "setting",
            f"set {key} = {value}",
            lambda: Snapshot.read(connection).defaults(),
        ) as recorder,
    ):
        before = _stored(connection, key)
        connection.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
        recorder.rows("settings", before, _stored(connection, key))


def _stored(connection: CatalogConnection, key: str) -> dict[str, dict[str, Any]]:
    row = connection.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
    return {} if row is None else {key: {"value": row[0]}}


def _spec(key: str) -> SettingSpec:
    spec = SETTINGS.get(key)
    if spec is None:
        close = suggest(key, SETTINGS)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise SettingError(f"unknown setting {key!r}{hint} (known settings: {', '.join(SETTINGS)})")
    return spec
