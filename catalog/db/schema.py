"""The catalog's tables, declared once: each table is a frozen record whose fields are its columns.

A row read from the database is one of these records (`ModelInfo`, `DeploymentInfo`, ...); a
sync builds the same records from YAML and writes them; export, `helm_compat` and the CLI read
them; Alembic's metadata (catalog.db.metadata) and the documentation of every table and column
come from here. So a new column is one field here, a revision, its validation and (if shown)
its place in the CLI.

Nothing here imports SQLAlchemy: reading the catalog stays as cheap as sqlite3. Every
constraint gets a name from the naming convention in catalog.db.metadata, because SQLite's
batch-mode ALTER can only drop a constraint it can name. Nothing is SQLite-only.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from catalog.db.records import Record

ACCESS_LEVELS = ("open", "limited", "closed")
NAME_LENGTH = 255

# Columns that say where an entry stands, not what it says: two definitions that differ only
# in these are copies of each other, and a sync that changes only these moved the entry.
PLACE_COLUMNS = frozenset({"source_file", "source_line", "position", "first_position"})

_COLUMN = "catalog.column"
_RELATED = "catalog.related"
_HELM = "catalog.helm"


class ColumnType(enum.Enum):
    """How a column is stored; the SQL type of each backend is chosen in catalog.db.metadata."""

    STRING = "string"  # bounded text (VARCHAR(length))
    TEXT = "text"
    INTEGER = "integer"
    BIG_INTEGER = "big_integer"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"  # read back as the text SQLAlchemy writes: 'YYYY-MM-DD HH:MM:SS.ffffff'
    JSON = "json"


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    doc: str
    nullable: bool
    length: int | None = None
    primary_key: bool = False
    references: str | None = None
    """`table.column` this column is a foreign key to."""
    on_delete: str | None = None
    autoincrement: bool = False
    helm: str | None = None
    """Where the value is in HELM's YAML entry (`client_spec.args`), if it comes from there."""


@dataclass(frozen=True)
class Check:
    name: str
    sql: str


@dataclass(frozen=True)
class Table:
    """A table: its record class, columns in record order, constraints and indexes."""

    name: str
    record: type[Record]
    doc: str
    columns: tuple[Column, ...]
    related: Mapping[str, str]
    """Record fields that are not columns (a model's tags), with their docs."""
    helm_fields: tuple[tuple[str, str], ...]
    """(record field, its key in HELM's YAML entry), in the order HELM's files write them."""
    checks: tuple[Check, ...] = ()
    indexes: tuple[tuple[str, ...], ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def primary_key(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.primary_key)

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"table {self.name} has no column {name!r}")


def column(
    kind: ColumnType,
    doc: str,
    *,
    length: int | None = None,
    primary_key: bool = False,
    references: str | None = None,
    on_delete: str | None = None,
    autoincrement: bool = False,
    helm: str | None = None,
) -> Any:
    """A record field that is a column; nullable exactly when its annotation admits None.

    `helm` is the key of the value in HELM's YAML entry (dotted when nested), for the fields
    that come from there: `catalog export` writes exactly these.
    """
    spec = {
        "type": kind,
        "doc": doc,
        "length": length,
        "primary_key": primary_key,
        "references": references,
        "on_delete": on_delete,
        "autoincrement": autoincrement,
        "helm": helm,
    }
    return field(metadata={_COLUMN: spec})


def related(doc: str, default: Any = (), *, helm: str | None = None) -> Any:
    """A record field filled from other tables (a model's tags), not stored in this one."""
    return field(default=default, metadata={_RELATED: doc, _HELM: helm})


def _name(doc: str, **kwargs: Any) -> Any:
    return column(ColumnType.STRING, doc, length=NAME_LENGTH, **kwargs)


def _text(doc: str, **kwargs: Any) -> Any:
    return column(ColumnType.TEXT, doc, **kwargs)


def _integer(doc: str, **kwargs: Any) -> Any:
    return column(ColumnType.INTEGER, doc, **kwargs)


