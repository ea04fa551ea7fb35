"""Checking HELM entries one by one and turning them into the catalog's row records.

Lenient like HELM where HELM is lenient (unknown keys are warnings), strict where a wrong value
would silently change what runs (a length that is not a number is an error). Every finding
names the file and line of the entry or key it is about.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from catalog.db.schema import ACCESS_LEVELS, DeploymentInfo, ModelInfo, TokenizerInfo
from catalog.errors import MAX_FINDINGS_PER_FILE, Finding, Severity, preview
from catalog.names import name_problem, split_name

MAX_LENGTH = 2_147_483_647  # a length beyond a 32-bit integer is a typo, not a model
MAX_PARAMETERS = 10**15  # a thousand times today's largest models; more is a typo

MODEL_KEYS = (
    "name",
    "display_name",
    "description",
    "creator_organization_name",
    "access",
    "release_date",
    "num_parameters",
    "tags",
    "deployment_names",
)
DEPLOYMENT_KEYS = (
    "name",
    "model_name",
    "tokenizer_name",
    "client_spec",
    "window_service_spec",
    "max_sequence_length",
    "max_request_length",
    "max_sequence_and_generated_tokens_length",
    "deprecated",
)
TOKENIZER_KEYS = ("name", "tokenizer_spec", "end_of_text_token", "prefix_token")
SPEC_KEYS = ("class_name", "args")
LENGTH_KEYS = (
    "max_sequence_length",
    "max_request_length",
    "max_sequence_and_generated_tokens_length",
)

# Keys that belong one level down: a stray top-level `args` is almost always client_spec.args.
_NESTED_HINTS = {"args": "client_spec.args", "class_name": "client_spec.class_name"}


@dataclass
class EntryChecker:
    """Collects the findings of one file while its entries are checked.

    Every error is counted (it decides whether an entry is kept), but only the first
    MAX_FINDINGS_PER_FILE findings are kept: `finish()` closes the list with how many more.
    """

    file: str
    diagnostics: list[Finding] = field(default_factory=list)
    error_count: int = 0
    # The line of the entry being checked, for entries that do not carry one (`- ~`).
    entry_line: int | None = None
    unlisted: dict[Severity, int] = field(
        default_factory=lambda: {Severity.ERROR: 0, Severity.WARNING: 0}
    )

    @property
    def full(self) -> bool:
        return len(self.diagnostics) >= MAX_FINDINGS_PER_FILE

    def error(self, code: str, message: str, line: int | None) -> None:
        self.error_count += 1
        self._add(Finding(Severity.ERROR, code, message, file=self.file, line=line))

    def warning(self, code: str, message: str, line: int | None) -> None:
        self._add(Finding(Severity.WARNING, code, message, file=self.file, line=line))

    def _add(self, diagnostic: Finding) -> None:
        if self.full:
            self.unlisted[diagnostic.severity] += 1
        else:
            self.diagnostics.append(diagnostic)

    def finish(self) -> list[Finding]:
        """The findings, closed by a count of those left unlisted."""
        closing = [
            Finding(
                severity,
                "more-findings",
                f"{count} more {severity}s in this file are not listed; fix the ones above first",
                file=self.file,
                line=None,
            )
            for severity, count in self.unlisted.items()
            if count
        ]
        return self.diagnostics + closing

    def begin(
        self, entry: Any, noun: str, known: tuple[str, ...]
    ) -> tuple[int | None, str | None, str] | None:
        """The start of every entry's check: it must be a mapping; its line, its name (None if
        the name is bad), how messages call it, and warnings for its unknown keys."""
        line = getattr(entry, "line", self.entry_line)
        if not isinstance(entry, dict):
            self.error(
                "wrong-type", f"a {noun} entry must be a mapping, not {type_name(entry)}", line
            )
            return None
        name = self.name(entry, "name", f"a {noun}", required=True)
        what = f"{noun} {name!r}" if name else f"a {noun}"
        self.unknown_keys(entry, known, what)
        return line, name, what

    def key_line(self, entry: Any, key: str) -> int | None:
        lines = getattr(entry, "key_lines", {})
        return lines.get(key, getattr(entry, "line", None))

    def unknown_keys(self, entry: dict[Any, Any], known: tuple[str, ...], what: str) -> None:
        for key in entry:
            if key in known:
                continue
            line = self.key_line(entry, key)
            if self.full:  # no suggestion is worth computing for a finding never shown
                self.unlisted[Severity.WARNING] += 1
                continue
            hint = _suggest_key(str(key), known)
            message = f"unknown key {preview(key)} in {what}; it is ignored"
            if hint:
                message += f" (did you mean {hint!r}?)"
            self.warning("unknown-key", message, line)

    def text(self, entry: dict[Any, Any], key: str, what: str, *, required: bool) -> str | None:
        if key not in entry or entry[key] is None:
            if required:
                self.error("missing-field", f"{what} has no {key!r}", getattr(entry, "line", None))
            return None
        value = entry[key]
        if not isinstance(value, str):
            self.error(
                "wrong-type",
                f"{key!r} of {what} must be a string, not {type_name(value)} ({preview(value)})",
                self.key_line(entry, key),
            )
            return None
        return value

    def name(self, entry: dict[Any, Any], key: str, what: str, *, required: bool) -> str | None:
        value = self.text(entry, key, what, required=required)
        if value is None:
            return None
        problem = name_problem(value)
        if problem:
            self.error("bad-name", f"{key!r} of {what}: {problem}", self.key_line(entry, key))
            return None
        return value

    def whole_number(self, entry: dict[Any, Any], key: str, what: str) -> Any:
        """The value of `key`, a whole number where HELM would read one: `"4096"` or `1024.0`
        become 4096 and 1024 with a `coerced-value` warning (an error under --strict)."""
        value = entry.get(key)
        converted: int | None = None
        if isinstance(value, str) and value.strip().isdigit():
            converted = int(value.strip())
        elif isinstance(value, float) and value.is_integer():
            converted = int(value)
        if converted is None:
            return value
        self.warning(
            "coerced-value",
            f"{key!r} of {what} is {preview(value)}, not a whole number; read as {converted}, "
            "as HELM reads it (write it without quotes or decimals)",
            self.key_line(entry, key),
        )
        return converted

    def length(self, entry: dict[Any, Any], key: str, what: str) -> int | None:
        value = self.whole_number(entry, key, what)
        if value is None:
            return None
        line = self.key_line(entry, key)
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(
                "wrong-type",
                f"{key!r} of {what} must be a whole number, not {type_name(value)} "
                f"({preview(value)})",
                line,
            )
            return None
        if value <= 0 or value > MAX_LENGTH:
            self.error(
                "bad-length",
                f"{key!r} of {what} is {value}: a length must be between 1 and {MAX_LENGTH}",
                line,
            )
            return None
        return value

    def spec(
        self, entry: dict[Any, Any], key: str, what: str, *, required: bool
    ) -> tuple[str, Any] | None:
        """A HELM ObjectSpec: {class_name, args}. Class names are stored, never imported."""
        if key not in entry or entry[key] is None:
            if required:
                self.error("missing-field", f"{what} has no {key!r}", getattr(entry, "line", None))
            return None
        spec = entry[key]
        line = self.key_line(entry, key)
        if not isinstance(spec, dict):
            self.error(
                "wrong-type", f"{key!r} of {what} must be a mapping, not {type_name(spec)}", line
            )
            return None
        self.unknown_keys(spec, SPEC_KEYS, f"{key} of {what}")
        class_name = self.text(spec, "class_name", f"{key} of {what}", required=True)
        args = spec.get("args")
        if args is not None and not isinstance(args, dict):
            self.error(
                "wrong-type",
                f"'args' of {key} of {what} must be a mapping, not {type_name(args)}",
                self.key_line(spec, "args"),
            )
            return None
        if class_name is None:
            return None
        if args and not _finite(args):
            self.error(
                "bad-value",
                f"'args' of {key} of {what} hold .nan or .inf, which JSON cannot store; "
                "write the value as a string",
                self.key_line(spec, "args"),
            )
            return None
        return class_name, _plain(args) if args else None


def check_model(entry: Any, checker: EntryChecker) -> ModelInfo | None:
    errors_before = checker.error_count
    started = checker.begin(entry, "model", MODEL_KEYS)
    if started is None:
        return None
    line, name, what = started
    display_name = checker.text(entry, "display_name", what, required=True)
    description = checker.text(entry, "description", what, required=True)
    creator = checker.text(entry, "creator_organization_name", what, required=True)
    access = checker.text(entry, "access", what, required=True)
    if access is not None and access not in ACCESS_LEVELS:
        checker.error(
            "bad-access",
            f"'access' of {what} is {preview(access)}; "
            f"it must be one of {', '.join(ACCESS_LEVELS)}",
            checker.key_line(entry, "access"),
        )
    release_date = _release_date(entry, checker, what)
    num_parameters = _num_parameters(entry, checker, what)
    tags = _tags(entry, checker, what)
    names = entry.get("deployment_names")
    if names is not None and not (
        isinstance(names, list) and all(isinstance(n, str) for n in names)
    ):
        checker.error(
            "wrong-type",
            f"'deployment_names' of {what} must be a list of names",
            checker.key_line(entry, "deployment_names"),
        )
    if checker.error_count > errors_before:
        return None
    assert name and display_name is not None and description is not None
    assert creator is not None and access is not None
    prefix, engine = split_name(name)
    return ModelInfo(
        name=name,
        creator_prefix=prefix,
        engine=engine,
        creator_organization_name=creator,
        display_name=display_name,
        description=description,
        access=access,
        release_date=release_date,
        num_parameters=num_parameters,
        is_placeholder=False,
        source_file=checker.file,
        source_line=line or 0,
        position=0,
        tags=tags,
    )


def check_deployment(entry: Any, checker: EntryChecker) -> DeploymentInfo | None:
    errors_before = checker.error_count
    started = checker.begin(entry, "deployment", DEPLOYMENT_KEYS)
    if started is None:
        return None
    line, name, what = started
    # HELM: a deployment without model_name serves the model of the same name.
    model_name = checker.name(entry, "model_name", what, required=False) or name
    tokenizer_name = checker.name(entry, "tokenizer_name", what, required=False)
    client = checker.spec(entry, "client_spec", what, required=True)
    window = checker.spec(entry, "window_service_spec", what, required=False)
    lengths = {key: checker.length(entry, key, what) for key in LENGTH_KEYS}
    deprecated = _deprecated_flag(entry, checker, what)
    if checker.error_count > errors_before or name is None or model_name is None or not client:
        return None
    host, engine = split_name(name)
    return DeploymentInfo(
        name=name,
        model_name=model_name,
        host_organization=host,
        engine=engine,
        tokenizer_name=tokenizer_name,
        client_class=client[0],
        client_args=client[1],
        window_service_class=window[0] if window else None,
        window_service_args=window[1] if window else None,
        max_sequence_length=lengths["max_sequence_length"],
        max_request_length=lengths["max_request_length"],
        max_sequence_and_generated_tokens_length=lengths[
            "max_sequence_and_generated_tokens_length"
        ],
        deprecated=bool(deprecated),
        source_file=checker.file,
        source_line=line or 0,
        position=0,
        first_position=0,
    )


def check_tokenizer(entry: Any, checker: EntryChecker) -> TokenizerInfo | None:
    errors_before = checker.error_count
    started = checker.begin(entry, "tokenizer", TOKENIZER_KEYS)
    if started is None:
        return None
    line, name, what = started
    spec = checker.spec(entry, "tokenizer_spec", what, required=True)
    end_token = _token(entry, "end_of_text_token", checker, what)
    prefix_token = _token(entry, "prefix_token", checker, what)
    if checker.error_count > errors_before or name is None or spec is None:
        return None
    return TokenizerInfo(
        name=name,
        class_name=spec[0],
        args=spec[1],
        end_of_text_token=end_token,
        prefix_token=prefix_token,
        is_placeholder=False,
        source_file=checker.file,
        source_line=line or 0,
        position=0,
    )


CheckEntry = Callable[[Any, EntryChecker], Any]


def _token(entry: dict[Any, Any], key: str, checker: EntryChecker, what: str) -> str | None:
    value = entry.get(key)
    if value is None or isinstance(value, str):
        return value
    checker.error(
        "wrong-type",
        f"{key!r} of {what} must be a string, not {type_name(value)}",
        checker.key_line(entry, key),
    )
    return None


def _deprecated_flag(entry: dict[Any, Any], checker: EntryChecker, what: str) -> bool:
    """HELM converts with bool(): a non-empty string is true. Kept, but said out loud.

    HELM's own 2023 file has `deprecated: true# comment`, which YAML reads as one string
    because a comment needs a space before '#'.
    """
    value = entry.get("deprecated")
    line = checker.key_line(entry, "deprecated")
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, (int, float)) and value in (0, 1):
        checker.warning(
            "coerced-value",
            f"'deprecated' of {what} is the number {preview(value)}; read as "
            f"{'true' if value else 'false'}, as HELM reads it (write true or false)",
            line,
        )
        return bool(value)
    if isinstance(value, str) and value.strip():
        hint = " (a comment needs a space before '#')" if "#" in value else ""
        checker.warning(
            "suspicious-boolean",
            f"'deprecated' of {what} is the string {preview(value)}, not true/false{hint}; "
            "read as true, as HELM does",
            line,
        )
        return True
    checker.error(
        "wrong-type", f"'deprecated' of {what} must be true or false, not {preview(value)}", line
    )
    return False


def _num_parameters(entry: dict[Any, Any], checker: EntryChecker, what: str) -> int | None:
    value = checker.whole_number(entry, "num_parameters", what)
    if value is None:
        return None
    line = checker.key_line(entry, "num_parameters")
    if isinstance(value, bool) or not isinstance(value, int):
        checker.error(
            "wrong-type",
            f"'num_parameters' of {what} must be a whole number, not {preview(value)}",
            line,
        )
        return None
    if not 0 <= value <= MAX_PARAMETERS:
        checker.error(
            "bad-number",
            f"'num_parameters' of {what} is {preview(value)}: it must be between 0 and "
            f"{MAX_PARAMETERS:.0e} (a quadrillion)",
            line,
        )
        return None
    return value


def _release_date(entry: dict[Any, Any], checker: EntryChecker, what: str) -> dt.date | None:
    value = entry.get("release_date")
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    checker.error(
        "wrong-type",
        f"'release_date' of {what} must be a date YYYY-MM-DD, not {preview(value)}",
        checker.key_line(entry, "release_date"),
    )
    return None


def _tags(entry: dict[Any, Any], checker: EntryChecker, what: str) -> tuple[str, ...]:
    value = entry.get("tags")
    if value is None:
        return ()
    line = checker.key_line(entry, "tags")
    if not isinstance(value, list):
        checker.error(
            "wrong-type", f"'tags' of {what} must be a list, not {type_name(value)}", line
        )
        return ()
    tags: list[str] = []
    for tag in value:
        if not isinstance(tag, str) or not tag.strip():
            checker.error(
                "wrong-type", f"a tag of {what} must be a non-empty string: {preview(tag)}", line
            )
            continue
        if tag in tags:
            checker.warning("duplicate-tag", f"tag {preview(tag)} is listed twice for {what}", line)
            continue
        tags.append(tag)
    return tuple(tags)


def _suggest_key(key: str, known: tuple[str, ...]) -> str | None:
    if key in _NESTED_HINTS:
        return _NESTED_HINTS[key]
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return close[0]
    prefixed = [k for k in known if k.startswith(key) and len(key) >= 3]
    return prefixed[0] if prefixed else None


def _finite(value: Any) -> bool:
    """No NaN or infinity anywhere in `value` (walked without recursion)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return False
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return True


def _plain(value: Any) -> Any:
    """Plain JSON-able data (dates as ISO strings) with the YAML order kept."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "a number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__
