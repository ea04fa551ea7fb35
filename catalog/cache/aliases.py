"""A user's aliases file: extra identifiers by which cache keys name a model or deployment.

`identifier: model-or-deployment name`, one a line. The YAML is composed into nodes, never
constructed into objects, so no tag can run code and no alias can expand; errors name the file
and line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalog.errors import CacheMigrationError, decode_utf8, suggest

if TYPE_CHECKING:
    from catalog.db.connection import CatalogConnection


def load_aliases(
    connection: CatalogConnection, path: str | os.PathLike[str]
) -> dict[str, tuple[str, ...]]:
    """A user's YAML file of `identifier: model-or-deployment name`, by catalog name.

    Errors name the file and line. The YAML is composed into nodes, never constructed into
    objects, so no tag can run code and no alias can expand.
    """
    location = Path(path)
    by_name: dict[str, list[str]] = {}
    unknown: list[str] = []
    names: list[str] | None = None
    for identifier, (name, line) in _read_aliases(location).items():
        by_name.setdefault(name, []).append(identifier)
        known = connection.execute(
            "SELECT 1 FROM models WHERE name = ? "
            "UNION ALL SELECT 1 FROM deployments WHERE name = ?",
            (name, name),
        ).fetchone()
        if known is None:
            if names is None:
                names = [
                    str(row[0])
                    for row in connection.execute(
                        "SELECT name FROM models UNION SELECT name FROM deployments"
                    )
                ]
            close = suggest(name, names)
            hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
            unknown.append(f"{location}:{line}: no model or deployment named {name!r}{hint}")
    if unknown:
        raise CacheMigrationError("; ".join(unknown))
    return {name: tuple(identifiers) for name, identifiers in by_name.items()}


_YAML_STR = "tag:yaml.org,2002:str"
_ALIASES_MAX_DEPTH = 16


def _read_aliases(location: Path) -> dict[str, tuple[str, int]]:
    """identifier -> (catalog name, line), from the file's YAML nodes."""
    import yaml

    from catalog.sync.yaml_loader import yaml_error_location

    try:
        data = location.read_bytes()
    except OSError as error:
        raise CacheMigrationError(
            f"{location}: cannot read the aliases file: {error.strerror}"
        ) from error
    text = decode_utf8(data, str(location), CacheMigrationError)
    try:
        # PyYAML composes recursively: refuse deep nesting from the (flat) event stream first.
        depth = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > _ALIASES_MAX_DEPTH:
                    mark = event.start_mark
                    where = f"{location}:{mark.line + 1}" if mark is not None else str(location)
                    raise CacheMigrationError(
                        f"{where}: the aliases file is nested too deep (more than "
                        f"{_ALIASES_MAX_DEPTH} levels); it is a flat mapping"
                    )
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        line, _column, problem = yaml_error_location(error)
        where = f"{location}:{line}" if line is not None else str(location)
        raise CacheMigrationError(
            f"{where}: the aliases file is not valid YAML: {problem}"
        ) from error
    except yaml.YAMLError as error:
        raise CacheMigrationError(
            f"{location}: the aliases file is not valid YAML: {error}"
        ) from error
    if root is None:
        return {}
    if not isinstance(root, yaml.MappingNode):
        raise CacheMigrationError(
            f"{location}:{root.start_mark.line + 1}: the aliases file must map identifiers to "
            f"model or deployment names, not be {_describe_node(root)}"
        )
    entries: dict[str, tuple[str, int]] = {}
    for key_node, value_node in root.value:
        line = key_node.start_mark.line + 1
        if not (_is_string(key_node) and _is_string(value_node)):
            raise CacheMigrationError(
                f"{location}:{line}: alias {_describe_node(key_node)}: "
                f"{_describe_node(value_node)}: both must be strings"
            )
        entries[key_node.value] = (value_node.value, line)
    return entries


def _is_string(node: Any) -> bool:
    import yaml

    return isinstance(node, yaml.ScalarNode) and node.tag == _YAML_STR


def _describe_node(node: Any) -> str:
    import yaml

    tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
    if isinstance(node, yaml.ScalarNode):
        return repr(node.value) if node.tag == _YAML_STR else f"{node.value!r} ({tag})"
    kind = "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"
    return kind if tag in ("!!seq", "!!map") else f"{kind} tagged {tag}"
