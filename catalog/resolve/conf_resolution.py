"""Resolving run entries as `helm-run` would run them, one entry or a whole run-entries file.

helm-run's options change which runs an entry stands for (helm/benchmark/run.py,
run_entries_to_run_specs), and the catalog applies them with the same meanings:
- `--priority N` skips entries whose priority is above N (an entry without one always runs);
- `--models-to-run M...` replaces the model of every entry whose `model=` is absent or a group
  (no '/') by each M in turn, without checking that M belongs to the group, and then keeps only
  the runs whose model or deployment is one of M (so `model=openai/gpt2` with other models to
  run gives no run);
- `--groups-to-run G...` keeps the runs whose run spec has one of the groups G; those groups
  come from HELM's run-spec functions, so crfm-helm must be installed.
Without --models-to-run a group still expands to all its models, with a note that helm-run
itself would refuse and ask for --models-to-run.

An entry fails when it cannot be read, when resolution raises, when it names no model and no
--models-to-run gives one, or when one of its models has no deployment to run on: HELM stops
on such an entry too (it raises while building the run specs), so the summary counts it as
failed rather than hiding the model.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalog.errors import (
    AmbiguousRunEntryError,
    CatalogError,
    HelmError,
    IncompatibleDeploymentError,
    RunEntrySyntaxError,
    UnknownDeploymentError,
    UnknownModelError,
    decode_utf8,
)
from catalog.resolve.conf_files import parse_conf
from catalog.resolve.run_entries import (
    MODEL_KEY,
    RunEntry,
    format_run_entry,
    no_model_given,
    parse_run_entry,
)

if TYPE_CHECKING:
    from catalog.resolve.engine import Resolution, ResolutionEngine

UNREADABLE = "unreadable entry"
NO_DEPLOYMENT = "model without deployment"
NO_MODEL = "no model given"
_REASONS: tuple[tuple[type[CatalogError], str], ...] = (
    (RunEntrySyntaxError, "run entry syntax"),
    (UnknownModelError, "unknown model"),
    (UnknownDeploymentError, "unknown deployment"),
    (IncompatibleDeploymentError, "incompatible deployment"),
    (AmbiguousRunEntryError, "ambiguous run entry"),
    (HelmError, "helm run spec"),
)
# helm-run refuses to start without --models-to-run when an entry names one of these groups
# (run.py, `model_expander_wildcard_pattern`); other groups, such as vlm, it expands.
_HELM_WANTS_MODELS_TO_RUN = re.compile(
    r"\bmodel=(?:all|text_code|text|code|instruction_following|full_functionality_text|"
    r"limited_functionality_text)\b"
)


@dataclass(frozen=True)
class RunOptions:
    """helm-run's options that decide which runs an entry stands for (None: not given)."""

    models_to_run: tuple[str, ...] | None = None
    groups_to_run: tuple[str, ...] | None = None
    priority: int | None = None

    @classmethod
    def of(
        cls,
        models_to_run: Sequence[str] | None = None,
        groups_to_run: Sequence[str] | None = None,
        priority: int | None = None,
    ) -> RunOptions:
        """Empty sequences count as not given, as helm-run's `if models_to_run` reads them."""
        return cls(
            tuple(models_to_run) if models_to_run else None,
            tuple(groups_to_run) if groups_to_run else None,
            priority,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "models_to_run": list(self.models_to_run) if self.models_to_run else None,
            "groups_to_run": list(self.groups_to_run) if self.groups_to_run else None,
            "priority": self.priority,
        }


@dataclass(frozen=True)
class EntryOutcome:
    """One entry of the file: its runs, or why it failed (`reason` groups failures).

    `skipped` says why the entry does not run at all (its priority); `notes` say what helm-run
    would do differently or what filtered runs out.
    """

    line: int
    description: str | None
    priority: int | None
    resolutions: tuple[Resolution, ...]
    error: str | None = None
    reason: str | None = None
    skipped: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.reason is None

    def to_json(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "description": self.description,
            "priority": self.priority,
            "ok": self.ok,
            "reason": self.reason,
            "error": self.error,
            "skipped": self.skipped,
            "notes": list(self.notes),
            "resolutions": [r.to_json() for r in self.resolutions],
        }


