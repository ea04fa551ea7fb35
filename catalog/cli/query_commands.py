"""Commands registered on the `catalog` group (filled in by its feature)."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    """Add this module's commands to `group`."""
