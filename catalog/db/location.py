"""Where a catalog lives (a path or a URL), and where the files shipped with the package are."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from catalog.errors import UnsupportedDatabaseError

DEFAULT_DB = "catalog.db"
DB_ENV_VAR = "CATALOG_DB"

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class DatabaseLocation:
    """Where a catalog lives; only SQLite files are served by this version."""

    path: Path

    @property
    def url(self) -> str:
        """A `sqlite:///` URL that parse() reads back to the same path (it is percent-encoded)."""
        return f"sqlite:///{quote(str(self.path))}"

    @property
    def display(self) -> str:
        """How messages name the catalog."""
        return str(self.path)

    def exists(self) -> bool:
        """A catalog is there: a file that is not empty (an empty file is a new database)."""
        try:
            return self.path.stat().st_size > 0
        except (FileNotFoundError, NotADirectoryError):
            return False

    @classmethod
    def parse(cls, path_or_url: str | os.PathLike[str] | None = None) -> DatabaseLocation:
        """A path, a `sqlite:///` URL, or None (then $CATALOG_DB, else ./catalog.db)."""
        if path_or_url is None:
            path_or_url = os.environ.get(DB_ENV_VAR) or DEFAULT_DB
        text = os.fspath(path_or_url)
        if "://" in text:
            scheme, _, rest = text.partition("://")
            if scheme.split("+")[0] != "sqlite":
                raise UnsupportedDatabaseError(
                    f"{scheme}:// databases are not supported yet: give a SQLite path or a "
                    "sqlite:///PATH URL"
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
