"""Finding the HELM-format files a sync reads, in layer order.

A source directory is what HELM calls a config directory: its built-in `helm/config/` or a
private `prod_env/`. Later directories override earlier ones entry by entry.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from catalog.errors import HelmNotInstalledError, SourceError
from catalog.resources import bundled_configs_dir

FILE_KINDS = {
    "tokenizer_configs.yaml": "tokenizers",
    "model_metadata.yaml": "models",
    "model_deployments.yaml": "deployments",
}
TOP_LEVEL_KEYS = {
    "tokenizers": "tokenizer_configs",
    "models": "models",
    "deployments": "model_deployments",
}


@dataclass(frozen=True)
class SourceFile:
    path: Path
    kind: str
    layer: int
    data: bytes
    sha256: str

    @property
    def display(self) -> str:
        return str(self.path)


def helm_config_dir() -> Path:
    """The `helm/config/` of an installed crfm-helm, found from its metadata, never imported."""
    from importlib import metadata

    try:
        distribution = metadata.distribution("crfm-helm")
    except metadata.PackageNotFoundError as error:
        raise HelmNotInstalledError(
            "--helm needs the crfm-helm package, which is not installed "
            "(pip install crfm-helm), or give HELM's config directory as a SOURCE_DIR"
        ) from error
    config_dir = Path(str(distribution.locate_file("helm/config")))
    if not (config_dir / "model_deployments.yaml").is_file():
        raise HelmNotInstalledError(
            f"crfm-helm {distribution.version} is installed but {config_dir} holds no "
            "model_deployments.yaml"
        )
    return config_dir


def source_dirs(dirs: Sequence[str | os.PathLike[str]], *, helm: bool = False) -> list[Path]:
    """The directories to read, in order: HELM's (if asked), then the given ones or the bundle."""
    chosen = [Path(d) for d in dirs] if dirs else ([] if helm else [bundled_configs_dir()])
    if helm:
        chosen.insert(0, helm_config_dir())
    return chosen


def read_sources(dirs: Sequence[Path], max_file_bytes: int) -> list[SourceFile]:
    """Every catalog file of every directory, read once (bytes and sha256)."""
    files: list[SourceFile] = []
    for layer, directory in enumerate(dirs):
        _check_directory(directory)
        found = False
        for file_name, kind in FILE_KINDS.items():
            path = directory / file_name
            try:
                mode = path.stat().st_mode
            except FileNotFoundError:
                continue
            except OSError as error:
                raise SourceError(f"{path}: {_os_reason(error)}") from error
            found = True
            if stat.S_ISDIR(mode):
                raise SourceError(f"{path}:1: a directory stands where a file belongs")
            size = path.stat().st_size
            if size > max_file_bytes:
                raise SourceError(
                    f"{path}:1: the file has {size} bytes, more than the limit of "
                    f"{max_file_bytes} (raise it with --max-file-mb)"
                )
            try:
                data = path.read_bytes()
            except OSError as error:
                raise SourceError(f"{path}:1: cannot read: {_os_reason(error)}") from error
            files.append(
                SourceFile(
                    path=path.absolute(),
                    kind=kind,
                    layer=layer,
                    data=data,
                    sha256=hashlib.sha256(data).hexdigest(),
                )
            )
        if not found:
            raise SourceError(
                f"{directory}: holds none of {', '.join(FILE_KINDS)}; "
                "is it a HELM config directory?"
            )
    return files


def _check_directory(directory: Path) -> None:
    try:
        mode = directory.stat().st_mode
    except FileNotFoundError as error:
        raise SourceError(f"{directory}: no such directory") from error
    except OSError as error:
        raise SourceError(f"{directory}: {_os_reason(error)}") from error
    if not stat.S_ISDIR(mode):
        raise SourceError(f"{directory}: not a directory (give a directory of HELM YAML files)")


def _os_reason(error: OSError) -> str:
    if error.errno == errno.ELOOP:
        return "a symbolic link loop"
    return error.strerror or str(error)
