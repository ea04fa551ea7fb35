"""Which deployment runs a model: HELM's two default-deployment policies, pins, run entries.

`first` is HELM's rule from PR #1903: a deployment named like the model wins (HELM looks it up by
name, whichever model it serves); else the first non-deprecated deployment of the model in
catalog order (`first_position`: HELM's list keeps every copy of a duplicated name, so its
first-match scan meets the earliest copy); else the first one, or nothing when deprecated ones
are to be ignored. `last` is HELM's rule since v0.5.7: the last non-deprecated deployment by
`position`; else the last one (or nothing); a model without deployments falls back to a
deployment named like it. A pin in the database beats both.

Answers come from a per-connection snapshot: one indexed scan of the deployments (grouped by
model, in `position` order) plus the model names, pins and policy setting. It is rebuilt when
`PRAGMA data_version` moves (another connection committed, e.g. a sync) or the connection's own
`total_changes` moves (a pin or setting written here), so a cached answer is never stale, and
a lookup costs that one pragma and a few dictionary reads.
"""

from __future__ import annotations

import _thread
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from catalog.errors import (
    AmbiguousRunEntryError,
    IncompatibleDeploymentError,
    SettingError,
    UnknownDeploymentError,
    UnknownModelError,
)

if TYPE_CHECKING:
    from catalog.run_entries import RunEntry

# catalog.model_groups and catalog.run_entries are imported where used: opening a catalog and
# answering a default deployment in a fresh process should not pay for them.

POLICIES = ("first", "last")
DEFAULT_POLICY = "first"
POLICY_SETTING = "policy"

EXPLICIT = "explicit"
SAME_NAME = "same-name"
FIRST_NON_DEPRECATED = "first-non-deprecated"
LAST_NON_DEPRECATED = "last-non-deprecated"
ONLY_DEPRECATED = "only-deprecated"
PINNED = "pinned"
CHOSEN_BY = (
    EXPLICIT,
    SAME_NAME,
    FIRST_NON_DEPRECATED,
    LAST_NON_DEPRECATED,
    ONLY_DEPRECATED,
    PINNED,
)

Choice = tuple[str | None, str | None]
"""(deployment name, rule that chose it); (None, None) when nothing qualifies."""
_NOTHING: Choice = (None, None)


@dataclass(frozen=True)
class Resolution:
    """One run that a run entry stands for: the model, its deployment, and why that one."""

    model: str
    model_deployment: str | None
    host_organization: str | None
    chosen_by: str | None
    warnings: tuple[str, ...]
    run_entry: str
    """The entry rewritten with model= and model_deployment= filled in."""
    name: str | None = None
    """The run entry's name (`mmlu`), None for bare arguments."""
    args: tuple[tuple[str, str], ...] = ()
    """The entry's other arguments, untouched."""

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "model_deployment": self.model_deployment,
            "host_organization": self.host_organization,
            "chosen_by": self.chosen_by,
            "warnings": list(self.warnings),
            "run_entry": self.run_entry,
        }


@dataclass(frozen=True)
class ExplainedDeployment:
    name: str
    host_organization: str
    deprecated: bool
    position: int
    first_position: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "host_organization": self.host_organization,
            "deprecated": self.deprecated,
            "position": self.position,
            "first_position": self.first_position,
        }


@dataclass(frozen=True)
class PolicyChoice:
    """What one policy alone (no pin) picks."""

    policy: str
    deployment: str | None
    chosen_by: str | None

    def to_json(self) -> dict[str, Any]:
        return {"policy": self.policy, "deployment": self.deployment, "chosen_by": self.chosen_by}


