"""Pins: a user's explicit default deployment per model, which beats every policy.

Each write is one write transaction, so it queues behind a running sync instead of
interleaving, and its checks run inside it: a deployment cannot vanish between check and write.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalog.db import rows
from catalog.db.schema import PINS, PinInfo
from catalog.errors import PinError, decode_utf8
from catalog.history.recorder import recorded_event
from catalog.query.lookups import require_deployment, require_model
from catalog.resolve.engine import Snapshot

if TYPE_CHECKING:
    from catalog.db.connection import CatalogConnection


def _pin_values(connection: CatalogConnection, model: str) -> dict[str, dict[str, Any]]:
    row = connection.execute(
        "SELECT deployment_name, pinned_at FROM pins WHERE model_name = ?", (model,)
    ).fetchone()
    if row is None:
        return {}
    return {model: {"deployment_name": row[0], "pinned_at": row[1]}}


def _history(connection: CatalogConnection, kind: str, summary: str) -> Any:
    return recorded_event(connection, kind, summary, lambda: Snapshot.read(connection).defaults())


def pin(connection: CatalogConnection, model: str, deployment: str) -> PinInfo:
    """Make `deployment` the default of `model`, whatever the policy; replaces an older pin."""
    with (
        connection.write("the pin"),
        _history(connection, "pin", f"pin {model} to {deployment}") as recorder,
    ):
        require_model(connection, model)
        served = require_deployment(connection, deployment).model_name
        if served != model:
            own = [
                r[0]
                for r in connection.execute(
                    "SELECT name FROM deployments WHERE model_name = ? ORDER BY position",
                    (model,),
                )
            ]
            choices = f"its deployments are {', '.join(own)}" if own else "it has no deployment"
            raise PinError(
                f"cannot pin {model!r} to {deployment!r}: that deployment serves {served!r}; "
                + choices
            )
        pinned_at = rows.now_text()
        before = _pin_values(connection, model)
        connection.execute(
            "INSERT INTO pins (model_name, deployment_name, pinned_at) VALUES (?, ?, ?) "
            "ON CONFLICT (model_name) DO UPDATE SET "
            "deployment_name = excluded.deployment_name, pinned_at = excluded.pinned_at",
            (model, deployment, pinned_at),
        )
        recorder.rows("pins", before, _pin_values(connection, model))
    return PinInfo(model, deployment, pinned_at)


def unpin(connection: CatalogConnection, model: str) -> bool:
    """Remove the pin of `model`; False if it had none (an unknown model is an error)."""
    with (
        connection.write("the unpin"),
        _history(connection, "unpin", f"unpin {model}") as recorder,
    ):
        require_model(connection, model)
        before = _pin_values(connection, model)
        connection.execute("DELETE FROM pins WHERE model_name = ?", (model,))
        recorder.rows("pins", before, {})
    return bool(before)


def list_pins(connection: CatalogConnection) -> list[PinInfo]:
    """Every pin, in catalog order of the models."""
    reader = rows.RecordReader[PinInfo](PINS)
    found = connection.execute(
        rows.select_sql(PINS, "p") + " JOIN models AS m ON m.name = p.model_name "
        "ORDER BY m.position"
    )
    return [reader(row) for row in found]


def restore_pins(connection: CatalogConnection, path: Path) -> list[PinInfo]:
    """The pins of a `catalog pins --json` file, each checked as `pin` checks it; one bad entry
    and none is pinned."""
    text = decode_utf8(path.read_bytes(), str(path), PinError)
    try:
        saved = json.loads(text)
    except ValueError as error:
        raise PinError(f"{path}: not the JSON `catalog pins --json` writes: {error}") from error
    pairs = []
    for index, item in enumerate(saved if isinstance(saved, list) else [None]):
        model = item.get("model_name") if isinstance(item, dict) else None
        deployment = item.get("deployment_name") if isinstance(item, dict) else None
        if not (isinstance(model, str) and isinstance(deployment, str)):
            raise PinError(
                f"{path}: entry {index + 1} is not a pin: each entry needs model_name and "
                "deployment_name, as `catalog pins --json` writes them"
            )
        pairs.append((model, deployment))
    with connection.write("the restored pins"):
        for model, deployment in pairs:
            require_model(connection, model)
            served = require_deployment(connection, deployment).model_name
            if served != model:
                raise PinError(
                    f"{path}: cannot pin {model!r} to {deployment!r}: it serves {served!r}"
                )
    return [pin(connection, model, deployment) for model, deployment in pairs]
