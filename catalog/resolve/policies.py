"""HELM's two default-deployment rules, as pure functions of a model's deployments.

`first` is HELM's rule from PR #1903: a deployment named like the model wins (HELM looks it up
by name, whichever model it serves); else the first non-deprecated deployment of the model in
catalog order (`first_position`: HELM's list keeps every copy of a duplicated name, so its
first-match scan meets the earliest copy); else the first one, or nothing when deprecated ones
are to be ignored. `last` is HELM's rule since v0.5.7: the last non-deprecated deployment by
`position`; else the last one (or nothing); a model without deployments falls back to a
deployment named like it. A pin beats both (catalog.resolve.engine applies it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from catalog.errors import SettingError

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
NOTHING: Choice = (None, None)


class Candidate(Protocol):
    """What a rule reads of a deployment."""

    @property
    def name(self) -> str: ...

    @property
    def deprecated(self) -> bool: ...


LAST_RULE_SINCE = (0, 5, 7)
"""The first crfm-helm whose rule is `last`; from PR #1903 (0.4.0) until then it was `first`."""
DEPLOYMENTS_SINCE = (0, 4, 0)
"""The first crfm-helm with model deployments (PR #1903): before it no rule applies."""


def helm_version_tuple(version: str) -> tuple[int, ...]:
    """`0.5.16` -> (0, 5, 16); a suffix such as `.dev1` or `rc2` after the numbers is ignored."""
    numbers: list[int] = []
    for part in version.strip().split("."):
        digits = ""
        for character in part:
            if not character.isdigit():
                break
            digits += character
        if not digits:
            break
        numbers.append(int(digits))
        if len(digits) < len(part):
            break
    if not numbers:
        raise SettingError(f"{version!r} is not a crfm-helm version (expected e.g. 0.5.16)")
    return tuple(numbers)


def helm_rule(version: str) -> str:
    """The default-deployment rule of a crfm-helm version: `last` since 0.5.7, else `first`."""
    return "last" if helm_version_tuple(version) >= LAST_RULE_SINCE else "first"


def describe_policy_source(source: str, helm_version: str | None = None) -> str:
    """Why the policy in force is what it is, in words (`catalog settings`, `explain`)."""
    if source == "argument":
        return "given for this command (--policy)"
    if source == "setting":
        return "set by the user (catalog settings set policy)"
    if source == "helm":
        return f"from crfm-helm {helm_version} synced with --helm"
    return "default (no policy set, and the catalog was not synced with --helm)"


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise SettingError(
            f"unknown policy {policy!r}; choose one of {', '.join(POLICIES)} "
            "(first: HELM's PR #1903 rule, last: HELM v0.5.7 and later)"
        )
    return policy


def _same_name(name: str, by_name: Mapping[str, Candidate], ignore_deprecated: bool) -> Choice:
    same = by_name.get(name)
    if same is None or (same.deprecated and ignore_deprecated):
        return NOTHING
    return same.name, SAME_NAME


def first_rule(
    name: str,
    by_first_position: Sequence[Candidate],
    by_name: Mapping[str, Candidate],
    ignore_deprecated: bool,
) -> Choice:
    """`first`: the same-named deployment, else the first non-deprecated, else the first."""
    if name in by_name:
        return _same_name(name, by_name, ignore_deprecated)
    for deployment in by_first_position:
        if not deployment.deprecated:
            return deployment.name, FIRST_NON_DEPRECATED
    if by_first_position and not ignore_deprecated:
        return by_first_position[0].name, ONLY_DEPRECATED
    return NOTHING


def last_rule(
    name: str,
    by_position: Sequence[Candidate],
    by_name: Mapping[str, Candidate],
    ignore_deprecated: bool,
) -> Choice:
    """`last`: the last non-deprecated, else the last; no deployment: the same-named one."""
    if not by_position:
        return _same_name(name, by_name, ignore_deprecated)
    for deployment in reversed(by_position):
        if not deployment.deprecated:
            return deployment.name, LAST_NON_DEPRECATED
    if not ignore_deprecated:
        return by_position[-1].name, ONLY_DEPRECATED
    return NOTHING
