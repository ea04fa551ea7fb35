"""HELM run entries (`mmlu:subject=anatomy,model=text`) and run-entries conf files, parsed.

Only the syntax lives here; `catalog.resolve.engine` gives the names meaning. HELM splits an entry
at its first ':' and its arguments at ',' and '='; that is kept, with two additions that make
mistakes visible instead of silently changing what runs: an entry may be bare arguments
(`model=text`, no name), and a malformed entry or a repeated key is an error naming the column.
Values are kept as written (HELM accepts an empty one, as in `subtask=`), except that model=
and model_deployment= need a name. Model names may themselves contain ':'
(`mistralai/...-v0:2`), so a ':' only ends the name if no '=' comes before it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from catalog.errors import RunEntrySyntaxError, preview

MODEL_KEY = "model"
DEPLOYMENT_KEY = "model_deployment"
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*\Z")
# Catalog names never hold NUL, so these cannot clash with a real model or deployment.
_MODEL_SLOT = "\x00model\x00"
_DEPLOYMENT_SLOT = "\x00deployment\x00"
_MAX_SHOWN = 300


@dataclass(frozen=True)
class RunEntry:
    """One run entry: its name (None for bare arguments) and its arguments in written order."""

    text: str
    name: str | None
    args: tuple[tuple[str, str], ...]

    def get(self, key: str) -> str | None:
        for arg_key, value in self.args:
            if arg_key == key:
                return value
        return None

    @property
    def model(self) -> str | None:
        return self.get(MODEL_KEY)

    @property
    def model_deployment(self) -> str | None:
        return self.get(DEPLOYMENT_KEY)

    @property
    def other_args(self) -> tuple[tuple[str, str], ...]:
        """The arguments resolution passes through untouched."""
        return tuple((k, v) for k, v in self.args if k not in (MODEL_KEY, DEPLOYMENT_KEY))

    def with_model(self, model: str, deployment: str | None) -> str:
        """This entry with `model=` and `model_deployment=` set, in place where they were."""
        return format_run_entry(self.name, rewrite_args(self.args, model, deployment))

    def rewriter(self) -> Callable[[str, str | None], str]:
        """`with_model` for the many models of a group: the entry is laid out only once."""
        if "\x00" in self.text:
            return self.with_model
        with_deployment = self.with_model(_MODEL_SLOT, _DEPLOYMENT_SLOT)
        without = self.with_model(_MODEL_SLOT, None)

        def rewrite(model: str, deployment: str | None) -> str:
            if deployment is None:
                return without.replace(_MODEL_SLOT, model)
            return with_deployment.replace(_MODEL_SLOT, model).replace(_DEPLOYMENT_SLOT, deployment)

        return rewrite


def rewrite_args(
    args: tuple[tuple[str, str], ...], model: str, deployment: str | None
) -> list[tuple[str, str]]:
    """Replace the values of model= and model_deployment=, adding whichever is missing next to
    the other (model first); a None deployment drops model_deployment=."""
    wanted = {MODEL_KEY: model, DEPLOYMENT_KEY: deployment}
    result: list[tuple[str, str]] = []
    present = {k for k, _ in args}
    for key, value in args:
        if key == DEPLOYMENT_KEY:
            if MODEL_KEY not in present:
                result.append((MODEL_KEY, model))
            if deployment is not None:
                result.append((DEPLOYMENT_KEY, deployment))
        elif key == MODEL_KEY:
            result.append((MODEL_KEY, model))
            if DEPLOYMENT_KEY not in present and deployment is not None:
                result.append((DEPLOYMENT_KEY, deployment))
        else:
            result.append((key, value))
    if not present & set(wanted):
        result.append((MODEL_KEY, model))
        if deployment is not None:
            result.append((DEPLOYMENT_KEY, deployment))
    return result


def format_run_entry(name: str | None, args: list[tuple[str, str]]) -> str:
    text = ",".join(f"{key}={value}" for key, value in args)
    return f"{name}:{text}" if name is not None else text


def parse_run_entry(text: str) -> RunEntry:
    """Parse HELM's `name:key=value,...` (or bare `key=value,...`); errors name the column."""
    entry = text.strip()
    offset = len(text) - len(text.lstrip())
    if not entry:
        raise RunEntrySyntaxError("the run entry is empty; expected e.g. mmlu:model=text")
    colon = entry.find(":")
    equals = entry.find("=")
    name: str | None = None
    args_start = 0
    if colon != -1 and (equals == -1 or colon < equals):
        name = entry[:colon]
        args_start = colon + 1
        if not _NAME.match(name):
            problem = "is empty" if not name else f"{_shown(name)} is not a run entry name"
            raise _syntax(text, offset + 1, f"the name before ':' {problem}")
    args = _parse_args(text, entry[args_start:], offset + args_start)
    keys = {key for key, _ in args}
    if MODEL_KEY not in keys and DEPLOYMENT_KEY not in keys:
        raise RunEntrySyntaxError(
            f"run entry {_shown(text)} names no model: add model=MODEL_OR_GROUP or "
            "model_deployment=DEPLOYMENT (e.g. mmlu:subject=anatomy,model=text)"
        )
    return RunEntry(text=entry, name=name, args=tuple(args))


def _parse_args(text: str, args_text: str, start: int) -> list[tuple[str, str]]:
    if not args_text:
        raise _syntax(text, start + 1, "no arguments after ':'")
    args: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    column = start + 1
    for part in args_text.split(","):
        if not part:
            raise _syntax(text, column, "an empty argument (two ',' in a row, or a ',' at an end)")
        key, sep, value = part.partition("=")
        if not sep:
            raise _syntax(text, column, f"{_shown(part)} is not of the form key=value")
        if not _KEY.match(key):
            what = "an empty key" if not key else f"{_shown(key)} is not a valid argument name"
            raise _syntax(text, column, f"{what} before '='")
        if key in (MODEL_KEY, DEPLOYMENT_KEY) and (value == "" or value != value.strip()):
            problem = "has no value" if value == "" else "has spaces around its value"
            raise _syntax(text, column + len(key) + 1, f"{key}= {problem}")
        if key in seen:
            raise _syntax(
                text, column, f"{_shown(key)[1:-1]}= is given twice (first at column {seen[key]})"
            )
        seen[key] = column
        args.append((key, value))
        column += len(part) + 1
    return args


def _shown(text: str) -> str:
    """Text as a message quotes it; a huge entry (a pasted file?) is cut in the middle."""
    text = text.strip()
    return repr(text) if len(text) <= _MAX_SHOWN else preview(text)


def _syntax(text: str, column: int, problem: str) -> RunEntrySyntaxError:
    return RunEntrySyntaxError(f"run entry {_shown(text)}, column {column}: {problem}")