@dataclass(frozen=True)
class Explanation:
    """Everything that decides a model's default deployment, and the decision."""

    model: str
    policy: str
    policy_source: str
    """`argument`, `setting` or `default`: where the policy in force came from."""
    deployments: tuple[ExplainedDeployment, ...]
    """The model's deployments in the catalog order the policy in force reads."""
    same_name_deployment: str | None
    """A deployment named exactly like the model, whichever model it serves."""
    pinned: str | None
    chosen: str | None
    chosen_by: str | None
    policy_choices: tuple[PolicyChoice, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "policy": self.policy,
            "policy_source": self.policy_source,
            "deployments": [d.to_json() for d in self.deployments],
            "same_name_deployment": self.same_name_deployment,
            "pinned": self.pinned,
            "chosen": self.chosen,
            "chosen_by": self.chosen_by,
            "policy_choices": [c.to_json() for c in self.policy_choices],
        }


# The per-connection snapshot ----------------------------------------------------------------


class _Deployment:
    """The columns of a deployment that resolution reads."""

    __slots__ = (
        "deprecated",
        "first_position",
        "host_organization",
        "model_name",
        "name",
        "position",
    )

    def __init__(
        self,
        name: str,
        model_name: str,
        host_organization: str,
        deprecated: bool,
        position: int,
        first_position: int,
    ) -> None:
        self.name = name
        self.model_name = model_name
        self.host_organization = host_organization
        self.deprecated = deprecated
        self.position = position
        self.first_position = first_position


_DEPLOYMENTS_QUERY = (
    "SELECT name, model_name, host_organization, deprecated, position, first_position "
    "FROM deployments ORDER BY model_name, position"
)

GroupPlan = list[tuple[str, str | None, str | None, str | None, tuple[str, ...]]]
"""A group's members resolved: (model, deployment, host, rule, warnings) each."""