def _table(
    name: str,
    record: type[Record],
    *,
    checks: tuple[Check, ...] = (),
    indexes: tuple[tuple[str, ...], ...] = (),
) -> Table:
    columns: list[Column] = []
    related_docs: dict[str, str] = {}
    helm_fields: list[tuple[str, str]] = []
    for item in dataclasses.fields(record):  # type: ignore[arg-type]
        if _RELATED in item.metadata:
            related_docs[item.name] = item.metadata[_RELATED]
            helm = item.metadata[_HELM]
        else:
            spec = item.metadata[_COLUMN]
            annotation = str(item.type).replace(" ", "")
            nullable = "None" in annotation.split("|")
            columns.append(Column(item.name, nullable=nullable, **spec))
            helm = spec["helm"]
        if helm is not None:
            helm_fields.append((item.name, helm))
    doc = " ".join((record.__doc__ or "").split())
    return Table(
        name,
        record,
        doc,
        tuple(columns),
        MappingProxyType(related_docs),
        tuple(helm_fields),
        checks,
        indexes,
    )


_SOURCE_FILE_DOC = "The YAML file that defined the entry (for a placeholder: the deployment's)."
_SOURCE_LINE_DOC = "The line of the entry in source_file."


@dataclass(frozen=True)
class ModelInfo(Record):
    """A model as its creator published it (HELM's model_metadata.yaml), with its tags and
    deployments."""

    name: str = _name(
        "The model's name, creator/engine (meta/llama-3.1-8b-instruct).",
        primary_key=True,
        helm="name",
    )
    display_name: str = _text("The name HELM shows.", helm="display_name")
    description: str = _text("HELM's description of the model.", helm="description")
    creator_organization_name: str = _text(
        "The creator's name (Meta).", helm="creator_organization_name"
    )
    access: str = column(ColumnType.STRING, "open, limited or closed.", length=16, helm="access")
    num_parameters: int | None = column(
        ColumnType.BIG_INTEGER, "Number of parameters.", helm="num_parameters"
    )
    release_date: dt.date | None = column(
        ColumnType.DATE, "When the model was released.", helm="release_date"
    )
    creator_prefix: str = _name("The part of the name before '/' (meta).")
    engine: str = _name("The part of the name after '/'.")
    is_placeholder: bool = column(
        ColumnType.BOOLEAN,
        "1 if no metadata defines the model: a deployment names it, and HELM makes a stand-in.",
    )
    source_file: str | None = _text(_SOURCE_FILE_DOC)
    source_line: int | None = _integer(_SOURCE_LINE_DOC)
    position: int = _integer("Catalog order: where the name first appears.")
    tags: tuple[str, ...] = related("The model's tags, in YAML order.", helm="tags")
    deployments: tuple[str, ...] = related("The model's deployments, in catalog order.")


@dataclass(frozen=True)
class TagInfo(Record):
    """A model tag (TEXT_MODEL_TAG, ...), with how many models carry it."""

    name: str = _name("The tag.", primary_key=True)
    model_count: int = related("How many models carry the tag.", default=0)


@dataclass(frozen=True)
class ModelTag(Record):
    """Which tags a model has, in the order its YAML lists them."""

    model_name: str = _name(
        "The model.", primary_key=True, references="models.name", on_delete="CASCADE"
    )
    tag_name: str = _name("The tag.", primary_key=True, references="tags.name")
    position: int = column(ColumnType.INTEGER, "The tag's place in the model's list.")


@dataclass(frozen=True)
class TokenizerInfo(Record):
    """A tokenizer config (HELM's tokenizer_configs.yaml); placeholders stand for names
    deployments use but nobody configured."""

    name: str = _name("The tokenizer's name.", primary_key=True, helm="name")
    class_name: str | None = _text(
        "tokenizer_spec.class_name (never imported).", helm="tokenizer_spec.class_name"
    )
    args: dict[str, Any] | None = column(
        ColumnType.JSON, "tokenizer_spec.args.", helm="tokenizer_spec.args"
    )
    end_of_text_token: str | None = _text("The end-of-text token.", helm="end_of_text_token")
    prefix_token: str | None = _text("The prefix token.", helm="prefix_token")
    is_placeholder: bool = column(
        ColumnType.BOOLEAN, "1 if no config defines the tokenizer: a deployment names it."
    )
    source_file: str | None = _text(_SOURCE_FILE_DOC)
    source_line: int | None = _integer(_SOURCE_LINE_DOC)
    position: int = _integer("Catalog order: where the name first appears.")
    deployments: tuple[str, ...] = related("The deployments using it, in catalog order.")


