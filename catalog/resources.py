"""Where the Alembic scripts and the bundled configs are, installed or in a checkout.

A wheel carries them inside the package (`catalog/_data/`); a source checkout or an editable
install has them at the top of the tree.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    installed = _PACKAGE_DIR / "_data" / name
    if installed.is_dir():
        return installed
    checkout = _PACKAGE_DIR.parent / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"model-catalog is installed without its {name}/ directory")


def alembic_dir() -> Path:
    return _data_dir("alembic")


def bundled_configs_dir() -> Path:
    return _data_dir("configs")
