"""The schema revisions this version knows, without importing Alembic.

Opening a catalog must stay cheap, so the check against the head revision reads the names of
the revision files (`NNNN_name.py`, whose revision id is `NNNN_name`) instead of loading
Alembic's script directory; a test keeps the two in agreement. A new revision is one new file.
"""

from __future__ import annotations

import re

from catalog.db.location import packaged_data_dir

_REVISION_FILE = re.compile(r"(\d{4}_[a-z0-9_]+)\.py")


def _known_revisions() -> tuple[str, ...]:
    versions = packaged_data_dir("alembic") / "versions"
    found = (_REVISION_FILE.fullmatch(path.name) for path in versions.iterdir())
    return tuple(sorted(match.group(1) for match in found if match))


KNOWN_REVISIONS: tuple[str, ...] = _known_revisions()
HEAD_REVISION = KNOWN_REVISIONS[-1]
