"""What a sync did (or, with --dry-run, would do): counts, findings, dropped pins."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from catalog.errors import Finding, SyncError
from catalog.history.changes import ChangeSet

COUNTED_TABLES = ("models", "deployments", "tokenizers", "tags")


def zero_counts() -> dict[str, int]:
    return dict.fromkeys(COUNTED_TABLES, 0)


@dataclass
class SyncReport:
    """What a sync did (or, with dry_run, would do)."""

    added: dict[str, int] = field(default_factory=zero_counts)
    changed: dict[str, int] = field(default_factory=zero_counts)
    removed: dict[str, int] = field(default_factory=zero_counts)
    warnings: list[Finding] = field(default_factory=list)
    errors: list[Finding] = field(default_factory=list)
    skipped_unchanged: bool = False
    dry_run: bool = False
    sources: list[str] = field(default_factory=list)
    pins_dropped: list[str] = field(default_factory=list)
    changes: ChangeSet = field(default_factory=ChangeSet)
    """Entries by name and the default changes per policy (empty when nothing was compared)."""

    @property
    def changed_anything(self) -> bool:
        counts = (*self.added.values(), *self.changed.values(), *self.removed.values())
        return any(counts) or bool(self.pins_dropped)

    def to_json(self) -> dict[str, Any]:
        return {
            "added": dict(self.added),
            "changed": dict(self.changed),
            "removed": dict(self.removed),
            "warnings": [d.to_json() for d in self.warnings],
            "errors": [d.to_json() for d in self.errors],
            "skipped_unchanged": self.skipped_unchanged,
            "dry_run": self.dry_run,
            "sources": list(self.sources),
            "pins_dropped": list(self.pins_dropped),
            **self.changes.to_json_under("names"),
        }

    def failure(self) -> SyncError:
        """The error that ends a sync with these errors; nothing was written."""
        count = len(self.errors)
        first = self.errors[0] if self.errors else None
        message = f"sync failed with {count} error{'s' if count != 1 else ''}; nothing was written"
        if first is not None:
            message += f" (first: {first})"
        return SyncError(message, self.errors, report=self)
