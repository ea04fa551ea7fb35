"""A ChangeSet as text: what `catalog sync` and `catalog diff` print for a person to review."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from catalog.history.changes import ENTRY_TABLES, ChangeSet

SHOWN = 20


def _value(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(sorted(names)[:SHOWN])
    rest = len(names) - SHOWN
    return shown + (f" and {rest} more" if rest > 0 else "")


def change_lines(
    changes: ChangeSet, *, prefix: str = "", policies: Sequence[str] = ()
) -> list[str]:
    """Entries added, removed and changed (the first 20 of each, and how many more), then the
    models whose default deployment changed under each of `policies`. A model added or removed
    is listed as such; that its default came or went is not repeated (the JSON has it)."""
    lines: list[str] = []
    came_or_went = set(changes.added.get("models", ())) | set(changes.removed.get("models", ()))
    for verb, by_table in (("added", changes.added), ("removed", changes.removed)):
        for table in ENTRY_TABLES:
            if by_table[table]:
                lines.append(f"{prefix}{verb} {table}: {_names(by_table[table])}")
    for table in ENTRY_TABLES:
        changed = sorted(changes.changed[table], key=lambda c: c.name)
        if not changed:
            continue
        lines.append(f"{prefix}changed {table} ({len(changed)}):")
        for change in changed[:SHOWN]:
            fields = "; ".join(
                f"{key}: {_value(value.before)} -> {_value(value.after)}"
                for key, value in change.fields.items()
            )
            lines.append(f"  {change.name}: {fields}")
        if len(changed) > SHOWN:
            lines.append(f"  ... and {len(changed) - SHOWN} more")
    for policy in policies:
        moved = sorted(
            (c for c in changes.default_changes.get(policy, []) if c.model not in came_or_went),
            key=lambda c: c.model,
        )
        if not moved:
            continue
        label = "the policy in force, pins applied" if policy == "in_force" else policy
        lines.append(f"{prefix}default deployment changed ({label}) for {len(moved)} models:")
        for default in moved[:SHOWN]:
            before, after = default.before or "(none)", default.after or "(none)"
            lines.append(f"  {default.model}: {before} -> {after}")
        if len(moved) > SHOWN:
            lines.append(f"  ... and {len(moved) - SHOWN} more")
    return lines
