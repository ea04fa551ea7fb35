"""The schema revisions this version knows, without importing Alembic.

Opening a catalog for reading must stay cheap, so the check against the head revision reads
this tuple instead of Alembic's script directory; a test keeps the two in agreement.
"""

from __future__ import annotations

KNOWN_REVISIONS: tuple[str, ...] = ("0001_initial", "0002_query_layer")
HEAD_REVISION = KNOWN_REVISIONS[-1]