@dataclass(frozen=True)
class FileReport:
    path: str
    policy: str
    outcomes: tuple[EntryOutcome, ...]
    options: RunOptions = RunOptions()

    @property
    def resolved(self) -> int:
        return sum(1 for o in self.outcomes if o.ok)

    @property
    def failed(self) -> int:
        return len(self.outcomes) - self.resolved

    @property
    def skipped(self) -> int:
        return sum(1 for o in self.outcomes if o.skipped is not None)

    @property
    def runs(self) -> int:
        return sum(len(o.resolutions) for o in self.outcomes)

    @property
    def empty(self) -> int:
        """Entries that resolved to no run at all (e.g. a group whose models are all excluded)."""
        return sum(1 for o in self.outcomes if o.ok and not o.resolutions and o.skipped is None)

    def failures_by_reason(self) -> dict[str, int]:
        counts = Counter(o.reason for o in self.outcomes if o.reason is not None)
        return dict(counts.most_common())

    def summary(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "policy": self.policy,
            **self.options.to_json(),
            "entries": len(self.outcomes),
            "resolved": self.resolved,
            "failed": self.failed,
            "skipped": self.skipped,
            "runs": self.runs,
            "empty": self.empty,
            "failures_by_reason": self.failures_by_reason(),
        }

    def to_json(self) -> dict[str, Any]:
        return {"summary": self.summary(), "entries": [o.to_json() for o in self.outcomes]}


def resolve_file(
    engine: ResolutionEngine,
    path: str | Path,
    *,
    policy: str | None = None,
    ignore_deprecated: bool = False,
    options: RunOptions | None = None,
) -> FileReport:
    """Resolve every entry of a run-entries file; one bad entry never stops the others."""
    text = decode_utf8(Path(path).read_bytes(), str(path), RunEntrySyntaxError)
    options = options or RunOptions()
    chosen_policy = engine.policy_in_force(policy)[0]
    _check_models_to_run(engine, options)
    outcomes = []
    for entry in parse_conf(text, str(path)):
        if entry.error is not None or entry.description is None:
            outcomes.append(
                EntryOutcome(
                    entry.line,
                    entry.description,
                    entry.priority,
                    (),
                    f"{path}:{entry.line}: {entry.error}",
                    UNREADABLE,
                )
            )
            continue
        if (
            options.priority is not None
            and entry.priority is not None
            and entry.priority > options.priority
        ):
            skipped = f"priority {entry.priority} is above --priority {options.priority}"
            outcomes.append(
                EntryOutcome(entry.line, entry.description, entry.priority, (), skipped=skipped)
            )
            continue
        outcomes.append(
            _outcome(
                engine,
                entry.line,
                entry.description,
                entry.priority,
                chosen_policy,
                ignore_deprecated,
                options,
            )
        )
    return FileReport(str(path), chosen_policy, tuple(outcomes), options)


def resolve_entry(
    engine: ResolutionEngine,
    run_entry: str,
    *,
    policy: str | None = None,
    ignore_deprecated: bool = False,
    options: RunOptions | None = None,
) -> list[Resolution]:
    """The runs of one entry as `helm-run --run-entries ENTRY` with `options` would make them;
    raises what resolution raises, and RunEntrySyntaxError when no model is given."""
    options = options or RunOptions()
    chosen_policy = engine.policy_in_force(policy)[0]
    _check_models_to_run(engine, options)
    entry = parse_run_entry(run_entry)
    resolutions, _ = _runs(engine, entry, chosen_policy, ignore_deprecated, options)
    return resolutions