class _Snapshot:
    """The catalog as resolution sees it, at one (data_version, total_changes).

    `models` maps every model to its deployments in `position` order; the memo dictionaries
    fill in as questions are asked.
    """

    __slots__ = (
        "_by_first",
        "_choices",
        "_groups",
        "_plans",
        "by_name",
        "models",
        "pins",
        "policy_setting",
        "version",
    )

    def __init__(
        self,
        version: tuple[int, int],
        models: dict[str, list[_Deployment]],
        by_name: dict[str, _Deployment],
        pins: dict[str, str],
        policy_setting: str | None,
    ) -> None:
        self.version = version
        self.models = models
        self.by_name = by_name
        self.pins = pins
        self.policy_setting = policy_setting
        self._by_first: dict[str, list[_Deployment]] = {}
        self._choices: dict[tuple[str, bool], dict[str, Choice]] = {}
        self._groups: dict[str, list[str]] = {}
        self._plans: dict[tuple[str, str, bool], GroupPlan] = {}

    def by_first_position(self, model: str) -> list[_Deployment]:
        ordered = self._by_first.get(model)
        if ordered is None:
            ordered = sorted(self.models.get(model, ()), key=lambda d: d.first_position)
            self._by_first[model] = ordered
        return ordered

    def choose(self, name: str, policy: str, ignore_deprecated: bool) -> Choice:
        """The policy's choice for `name` (no pin); any name, as HELM accepts any."""
        memo = self._choices.get((policy, ignore_deprecated))
        if memo is None:
            memo = self._choices[(policy, ignore_deprecated)] = {}
        choice = memo.get(name)
        if choice is None:
            if policy == "first":
                choice = self._first(name, ignore_deprecated)
            else:
                choice = self._last(name, ignore_deprecated)
            memo[name] = choice
        return choice

    def _same_name(self, name: str, ignore_deprecated: bool) -> Choice:
        same = self.by_name.get(name)
        if same is None or (same.deprecated and ignore_deprecated):
            return _NOTHING
        return same.name, SAME_NAME

    def _first(self, name: str, ignore_deprecated: bool) -> Choice:
        if name in self.by_name:
            return self._same_name(name, ignore_deprecated)
        candidates = self.by_first_position(name)
        for deployment in candidates:
            if not deployment.deprecated:
                return deployment.name, FIRST_NON_DEPRECATED
        if candidates and not ignore_deprecated:
            return candidates[0].name, ONLY_DEPRECATED
        return _NOTHING

    def _last(self, name: str, ignore_deprecated: bool) -> Choice:
        candidates = self.models.get(name, ())
        if not candidates:
            return self._same_name(name, ignore_deprecated)
        for deployment in reversed(candidates):
            if not deployment.deprecated:
                return deployment.name, LAST_NON_DEPRECATED
        if not ignore_deprecated:
            return candidates[-1].name, ONLY_DEPRECATED
        return _NOTHING

    def default(self, model: str, policy: str, ignore_deprecated: bool) -> Choice:
        pinned = self.pins.get(model)
        if pinned is not None:
            return pinned, PINNED
        return self.choose(model, policy, ignore_deprecated)

    def group_plan(
        self, connection: sqlite3.Connection, group: str, policy: str, ignore_deprecated: bool
    ) -> GroupPlan:
        """Every member of `group` with its deployment, computed once per snapshot."""
        key = (group, policy, ignore_deprecated)
        plan = self._plans.get(key)
        if plan is None:
            members = self._groups.get(group)
            if members is None:
                from catalog import model_groups

                members = self._groups[group] = model_groups.group_members(connection, group)
            plan = [self.plan(m, policy, ignore_deprecated, group) for m in members]
            self._plans[key] = plan
        return plan

    def plan(
        self, model: str, policy: str, ignore_deprecated: bool, group: str | None
    ) -> tuple[str, str | None, str | None, str | None, tuple[str, ...]]:
        """(model, deployment, host, rule, warnings) for a model named by `model=`."""
        if model not in self.models:
            # Only one of HELM's fixed lists can name a model the catalog lacks.
            return (
                model,
                None,
                None,
                None,
                (f"model {model!r} of group {group!r} is not in the catalog",),
            )
        name, rule = self.default(model, policy, ignore_deprecated)
        if name is None:
            if self.models[model]:
                why = f"model {model!r} has only deprecated deployments, which are ignored"
            else:
                why = f"model {model!r} has no deployment"
            return model, None, None, None, (why,)
        deployment = self.by_name[name]
        if deployment.model_name != model:
            raise _incompatible(self, model, deployment)
        warnings: list[str] = []
        if group is None:
            others = [d.name for d in self.models[model] if d.name != name]
            if rule == PINNED:
                text = f"model={model}: using {name!r}, pinned in this catalog"
            else:
                text = f"model={model}: using {name!r}, chosen by the {policy!r} policy ({rule})"
            text += (
                f"; other deployments: {', '.join(others)}" if others else "; it is the only one"
            )
            warnings.append(text + "; write model_deployment=DEPLOYMENT to choose explicitly")
        if deployment.deprecated:
            warnings.append(f"deployment {name!r} is deprecated")
        return model, name, deployment.host_organization, rule, tuple(warnings)


_CACHE_SIZE = 8
_snapshots: dict[int, tuple[sqlite3.Connection, _Snapshot]] = {}
_lock = _thread.allocate_lock()  # `threading` would cost a millisecond of import time


def snapshot(connection: sqlite3.Connection) -> _Snapshot:
    """The current snapshot of `connection`, rebuilt only if the database changed.

    Snapshots are kept for the last few connections used (keyed by identity: sqlite3
    connections take no weak references).
    """
    version = (connection.execute(_DATA_VERSION).fetchone()[0], connection.total_changes)
    cached = _snapshots.get(id(connection))
    if cached is not None and cached[0] is connection and cached[1].version == version:
        return cached[1]
    built = _build(connection)
    with _lock:
        _snapshots.pop(id(connection), None)
        _snapshots[id(connection)] = (connection, built)
        while len(_snapshots) > _CACHE_SIZE:
            _snapshots.pop(next(iter(_snapshots)))
    return built


_DATA_VERSION = "PRAGMA data_version"


def invalidate(connection: sqlite3.Connection) -> None:
    """Forget the snapshot of `connection` (after writing through it)."""
    with _lock:
        _snapshots.pop(id(connection), None)


