"""An order of the deployments in which HELM's own rule picks the catalog's choice.

HELM decides a model's default by scanning its list of deployments (see
catalog.resolve.policies): since 0.5.7 the last non-deprecated deployment of the model wins;
from PR #1903 (0.4.0) to 0.5.6 a deployment named like the model wins, else the first
non-deprecated one. So a list in which each model's chosen deployment comes last (or first)
among the model's deployments makes HELM choose what the catalog chooses, pins included,
without touching HELM's code. Some choices no order can give, and they are reported:
- a deprecated deployment chosen while the model has a non-deprecated one (a pin can do that,
  and so can the `first` policy's same-name rule);
- a deployment of another model (the `first` policy's same-name rule), or, under HELM's old
  rule, anything but the same-named deployment when one exists;
- no deployment at all while the model has some (only with `ignore_deprecated`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Listed:
    """What HELM's rule reads of a deployment."""

    name: str
    model_name: str
    deprecated: bool


@dataclass(frozen=True)
class Unexpressible:
    """A model whose chosen deployment HELM's rule cannot be made to pick by order alone."""

    model: str
    chosen: str | None
    helm_choice: str | None
    reason: str


@dataclass(frozen=True)
class Ordering:
    """The deployments in the order to give HELM, and the choices no order can give."""

    deployments: tuple[str, ...]
    unexpressible: tuple[Unexpressible, ...]


def helm_choice(
    rule: str,
    model: str,
    own: Sequence[Listed],
    names: Mapping[str, Listed],
    *,
    ignore_deprecated: bool = False,
) -> str | None:
    """HELM's answer for `model`, given its deployments in list order (`own`) and every
    deployment by name; for a model with none, the same-named deployment (a generator is not
    considered: the catalog answers only for models it has deployments for)."""
    if rule == "first" and model in names:
        same = names[model]
        return None if same.deprecated and ignore_deprecated else same.name
    if not own:
        same_name = names.get(model)
        if same_name is None or (same_name.deprecated and ignore_deprecated):
            return None
        return same_name.name
    usable = [d for d in own if not d.deprecated]
    if usable:
        return usable[-1].name if rule == "last" else usable[0].name
    if ignore_deprecated:
        return None
    return own[-1].name if rule == "last" else own[0].name


def order_for_rule(
    rule: str,
    deployments: Sequence[Listed],
    choices: Mapping[str, str | None],
) -> Ordering:
    """`deployments` (in catalog order) reordered so that `rule` picks `choices[model]` for
    every model in `choices` that has deployments; the others are reported."""
    names = {d.name: d for d in deployments}
    by_model: dict[str, list[int]] = {}
    for index, deployment in enumerate(deployments):
        by_model.setdefault(deployment.model_name, []).append(index)
    keys = {d.name: (float(index), 0) for index, d in enumerate(deployments)}
    unexpressible: list[Unexpressible] = []
    for model, chosen in choices.items():
        indexes = by_model.get(model)
        if not indexes:
            continue
        own = [deployments[i] for i in indexes]
        problem = _why_not(rule, model, chosen, own, names)
        if problem is not None:
            unexpressible.append(
                Unexpressible(model, chosen, helm_choice(rule, model, own, names), problem)
            )
            continue
        if chosen is None or (rule == "first" and chosen == model):
            continue
        # Last among the model's deployments (HELM >= 0.5.7), or first (HELM's old rule).
        keys[chosen] = (float(indexes[-1]), 1) if rule == "last" else (float(indexes[0]), -1)
    ordered = sorted(keys, key=keys.__getitem__)
    return Ordering(tuple(ordered), tuple(unexpressible))


def _why_not(
    rule: str, model: str, chosen: str | None, own: Sequence[Listed], names: Mapping[str, Listed]
) -> str | None:
    if chosen is None:
        return "the catalog gives it no deployment, but HELM always picks one of its deployments"
    if rule == "first" and model in names and chosen != model:
        return (
            f"HELM's rule before 0.5.7 always picks the deployment named {model!r}, whatever "
            "the order"
        )
    deployment = names.get(chosen)
    if deployment is None or deployment.model_name != model:
        if rule == "first" and chosen == model:
            return None
        return f"{chosen!r} is not one of its deployments, and HELM picks only among those"
    if deployment.deprecated and any(not d.deprecated for d in own):
        return (
            f"{chosen!r} is deprecated and HELM's rule never picks a deprecated deployment "
            "while the model has another"
        )
    return None


def simulate(
    rule: str, ordered: Iterable[Listed], models: Iterable[str], *, ignore_deprecated: bool
) -> dict[str, str | None]:
    """HELM's answer for each of `models` with its rule applied to `ordered` (for models that
    have deployments there)."""
    listed = list(ordered)
    names = {d.name: d for d in listed}
    own: dict[str, list[Listed]] = {}
    for deployment in listed:
        own.setdefault(deployment.model_name, []).append(deployment)
    return {
        model: helm_choice(rule, model, own[model], names, ignore_deprecated=ignore_deprecated)
        for model in models
        if model in own
    }
