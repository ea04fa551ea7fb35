"""Which deployment runs a model: the resolution engine a `Catalog` owns.

Answers come from a snapshot of the catalog: one indexed scan of the deployments (grouped by
model, in `position` order) plus the model names, pins and policy setting. The engine keeps the
snapshot of its own connection and rebuilds it when the connection's `data_version` moves
(another connection committed, e.g. a sync, or this one wrote a pin), so an answer is never
stale and a lookup costs one pragma and a few dictionary reads. The rules themselves are in
catalog.resolve.policies; cache routing asks this engine for each model's host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from catalog.db.records import Record, not_in_json
from catalog.errors import (
    AmbiguousRunEntryError,
    DatabaseError,
    IncompatibleDeploymentError,
    SettingError,
    UnknownDeploymentError,
    UnknownModelError,
)
from catalog.resolve import policies
from catalog.resolve.policies import (
    DEFAULT_POLICY,
    EXPLICIT,
    NOTHING,
    PINNED,
    POLICIES,
    POLICY_SETTING,
    Choice,
    check_policy,
)

if TYPE_CHECKING:
    from catalog.db.connection import CatalogConnection
    from catalog.resolve.run_entries import RunEntry

# catalog.resolve.groups and catalog.resolve.run_entries are imported where used: opening a
# catalog and answering a default deployment in a fresh process should not pay for them.


@dataclass(frozen=True)
class Resolution(Record):
    """One run that a run entry stands for: the model, its deployment, and why that one."""

    model: str
    model_deployment: str | None
    host_organization: str | None
    chosen_by: str | None
    warnings: tuple[str, ...]
    run_entry: str
    """The entry rewritten with model= and model_deployment= filled in."""
    name: str | None = not_in_json(None)
    """The run entry's name (`mmlu`), None for bare arguments."""
    args: tuple[tuple[str, str], ...] = not_in_json(())
    """The entry's other arguments, untouched."""


@dataclass(frozen=True)
class ExplainedDeployment(Record):
    name: str
    host_organization: str
    deprecated: bool
    position: int
    first_position: int


@dataclass(frozen=True)
class PolicyChoice(Record):
    """What one policy alone (no pin) picks."""

    policy: str
    deployment: str | None
    chosen_by: str | None


@dataclass(frozen=True)
class Explanation(Record):
    """Everything that decides a model's default deployment, and the decision."""

    model: str
    policy: str
    policy_source: str
    """`argument`, `setting`, `helm` or `default`: where the policy in force came from."""
    policy_reason: str
    """The same in words: "set by the user", "from crfm-helm 0.5.16 synced with --helm", ..."""
    deployments: tuple[ExplainedDeployment, ...]
    """The model's deployments in the catalog order the policy in force reads."""
    same_name_deployment: str | None
    """A deployment named exactly like the model, whichever model it serves."""
    pinned: str | None
    chosen: str | None
    chosen_by: str | None
    policy_choices: tuple[PolicyChoice, ...]
    generator_note: str | None = None
    """For a model with no deployment: what HELM generates for it at run time, or may."""
    helm_list_choice: str | None = None
    """What HELM's own list scan would pick under the policy, where a redefinition makes it
    differ from the catalog's choice (None otherwise)."""
    notes: tuple[str, ...] = ()


class _Candidate:
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

PlannedRun = tuple[str, str | None, str | None, str | None, tuple[str, ...]]
"""A model resolved: (model, deployment, host, rule, warnings)."""


