"""Resolving a whole HELM run-entries file, with a summary of what failed and why.

An entry fails when it cannot be read, when resolution raises, or when one of its models has
no deployment to run on: HELM stops on such an entry too (it raises while building the run
specs), so the summary counts it as failed rather than hiding the model.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.errors import (
    AmbiguousRunEntryError,
    CatalogError,
    IncompatibleDeploymentError,
    RunEntrySyntaxError,
    UnknownDeploymentError,
    UnknownModelError,
    decode_utf8,
)
from catalog.resolve.conf_files import parse_conf
from catalog.resolve.engine import Resolution, ResolutionEngine

UNREADABLE = "unreadable entry"
NO_DEPLOYMENT = "model without deployment"
_REASONS: tuple[tuple[type[CatalogError], str], ...] = (
    (RunEntrySyntaxError, "run entry syntax"),
    (UnknownModelError, "unknown model"),
    (UnknownDeploymentError, "unknown deployment"),
    (IncompatibleDeploymentError, "incompatible deployment"),
    (AmbiguousRunEntryError, "ambiguous run entry"),
)


@dataclass(frozen=True)
class EntryOutcome:
    """One entry of the file: its runs, or why it failed (`reason` groups failures)."""

    line: int
    description: str | None
    priority: int | None
    resolutions: tuple[Resolution, ...]
    error: str | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None

    def to_json(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "description": self.description,
            "priority": self.priority,
            "ok": self.ok,
            "reason": self.reason,
            "error": self.error,
            "resolutions": [r.to_json() for r in self.resolutions],
        }


@dataclass(frozen=True)
class FileReport:
    path: str
    policy: str
    outcomes: tuple[EntryOutcome, ...]

    @property
    def resolved(self) -> int:
        return sum(1 for o in self.outcomes if o.ok)

    @property
    def failed(self) -> int:
        return len(self.outcomes) - self.resolved

    @property
    def runs(self) -> int:
        return sum(len(o.resolutions) for o in self.outcomes)

    @property
    def empty(self) -> int:
        """Entries that resolved to no run at all (e.g. a group whose models are all excluded)."""
        return sum(1 for o in self.outcomes if o.ok and not o.resolutions)

    def failures_by_reason(self) -> dict[str, int]:
        counts = Counter(o.reason for o in self.outcomes if o.reason is not None)
        return dict(counts.most_common())

    def summary(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "policy": self.policy,
            "entries": len(self.outcomes),
            "resolved": self.resolved,
            "failed": self.failed,
            "runs": self.runs,
            "empty": self.empty,
            "failures_by_reason": self.failures_by_reason(),
        }

    def to_json(self) -> dict[str, Any]:
        return {"summary": self.summary(), "entries": [o.to_json() for o in self.outcomes]}


def resolve_file(
    engine: ResolutionEngine,
    path: str | Path,
    *,
    policy: str | None = None,
    ignore_deprecated: bool = False,
) -> FileReport:
    """Resolve every entry of a run-entries file; one bad entry never stops the others."""
    text = decode_utf8(Path(path).read_bytes(), str(path), RunEntrySyntaxError)
    chosen_policy = engine.policy_in_force(policy)[0]
    outcomes = []
    for entry in parse_conf(text, str(path)):
        if entry.error is not None or entry.description is None:
            outcomes.append(
                EntryOutcome(
                    entry.line,
                    entry.description,
                    entry.priority,
                    (),
                    f"{path}:{entry.line}: {entry.error}",
                    UNREADABLE,
                )
            )
            continue
        try:
            runs = engine.resolve(
                entry.description,
                policy=chosen_policy,
                ignore_deprecated=ignore_deprecated,
            )
        except CatalogError as error:
            outcomes.append(
                EntryOutcome(
                    entry.line, entry.description, entry.priority, (), str(error), _reason(error)
                )
            )
            continue
        missing = [r for r in runs if r.model_deployment is None]
        if missing:
            message = "; ".join(w for r in missing for w in r.warnings)
            outcomes.append(
                EntryOutcome(
                    entry.line,
                    entry.description,
                    entry.priority,
                    tuple(runs),
                    message,
                    NO_DEPLOYMENT,
                )
            )
        else:
            outcomes.append(
                EntryOutcome(entry.line, entry.description, entry.priority, tuple(runs))
            )
    return FileReport(str(path), chosen_policy, tuple(outcomes))


def _reason(error: CatalogError) -> str:
    for error_class, reason in _REASONS:
        if isinstance(error, error_class):
            return reason
    return type(error).__name__
