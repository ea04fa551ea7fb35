"""`catalog diff`: what differs between two catalogs, name by name, and in their defaults.

Either side may be a catalog, the catalog as of an earlier event, or HELM directories loaded
into a catalog in memory; the comparison is the same. Nothing is written to either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from catalog.history.changes import ChangeSet, compare_defaults, compare_table
from catalog.history.recorder import Defaults
from catalog.history.state import ENTRY_TABLES, read_state

if TYPE_CHECKING:
    from catalog.db.connection import CatalogConnection

POLICIES = ("first", "last", "in_force")


def diff_catalogs(
    before: CatalogConnection,
    after: CatalogConnection,
    old_defaults: Defaults,
    new_defaults: Defaults,
) -> ChangeSet:
    """Entries by name from the two catalogs; defaults as each side's engine answers them."""
    changes = ChangeSet()
    old, new = read_state(before), read_state(after)
    for table in ENTRY_TABLES:
        compare_table(changes, table, old[table], new[table])
    for policy in POLICIES:
        compare_defaults(changes, policy, old_defaults[policy], new_defaults[policy])
    return changes