class Snapshot:
    """The catalog as resolution sees it, at one data version.

    `models` maps every model to its deployments in `position` order; the memo dictionaries
    fill in as questions are asked, and go with the snapshot when the catalog changes.
    """

    __slots__ = (
        "_by_first",
        "_choices",
        "_groups",
        "_plans",
        "by_name",
        "helm_version",
        "models",
        "pins",
        "policy_setting",
        "version",
    )

    def __init__(
        self,
        version: tuple[int, int],
        models: dict[str, list[_Candidate]],
        by_name: dict[str, _Candidate],
        pins: dict[str, str],
        policy_setting: str | None,
        helm_version: str | None = None,
    ) -> None:
        self.version = version
        self.models = models
        self.by_name = by_name
        self.pins = pins
        self.policy_setting = policy_setting
        self.helm_version = helm_version
        """The crfm-helm the last sync read with --helm: its rule is the policy when none is set."""
        self._by_first: dict[str, list[_Candidate]] = {}
        self._choices: dict[tuple[str, bool], dict[str, Choice]] = {}
        self._groups: dict[str, list[str]] = {}
        self._plans: dict[tuple[str, str, bool], list[PlannedRun]] = {}

    @classmethod
    def read(cls, connection: CatalogConnection, *, lenient: bool = False) -> Snapshot:
        """Four indexed reads in one read transaction, so a sync cannot land between them.

        A deployment or pin that refers to a missing row (a catalog edited around the tool) is
        an error, or, when `lenient` (a sync about to rewrite the catalog), left out.
        """
        with connection.read():
            version = connection.data_version()
            models: dict[str, list[_Candidate]] = {
                name: [] for (name,) in connection.execute("SELECT name FROM models")
            }
            by_name: dict[str, _Candidate] = {}
            for name, model, host, deprecated, position, first in connection.execute(
                _DEPLOYMENTS_QUERY
            ):
                deployment = _Candidate(name, model, host, bool(deprecated), position, first)
                served = models.get(model)
                if served is None:
                    if lenient:
                        continue
                    raise _damaged(f"deployment {name!r} refers to model {model!r}")
                served.append(deployment)
                by_name[name] = deployment
            pins = dict(
                connection.execute("SELECT model_name, deployment_name FROM pins").fetchall()
            )
            row = connection.execute(
                "SELECT value FROM settings WHERE key = ?", (POLICY_SETTING,)
            ).fetchone()
            last_sync = connection.execute(
                "SELECT helm_version FROM syncs ORDER BY id DESC LIMIT 1"
            ).fetchone()
        helm_version = None if last_sync is None else last_sync[0]
        for model, pinned in list(pins.items()):
            if model not in models or pinned not in by_name:
                if lenient:
                    del pins[model]
                    continue
                missing = f"model {model!r}" if model not in models else f"deployment {pinned!r}"
                raise _damaged(f"the pin of {model!r} refers to {missing}")
        setting = None if row is None else str(row[0])
        return cls(version, models, by_name, pins, setting, helm_version)

    def defaults(self) -> dict[str, dict[str, str | None]]:
        """Every model's default under `first`, `last`, and the policy in force with pins
        applied (`in_force`): what history compares before and after an event."""
        in_force = self.policy_and_source(None)[0]
        first: dict[str, str | None] = {}
        last: dict[str, str | None] = {}
        chosen: dict[str, str | None] = {}
        for model in self.models:
            first[model] = self.choose(model, "first", False)[0]
            last[model] = self.choose(model, "last", False)[0]
            chosen[model] = self.default(model, in_force, False)[0]
        return {"first": first, "last": last, "in_force": chosen}

    def by_first_position(self, model: str) -> list[_Candidate]:
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
                candidates = self.by_first_position(name)
                choice = policies.first_rule(name, candidates, self.by_name, ignore_deprecated)
            else:
                candidates = self.models.get(name, [])
                choice = policies.last_rule(name, candidates, self.by_name, ignore_deprecated)
            memo[name] = choice
        return choice

    def default(self, model: str, policy: str, ignore_deprecated: bool) -> Choice:
        pinned = self.pins.get(model)
        if pinned is not None:
            return pinned, PINNED
        return self.choose(model, policy, ignore_deprecated)

    def policy_and_source(self, policy: str | None) -> tuple[str, str]:
        """The policy in force and where it came from: `argument`, `setting`, `helm` (the rule
        of the crfm-helm a --helm sync read) or `default`."""
        if policy is not None:
            return check_policy(policy), "argument"
        if self.policy_setting is not None:
            if self.policy_setting not in POLICIES:
                raise SettingError(
                    f"the database's policy setting is {self.policy_setting!r}, which is not one "
                    f"of {', '.join(POLICIES)}",
                    hint="fix it with `catalog settings set policy first`",
                )
            return self.policy_setting, "setting"
        if self.helm_version is not None:
            return policies.helm_rule(self.helm_version), "helm"
        return DEFAULT_POLICY, "default"

    def policy_reason(self, policy: str | None) -> tuple[str, str, str]:
        """(policy, source, the source in words)."""
        chosen, source = self.policy_and_source(policy)
        return chosen, source, policies.describe_policy_source(source, self.helm_version)

    def group_plan(
        self, connection: CatalogConnection, group: str, policy: str, ignore_deprecated: bool
    ) -> list[PlannedRun]:
        """Every member of `group` with its deployment, computed once per snapshot."""
        key = (group, policy, ignore_deprecated)
        plan = self._plans.get(key)
        if plan is None:
            members = self._groups.get(group)
            if members is None:
                from catalog.resolve import groups

                members = self._groups[group] = groups.group_members(connection, group)
            plan = [self.plan(m, policy, ignore_deprecated, group) for m in members]
            self._plans[key] = plan
        return plan

    def plan(
        self, model: str, policy: str, ignore_deprecated: bool, group: str | None
    ) -> PlannedRun:
        """(model, deployment, host, rule, warnings) for a model named by `model=`."""
        if model not in self.models:
            # Only one of HELM's fixed lists can name a model the catalog lacks; HELM runs it
            # if one of its generators makes a deployment for it.
            from catalog.helm.generators import generated_plan

            return generated_plan(
                model, f"model {model!r} of group {group!r} is not in the catalog"
            )
        name, rule = self.default(model, policy, ignore_deprecated)
        if name is None:
            if self.models[model]:
                why = f"model {model!r} has only deprecated deployments, which are ignored"
                return model, None, None, None, (why,)
            from catalog.helm.generators import generated_plan

            return generated_plan(model, f"model {model!r} has no deployment in the catalog")
        deployment = self.by_name[name]
        if deployment.model_name != model:
            raise self.incompatible(model, deployment)
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
            if rule == PINNED and ignore_deprecated:
                warnings.append(
                    f"model {model!r} is pinned to the deprecated {name!r}: a pin wins over "
                    f"--ignore-deprecated (unpin {model} to let the policy choose)"
                )
        return model, name, deployment.host_organization, rule, tuple(warnings)

    def unknown_model(self, name: str, *, groups: bool = False) -> UnknownModelError:
        known = list(self.models)
        if groups:
            from catalog.resolve.groups import group_names

            known = group_names() + known
        error = UnknownModelError(name, known)
        deployment = self.by_name.get(name)
        if deployment is not None:
            error.args = (
                f"{error}; {name!r} is a deployment of model {deployment.model_name!r}: "
                f"write model_deployment={name}",
            )
        return error

    def unknown_deployment(self, name: str) -> UnknownDeploymentError:
        error = UnknownDeploymentError(name, self.by_name)
        if name in self.models:
            error.args = (f"{error}; {name!r} is a model: write model={name}",)
        return error

    def incompatible(self, model: str, deployment: _Candidate) -> IncompatibleDeploymentError:
        own = [d.name for d in self.models.get(model, ())]
        hint = f"its deployments are {', '.join(own)}" if own else "it has no deployment"
        return IncompatibleDeploymentError(
            f"deployment {deployment.name!r} serves model {deployment.model_name!r}, not "
            f"{model!r}; {hint}"
        )


