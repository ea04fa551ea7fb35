"""What changed between two states of a catalog, name by name: the shape a sync reports, `catalog
diff` prints and the history stores.

Entries are compared by name, by what they say (the columns of catalog.db.schema, a model's tags
included); where an entry stands (its position, its source file and line) is not a change of
what it says, but is kept for as-of answers as a `moved` change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from catalog.db.records import jsonable
from catalog.db.schema import PLACE_COLUMNS

ENTRY_TABLES = ("models", "deployments", "tokenizers")
DIFF_POLICIES = ("first", "last")

Values = Mapping[str, Any]


@dataclass(frozen=True)
class FieldChange:
    before: Any
    after: Any


@dataclass(frozen=True)
class EntryChange:
    """One entry whose content differs: each differing field, before and after."""

    name: str
    fields: Mapping[str, FieldChange]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fields": {
                key: {"before": jsonable(value.before), "after": jsonable(value.after)}
                for key, value in self.fields.items()
            },
        }


@dataclass(frozen=True)
class DefaultChange:
    """A model whose default deployment differs (None: it has none on that side)."""

    model: str
    before: str | None
    after: str | None

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "before": self.before, "after": self.after}


@dataclass
class ChangeSet:
    """Entries added, removed and changed per table, and default changes per policy."""

    added: dict[str, list[str]] = field(default_factory=lambda: {t: [] for t in ENTRY_TABLES})
    removed: dict[str, list[str]] = field(default_factory=lambda: {t: [] for t in ENTRY_TABLES})
    changed: dict[str, list[EntryChange]] = field(
        default_factory=lambda: {t: [] for t in ENTRY_TABLES}
    )
    default_changes: dict[str, list[DefaultChange]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        lists: list[Any] = [*self.added.values(), *self.removed.values(), *self.changed.values()]
        return not any(lists) and not any(self.default_changes.values())

    def to_json_under(self, names_key: str) -> dict[str, Any]:
        """The entries under `names_key` (a sync report's counts keep the top-level keys)."""
        shape = self.to_json()
        entries = {key: shape[key] for key in ("added", "removed", "changed")}
        return {names_key: entries, "default_changes": shape["default_changes"]}

    def to_json(self) -> dict[str, Any]:
        return {
            "added": {table: sorted(names) for table, names in self.added.items()},
            "removed": {table: sorted(names) for table, names in self.removed.items()},
            "changed": {
                table: [c.to_json() for c in sorted(changes, key=lambda c: c.name)]
                for table, changes in self.changed.items()
            },
            "default_changes": {
                policy: [c.to_json() for c in sorted(changes, key=lambda c: c.model)]
                for policy, changes in self.default_changes.items()
            },
        }


def content_fields(values: Values) -> dict[str, Any]:
    return {key: value for key, value in values.items() if key not in PLACE_COLUMNS}


def field_changes(before: Values, after: Values) -> dict[str, FieldChange]:
    """The fields of `after` whose value differs from `before`."""
    return {
        key: FieldChange(before.get(key), value)
        for key, value in after.items()
        if before.get(key) != value
    }


def compare_table(
    changes: ChangeSet, table: str, before: Mapping[str, Values], after: Mapping[str, Values]
) -> None:
    """Add to `changes` what differs in `table`, by name, in content (not place)."""
    changes.added[table] = [name for name in after if name not in before]
    changes.removed[table] = [name for name in before if name not in after]
    changed: list[EntryChange] = []
    for name, values in after.items():
        old = before.get(name)
        if old is None:
            continue
        differing = field_changes(content_fields(old), content_fields(values))
        if differing:
            changed.append(EntryChange(name, differing))
    changes.changed[table] = changed


def compare_defaults(
    changes: ChangeSet,
    policy: str,
    before: Mapping[str, str | None],
    after: Mapping[str, str | None],
) -> None:
    """Models whose default differs under `policy`; a model on one side only counts unless it
    has no default on its own side either."""
    found = []
    for model in dict.fromkeys([*before, *after]):
        old, new = before.get(model), after.get(model)
        if old != new:
            found.append(DefaultChange(model, old, new))
    changes.default_changes[policy] = found


def names_in(items: Iterable[EntryChange]) -> list[str]:
    return [item.name for item in items]
