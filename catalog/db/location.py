"""Where a catalog lives (a SQLite file, or a PostgreSQL database), and where the files shipped
with the package are."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from catalog.errors import UnsupportedDatabaseError

DEFAULT_DB = "catalog.db"
DB_ENV_VAR = "CATALOG_DB"
SQLITE = "sqlite"
POSTGRESQL = "postgresql"

_PACKAGE_DIR = Path(__file__).resolve().parent.parent
_POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")


@dataclass(frozen=True)
class DatabaseLocation:
    """Where a catalog lives: a SQLite file (`path`), or a PostgreSQL database (`conninfo`,
    a libpq URL)."""

    path: Path
    dialect: str = SQLITE
    conninfo: str | None = None

    @property
    def url(self) -> str:
        """A SQLAlchemy URL: `sqlite:///` (percent-encoded: parse() reads it back to the same
        path) or `postgresql+psycopg://`."""
        if self.dialect == POSTGRESQL:
            assert self.conninfo is not None
            return "postgresql+psycopg://" + self.conninfo.split("://", 1)[1]
        return f"sqlite:///{quote(str(self.path))}"

    @property
    def display(self) -> str:
        """How messages name the catalog (a password in a URL is left out)."""
        if self.dialect == POSTGRESQL:
            assert self.conninfo is not None
            parts = urlsplit(self.conninfo)
            netloc = parts.netloc
            if parts.password is not None:
                netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
            return urlunsplit(parts._replace(netloc=netloc))
        return str(self.path)

    @property
    def is_file(self) -> bool:
        return self.dialect == SQLITE

    def exists(self) -> bool:
        """A SQLite catalog is there: a file that is not empty (an empty file is a new
        database). A PostgreSQL database is asked by the connection instead."""
        if self.dialect != SQLITE:
            return True
        try:
            return self.path.is_file() and self.path.stat().st_size > 0
        except OSError:
            return False

    @classmethod
    def parse(cls, path_or_url: str | os.PathLike[str] | None = None) -> DatabaseLocation:
        """A path, a `sqlite:///` URL, a `postgresql://user@host:port/dbname` URL, or None
        (then $CATALOG_DB, else ./catalog.db)."""
        if path_or_url is None:
            path_or_url = os.environ.get(DB_ENV_VAR) or DEFAULT_DB
        text = os.fspath(path_or_url)
        if "://" in text:
            scheme, _, rest = text.partition("://")
            if scheme in _POSTGRES_SCHEMES:
                return cls._postgres(f"postgresql://{rest}")
            if scheme.split("+")[0] != "sqlite":
                raise UnsupportedDatabaseError(
                    f"{scheme}:// databases are not supported",
                    hint="give a SQLite path, a sqlite:///PATH URL or a "
                    "postgresql://user@host:port/dbname URL",
                )
            rest = rest.split("?")[0]
            if rest in ("", "/", "/:memory:"):
                raise UnsupportedDatabaseError(
                    "an in-memory catalog cannot be shared between connections: give a file path"
                )
            # sqlite:///relative.db and sqlite:////absolute.db, as SQLAlchemy reads them.
            text = unquote(rest[1:] if rest.startswith("/") else rest)
        if text == "" or text == ":memory:":
            raise UnsupportedDatabaseError(
                "the catalog needs a file path, not an in-memory database"
            )
        return cls(Path(text).expanduser().absolute())

    @classmethod
    def _postgres(cls, conninfo: str) -> DatabaseLocation:
        parts = urlsplit(conninfo)
        database = parts.path.lstrip("/")
        if not database:
            raise UnsupportedDatabaseError(
                f"{conninfo}: the URL names no database",
                hint="give postgresql://user@host:port/dbname",
            )
        try:
            parts.port  # noqa: B018 (a port that is not a number raises here)
        except ValueError as error:
            raise UnsupportedDatabaseError(
                f"{conninfo}: {error}", hint="give postgresql://user@host:port/dbname"
            ) from None
        return cls(Path(database), POSTGRESQL, conninfo)


def packaged_data_dir(name: str) -> Path:
    """`alembic/` or `configs/`: inside the package when installed from a wheel
    (`catalog/_data/`), at the top of the tree in a checkout or an editable install."""
    installed = _PACKAGE_DIR / "_data" / name
    if installed.is_dir():
        return installed
    checkout = _PACKAGE_DIR.parent / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"model-catalog is installed without its {name}/ directory")
