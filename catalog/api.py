"""`Catalog`: the one entry point of the Python API; every CLI command calls a method here.

Opening and reading use only the standard library's sqlite3, so `import catalog` and a lookup
stay fast; SQLAlchemy, Alembic and PyYAML are imported only by the methods that write.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from catalog import migrations
from catalog.database import DatabaseLocation, connect
from catalog.errors import DatabaseError

if TYPE_CHECKING:
    from catalog.cache_migration import CacheMigrationReport, CachePlan
    from catalog.checks import CheckReport
    from catalog.entities import DeploymentInfo, ModelInfo, PinInfo, TagInfo, TokenizerInfo
    from catalog.importer import SyncReport
    from catalog.resolution import Explanation, Resolution
    from catalog.yaml_source import YamlLimits


class Catalog:
    """A catalog database. Use `Catalog.open()`; results are plain frozen dataclasses."""

    def __init__(self, location: DatabaseLocation, connection: sqlite3.Connection) -> None:
        self.location = location
        self.connection = connection

    @classmethod
    def open(cls, path_or_url: str | os.PathLike[str] | None = None) -> Catalog:
        """Open (or create, at the newest schema) the catalog; default $CATALOG_DB or ./catalog.db.

        An existing database at another schema revision is refused, never altered: the error
        names `catalog db upgrade`.
        """
        location = DatabaseLocation.parse(path_or_url)
        if _needs_creation(location.path):
            migrations.upgrade(location)
        connection = connect(location)
        try:
            migrations.check_schema(connection, location)
        except sqlite3.DatabaseError as error:
            connection.close()
            raise DatabaseError(
                f"{location.path}: not a usable SQLite database: {error}"
            ) from error
        except BaseException:
            connection.close()
            raise
        return cls(location, connection)

    @property
    def path(self) -> Path:
        return self.location.path

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def sync(
        self,
        sources: Sequence[str | os.PathLike[str]] = (),
        *,
        helm: bool = False,
        strict: bool = False,
        dry_run: bool = False,
        force: bool = False,
        limits: YamlLimits | None = None,
    ) -> SyncReport:
        """Make the catalog exactly the union of `sources` (default: the bundled configs/)."""
        from catalog import importer

        paths = [Path(source) for source in sources]
        return importer.sync(
            self.location,
            self.connection,
            paths,
            helm=helm,
            strict=strict,
            dry_run=dry_run,
            force=force,
            limits=limits,
        )

    # Reading: catalog.store ------------------------------------------------------------------

    def model(self, name: str) -> ModelInfo:
        """One model with its tags and deployments; UnknownModelError suggests close names."""
        from catalog import store

        return store.get_model(self.connection, name)

    def deployment(self, name: str) -> DeploymentInfo:
        from catalog import store

        return store.get_deployment(self.connection, name)

    def tokenizer(self, name: str) -> TokenizerInfo:
        from catalog import store

        return store.get_tokenizer(self.connection, name)

    def models(
        self, *, tag: str | None = None, creator: str | None = None, host: str | None = None
    ) -> list[ModelInfo]:
        """Models in catalog order; `creator` is the name prefix, `host` a deployment host."""
        from catalog import store

        return store.list_models(self.connection, tag=tag, creator=creator, host=host)

    def deployments(
        self,
        *,
        model: str | None = None,
        host: str | None = None,
        tokenizer: str | None = None,
        include_deprecated: bool = True,
    ) -> list[DeploymentInfo]:
        from catalog import store

        return store.list_deployments(
            self.connection,
            model=model,
            host=host,
            tokenizer=tokenizer,
            include_deprecated=include_deprecated,
        )

    def tokenizers(self) -> list[TokenizerInfo]:
        from catalog import store

        return store.list_tokenizers(self.connection)

    def tags(self) -> list[TagInfo]:
        from catalog import store

        return store.list_tags(self.connection)

    def sql(
        self, query: str, params: Sequence[Any] | dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Run one read-only query; anything that would write raises ReadOnlyQueryError."""
        from catalog import store

        return store.run_readonly_query(self.location, query, params)

    def check(self) -> CheckReport:
        from catalog import checks

        return checks.check_catalog(self.connection)

    def export(self, out_dir: str | os.PathLike[str]) -> list[Path]:
        """Write the three HELM YAML files; syncing them back gives the same catalog."""
        from catalog import export

        return export.export_catalog(self.connection, Path(out_dir))

    # Resolution: catalog.resolution ----------------------------------------------------------

    def policy_in_force(self, policy: str | None = None) -> str:
        """`policy` if given, else the database's setting, else `first`."""
        from catalog import resolution

        return resolution.policy_in_force(self.connection, policy)

    def default_deployment(
        self, model: str, policy: str | None = None, ignore_deprecated: bool = False
    ) -> str | None:
        from catalog import resolution

        return resolution.default_deployment(
            self.connection, model, policy=policy, ignore_deprecated=ignore_deprecated
        )

    def resolve(
        self, run_entry: str, *, policy: str | None = None, ignore_deprecated: bool = False
    ) -> list[Resolution]:
        from catalog import resolution

        return resolution.resolve_run_entry(
            self.connection, run_entry, policy=policy, ignore_deprecated=ignore_deprecated
        )

    def explain(self, model: str, policy: str | None = None) -> Explanation:
        from catalog import resolution

        return resolution.explain(self.connection, model, policy=policy)

    def pin(self, model: str, deployment: str) -> PinInfo:
        from catalog import pins

        return pins.pin(self.connection, model, deployment)

    def unpin(self, model: str) -> bool:
        """Remove the pin of `model`; False if it had none."""
        from catalog import pins

        return pins.unpin(self.connection, model)

    def pins(self) -> list[PinInfo]:
        from catalog import pins

        return pins.list_pins(self.connection)

    def settings(self) -> dict[str, str]:
        from catalog import pins

        return pins.get_settings(self.connection)

    def set_setting(self, key: str, value: str) -> None:
        from catalog import pins

        pins.set_setting(self.connection, key, value)

    # Cache migration: catalog.cache_migration ------------------------------------------------

    def plan_cache_migration(
        self,
        cache_dir: str | os.PathLike[str],
        *,
        aliases: str | os.PathLike[str] | None = None,
        policy: str | None = None,
    ) -> CachePlan:
        from catalog import cache_migration

        return cache_migration.plan(
            self.connection, Path(cache_dir), aliases=aliases, policy=policy
        )

    def migrate_cache(
        self,
        cache_dir: str | os.PathLike[str],
        *,
        out: str | os.PathLike[str] | None = None,
        in_place: bool = False,
        on_conflict: str = "keep-target",
        prune: bool = False,
        dry_run: bool = False,
        aliases: str | os.PathLike[str] | None = None,
        policy: str | None = None,
        progress: Any = None,
    ) -> CacheMigrationReport:
        from catalog import cache_migration

        return cache_migration.migrate(
            self.connection,
            Path(cache_dir),
            out=Path(out) if out is not None else None,
            in_place=in_place,
            on_conflict=on_conflict,
            prune=prune,
            dry_run=dry_run,
            aliases=aliases,
            policy=policy,
            progress=progress,
        )


def _needs_creation(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except FileNotFoundError:
        return True
