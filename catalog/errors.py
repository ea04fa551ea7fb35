"""Exception classes, one per failure mode, so callers catch what they mean.

Every message says what went wrong and, where there is one, what to do next.
"""

from __future__ import annotations

from collections.abc import Iterable


class CatalogError(Exception):
    """Base class of every error this package raises on purpose."""


class DatabaseError(CatalogError):
    """The catalog database cannot be opened or used."""


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

    `diagnostics` holds every problem found, not only the first.
    """

    def __init__(self, message: str, diagnostics: Iterable[object] = ()) -> None:
        super().__init__(message)
        self.diagnostics = list(diagnostics)


class SourceError(CatalogError):
    """A source directory or file cannot be used at all."""


class HelmNotInstalledError(SourceError):
    """`--helm` was asked for but the crfm-helm package is not installed."""


class UnknownNameError(CatalogError, LookupError):
    """A name that the catalog does not hold; the message suggests close ones."""

    kind = "name"

    def __init__(self, name: str, known: Iterable[str] = ()) -> None:
        self.name = name
        self.suggestions = suggest(name, known)
        from catalog.diagnostics import preview  # a name from a run entry may be huge

        message = f"unknown {self.kind} {preview(name)}"
        if self.suggestions:
            message += "; did you mean " + ", ".join(repr(s) for s in self.suggestions) + "?"
        super().__init__(message)

    def __str__(self) -> str:
        return str(self.args[0])


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


class PinError(CatalogError):
    """A pin that cannot be set (e.g. a deployment of another model)."""


class SettingError(CatalogError):
    """An unknown setting or an invalid value for one."""


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
