"""Reading one YAML file safely, keeping the line of every entry and key.

HELM's loader forgets where things came from; a user fixing a typo needs file:line. The file is
read through libyaml's event stream (no recursion, so deep nesting cannot crash the process)
and built here within two limits: nesting depth, and the number of nodes after alias expansion
(which stops "billion laughs" documents before they cost memory or time). The third limit, file
size, is applied when catalog.sync.sources reads the file.
"""

from __future__ import annotations

import codecs
import datetime as dt
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)

from catalog.errors import MAX_FINDINGS_PER_FILE, Finding, Severity

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


# Deeper values would reach Python's recursion limit when they are copied, compared, written
# as JSON or exported as YAML (up to about three frames a level); HELM's files nest 6 levels.
MAX_YAML_DEPTH = 200


@dataclass(frozen=True)
class YamlLimits:
    """Bounds on one source file; `catalog sync --max-file-mb/--max-yaml-nodes/--max-yaml-depth`.

    The defaults are far above HELM's real files (v0.5.12: 315 kB and 12,000 nodes at most)
    and far below what would exhaust a small machine (a sync peaks under 200 MB at the node
    limit).
    """

    max_file_bytes: int = 64 * 1024 * 1024
    max_nodes: int = 1_000_000
    max_depth: int = 64

    def __post_init__(self) -> None:
        if self.max_file_bytes < 1 or self.max_nodes < 1:
            raise ValueError("YamlLimits: max_file_bytes and max_nodes must be at least 1")
        if not 2 <= self.max_depth <= MAX_YAML_DEPTH:
            raise ValueError(f"YamlLimits: max_depth must be between 2 and {MAX_YAML_DEPTH}")


class LineDict(dict[Any, Any]):
    """A mapping that remembers its own line and the line of each key (1-based)."""

    __slots__ = ("key_lines", "line")

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.key_lines: dict[Any, int] = {}


class LineList(list[Any]):
    """A sequence that remembers its own line and the line of each item (1-based).

    Item lines matter for items that cannot carry one themselves: `- ~` or `- a string`.
    """

    __slots__ = ("item_lines", "line")

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.item_lines: list[int] = []


class YamlLoadError(Exception):
    """The file cannot be read as YAML at all; `diagnostic` says where."""

    def __init__(self, diagnostic: Finding) -> None:
        super().__init__(str(diagnostic))
        self.diagnostic = diagnostic


@dataclass
class LoadedYaml:
    document: Any
    warnings: list[Finding]


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


def check_utf8(data: bytes, file: str) -> tuple[bytes, list[Finding]]:
    """The bytes without a byte-order mark (accepted with a warning); invalid UTF-8 is an error.

    The bytes, not a decoded str, go on to libyaml, which reads them in place: the text made
    to check them is dropped at once, and libyaml makes no UTF-8 copy of a str.
    """
    warnings: list[Finding] = []
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
        warnings.append(
            Finding(
                Severity.WARNING,
                "byte-order-mark",
                "the file starts with a byte-order mark",
                file=file,
                line=1,
            )
        )
    try:
        codecs.decode(data, "utf-8")
    except UnicodeDecodeError as error:
        before = data[: error.start]
        line = before.count(b"\n") + 1
        column = error.start - (before.rfind(b"\n") + 1) + 1
        utf16 = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
        raise YamlLoadError(
            Finding(
                Severity.ERROR,
                "not-utf8",
                "the file is UTF-16, not UTF-8; save it as UTF-8"
                if utf16
                else f"the file is not UTF-8 (byte 0x{data[error.start]:02x} cannot be "
                "decoded); save it as UTF-8",
                file=file,
                line=line,
                column=column,
            )
        ) from error
    return data, warnings


def yaml_error_location(error: yaml.MarkedYAMLError) -> tuple[int | None, int | None, str]:
    """(line, column, problem) of a YAML error, 1-based, the problem told with its context."""
    mark = error.problem_mark or error.context_mark
    problem = error.problem or "invalid YAML"
    if error.context:
        context_mark = error.context_mark
        if context_mark is not None and mark is not None and context_mark.line != mark.line:
            problem = f"{error.context} (from line {context_mark.line + 1}): {problem}"
        else:
            problem = f"{error.context}: {problem}"
    if mark is None:
        return None, None, problem
    return mark.line + 1, mark.column + 1, problem


