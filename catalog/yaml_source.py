"""Reading one YAML file safely, keeping the line of every entry and key.

HELM's loader forgets where things came from; a user fixing a typo needs file:line. The file is
read through libyaml's event stream (no recursion, so deep nesting cannot crash the process)
and built here within two limits: nesting depth, and the number of nodes after alias expansion
(which stops "billion laughs" documents before they cost memory or time). The third limit, file
size, is applied when catalog.sources reads the file.
"""

from __future__ import annotations

import codecs
import datetime as dt
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)

from catalog.diagnostics import Diagnostic

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

STR_TAG = "tag:yaml.org,2002:str"
MERGE_TAG = "tag:yaml.org,2002:merge"
_SCALAR_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:timestamp",
    MERGE_TAG,
}
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"


@dataclass(frozen=True)
class YamlLimits:
    """Bounds on one source file; `catalog sync --max-file-mb/--max-yaml-nodes/--max-yaml-depth`."""

    max_file_bytes: int = 64 * 1024 * 1024
    max_nodes: int = 5_000_000
    max_depth: int = 64


class LineDict(dict[Any, Any]):
    """A mapping that remembers its own line and the line of each key (1-based)."""

    __slots__ = ("key_lines", "line")

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.key_lines: dict[Any, int] = {}


class LineList(list[Any]):
    __slots__ = ("line",)

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line


