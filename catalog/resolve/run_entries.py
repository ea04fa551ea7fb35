"""HELM run entries (`mmlu:subject=anatomy,model=text`) and run-entries conf files, parsed.

Only the syntax lives here; `catalog.resolve.engine` gives the names meaning. HELM splits an entry
at its first ':' and its arguments at ',' and '=' (helm.common.object_spec.parse_object_spec);
every entry HELM accepts is accepted here, read as HELM reads it:
- an entry without ':' is a run-spec name with no arguments (`arabic_content_generation`, as
  in HELM's run_entries_arabic.conf); it names no model, so it runs on `--models-to-run`;
- a key given twice keeps its first place and its last value, as HELM's dict does
  (`gsm:model=text_code,stop=none,stop=none` is a line of HELM's own palmyra conf), with a
  warning, since a repeated key is usually a slip.
Beyond HELM: an entry may be bare arguments (`model=text`, no name), and a malformed entry is an
error naming the column instead of a traceback. Values are kept as written (HELM accepts an
empty one, as in `subtask=`), except that model= and model_deployment= need a name. Model names
may themselves contain ':' (`mistralai/...-v0:2`), so a ':' only ends the name if no '=' comes
before it.
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
    """One run entry: its name (None for bare arguments), its arguments in written order (a
    repeated key once, with its last value), and what a reader should know about it."""

    text: str
    name: str | None
    args: tuple[tuple[str, str], ...]
    warnings: tuple[str, ...] = ()

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
    """Parse HELM's `name:key=value,...`, a bare `name`, or bare `key=value,...`; errors name
    the column. An entry may name no model (see `no_model_given`)."""
    entry = text.strip()
    offset = len(text) - len(text.lstrip())
    if not entry:
        raise RunEntrySyntaxError("the run entry is empty; expected e.g. mmlu:model=text")
    colon = entry.find(":")
    equals = entry.find("=")
    if colon == -1 and equals == -1:
        # HELM's parse_object_spec: no ':' means a run-spec name and no arguments.
        if not _NAME.match(entry):
            raise _syntax(text, offset + 1, f"{_shown(entry)} is not a run entry name")
        return RunEntry(text=entry, name=entry, args=())
    name: str | None = None
    args_start = 0
    if colon != -1 and (equals == -1 or colon < equals):
        name = entry[:colon]
        args_start = colon + 1
        if not _NAME.match(name):
            problem = "is empty" if not name else f"{_shown(name)} is not a run entry name"
            raise _syntax(text, offset + 1, f"the name before ':' {problem}")
    args, warnings = _parse_args(text, entry[args_start:], offset + args_start)
    return RunEntry(text=entry, name=name, args=tuple(args), warnings=tuple(warnings))


def no_model_given(entry: RunEntry) -> RunEntrySyntaxError:
    """The error for an entry that names no model when no `--models-to-run` supplies one.

    helm-run itself refuses such a run unless --models-to-run is given (or, oddly, runs the
    entry on every model when another entry of the file has a model=); the catalog asks.
    """
    return RunEntrySyntaxError(
        f"no model given: run entry {_shown(entry.text)} names no model; add model=MODEL_OR_GROUP "
        "or model_deployment=DEPLOYMENT (e.g. mmlu:subject=anatomy,model=text), or give "
        "--models-to-run MODEL... as helm-run needs"
    )


def _parse_args(text: str, args_text: str, start: int) -> tuple[list[tuple[str, str]], list[str]]:
    if not args_text:
        raise _syntax(text, start + 1, "no arguments after ':'")
    args: list[tuple[str, str]] = []
    warnings: list[str] = []
    seen: dict[str, int] = {}
    column = start + 1
    for part in args_text.split(","):
        if not part:
            raise _syntax(text, column, "an empty argument (two ',' in a row, or a ',' at an end)")
        key, sep, value = part.partition("=")
        if not sep:
            raise _syntax(text, column, f"{_shown(part)} is not of the form key=value")
        if not _KEY.match(key):
            raise _syntax(text, column, _bad_key(key))
        if key in (MODEL_KEY, DEPLOYMENT_KEY) and (value == "" or value != value.strip()):
            problem = "has no value" if value == "" else "has spaces around its value"
            raise _syntax(text, column + len(key) + 1, f"{key}= {problem}")
        if key in seen:
            # HELM builds a dict: the key keeps its first place and takes the last value.
            index = next(i for i, (k, _) in enumerate(args) if k == key)
            earlier = args[index][1]
            args[index] = (key, value)
            same = "the same value" if earlier == value else f"{earlier!r}, then {value!r}"
            warnings.append(
                f"run entry {_shown(text)}: {key}= is given twice (columns {seen[key]} and "
                f"{column}, {same}); the last value is used, as HELM does"
            )
        else:
            seen[key] = column
            args.append((key, value))
        column += len(part) + 1
    return args, warnings


def _bad_key(key: str) -> str:
    """Why `key` is no argument name. A space next to it is named as the mistake, since
    `_shown` would hide it and HELM would pass `' model'` on as an unknown argument."""
    if not key:
        return "an empty key before '='"
    if key != key.strip() and _KEY.match(key.strip()):
        where = "before" if key[0].isspace() else "after"
        return (
            f"a space {where} the key {key.strip()!r} ({key!r}): HELM reads it as another "
            "argument; remove the space"
        )
    return f"{_shown(key)} is not a valid argument name before '='"


def _shown(text: str) -> str:
    """Text as a message quotes it; a huge entry (a pasted file?) is cut in the middle."""
    text = text.strip()
    return repr(text) if len(text) <= _MAX_SHOWN else preview(text)


def _syntax(text: str, column: int, problem: str) -> RunEntrySyntaxError:
    return RunEntrySyntaxError(f"run entry {_shown(text)}, column {column}: {problem}")
