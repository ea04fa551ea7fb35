"""`Catalog`: the one entry point of the Python API; every CLI command calls a method here.

A `Catalog` owns its connection and its resolution engine; the modules behind each method
(catalog.sync, catalog.query, catalog.resolve, catalog.cache) are imported when first used, so
`import catalog` and a lookup load only the standard library's sqlite3: SQLAlchemy, Alembic and
PyYAML come in only when the schema changes or YAML is read.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from catalog.db import migrations
from catalog.db.connection import CatalogConnection, connect
from catalog.db.location import DatabaseLocation
from catalog.errors import DatabaseError, HistoryError, NoCatalogError
from catalog.resolve.engine import ResolutionEngine
from catalog.resolve.policies import POLICY_SETTING

if TYPE_CHECKING:
    from catalog.cache.report import CacheMigrationReport, CachePlan
    from catalog.cache.scan import CachedCounts, CachedResponses, CacheScan
    from catalog.db.copying import CopyReport
    from catalog.db.schema import (
        DeploymentInfo,
        EventInfo,
        ModelInfo,
        PinInfo,
        TagInfo,
        TokenizerInfo,
    )
    from catalog.db.search import SearchHit
    from catalog.history.changes import ChangeSet
    from catalog.history.log import HistoryEntry
    from catalog.query.checks import CheckReport
    from catalog.resolve.conf_resolution import FileReport
    from catalog.resolve.engine import Explanation, Resolution
    from catalog.sync.report import SyncReport
    from catalog.sync.yaml_loader import YamlLimits
    from catalog.web.server import ServedFile


class Catalog:
    """A catalog database. Use `Catalog.open()`; results are plain frozen dataclasses."""

    def __init__(self, location: DatabaseLocation, connection: CatalogConnection) -> None:
        self.location = location
        self.connection = connection
        self.engine = ResolutionEngine(connection)

    @classmethod
    def open(
        cls, path_or_url: str | os.PathLike[str] | None = None, *, create: bool = True
    ) -> Catalog:
        """Open the catalog (default $CATALOG_DB or ./catalog.db); with `create`, a catalog
        that does not exist yet is created at the newest schema, else NoCatalogError.

        An existing database at another schema revision is refused, never altered: the error
        names `catalog db upgrade`.
        """
        location = DatabaseLocation.parse(path_or_url)
        if location.path.is_dir():
            raise DatabaseError(
                f"{location.path} is a directory", hint="give --db the path of a catalog file"
            )
        if not location.exists():
            if not create:
                raise NoCatalogError(
                    f"no catalog at {location.path}", hint="run `catalog sync` to create one"
                )
            migrations.upgrade(location)
        connection = connect(location)
        try:
            migrations.check_schema(connection, location, create=create)
        except sqlite3.DatabaseError as error:
            connection.close()
            raise DatabaseError(
                f"{location.path}: not a usable SQLite database: {error}"
            ) from error
        except BaseException:
            connection.close()
            raise
        return cls(location, connection)

    @classmethod
    def from_helm_dirs(
        cls, dirs: Sequence[str | os.PathLike[str]], *, helm: bool = False
    ) -> Catalog:
        """HELM config directories (layered, as for `sync`) loaded into a catalog in memory:
        nothing is written anywhere. SyncError if they have errors."""
        from catalog.db.memory import new_empty

        label = " + ".join(str(d) for d in dirs) or "the bundled configs"
        memory = new_empty(label)
        catalog = cls(memory.location, memory)
        try:
            catalog.sync(dirs, helm=helm)
        except BaseException:
            catalog.close()
            raise
        return catalog

    @classmethod
    def open_side(cls, spec: str | os.PathLike[str]) -> Catalog:
        """A catalog to compare: a HELM config directory (loaded in memory) or a catalog file
        (opened, never created)."""
        if Path(spec).is_dir():
            return cls.from_helm_dirs([spec])
        return cls.open(spec, create=False)

    def open_other(self, spec: str) -> Catalog:
        """Another catalog to compare with this one: `@SYNC_ID` or `@DATE` (this catalog as of
        then), else as `open_side`."""
        if spec.startswith("@"):
            return self.at(spec[1:])
        return Catalog.open_side(spec)

    @staticmethod
    def serve(
        path_or_url: str | os.PathLike[str] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 8001,
        snapshot: bool = False,
        open_browser: bool = False,
        on_ready: Callable[[str, ServedFile], None] | None = None,
    ) -> None:
        """Serve the catalog in Datasette until interrupted (needs the `web` extra).

        Never writes to the catalog and never opens it for writing: a live catalog is served
        read-only and shows each new sync; with `snapshot`, or when its directory is read-only,
        an immutable copy is served instead. `on_ready(url, served)` is called once the first
        page can be loaded.
        """
        from catalog.web import server

        server.require_web_extra()
        server.serve(
            DatabaseLocation.parse(path_or_url),
            host=host,
            port=port,
            snapshot=snapshot,
            open_browser=open_browser,
            on_ready=on_ready,
        )

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

    # History: catalog.history --------------------------------------------------------------

    def at(self, point: int | str | dt.date | dt.datetime) -> Catalog:
        """The catalog as it was right after sync `point` (an id), or at a moment (a date: its
        end, UTC; a datetime: naive means UTC): a read-only Catalog with the same methods,
        its entries, pins and policy those of that moment."""
        from catalog.history.as_of import catalog_at

        event, memory = catalog_at(self.connection, point)
        return PastCatalog(self.location, memory, event)

    def history(self, name: str) -> list[HistoryEntry]:
        """Every recorded change of one model, deployment or tokenizer (or pin, or setting),
        and of a model's default deployment, oldest first."""
        from catalog.history.log import entry_history

        return entry_history(self.connection, name)

    def diff(self, other: Catalog) -> ChangeSet:
        """What differs from this catalog to `other`: entries by name, field by field, and
        default deployments per policy."""
        from catalog.history.diff import diff_catalogs

        return diff_catalogs(
            self.connection,
            other.connection,
            self.engine.snapshot().defaults(),
            other.engine.snapshot().defaults(),
        )

    def copy_to(self, target: Catalog, *, force: bool = False) -> CopyReport:
        """Copy this whole catalog (entries, pins, settings, syncs, history) into `target`,
        verified table by table; refused if `target` holds a catalog already, unless `force`."""
        from catalog.db.copying import copy_catalog

        return copy_catalog(self.connection, target.connection, force=force)

    # Syncing: catalog.sync ------------------------------------------------------------------

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
        from catalog.sync import pipeline

        return pipeline.sync(
            self.connection,
            [Path(source) for source in sources],
            helm=helm,
            strict=strict,
            dry_run=dry_run,
            force=force,
            limits=limits,
        )

    # Reading: catalog.query -----------------------------------------------------------------

    def model(self, name: str) -> ModelInfo:
        """One model with its tags and deployments; UnknownModelError suggests close names."""
        from catalog.query import lookups

        return lookups.get_model(self.connection, name)

    def deployment(self, name: str) -> DeploymentInfo:
        from catalog.query import lookups

        return lookups.get_deployment(self.connection, name)

    def tokenizer(self, name: str) -> TokenizerInfo:
        from catalog.query import lookups

        return lookups.get_tokenizer(self.connection, name)

    def models(
        self, *, tag: str | None = None, creator: str | None = None, host: str | None = None
    ) -> list[ModelInfo]:
        """Models in catalog order; `creator` is the name prefix, `host` a deployment host."""
        from catalog.query import lookups

        return lookups.list_models(self.connection, tag=tag, creator=creator, host=host)

    def model_names(self) -> list[str]:
        """Every model's name, in catalog order."""
        from catalog.query import lookups

        return lookups.names(self.connection, "models")

    def deployments(
        self,
        *,
        model: str | None = None,
        host: str | None = None,
        tokenizer: str | None = None,
        include_deprecated: bool = True,
        cached: bool = False,
    ) -> list[DeploymentInfo]:
        """Deployments in catalog order; `cached`: only those with cached responses, by the
        last `catalog cache scan` of each cache directory."""
        from catalog.query import lookups

        return lookups.list_deployments(
            self.connection,
            model=model,
            host=host,
            tokenizer=tokenizer,
            include_deprecated=include_deprecated,
            cached=cached,
        )

    def tokenizers(self) -> list[TokenizerInfo]:
        from catalog.query import lookups

        return lookups.list_tokenizers(self.connection)

    def tags(self) -> list[TagInfo]:
        from catalog.query import lookups

        return lookups.list_tags(self.connection)

    def sql(
        self, query: str, params: Sequence[Any] | dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Run one read-only query; anything that would write raises ReadOnlyQueryError."""
        from catalog.db import readonly

        return readonly.run_readonly_query(self.location, query, params)

    def search(
        self, text: str, *, kinds: Sequence[str] | None = None, limit: int = 20
    ) -> list[SearchHit]:
        """Models, deployments and tokenizers (or only `kinds` of them: model, deployment,
        tokenizer) matching every word of `text`, best match first (full-text search)."""
        from catalog.db import search

        return search.search(self.connection, text, kinds=kinds, limit=limit)

    def check(self) -> CheckReport:
        from catalog.query import checks

        return checks.check_catalog(self.connection)

    def export(
        self, out_dir: str | os.PathLike[str], *, force: bool = False, for_helm: str | None = None
    ) -> list[Path]:
        """Write the three HELM YAML files; syncing them back gives the same catalog. A
        directory already holding one of them is refused (ExportError) unless `force`.

        With `for_helm` (a crfm-helm version, or "installed": the installed one, else the
        newest rule) the deployments are ordered so that HELM of that version picks the
        catalog's default of every model, pins included; HelmError if no order can.
        """
        if for_helm is not None:
            from catalog.helm.export import export_for_helm

            return list(export_for_helm(self, Path(out_dir), for_helm, force=force).paths)
        from catalog.query import export

        return export.export_catalog(self.connection, Path(out_dir), force=force)

    # Resolution: catalog.resolve ------------------------------------------------------------

    def policy_in_force(self, policy: str | None = None) -> str:
        """`policy` if given, else the database's setting, else the rule of the crfm-helm that
        the last sync read with --helm (`last` since 0.5.7), else `first`."""
        return self.engine.policy_in_force(policy)[0]

    def policy_reason(self, policy: str | None = None) -> tuple[str, str]:
        """(the policy in force, why: "set by the user", "from crfm-helm 0.5.16 synced with
        --helm", "default ...")."""
        return self.engine.policy_reason(policy)

    def default_deployment(
        self, model: str, policy: str | None = None, ignore_deprecated: bool = False
    ) -> str | None:
        return self.engine.default_deployment(
            model, policy=policy, ignore_deprecated=ignore_deprecated
        )

    def resolve(
        self,
        run_entry: str,
        *,
        policy: str | None = None,
        ignore_deprecated: bool = False,
        models_to_run: Sequence[str] | None = None,
        groups_to_run: Sequence[str] | None = None,
    ) -> list[Resolution]:
        """The runs of one entry; `models_to_run` and `groups_to_run` mean what helm-run's
        --models-to-run and --groups-to-run mean (the latter needs crfm-helm)."""
        if not models_to_run and not groups_to_run:
            return self.engine.resolve(
                run_entry, policy=policy, ignore_deprecated=ignore_deprecated
            )
        from catalog.resolve import conf_resolution

        options = conf_resolution.RunOptions.of(models_to_run, groups_to_run)
        return conf_resolution.resolve_entry(
            self.engine,
            run_entry,
            policy=policy,
            ignore_deprecated=ignore_deprecated,
            options=options,
        )

    def resolve_file(
        self,
        path: str | os.PathLike[str],
        *,
        policy: str | None = None,
        ignore_deprecated: bool = False,
        models_to_run: Sequence[str] | None = None,
        groups_to_run: Sequence[str] | None = None,
        priority: int | None = None,
    ) -> FileReport:
        """Every entry of a HELM run-entries file, with helm-run's --models-to-run,
        --groups-to-run and --priority; one bad entry never stops the others."""
        from catalog.resolve import conf_resolution

        return conf_resolution.resolve_file(
            self.engine,
            Path(path),
            policy=policy,
            ignore_deprecated=ignore_deprecated,
            options=conf_resolution.RunOptions.of(models_to_run, groups_to_run, priority),
        )

    def explain(self, model: str, policy: str | None = None) -> Explanation:
        return self.engine.explain(model, policy=policy)

    def pin(self, model: str, deployment: str) -> PinInfo:
        from catalog.resolve import pins

        return pins.pin(self.connection, model, deployment)

    def unpin(self, model: str) -> bool:
        """Remove the pin of `model`; False if it had none."""
        from catalog.resolve import pins

        return pins.unpin(self.connection, model)

    def restore_pins(self, path: str | os.PathLike[str]) -> list[PinInfo]:
        """Pin every model of a file written by `catalog pins --json` (all checked first:
        a bad file pins nothing)."""
        from catalog.resolve import pins

        return pins.restore_pins(self.connection, Path(path))

    def pins(self) -> list[PinInfo]:
        from catalog.resolve import pins

        return pins.list_pins(self.connection)

    def settings(self) -> dict[str, str]:
        """Every setting's value; the policy's is the one in force (see `policy_in_force`)."""
        from catalog.resolve import settings

        values = settings.get_settings(self.connection)
        values[POLICY_SETTING] = self.policy_in_force()
        return values

    def setting(self, key: str) -> str:
        """One setting's value (its default if never set; for the policy, the one in force);
        SettingError for an unknown key."""
        from catalog.resolve import settings

        value = settings.get_setting(self.connection, key)
        return self.policy_in_force() if key == POLICY_SETTING else value

    def set_setting(self, key: str, value: str) -> None:
        from catalog.resolve import settings

        settings.set_setting(self.connection, key, value)

    # Cache migration: catalog.cache ---------------------------------------------------------

    def plan_cache_migration(
        self,
        cache_dir: str | os.PathLike[str],
        *,
        aliases: str | os.PathLike[str] | None = None,
        policy: str | None = None,
    ) -> CachePlan:
        from catalog.cache import plan

        return plan.plan(
            self.connection, self.engine, Path(cache_dir), aliases=aliases, policy=policy
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
        from catalog.cache import migrate

        return migrate.migrate(
            self.connection,
            self.engine,
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

    def scan_cache(
        self, cache_dir: str | os.PathLike[str], *, aliases: str | os.PathLike[str] | None = None
    ) -> CacheScan:
        """Count a cache's entries per shard and per model or deployment, read-only, and record
        the counts in the catalog (in place of the last scan of the same directory)."""
        from catalog.cache import scan

        return scan.scan(self.connection, self.engine, Path(cache_dir), aliases=aliases)

    def cached_responses(self, model: str | None = None) -> list[CachedResponses]:
        """What the scans recorded (the view `cached_responses`), for one model if given."""
        from catalog.cache import scan

        return scan.cached_responses(self.connection, model=model)

    def cached_counts(self, model: str) -> CachedCounts:
        """How many cached responses the scans found for `model`, per deployment."""
        from catalog.cache import scan

        return scan.cached_counts(self.connection, model)


class PastCatalog(Catalog):
    """The catalog as of an earlier event (`Catalog.at`), in memory: it reads like any catalog
    and refuses every change."""

    def __init__(
        self, location: DatabaseLocation, connection: CatalogConnection, event: EventInfo
    ) -> None:
        super().__init__(location, connection)
        self.as_of = event

    def _refuse(self, what: str) -> HistoryError:
        return HistoryError(
            f"the catalog as of event {self.as_of.id} ({self.as_of.occurred_at} UTC) is a past "
            f"state: it cannot {what}",
            hint="change the catalog itself, without --as-of",
        )

    def sync(self, *args: Any, **kwargs: Any) -> SyncReport:
        raise self._refuse("be synced")

    def pin(self, model: str, deployment: str) -> PinInfo:
        raise self._refuse("be pinned")

    def unpin(self, model: str) -> bool:
        raise self._refuse("be unpinned")

    def set_setting(self, key: str, value: str) -> None:
        raise self._refuse("change a setting")

    def migrate_cache(self, *args: Any, **kwargs: Any) -> CacheMigrationReport:
        raise self._refuse("migrate a cache")

    def scan_cache(self, *args: Any, **kwargs: Any) -> CacheScan:
        raise self._refuse("record a cache scan")

    def sql(
        self, query: str, params: Sequence[Any] | dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        from catalog.db import readonly

        return readonly.run_readonly_on(self.connection.raw, query, params)