def _build(connection: sqlite3.Connection) -> _Snapshot:
    """Four indexed reads in one read transaction, so that a sync cannot land between them."""
    own_transaction = not connection.in_transaction
    if own_transaction:
        connection.execute("BEGIN")
    try:
        version = (connection.execute(_DATA_VERSION).fetchone()[0], connection.total_changes)
        models: dict[str, list[_Deployment]] = {
            name: [] for (name,) in connection.execute("SELECT name FROM models")
        }
        by_name: dict[str, _Deployment] = {}
        for name, model, host, deprecated, position, first in connection.execute(
            _DEPLOYMENTS_QUERY
        ):
            deployment = _Deployment(name, model, host, bool(deprecated), position, first)
            models[model].append(deployment)
            by_name[name] = deployment
        pins = dict(connection.execute("SELECT model_name, deployment_name FROM pins").fetchall())
        row = connection.execute(
            "SELECT value FROM settings WHERE key = ?", (POLICY_SETTING,)
        ).fetchone()
    finally:
        if own_transaction:
            connection.execute("COMMIT")
    return _Snapshot(version, models, by_name, pins, None if row is None else str(row[0]))


# Policies -----------------------------------------------------------------------------------


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise SettingError(
            f"unknown policy {policy!r}; choose one of {', '.join(POLICIES)} "
            "(first: HELM's PR #1903 rule, last: HELM v0.5.7 and later)"
        )
    return policy


def _policy_and_source(snap: _Snapshot, policy: str | None) -> tuple[str, str]:
    if policy is not None:
        return check_policy(policy), "argument"
    if snap.policy_setting is not None:
        if snap.policy_setting not in POLICIES:
            raise SettingError(
                f"the database's policy setting is {snap.policy_setting!r}, which is not one of "
                f"{', '.join(POLICIES)}: fix it with `catalog settings set policy first`"
            )
        return snap.policy_setting, "setting"
    return DEFAULT_POLICY, "default"


def policy_in_force(connection: sqlite3.Connection, policy: str | None = None) -> str:
    """`policy` if given, else the database's setting, else `first`."""
    return _policy_and_source(snapshot(connection), policy)[0]


def default_deployment(
    connection: sqlite3.Connection,
    model: str,
    *,
    policy: str | None = None,
    ignore_deprecated: bool = False,
) -> str | None:
    """The deployment a bare `model=MODEL` runs on; None if the model has none that qualifies."""
    snap = snapshot(connection)
    chosen_policy = _policy_and_source(snap, policy)[0]
    if model not in snap.models:
        raise _unknown_model(snap, model)
    return snap.default(model, chosen_policy, ignore_deprecated)[0]


def helm_default(
    connection: sqlite3.Connection, name: str, *, ignore_deprecated: bool = False
) -> str | None:
    """HELM's `get_default_model_deployment_for_model`: any name, None instead of an error."""
    snap = snapshot(connection)
    chosen_policy = _policy_and_source(snap, None)[0]
    return snap.default(name, chosen_policy, ignore_deprecated)[0]


def _unknown_model(snap: _Snapshot, name: str, *, groups: bool = False) -> UnknownModelError:
    known = list(snap.models)
    if groups:
        from catalog import model_groups

        known = model_groups.group_names() + known
    error = UnknownModelError(name, known)
    deployment = snap.by_name.get(name)
    if deployment is not None:
        error.args = (
            f"{error}; {name!r} is a deployment of model {deployment.model_name!r}: "
            f"write model_deployment={name}",
        )
    return error


def _unknown_deployment(snap: _Snapshot, name: str) -> UnknownDeploymentError:
    error = UnknownDeploymentError(name, snap.by_name)
    if name in snap.models:
        error.args = (f"{error}; {name!r} is a model: write model={name}",)
    return error


# Run entries --------------------------------------------------------------------------------


