"""model-catalog: HELM's model catalog as a relational database.

`from catalog import Catalog` is all most code needs. Importing this package loads neither
SQLAlchemy nor Alembic nor PyYAML: those come in only when the schema changes or YAML is read.
"""

__version__ = "0.1.0"

from catalog.api import Catalog
from catalog.errors import (
    AmbiguousRunEntryError,
    CacheMigrationError,
    CatalogError,
    DatabaseBusyError,
    DatabaseError,
    ExportError,
    HelmError,
    HelmNotInstalledError,
    HistoryError,
    IncompatibleDeploymentError,
    IntegrityViolationError,
    NoCatalogError,
    NotACatalogError,
    PinError,
    ReadOnlyQueryError,
    ResolutionError,
    RunEntrySyntaxError,
    SchemaError,
    SchemaOutdatedError,
    SchemaTooNewError,
    SettingError,
    SourceError,
    SyncError,
    UnknownDeploymentError,
    UnknownModelError,
    UnknownNameError,
    UnknownTagError,
    UnknownTokenizerError,
    UnsupportedDatabaseError,
)

__all__ = [
    "AmbiguousRunEntryError",
    "CacheMigrationError",
    "Catalog",
    "CatalogError",
    "DatabaseBusyError",
    "DatabaseError",
    "ExportError",
    "HelmError",
    "HelmNotInstalledError",
    "HistoryError",
    "IncompatibleDeploymentError",
    "IntegrityViolationError",
    "NoCatalogError",
    "NotACatalogError",
    "PinError",
    "ReadOnlyQueryError",
    "ResolutionError",
    "RunEntrySyntaxError",
    "SchemaError",
    "SchemaOutdatedError",
    "SchemaTooNewError",
    "SettingError",
    "SourceError",
    "SyncError",
    "UnknownDeploymentError",
    "UnknownModelError",
    "UnknownNameError",
    "UnknownTagError",
    "UnknownTokenizerError",
    "UnsupportedDatabaseError",
    "__version__",
]
