"""Findings of a sync or a check, each with file, line and a stable code."""

from __future__ import annotations

import reprlib
from dataclasses import asdict, dataclass
from typing import Any, Literal

Severity = Literal["error", "warning"]

# Findings kept per file: past this a file is broken throughout and listing more only costs
# time and memory; the rest are counted in one closing finding.
MAX_FINDINGS_PER_FILE = 1000

_PREVIEW = reprlib.Repr()
_PREVIEW.maxlevel = 3
_PREVIEW.maxstring = 80
_PREVIEW.maxother = 80
_PREVIEW.maxlist = _PREVIEW.maxdict = _PREVIEW.maxtuple = _PREVIEW.maxset = 5
_PREVIEW.maxlong = 40


def preview(value: Any) -> str:
    """A short repr for a message: a value from a hostile file may be huge or deeply nested."""
    return _PREVIEW.repr(value)


@dataclass(frozen=True)
class Diagnostic:
    """One problem in the sources. `code` is stable: scripts and tests match on it."""

    severity: Severity
    code: str
    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None

    def location(self) -> str:
        if self.file is None:
            return ""
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return where

    def __str__(self) -> str:
        where = self.location()
        prefix = f"{where}: " if where else ""
        return f"{prefix}{self.severity}: {self.message} [{self.code}]"

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        del data["severity"]
        if data["column"] is None:
            del data["column"]
        return data

    def as_error(self) -> Diagnostic:
        """The same finding promoted to an error (`--strict`)."""
        return Diagnostic("error", self.code, self.message, self.file, self.line, self.column)