class YamlLoadError(Exception):
    """The file cannot be read as YAML at all; `diagnostic` says where."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(str(diagnostic))
        self.diagnostic = diagnostic


@dataclass
class LoadedYaml:
    document: Any
    warnings: list[Diagnostic]


# Both are used statelessly: the resolver's implicit rules (first character -> [(tag, regexp)]),
# and the constructor's per-tag functions called directly (its construct_object() would
# remember every node it ever built).
_IMPLICIT_RESOLVERS: dict[str | None, list[tuple[str, Any]]] = (
    yaml.resolver.Resolver.yaml_implicit_resolvers
)
_constructor = yaml.constructor.SafeConstructor()
_SCALAR_CONSTRUCTORS: dict[str, Any] = {
    tag: function
    for tag, function in yaml.constructor.SafeConstructor.yaml_constructors.items()
    if tag in _SCALAR_TAGS
}


def decode_source(data: bytes, file: str) -> tuple[str, list[Diagnostic]]:
    """UTF-8 text; a byte-order mark is accepted with a warning, invalid bytes are an error."""
    warnings: list[Diagnostic] = []
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
        warnings.append(
            Diagnostic(
                "warning", "byte-order-mark", "the file starts with a byte-order mark", file, 1
            )
        )
    try:
        return data.decode("utf-8"), warnings
    except UnicodeDecodeError as error:
        before = data[: error.start]
        line = before.count(b"\n") + 1
        column = error.start - (before.rfind(b"\n") + 1) + 1
        raise YamlLoadError(
            Diagnostic(
                "error",
                "not-utf8",
                f"the file is not UTF-8 (byte 0x{data[error.start]:02x} cannot be decoded); "
                "save it as UTF-8",
                file,
                line,
                column,
            )
        ) from error


def parse_yaml(data: bytes, file: str, limits: YamlLimits) -> LoadedYaml:
    text, warnings = decode_source(data, file)
    try:
        document = _build(yaml.parse(text, Loader=_Loader), file, limits, warnings)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = error.problem or "invalid YAML"
        if error.context:
            problem = f"{error.context}: {problem}"
        raise YamlLoadError(
            Diagnostic(
                "error",
                "yaml-syntax",
                f"YAML syntax error: {problem}",
                file,
                mark.line + 1 if mark else None,
                mark.column + 1 if mark else None,
            )
        ) from error
    except yaml.reader.ReaderError as error:
        # libyaml reports a byte offset into the UTF-8 text.
        before = text.encode("utf-8")[: error.position]
        raise YamlLoadError(
            Diagnostic(
                "error",
                "yaml-syntax",
                f"YAML syntax error: {error.reason} (character 0x{error.character:02x})",
                file,
                before.count(b"\n") + 1,
                len(before) - (before.rfind(b"\n") + 1) + 1,
            )
        ) from error
    except yaml.YAMLError as error:
        raise YamlLoadError(
            Diagnostic("error", "yaml-syntax", f"YAML error: {error}", file, None)
        ) from error
    return LoadedYaml(document, warnings)


def _limit_error(code: str, message: str, file: str, line: int) -> YamlLoadError:
    return YamlLoadError(Diagnostic("error", code, message, file, line))


def _event_line(event: Any) -> int:
    mark = event.start_mark
    return int(mark.line) + 1 if mark is not None else 1


def _implicit_tag(value: str) -> str:
    """The tag of a plain scalar, as yaml.resolver.Resolver.resolve() gives it."""
    candidates = _IMPLICIT_RESOLVERS.get(value[:1], []) + _IMPLICIT_RESOLVERS.get(None, [])
    for tag, regexp in candidates:
        if regexp.match(value):
            return tag
    return STR_TAG


def _scalar(event: ScalarEvent, file: str) -> Any:
    tag = event.tag
    value = event.value
    if tag is None or tag == "!":
        if not event.implicit[0]:
            return value
        tag = _implicit_tag(value)
    if tag == STR_TAG:
        return value
    if tag not in _SCALAR_TAGS:
        raise _limit_error("yaml-tag", f"unsupported YAML tag {tag!r}", file, _event_line(event))
    if tag == MERGE_TAG:
        return _MergeKey
    node = yaml.ScalarNode(tag, value)
    try:
        result = _SCALAR_CONSTRUCTORS[tag](_constructor, node)
    except (yaml.YAMLError, ValueError, OverflowError) as error:
        message = f"invalid {tag} value {value!r}: {error}"
        raise _limit_error("yaml-value", message, file, _event_line(event)) from error
    if isinstance(result, dt.datetime) and result.time() == dt.time(0) and len(value) <= 10:
        return result.date()
    return result


class _MergeKeyType:
    def __repr__(self) -> str:
        return "<<"


_MergeKey = _MergeKeyType()


def _build(events: Any, file: str, limits: YamlLimits, warnings: list[Diagnostic]) -> Any:
    """Assemble Python values from parser events, bounded by `limits`."""
    stack: list[list[Any]] = []  # frames: [container, pending_key, start_node_count, anchor]
    anchors: dict[str, tuple[Any, int]] = {}
    node_count = 0
    root: Any = None
    have_root = False

    def attach(value: Any, line: int) -> None:
        nonlocal root, have_root
        if not stack:
            root, have_root = value, True
            return
        frame = stack[-1]
        container = frame[0]
        if isinstance(container, LineList):
            container.append(value)
            return
        if frame[1] is _NO_KEY:
            if isinstance(value, (dict, list)):
                raise _limit_error(
                    "yaml-key", "a mapping key must be a plain value, not a collection", file, line
                )
            frame[1] = (value, line)
            return
        key, key_line = frame[1]
        frame[1] = _NO_KEY
        if key is _MergeKey:
            sources = value if isinstance(value, list) else [value]
            for source in sources:
                if not isinstance(source, dict):
                    raise _limit_error("yaml-key", "a merge key (<<) needs a mapping", file, line)
                for merged_key, merged_value in source.items():
                    if merged_key not in container:
                        container[merged_key] = merged_value
                        container.key_lines[merged_key] = key_line
            return
        if key in container:
            warnings.append(
                Diagnostic(
                    "warning",
                    "duplicate-key",
                    f"key {key!r} appears twice in one mapping (also line "
                    f"{container.key_lines[key]}); the later value wins",
                    file,
                    key_line,
                )
            )
        container[key] = value
        container.key_lines[key] = key_line

    for event in events:
        event_type = type(event)
        if event_type is ScalarEvent:
            node_count += 1
            value = _scalar(event, file)
            if event.anchor is not None:
                anchors[event.anchor] = (value, 1)
            attach(value, event.start_mark.line + 1)
        elif event_type is MappingStartEvent or event_type is SequenceStartEvent:
            node_count += 1
            line = event.start_mark.line + 1
            tag = event.tag
            if tag not in (None, "!", _MAP_TAG, _SEQ_TAG):
                raise _limit_error("yaml-tag", f"unsupported YAML tag {tag!r}", file, line)
            if len(stack) >= limits.max_depth:
                raise _limit_error(
                    "yaml-too-deep",
                    f"the document nests deeper than {limits.max_depth} levels "
                    "(raise the limit with --max-yaml-depth)",
                    file,
                    line,
                )
            container: Any = LineDict(line) if event_type is MappingStartEvent else LineList(line)
            stack.append([container, _NO_KEY, node_count, event.anchor])
        elif event_type is MappingEndEvent or event_type is SequenceEndEvent:
            container, _pending, start_count, anchor = stack.pop()
            if anchor is not None:
                anchors[anchor] = (container, node_count - start_count + 1)
            attach(container, container.line)
        elif event_type is AliasEvent:
            line = event.start_mark.line + 1
            if event.anchor not in anchors:
                raise _limit_error(
                    "yaml-syntax", f"alias *{event.anchor} names no earlier anchor", file, line
                )
            value, size = anchors[event.anchor]
            node_count += size
            attach(value, line)
        else:
            continue
        if node_count > limits.max_nodes:
            raise _limit_error(
                "yaml-too-many-nodes",
                f"the document expands to more than {limits.max_nodes} nodes (nested aliases?); "
                "raise the limit with --max-yaml-nodes",
                file,
                event.start_mark.line + 1,
            )
    return root if have_root else None


class _NoKey:
    pass


_NO_KEY: Any = _NoKey()
