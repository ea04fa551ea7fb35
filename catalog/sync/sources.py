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

from catalog.db.location import packaged_data_dir
from catalog.errors import Finding, HelmNotInstalledError, Severity

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


def bundled_configs_dir() -> Path:
    """The catalog shipped with the package (`configs/`): what `catalog sync` reads by default."""
    return packaged_data_dir("configs")


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


def installed_helm_version() -> str | None:
    """The version of the installed crfm-helm, from its metadata (`helm` is never imported)."""
    from importlib import metadata

    try:
        return metadata.version("crfm-helm")
    except metadata.PackageNotFoundError:
        return None


def source_dirs(dirs: Sequence[str | os.PathLike[str]], *, helm: bool = False) -> list[Path]:
    """The directories to read, in order: HELM's (if asked), then the given ones or the bundle."""
    chosen = [Path(d) for d in dirs] if dirs else ([] if helm else [bundled_configs_dir()])
    if helm:
        chosen.insert(0, helm_config_dir())
    return chosen


def read_sources(
    dirs: Sequence[Path], max_file_bytes: int
) -> tuple[list[SourceFile], list[Finding]]:
    """Every catalog file of every directory, read once (bytes and sha256).

    Problems (a missing directory, an unreadable or oversized file) come back as errors, all of
    them, so that one run reports everything that is wrong.
    """
    files: list[SourceFile] = []
    problems: list[Finding] = []
    for layer, directory in enumerate(dirs):
        problem = _directory_problem(directory)
        if problem is not None:
            problems.append(_source_problem("bad-source-dir", problem, directory))
            continue
        found = False
        for file_name, kind in FILE_KINDS.items():
            path = directory / file_name
            try:
                info = path.stat()
            except FileNotFoundError:
                if path.is_symlink():  # a file the user meant to be read, not an absent one
                    problems.append(
                        _source_problem("unreadable", "a symbolic link to a missing file", path)
                    )
                    found = True
                continue
            except OSError as error:
                problems.append(_source_problem("unreadable", _os_reason(error), path))
                found = True
                continue
            found = True
            if not stat.S_ISREG(info.st_mode):
                # Never opened: a FIFO would block the sync, a device could be endless.
                what = (
                    "a directory"
                    if stat.S_ISDIR(info.st_mode)
                    else "a special file (FIFO, device or socket)"
                )
                problems.append(
                    _source_problem("not-a-file", f"{what} stands where a file belongs", path)
                )
                continue
            if info.st_size > max_file_bytes:
                problems.append(_too_large(path, info.st_size, max_file_bytes))
                continue
            try:
                with path.open("rb") as stream:
                    data = stream.read(max_file_bytes + 1)  # the file may grow meanwhile
            except OSError as error:
                problems.append(
                    _source_problem("unreadable", f"cannot read: {_os_reason(error)}", path)
                )
                continue
            if len(data) > max_file_bytes:
                problems.append(_too_large(path, len(data), max_file_bytes))
                continue
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
            problems.append(
                _source_problem(
                    "no-catalog-files",
                    f"holds none of {', '.join(FILE_KINDS)}; is it a HELM config directory?",
                    directory,
                )
            )
    return files, problems


def _too_large(path: Path, size: int, max_file_bytes: int) -> Finding:
    return _source_problem(
        "file-too-large",
        f"the file has {size} bytes or more, over the limit of {max_file_bytes} "
        "(raise it with --max-file-mb)",
        path,
    )


def _source_problem(code: str, message: str, path: Path) -> Finding:
    return Finding(Severity.ERROR, code, message, file=str(path.absolute()), line=None)


def _directory_problem(directory: Path) -> str | None:
    try:
        mode = directory.stat().st_mode
    except FileNotFoundError:
        return "no such directory"
    except OSError as error:
        return _os_reason(error)
    if not stat.S_ISDIR(mode):
        return "not a directory (give a directory of HELM YAML files)"
    return None


def _os_reason(error: OSError) -> str:
    if error.errno == errno.ELOOP:
        return "a symbolic link loop"
    return error.strerror or str(error)
