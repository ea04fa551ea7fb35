"""Checking HELM entries one by one and turning them into typed records.

Lenient like HELM where HELM is lenient (unknown keys are warnings), strict where a wrong value
would silently change what runs (a length that is not a number is an error). Every finding
names the file and line of the entry or key it is about.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from catalog.diagnostics import Diagnostic
from catalog.names import name_problem
from catalog.schema import ACCESS_LEVELS

MAX_LENGTH = 2_147_483_647  # a length beyond a 32-bit integer is a typo, not a model

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


@dataclass(frozen=True)
class Provenance:
    """Where an entry is: file and line for people, layer and index for catalog order."""

    file: str
    line: int
    layer: int = 0
    index: int = 0


@dataclass(frozen=True)
class ModelRecord:
    name: str
    creator_organization_name: str
    display_name: str
    description: str
    access: str
    release_date: dt.date | None
    num_parameters: int | None
    tags: tuple[str, ...]
    source: Provenance


@dataclass(frozen=True)
class TokenizerRecord:
    name: str
    class_name: str
    args: Any
    end_of_text_token: str | None
    prefix_token: str | None
    source: Provenance


@dataclass(frozen=True)
class DeploymentRecord:
    name: str
    model_name: str
    tokenizer_name: str | None
    client_class: str
    client_args: Any
    window_service_class: str | None
    window_service_args: Any
    max_sequence_length: int | None
    max_request_length: int | None
    max_sequence_and_generated_tokens_length: int | None
    deprecated: bool
    source: Provenance


@dataclass
class EntryChecker:
    """Collects the findings of one file while its entries are checked."""

    file: str
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def error(self, code: str, message: str, line: int | None) -> None:
        self.diagnostics.append(Diagnostic("error", code, message, self.file, line))

    def warning(self, code: str, message: str, line: int | None) -> None:
        self.diagnostics.append(Diagnostic("warning", code, message, self.file, line))

    def key_line(self, entry: Any, key: str) -> int | None:
        lines = getattr(entry, "key_lines", {})
        return lines.get(key, getattr(entry, "line", None))

    def unknown_keys(self, entry: dict[Any, Any], known: tuple[str, ...], what: str) -> None:
        for key in entry:
            if key in known:
                continue
            line = self.key_line(entry, key)
            hint = _suggest_key(str(key), known)
            message = f"unknown key {key!r} in {what}; it is ignored"
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
                f"{key!r} of {what} must be a string, not {type_name(value)} ({value!r:.60})",
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

    def length(self, entry: dict[Any, Any], key: str, what: str) -> int | None:
        value = entry.get(key)
        if value is None:
            return None
        line = self.key_line(entry, key)
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(
                "wrong-type",
                f"{key!r} of {what} must be a whole number, not {type_name(value)} ({value!r:.60})",
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
        return class_name, _plain(args) if args else None


def check_model(entry: Any, checker: EntryChecker) -> ModelRecord | None:
    line = getattr(entry, "line", None)
    if not isinstance(entry, dict):
        checker.error(
            "wrong-type", f"a model entry must be a mapping, not {type_name(entry)}", line
        )
        return None
    errors_before = _error_count(checker)
    name = checker.name(entry, "name", "a model", required=True)
    what = f"model {name!r}" if name else "a model"
    checker.unknown_keys(entry, MODEL_KEYS, what)
    display_name = checker.text(entry, "display_name", what, required=True)
    description = checker.text(entry, "description", what, required=True)
    creator = checker.text(entry, "creator_organization_name", what, required=True)
    access = checker.text(entry, "access", what, required=True)
    if access is not None and access not in ACCESS_LEVELS:
        checker.error(
            "bad-access",
            f"'access' of {what} is {access!r}; it must be one of {', '.join(ACCESS_LEVELS)}",
            checker.key_line(entry, "access"),
        )
    release_date = _release_date(entry, checker, what)
    num_parameters = entry.get("num_parameters")
    if num_parameters is not None and (
        isinstance(num_parameters, bool)
        or not isinstance(num_parameters, int)
        or num_parameters < 0
    ):
        checker.error(
            "wrong-type",
            f"'num_parameters' of {what} must be a whole number >= 0, not {num_parameters!r:.60}",
            checker.key_line(entry, "num_parameters"),
        )
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
    if _error_count(checker) > errors_before:
        return None
    assert name and display_name is not None and description is not None and creator and access
    return ModelRecord(
        name=name,
        creator_organization_name=creator,
        display_name=display_name,
        description=description,
        access=access,
        release_date=release_date,
        num_parameters=num_parameters,
        tags=tags,
        source=Provenance(checker.file, line or 0),
    )


def check_deployment(entry: Any, checker: EntryChecker) -> DeploymentRecord | None:
    line = getattr(entry, "line", None)
    if not isinstance(entry, dict):
        checker.error(
            "wrong-type", f"a deployment entry must be a mapping, not {type_name(entry)}", line
        )
        return None
    errors_before = _error_count(checker)
    name = checker.name(entry, "name", "a deployment", required=True)
    what = f"deployment {name!r}" if name else "a deployment"
    checker.unknown_keys(entry, DEPLOYMENT_KEYS, what)
    # HELM: a deployment without model_name serves the model of the same name.
    model_name = checker.name(entry, "model_name", what, required=False) or name
    tokenizer_name = checker.name(entry, "tokenizer_name", what, required=False)
    client = checker.spec(entry, "client_spec", what, required=True)
    window = checker.spec(entry, "window_service_spec", what, required=False)
    lengths = {key: checker.length(entry, key, what) for key in LENGTH_KEYS}
    deprecated = _deprecated_flag(entry, checker, what)
    if _error_count(checker) > errors_before or name is None or model_name is None or not client:
        return None
    return DeploymentRecord(
        name=name,
        model_name=model_name,
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
        source=Provenance(checker.file, line or 0),
    )


def check_tokenizer(entry: Any, checker: EntryChecker) -> TokenizerRecord | None:
    line = getattr(entry, "line", None)
    if not isinstance(entry, dict):
        checker.error(
            "wrong-type", f"a tokenizer entry must be a mapping, not {type_name(entry)}", line
        )
        return None
    errors_before = _error_count(checker)
    name = checker.name(entry, "name", "a tokenizer", required=True)
    what = f"tokenizer {name!r}" if name else "a tokenizer"
    checker.unknown_keys(entry, TOKENIZER_KEYS, what)
    spec = checker.spec(entry, "tokenizer_spec", what, required=True)
    end_token = _token(entry, "end_of_text_token", checker, what)
    prefix_token = _token(entry, "prefix_token", checker, what)
    if _error_count(checker) > errors_before or name is None or spec is None:
        return None
    return TokenizerRecord(
        name=name,
        class_name=spec[0],
        args=spec[1],
        end_of_text_token=end_token,
        prefix_token=prefix_token,
        source=Provenance(checker.file, line or 0),
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
    if isinstance(value, str) and value.strip():
        checker.warning(
            "suspicious-boolean",
            f"'deprecated' of {what} is the string {value!r:.60}, not true/false (a comment "
            "needs a space before '#'); read as true, as HELM does",
            line,
        )
        return True
    checker.error(
        "wrong-type", f"'deprecated' of {what} must be true or false, not {value!r:.60}", line
    )
    return False


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
        f"'release_date' of {what} must be a date YYYY-MM-DD, not {value!r:.60}",
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
                "wrong-type", f"a tag of {what} must be a non-empty string: {tag!r}", line
            )
            continue
        if tag in tags:
            checker.warning("duplicate-tag", f"tag {tag!r} is listed twice for {what}", line)
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


def _error_count(checker: EntryChecker) -> int:
    return sum(1 for d in checker.diagnostics if d.severity == "error")