@dataclass(frozen=True)
class DeploymentInfo(Record):
    """A model served by a host: `together/llama-2-7b` runs `meta/llama-2-7b`.

    `position` is the catalog order of the definition that won (later layers after earlier
    ones). `first_position` is where the name first appeared: HELM keeps every copy of a
    duplicated name in its list, so its first-match rule sees the earliest copy.
    """

    name: str = _name("The deployment's name, host/engine.", primary_key=True, helm="name")
    deprecated: bool = column(
        ColumnType.BOOLEAN, "1 if HELM marks the deployment deprecated.", helm="deprecated"
    )
    model_name: str = _name("The model it serves.", references="models.name", helm="model_name")
    host_organization: str = _name(
        "The part of the name before '/': who serves it, and the cache shard HELM uses."
    )
    engine: str = _name("The part of the name after '/'.")
    tokenizer_name: str | None = _name(
        "The tokenizer it uses.", references="tokenizers.name", helm="tokenizer_name"
    )
    max_sequence_length: int | None = _integer(
        "Longest prompt, in tokens.", helm="max_sequence_length"
    )
    max_request_length: int | None = _integer(
        "Longest request, in tokens.", helm="max_request_length"
    )
    max_sequence_and_generated_tokens_length: int | None = _integer(
        "Longest prompt plus completion, in tokens.",
        helm="max_sequence_and_generated_tokens_length",
    )
    client_class: str = _text(
        "client_spec.class_name (never imported).", helm="client_spec.class_name"
    )
    client_args: dict[str, Any] | None = column(
        ColumnType.JSON, "client_spec.args.", helm="client_spec.args"
    )
    window_service_class: str | None = _text(
        "window_service_spec.class_name.", helm="window_service_spec.class_name"
    )
    window_service_args: dict[str, Any] | None = column(
        ColumnType.JSON, "window_service_spec.args.", helm="window_service_spec.args"
    )
    source_file: str | None = _text(_SOURCE_FILE_DOC)
    source_line: int | None = _integer(_SOURCE_LINE_DOC)
    position: int = _integer("Catalog order of the definition that won.")
    first_position: int = _integer(
        "Catalog order where the name first appeared (what HELM's `first` rule sees when a "
        "name is defined twice)."
    )


@dataclass(frozen=True)
class SyncInfo(Record):
    """One sync that changed the database (or was forced): when, and what it changed."""

    id: int = column(ColumnType.INTEGER, "The sync's number.", primary_key=True, autoincrement=True)
    started_at: str = column(ColumnType.DATETIME, "When it started (UTC).")
    finished_at: str = column(ColumnType.DATETIME, "When it committed (UTC).")
    tool_version: str = column(ColumnType.STRING, "The model-catalog version.", length=64)
    forced: bool = column(ColumnType.BOOLEAN, "1 if run with --force.")
    added: dict[str, int] = column(ColumnType.JSON, "Entries added, by table.")
    changed: dict[str, int] = column(ColumnType.JSON, "Entries changed, by table.")
    removed: dict[str, int] = column(ColumnType.JSON, "Entries removed, by table.")
    warning_count: int = column(ColumnType.INTEGER, "How many warnings it reported.")
    row_counts: dict[str, int] | None = column(
        ColumnType.JSON,
        "Rows it left in each table: a later sync tells a catalog edited around it by them.",
    )
    helm_version: str | None = column(
        ColumnType.STRING, "The crfm-helm whose configs it read (sync --helm).", length=32
    )
    helm_rule: str | None = column(
        ColumnType.STRING,
        "That crfm-helm's default-deployment rule (first or last): the policy in force while "
        "none is set, which the view model_default_deployments reads.",
        length=8,
    )


