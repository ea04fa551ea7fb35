"""What can go wrong, and how it is told: error classes, findings, and the words for both.

One exception class per failure mode, so callers catch what they mean. Every error says what
went wrong and, where there is one, what to do next: `hint`, printed on its own line by the
CLI (`error: ...` then `hint: ...`). A `Finding` is one problem in the sources or the catalog,
with a stable code and file:line; a sync and `catalog check` report the same type.
"""

from __future__ import annotations

import enum
import reprlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from catalog.sync.report import SyncReport


def with_hint(message: str, hint: str | None) -> str:
    """The one layout of an error with advice: the message, then `hint: ...` on its own line."""
    if not hint or hint in message:
        return message
    return f"{message}\nhint: {hint}"


class CatalogError(Exception):
    """Base class of every error this package raises on purpose.

    `str(error)` is the message followed by its hint line, if it has one.
    """

    def __init__(self, message: str = "", *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __str__(self) -> str:
        return with_hint(self.message, self.hint)


class DatabaseError(CatalogError):
    """The catalog database cannot be opened or used."""


class NoCatalogError(DatabaseError):
    """There is no catalog where one was named, and the command does not create one."""


class DatabaseBusyError(DatabaseError):
    """Another process held the write lock for longer than the busy timeout."""


class IntegrityViolationError(DatabaseError):
    """A write would break a constraint (a foreign key, a check); nothing was written."""


class UnsupportedDatabaseError(DatabaseError):
    """A URL names a database backend this version cannot serve."""


class SchemaError(DatabaseError):
    """The database's schema revision is not the one this version works with."""


class SchemaOutdatedError(SchemaError):
    """The database is at an older revision: `catalog db upgrade` fixes it."""


class SchemaTooNewError(SchemaError):
    """The database was made by a newer model-catalog than this one."""


class NotACatalogError(DatabaseError):
    """The file is a database (or not) but not a model-catalog database."""


class ReadOnlyQueryError(CatalogError):
    """A user query tried to change the database."""


class SyncError(CatalogError):
    """A sync could not do its job; the database is unchanged.

    `report` is the sync's report, `diagnostics` every error it found, not only the first.
    """

    def __init__(
        self,
        message: str,
        diagnostics: Iterable[Finding] = (),
        *,
        report: SyncReport | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.report = report
        self.diagnostics = list(diagnostics)


class SourceError(CatalogError):
    """A source directory or file cannot be used at all."""


class HelmNotInstalledError(SourceError):
    """`--helm` was asked for but the crfm-helm package is not installed."""


class UnknownNameError(CatalogError, LookupError):
    """A name that the catalog does not hold; the message suggests close ones."""

    kind = "name"

    def __init__(self, name: str, known: Iterable[str] = (), *, hint: str | None = None) -> None:
        self.name = name
        self.suggestions = suggest(name, known)
        message = f"unknown {self.kind} {preview(name)}"
        if self.suggestions:
            message += "; did you mean " + ", ".join(repr(s) for s in self.suggestions) + "?"
        super().__init__(message, hint=hint)


class UnknownModelError(UnknownNameError):
    kind = "model"


class UnknownDeploymentError(UnknownNameError, ValueError):
    """Subclasses ValueError because HELM's registry raises ValueError here."""

    kind = "deployment"


class UnknownTokenizerError(UnknownNameError, ValueError):
    kind = "tokenizer"


class UnknownTagError(UnknownNameError):
    kind = "tag"


class ResolutionError(CatalogError):
    """A run entry cannot be turned into deployments."""


class IncompatibleDeploymentError(ResolutionError):
    """`model=` and `model_deployment=` name a deployment of another model."""


class AmbiguousRunEntryError(ResolutionError):
    """A run entry names a group where one deployment is required."""


class RunEntrySyntaxError(ResolutionError):
    """A run entry that is not of HELM's `name:key=value,...` form."""


class HelmError(CatalogError):
    """What was asked needs HELM's own code or rules, and they cannot give it: HELM's rule for
    a version cannot be made to pick the catalog's choice, or HELM's code failed."""


class PinError(CatalogError):
    """A pin that cannot be set (e.g. a deployment of another model)."""


class SettingError(CatalogError):
    """An unknown setting or an invalid value for one."""


class ExportError(CatalogError):
    """An export that would overwrite files without --force, or cannot be written."""


class HistoryError(CatalogError):
    """No state of the catalog is known at the moment asked for, or a past state was asked to
    change."""


class CacheMigrationError(CatalogError):
    """A cache migration could not do its job; the report says which shards."""


def suggest(name: str, known: Iterable[str], limit: int = 3) -> list[str]:
    """Closest known names, also matching on the part after `/` (typos in the engine)."""
    import difflib  # only on the error path: keeps `import catalog` light

    known_list = list(known)
    close = difflib.get_close_matches(name, known_list, n=limit, cutoff=0.6)
    if len(close) < limit:
        engine = name.rpartition("/")[2].lower()
        for candidate in known_list:
            if candidate not in close and engine and candidate.rpartition("/")[2].lower() == engine:
                close.append(candidate)
                if len(close) == limit:
                    break
    return close


_PREVIEW = reprlib.Repr()
_PREVIEW.maxlevel = 3
_PREVIEW.maxstring = 80
_PREVIEW.maxother = 80
_PREVIEW.maxlist = _PREVIEW.maxdict = _PREVIEW.maxtuple = _PREVIEW.maxset = 5
_PREVIEW.maxlong = 40


def preview(value: Any) -> str:
    """A short repr for a message: a value from a hostile file may be huge or deeply nested."""
    return _PREVIEW.repr(value)


def line_of_offset(data: bytes | str, offset: int) -> int:
    """The 1-based line of a byte (or character) offset."""
    newline: Any = b"\n" if isinstance(data, bytes) else "\n"
    return data.count(newline, 0, offset) + 1


def decode_utf8(data: bytes, where: str, error: type[CatalogError]) -> str:
    """UTF-8 text (a byte-order mark dropped); else `error` naming the line of the bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as problem:
        line = line_of_offset(data, problem.start)
        raise error(f"{where}:{line}: the file is not UTF-8 text") from problem


# Findings ----------------------------------------------------------------------------------


class Severity(enum.StrEnum):
    """How much a finding matters: errors stop a sync (and fail `catalog check`)."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


# Findings kept per file: past this a file is broken throughout and listing more only costs
# time and memory; the rest are counted in one closing finding.
MAX_FINDINGS_PER_FILE = 1000


@dataclass(frozen=True)
class Finding:
    """One problem, in the sources (a sync) or in the catalog (`catalog check`).

    `code` is stable: scripts and tests match on it. `subject` is the name it is about.
    """

    severity: Severity
    code: str
    message: str
    subject: str | None = None
    file: str | None = None
    line: int | None = None
    column: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "severity", Severity(self.severity))

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

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "severity": str(self.severity),
            "code": self.code,
            "message": self.message,
            "subject": self.subject,
            "file": self.file,
            "line": self.line,
        }
        if self.column is not None:
            data["column"] = self.column
        return data

    def as_error(self) -> Finding:
        """The same finding promoted to an error (`--strict`)."""
        return Finding(
            Severity.ERROR, self.code, self.message, self.subject, self.file, self.line, self.column
        )