def _check_models_to_run(engine: ResolutionEngine, options: RunOptions) -> None:
    """helm-run refuses an unknown --models-to-run before building any run; so does this."""
    snap = engine.snapshot()
    for model in options.models_to_run or ():
        if model not in snap.models:
            error = snap.unknown_model(model)
            error.args = (f"{error.message} (given to --models-to-run)",)
            raise error


def _outcome(
    engine: ResolutionEngine,
    line: int,
    description: str,
    priority: int | None,
    policy: str,
    ignore_deprecated: bool,
    options: RunOptions,
) -> EntryOutcome:
    try:
        entry = parse_run_entry(description)
        if entry.model is None and entry.model_deployment is None and not options.models_to_run:
            error = no_model_given(entry)
            return EntryOutcome(line, description, priority, (), str(error), NO_MODEL)
        runs, notes = _runs(engine, entry, policy, ignore_deprecated, options)
    except CatalogError as error:
        return EntryOutcome(line, description, priority, (), str(error), _reason(error))
    missing = [r for r in runs if r.model_deployment is None]
    if missing:
        message = "; ".join(w for r in missing for w in r.warnings)
        return EntryOutcome(
            line, description, priority, tuple(runs), message, NO_DEPLOYMENT, notes=notes
        )
    return EntryOutcome(line, description, priority, tuple(runs), notes=notes)


def _runs(
    engine: ResolutionEngine,
    entry: RunEntry,
    policy: str,
    ignore_deprecated: bool,
    options: RunOptions,
) -> tuple[list[Resolution], tuple[str, ...]]:
    """The runs of a parsed entry under helm-run's options, and notes on what they changed."""
    notes: list[str] = []
    models_to_run = options.models_to_run
    if models_to_run and "/" not in (entry.model or ""):
        runs = []
        group = entry.model
        members = set(_group_members(engine, group, policy)) if group is not None else None
        for model in models_to_run:
            replaced = _with_model_arg(entry, model)
            runs.extend(
                engine.resolve(replaced, policy=policy, ignore_deprecated=ignore_deprecated)
            )
            if members is not None and model not in members:
                notes.append(
                    f"{model} is not a member of group {group!r}; helm-run runs it anyway, "
                    "since --models-to-run replaces the group"
                )
    else:
        runs = engine.resolve(entry.text, policy=policy, ignore_deprecated=ignore_deprecated)
        if not models_to_run and _HELM_WANTS_MODELS_TO_RUN.search(entry.text):
            notes.append(
                f"model={entry.model} expands to many models: helm-run itself refuses to run "
                "it without --models-to-run"
            )
    if models_to_run:
        wanted = set(models_to_run)
        kept = [r for r in runs if r.model in wanted or r.model_deployment in wanted]
        if len(kept) < len(runs):
            notes.append(
                f"{len(runs) - len(kept)} run(s) left out: neither model nor deployment is "
                "in --models-to-run"
            )
        runs = kept
    if options.groups_to_run and runs:
        from catalog.helm.run_specs import run_spec_groups

        groups = run_spec_groups(entry.name, entry.other_args)
        if not set(groups) & set(options.groups_to_run):
            notes.append(
                f"left out: its run spec's groups ({', '.join(groups) or 'none'}) are not in "
                "--groups-to-run"
            )
            runs = []
    return runs, tuple(notes)


def _with_model_arg(entry: RunEntry, model: str) -> str:
    """HELM's `{**args, "model": M}`: model= keeps its place, or comes last when absent."""
    args = list(entry.args)
    for index, (key, _) in enumerate(args):
        if key == MODEL_KEY:
            args[index] = (MODEL_KEY, model)
            break
    else:
        args.append((MODEL_KEY, model))
    return format_run_entry(entry.name, args)


def _group_members(engine: ResolutionEngine, group: str, policy: str) -> list[str]:
    from catalog.resolve.groups import is_group

    if not is_group(group):
        return [group]
    return [r.model for r in engine.resolve(f"model={group}", policy=policy)]


def _reason(error: CatalogError) -> str:
    for error_class, reason in _REASONS:
        if isinstance(error, error_class):
            return reason
    return type(error).__name__