@dataclass(frozen=True)
class SyncSourceInfo(Record):
    """A file a sync read, with its content hash: the next sync skips when none changed."""

    sync_id: int = column(
        ColumnType.INTEGER,
        "The sync.",
        primary_key=True,
        references="syncs.id",
        on_delete="CASCADE",
    )
    position: int = column(ColumnType.INTEGER, "The file's place in layer order.", primary_key=True)
    path: str = column(ColumnType.TEXT, "The file, as an absolute path.")
    kind: str = column(ColumnType.STRING, "models, deployments or tokenizers.", length=32)
    sha256: str = column(ColumnType.STRING, "The SHA-256 of its bytes.", length=64)
    size_bytes: int = column(ColumnType.BIG_INTEGER, "Its size.")


@dataclass(frozen=True)
class PinInfo(Record):
    """A user's chosen default deployment for a model; it outlives syncs.

    Both keys cascade: a sync that removes the model or the deployment drops the pin (and says
    so), since a pin to nothing would silently change what runs.
    """

    model_name: str = _name(
        "The model.", primary_key=True, references="models.name", on_delete="CASCADE"
    )
    deployment_name: str = _name(
        "The deployment it runs on.", references="deployments.name", on_delete="CASCADE"
    )
    pinned_at: str = column(ColumnType.DATETIME, "When it was pinned (UTC).")


@dataclass(frozen=True)
class SettingInfo(Record):
    """A database-wide setting, such as the default-deployment policy."""

    key: str = column(ColumnType.STRING, "The setting's name.", length=64, primary_key=True)
    value: str = column(ColumnType.TEXT, "Its value.")


EVENT_KINDS = ("baseline", "sync", "pin", "unpin", "setting")
CHANGE_KINDS = ("added", "removed", "changed", "moved")


@dataclass(frozen=True)
class EventInfo(Record):
    """One change of the catalog's state (a sync, a pin, an unpin, a setting), or the
    `baseline` where its history starts."""

    id: int = _integer("The event's number, in the order they happened.", primary_key=True,
                       autoincrement=True)  # fmt: skip
    kind: str = column(ColumnType.STRING, "baseline, sync, pin, unpin or setting.", length=16)
    occurred_at: str = column(ColumnType.DATETIME, "When it was committed (UTC).")
    sync_id: int | None = _integer(
        "The sync, for a sync event.", references="syncs.id", on_delete="SET NULL"
    )
    summary: str = _text("What happened, in a line.")
    tool_version: str = column(ColumnType.STRING, "The model-catalog version.", length=64)


@dataclass(frozen=True)
class ChangeInfo(Record):
    """One entry an event added, removed or changed; `before` and `after` hold the fields that
    differ (the whole entry when it was added or removed). `moved` changes only where the
    entry stands (its position), which only the `first` and `last` rules read."""

    id: int = _integer("The change's number.", primary_key=True, autoincrement=True)
    event_id: int = _integer("The event.", references="events.id", on_delete="CASCADE")
    table_name: str = column(
        ColumnType.STRING, "models, deployments, tokenizers, pins or settings.", length=32
    )
    name: str = _name("The entry's name (a pin's model, a setting's key).")
    change: str = column(ColumnType.STRING, "added, removed, changed or moved.", length=16)
    before: dict[str, Any] | None = column(ColumnType.JSON, "The fields before.")
    after: dict[str, Any] | None = column(ColumnType.JSON, "The fields after.")


@dataclass(frozen=True)
class DefaultChangeInfo(Record):
    """A model whose default deployment an event changed, under one policy (`first`, `last`, or
    `in_force`: the policy in force with pins)."""

    event_id: int = _integer(
        "The event.", primary_key=True, references="events.id", on_delete="CASCADE"
    )
    policy: str = column(ColumnType.STRING, "first, last or in_force.", length=16, primary_key=True)
    model: str = _name("The model.", primary_key=True)
    before: str | None = _name("Its default deployment before (null: none).")
    after: str | None = _name("Its default deployment after (null: none).")


@dataclass(frozen=True)
class ShadowedDeployment(Record):
    """An earlier copy of a deployment that a later definition replaced. The catalog uses the
    later one; HELM's own list keeps both, and its rules may meet this one first."""

    position: int = _integer("Catalog order of this copy.", primary_key=True)
    name: str = _name("The deployment.", references="deployments.name", on_delete="CASCADE")
    model_name: str = _name("The model this copy serves.")
    deprecated: bool = column(ColumnType.BOOLEAN, "1 if this copy is deprecated.")
    source_file: str | None = _text(_SOURCE_FILE_DOC)
    source_line: int | None = _integer(_SOURCE_LINE_DOC)


