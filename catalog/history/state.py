"""What a catalog says at one moment, entry by entry: the state history steps back from, and
the state `catalog diff` compares.

An entry's values are its columns (a model's with its tags); a pin's are its deployment and
time, a setting's its value. Read in one read transaction, so a state is never half of a sync.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from catalog.db import rows
from catalog.db.memory import copy_rows
from catalog.db.schema import DEPLOYMENTS, MODELS, TOKENIZERS, Table

if TYPE_CHECKING:
    from catalog.db.connection import CatalogConnection

Values = dict[str, Any]
ENTRY_TABLES: dict[str, Table] = {
    "models": MODELS,
    "deployments": DEPLOYMENTS,
    "tokenizers": TOKENIZERS,
}


@dataclass
class CatalogState:
    """table -> entry name -> values, for the entries, the pins and the settings."""

    tables: dict[str, dict[str, Values]] = field(default_factory=dict)

    def __getitem__(self, table: str) -> dict[str, Values]:
        return self.tables.setdefault(table, {})


def read_state(connection: CatalogConnection) -> CatalogState:
    state = CatalogState()
    with connection.read():
        for name, table in ENTRY_TABLES.items():
            reader = rows.RecordReader[Any](table)
            found = connection.execute(
                f"SELECT {rows.column_list(table)} FROM {table.name} ORDER BY position"
            )
            state.tables[name] = {row[0]: reader.values(row) for row in found}
        for model in state["models"].values():
            model["tags"] = []
        for model_name, tag_name in connection.execute(
            "SELECT model_name, tag_name FROM model_tags ORDER BY model_name, position"
        ):
            entry = state["models"].get(model_name)
            if entry is not None:
                entry["tags"].append(tag_name)
        state.tables["pins"] = {
            model: {"deployment_name": deployment, "pinned_at": str(pinned_at)}
            for model, deployment, pinned_at in connection.execute(
                "SELECT model_name, deployment_name, pinned_at FROM pins"
            )
        }
        state.tables["settings"] = {
            key: {"value": value}
            for key, value in connection.execute("SELECT key, value FROM settings")
        }
    return state


def write_state(target: CatalogConnection, state: CatalogState) -> None:
    """Fill an empty catalog with `state` (tags and their links derived from the models)."""
    models = sorted(state["models"].values(), key=lambda v: v["position"])
    tags = list(dict.fromkeys(tag for model in models for tag in model.get("tags", ())))
    with target.write("the catalog in memory"):
        for name in ("models", "tokenizers", "deployments"):  # the order of foreign keys
            table = ENTRY_TABLES[name]
            entries = sorted(state[name].values(), key=lambda v: v["position"])
            copy_rows(
                target,
                table.name,
                list(table.column_names),
                [rows.encode_row(table, values) for values in entries],
            )
        copy_rows(target, "tags", ["name"], [(tag,) for tag in tags])
        copy_rows(
            target,
            "model_tags",
            ["model_name", "tag_name", "position"],
            [
                (model["name"], tag, position)
                for model in models
                for position, tag in enumerate(model.get("tags", ()))
            ],
        )
        copy_rows(
            target,
            "pins",
            ["model_name", "deployment_name", "pinned_at"],
            [(m, v["deployment_name"], v["pinned_at"]) for m, v in state["pins"].items()],
        )
        copy_rows(
            target,
            "settings",
            ["key", "value"],
            [(k, v["value"]) for k, v in state["settings"].items()],
        )