def parse_yaml(data: bytes, file: str, limits: YamlLimits) -> LoadedYaml:
    data, warnings = check_utf8(data, file)
    try:
        document = _build(yaml.parse(data, Loader=_Loader), file, limits, warnings)
    except yaml.MarkedYAMLError as error:
        line, column, problem = yaml_error_location(error)
        if line is not None and b"\t" in _leading_whitespace(data, line - 1):
            problem += " (the line is indented with a tab; YAML indents with spaces only)"
        code, message = "yaml-syntax", f"YAML syntax error: {problem}"
        if "maximum nesting depth" in (error.problem or ""):
            # libyaml's own bound (1000 levels), met while it looks ahead past ours.
            code = "yaml-too-deep"
            message = f"the document nests deeper than the YAML parser allows ({problem})"
        raise YamlLoadError(
            Finding(Severity.ERROR, code, message, file=file, line=line, column=column)
        ) from error
    except yaml.reader.ReaderError as error:
        # libyaml reports a byte offset into the UTF-8 text.
        before = data[: error.position]
        raise YamlLoadError(
            Finding(
                Severity.ERROR,
                "yaml-syntax",
                f"YAML syntax error: {error.reason} (character 0x{error.character:02x})",
                file=file,
                line=before.count(b"\n") + 1,
                column=len(before) - (before.rfind(b"\n") + 1) + 1,
            )
        ) from error
    except yaml.YAMLError as error:
        raise YamlLoadError(
            Finding(Severity.ERROR, "yaml-syntax", f"YAML error: {error}", file=file, line=None)
        ) from error
    return LoadedYaml(document, warnings)


def _leading_whitespace(data: bytes, line_index: int) -> bytes:
    """The indentation of line `line_index` (0-based), found without splitting the whole file."""
    start = 0
    for _ in range(line_index):
        start = data.find(b"\n", start) + 1
        if start == 0:
            return b""
    end = data.find(b"\n", start)
    line = data[start : end if end != -1 else len(data)]
    return line[: len(line) - len(line.lstrip(b" \t"))]


def _limit_error(code: str, message: str, file: str, line: int) -> YamlLoadError:
    return YamlLoadError(Finding(Severity.ERROR, code, message, file=file, line=line))


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


def _build(events: Any, file: str, limits: YamlLimits, warnings: list[Finding]) -> Any:
    """Assemble Python values from parser events, bounded by `limits`."""
    stack: list[list[Any]] = []  # frames: [container, pending_key, start_node_count, anchor]
    anchors: dict[str, tuple[Any, int]] = {}
    node_count = 0
    root: Any = None
    have_root = False
    documents = 0
    duplicates = 0

    def attach(value: Any, line: int) -> None:
        nonlocal root, have_root, duplicates
        if not stack:
            root, have_root = value, True
            return
        frame = stack[-1]
        container = frame[0]
        if isinstance(container, LineList):
            container.append(value)
            container.item_lines.append(line)
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
            duplicates += 1
        if key in container and duplicates <= MAX_FINDINGS_PER_FILE:
            warnings.append(
                Finding(
                    Severity.WARNING,
                    "duplicate-key",
                    f"key {key!r} appears twice in one mapping (also line "
                    f"{container.key_lines[key]}); the later value wins",
                    file=file,
                    line=key_line,
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
                hint = (
                    "the most this tool reads"
                    if limits.max_depth >= MAX_YAML_DEPTH
                    else "raise the limit with --max-yaml-depth"
                )
                raise _limit_error(
                    "yaml-too-deep",
                    f"the document nests deeper than {limits.max_depth} levels ({hint})",
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
        elif event_type is DocumentStartEvent:
            documents += 1
            if documents > 1:
                raise _limit_error(
                    "multiple-documents",
                    "a second YAML document starts here ('---'); a catalog file holds one "
                    "document (HELM refuses the file too)",
                    file,
                    _event_line(event),
                )
            continue
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
    if duplicates > MAX_FINDINGS_PER_FILE:
        warnings.append(
            Finding(
                Severity.WARNING,
                "more-findings",
                f"{duplicates - MAX_FINDINGS_PER_FILE} more duplicate keys in this file are not "
                "listed",
                file=file,
                line=None,
            )
        )
    return root if have_root else None


class _NoKey:
    pass


_NO_KEY: Any = _NoKey()