SCAN_KINDS = ("model", "deployment", "tokenizer", "several", "none")


@dataclass(frozen=True)
class CacheScanInfo(Record):
    """What `catalog cache scan` found in one shard of a HELM cache for one model or deployment:
    the entries whose keys name it, by the routing rules' identifiers (a key's `model` and
    `engine`, matched against the models and deployments named after the shard). A new scan of
    the same directory replaces its rows."""

    cache_dir: str = _text("The cache directory, as an absolute path.", primary_key=True)
    shard: str = _name("The shard: the file <shard>.sqlite.", primary_key=True)
    kind: str = column(
        ColumnType.STRING,
        "model or deployment (what the keys name); tokenizer (tokenizer requests), several "
        "(keys naming more than one) or none (keys naming nothing known).",
        length=16,
        primary_key=True,
    )
    name: str = _name("The model or deployment; empty for the other kinds.", primary_key=True)
    entries: int = column(ColumnType.BIG_INTEGER, "How many entries.")
    bytes: int = column(ColumnType.BIG_INTEGER, "The bytes of their keys and values.")
    scanned_at: str = column(ColumnType.DATETIME, "When the shard was scanned (UTC).")


MODELS = _table(
    "models",
    ModelInfo,
    checks=(
        Check("access", "access IN ('open', 'limited', 'closed')"),
        Check("num_parameters", "num_parameters IS NULL OR num_parameters >= 0"),
    ),
    indexes=(("creator_prefix",),),
)
TAGS = _table("tags", TagInfo)
MODEL_TAGS = _table("model_tags", ModelTag, indexes=(("tag_name",),))
TOKENIZERS = _table("tokenizers", TokenizerInfo)
DEPLOYMENTS = _table(
    "deployments",
    DeploymentInfo,
    checks=tuple(
        Check(length, f"{length} IS NULL OR {length} > 0")
        for length in (
            "max_sequence_length",
            "max_request_length",
            "max_sequence_and_generated_tokens_length",
        )
    ),
    indexes=(("model_name", "position"), ("host_organization",), ("tokenizer_name",)),
)
SYNCS = _table("syncs", SyncInfo)
SYNC_SOURCES = _table("sync_sources", SyncSourceInfo)
PINS = _table("pins", PinInfo, indexes=(("deployment_name",),))
SETTINGS = _table("settings", SettingInfo)
EVENTS = _table(
    "events",
    EventInfo,
    checks=(Check("kind", "kind IN ('baseline', 'sync', 'pin', 'unpin', 'setting')"),),
    indexes=(("occurred_at",),),
)
CHANGE_LOG = _table(
    "change_log",
    ChangeInfo,
    checks=(Check("change", "change IN ('added', 'removed', 'changed', 'moved')"),),
    indexes=(("event_id",), ("table_name", "name")),
)
DEFAULT_CHANGE_LOG = _table("default_change_log", DefaultChangeInfo, indexes=(("model",),))
SHADOWED_DEPLOYMENTS = _table("shadowed_deployments", ShadowedDeployment, indexes=(("name",),))
CACHE_SCAN = _table(
    "cache_scan",
    CacheScanInfo,
    checks=(Check("kind", "kind IN ('model', 'deployment', 'tokenizer', 'several', 'none')"),),
    indexes=(("kind", "name"),),
)

TABLES: tuple[Table, ...] = (
    MODELS,
    TAGS,
    MODEL_TAGS,
    TOKENIZERS,
    DEPLOYMENTS,
    SYNCS,
    SYNC_SOURCES,
    PINS,
    SETTINGS,
    EVENTS,
    CHANGE_LOG,
    DEFAULT_CHANGE_LOG,
    SHADOWED_DEPLOYMENTS,
    CACHE_SCAN,
)
TABLES_BY_NAME: Mapping[str, Table] = MappingProxyType({t.name: t for t in TABLES})
