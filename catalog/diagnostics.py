"""Findings of a sync or a check, each with file, line and a stable code."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Severity = Literal["error", "warning"]


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
