"""Which crfm-helm is installed, found from its package metadata without importing it.

Importing HELM costs seconds and pulls in pandas and datasets; a version and a yes/no answer
are all most callers need.
"""

from __future__ import annotations

import importlib.util

from catalog.sync.sources import installed_helm_version

PINNED_VERSION = "0.5.16"
"""The crfm-helm this package is tested against (requirements-helm.txt)."""

__all__ = ["PINNED_VERSION", "helm_importable", "installed_helm_version"]


def helm_importable() -> bool:
    """crfm-helm is installed and its `helm` package can be imported (nothing is imported)."""
    if installed_helm_version() is None:
        return False
    try:
        return importlib.util.find_spec("helm") is not None
    except (ImportError, ValueError):
        return False