def _damaged(problem: str) -> DatabaseError:
    return DatabaseError(
        f"the catalog is inconsistent: {problem}, which is missing (was it edited by hand, "
        "with foreign keys off?)",
        hint="`catalog check` lists every such problem; `catalog sync` rebuilds the catalog "
        "from its sources",
    )


class ResolutionEngine:
    """Default deployments, run entries and explanations for one catalog connection."""

    def __init__(self, connection: CatalogConnection) -> None:
        self._connection = connection
        self._snapshot: Snapshot | None = None

    def snapshot(self) -> Snapshot:
        """The current snapshot, rebuilt only if the catalog changed since the last one."""
        current = self._snapshot
        if current is None or current.version != self._connection.data_version():
            current = self._snapshot = Snapshot.read(self._connection)
        return current

    def policy_in_force(self, policy: str | None = None) -> tuple[str, str]:
        """(policy, source): `policy` if given, else the database's setting, else the rule of
        the crfm-helm a --helm sync read, else `first`."""
        return self.snapshot().policy_and_source(policy)

    def policy_reason(self, policy: str | None = None) -> tuple[str, str]:
        """(policy, why it is in force, in words)."""
        chosen, _, reason = self.snapshot().policy_reason(policy)
        return chosen, reason

    def default_deployment(
        self, model: str, *, policy: str | None = None, ignore_deprecated: bool = False
    ) -> str | None:
        """The deployment a bare `model=MODEL` runs on; None if none qualifies."""
        snap = self.snapshot()
        chosen_policy = snap.policy_and_source(policy)[0]
        if model not in snap.models:
            raise snap.unknown_model(model)
        return snap.default(model, chosen_policy, ignore_deprecated)[0]

    def helm_default(self, name: str, *, ignore_deprecated: bool = False) -> str | None:
        """HELM's `get_default_model_deployment_for_model`: any name, None instead of an error."""
        snap = self.snapshot()
        chosen_policy = snap.policy_and_source(None)[0]
        return snap.default(name, chosen_policy, ignore_deprecated)[0]

    def default_hosts(self, policy: str) -> dict[str, str | None]:
        """Each model's host under `policy` with pins applied (None: no deployment)."""
        snap = self.snapshot()
        hosts: dict[str, str | None] = {}
        for model in snap.models:
            chosen = snap.default(model, policy, False)[0]
            deployment = snap.by_name.get(chosen) if chosen is not None else None
            hosts[model] = deployment.host_organization if deployment is not None else None
        return hosts

    def resolve(
        self, run_entry: str, *, policy: str | None = None, ignore_deprecated: bool = False
    ) -> list[Resolution]:
        """The runs a HELM run entry stands for, one Resolution per model.

        A group (`model=text`) gives one Resolution per member; a member without a deployment
        gets one with `model_deployment` None and a warning. Raises RunEntrySyntaxError,
        UnknownModelError, UnknownDeploymentError, IncompatibleDeploymentError or
        AmbiguousRunEntryError.
        """
        from catalog.resolve.groups import is_group
        from catalog.resolve.run_entries import no_model_given, parse_run_entry

        entry = parse_run_entry(run_entry)
        snap = self.snapshot()
        chosen_policy = snap.policy_and_source(policy)[0]
        model, deployment = entry.model, entry.model_deployment
        if deployment is not None:
            return [self._explicit(snap, entry, model, deployment)]
        if model is None:
            raise no_model_given(entry)
        if is_group(model):
            # The group's members are read by another query: one read transaction with the
            # snapshot's check, so a sync committing in between cannot give a mixed answer.
            with self._connection.read():
                snap = self.snapshot()
                plan = snap.group_plan(self._connection, model, chosen_policy, ignore_deprecated)
        elif model in snap.models:
            plan = [snap.plan(model, chosen_policy, ignore_deprecated, None)]
        else:
            raise snap.unknown_model(model, groups=True)
        rewrite = entry.rewriter()
        name, args = entry.name, entry.other_args
        return [
            Resolution(
                member,
                chosen,
                host,
                rule,
                entry.warnings + warnings,
                rewrite(member, chosen),
                name,
                args,
            )
            for member, chosen, host, rule, warnings in plan
        ]

    @staticmethod
    def _explicit(snap: Snapshot, entry: RunEntry, model: str | None, name: str) -> Resolution:
        from catalog.resolve.groups import is_group

        if is_group(name):
            raise AmbiguousRunEntryError(
                f"model_deployment={name} names a group of models, not a deployment: write "
                f"model={name} to run every model of the group on its default deployment"
            )
        deployment = snap.by_name.get(name)
        if deployment is None:
            raise snap.unknown_deployment(name)
        if model is not None:
            if is_group(model):
                raise AmbiguousRunEntryError(
                    f"model={model} names a group of models but model_deployment={name} names "
                    f"one deployment (of {deployment.model_name!r}): drop one of the two"
                )
            if model not in snap.models:
                raise snap.unknown_model(model)
            if deployment.model_name != model:
                raise snap.incompatible(model, deployment)
        deprecated = (f"deployment {name!r} is deprecated",) if deployment.deprecated else ()
        warnings = entry.warnings + deprecated
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

    def explain(self, model: str, *, policy: str | None = None) -> Explanation:
        """Every deployment of `model`, the pin, the policy, and which one is chosen and why."""
        snap = self.snapshot()
        chosen_policy, source, reason = snap.policy_reason(policy)
        if model not in snap.models:
            deployment = snap.by_name.get(model)
            if deployment is not None:
                raise UnknownModelError(
                    model,
                    hint=f"{model!r} is a deployment of model {deployment.model_name!r}: "
                    f"`catalog explain {deployment.model_name}` explains the model's choice, "
                    f"`catalog resolve model_deployment={model}` resolves the deployment",
                )
            raise snap.unknown_model(model)
        ordered = snap.by_first_position(model) if chosen_policy == "first" else snap.models[model]
        same = snap.by_name.get(model)
        chosen, rule = snap.default(model, chosen_policy, False)
        generator_note = None
        if chosen is None:
            # What HELM does at run time for a model with no deployment.
            from catalog.helm.generators import HELM_GENERATOR, helm_generated_deployment

            generated = helm_generated_deployment(model)
            if generated is not None:
                generator_note = generated.note
                if generated.name is not None:
                    chosen, rule = generated.name, HELM_GENERATOR
        return Explanation(
            model=model,
            policy=chosen_policy,
            policy_source=source,
            policy_reason=reason,
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
            generator_note=generator_note,
            **self._helm_list_view(snap, model, chosen_policy),
        )

    def _helm_list_view(self, snap: Snapshot, model: str, policy: str) -> dict[str, Any]:
        """HELM's list keeps every copy of a redefined deployment, with its own flags; where
        scanning it gives another answer than the catalog (which applies the override), say
        so. Only explain pays for this: it reads the shadowed copies of this model."""
        shadowed = self._connection.execute(
            "SELECT position, name, model_name, deprecated, source_file, source_line "
            "FROM shadowed_deployments WHERE model_name = ? "
            "OR name IN (SELECT name FROM deployments WHERE model_name = ?) ORDER BY position",
            (model, model),
        ).fetchall()
        if not shadowed:
            return {}
        copies = sorted(
            [(d.position, d.name, d.model_name, d.deprecated) for d in snap.models[model]]
            + [(row[0], row[1], row[2], bool(row[3])) for row in shadowed]
        )
        mine = [copy for copy in copies if copy[2] == model]
        live = [copy for copy in mine if not copy[3]] or mine
        if policy == "first":
            scanned = model if model in snap.by_name else (live[0][1] if live else None)
        else:
            scanned = live[-1][1] if live else (model if model in snap.by_name else None)
        catalog_choice = snap.choose(model, policy, False)[0]
        if scanned == catalog_choice:
            return {}
        earlier = ", ".join(f"{row[1]!r} ({row[4]}:{row[5]})" for row in shadowed)
        return {
            "helm_list_choice": scanned,
            "notes": (
                f"a later layer redefined {earlier}; HELM's own list still holds the earlier "
                f"copy, and scanning it HELM's {policy!r} rule would pick {scanned!r}, where "
                f"the catalog, applying the redefinition, picks {catalog_choice!r}",
            ),
        }


__all__ = [
    "NOTHING",
    "Explanation",
    "PlannedRun",
    "Resolution",
    "ResolutionEngine",
    "Snapshot",
]