def resolve_run_entry(
    connection: sqlite3.Connection,
    run_entry: str,
    *,
    policy: str | None = None,
    ignore_deprecated: bool = False,
) -> list[Resolution]:
    """The runs a HELM run entry stands for, one Resolution per model.

    A group (`model=text`) gives one Resolution per member; a member without a deployment gets
    one with `model_deployment` None and a warning. Raises RunEntrySyntaxError,
    UnknownModelError, UnknownDeploymentError, IncompatibleDeploymentError or
    AmbiguousRunEntryError.
    """
    from catalog.model_groups import is_group
    from catalog.run_entries import parse_run_entry

    entry = parse_run_entry(run_entry)
    snap = snapshot(connection)
    chosen_policy = _policy_and_source(snap, policy)[0]
    model, deployment = entry.model, entry.model_deployment
    if deployment is not None:
        return [_explicit(snap, entry, model, deployment)]
    assert model is not None
    if is_group(model):
        # The group's members are read by another query: one read transaction with the
        # snapshot's check, so a sync committing in between cannot give a mixed answer.
        from catalog.store import read_snapshot

        with read_snapshot(connection):
            snap = snapshot(connection)
            plan = snap.group_plan(connection, model, chosen_policy, ignore_deprecated)
    elif model in snap.models:
        plan = [snap.plan(model, chosen_policy, ignore_deprecated, None)]
    else:
        raise _unknown_model(snap, model, groups=True)
    rewrite = entry.rewriter()
    name, args = entry.name, entry.other_args
    return [
        Resolution(member, chosen, host, rule, warnings, rewrite(member, chosen), name, args)
        for member, chosen, host, rule, warnings in plan
    ]


def _explicit(snap: _Snapshot, entry: RunEntry, model: str | None, name: str) -> Resolution:
    from catalog.model_groups import is_group

    if is_group(name):
        raise AmbiguousRunEntryError(
            f"model_deployment={name} names a group of models, not a deployment: write "
            f"model={name} to run every model of the group on its default deployment"
        )
    deployment = snap.by_name.get(name)
    if deployment is None:
        raise _unknown_deployment(snap, name)
    if model is not None:
        if is_group(model):
            raise AmbiguousRunEntryError(
                f"model={model} names a group of models but model_deployment={name} names one "
                f"deployment (of {deployment.model_name!r}): drop one of the two"
            )
        if model not in snap.models:
            raise _unknown_model(snap, model)
        if deployment.model_name != model:
            raise _incompatible(snap, model, deployment)
    warnings = (f"deployment {name!r} is deprecated",) if deployment.deprecated else ()
    return Resolution(
        model=deployment.model_name,
        model_deployment=name,
        host_organization=deployment.host_organization,
        chosen_by=EXPLICIT,
        warnings=warnings,
        run_entry=entry.with_model(deployment.model_name, name),
        name=entry.name,
        args=entry.other_args,
    )


def _incompatible(snap: _Snapshot, model: str, deployment: _Deployment) -> Exception:
    own = [d.name for d in snap.models.get(model, ())]
    hint = f"its deployments are {', '.join(own)}" if own else "it has no deployment"
    return IncompatibleDeploymentError(
        f"deployment {deployment.name!r} serves model {deployment.model_name!r}, not "
        f"{model!r}; {hint}"
    )


# Explanations -------------------------------------------------------------------------------


def explain(
    connection: sqlite3.Connection, model: str, *, policy: str | None = None
) -> Explanation:
    """Every deployment of `model`, the pin, the policy, and which one is chosen and why."""
    snap = snapshot(connection)
    chosen_policy, source = _policy_and_source(snap, policy)
    if model not in snap.models:
        raise _unknown_model(snap, model)
    ordered = snap.by_first_position(model) if chosen_policy == "first" else snap.models[model]
    same = snap.by_name.get(model)
    chosen, rule = snap.default(model, chosen_policy, False)
    return Explanation(
        model=model,
        policy=chosen_policy,
        policy_source=source,
        deployments=tuple(
            ExplainedDeployment(
                d.name, d.host_organization, d.deprecated, d.position, d.first_position
            )
            for d in ordered
        ),
        same_name_deployment=same.name if same is not None else None,
        pinned=snap.pins.get(model),
        chosen=chosen,
        chosen_by=rule,
        policy_choices=tuple(PolicyChoice(p, *snap.choose(model, p, False)) for p in POLICIES),
    )
