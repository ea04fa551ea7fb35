"""`catalog export DIR --for-helm VERSION`: files whose order makes HELM pick the catalog's
choices.

HELM reads no pins and no policy setting: it applies its own rule to its list of deployments
(since 0.5.7 the last non-deprecated deployment of a model, before that the same-named one or
the first non-deprecated one). Written in the order catalog.helm.ordering computes, the files
make that rule land on the catalog's default of every model, pins and policy included. Used as
HELM's config directory, that holds for every model with a deployment; used as `prod_env` on
top of HELM's own files it holds under the rule of 0.5.7 and later (the export's copies come
after HELM's), except for a model whose chosen deployment is deprecated while HELM's own files
keep a non-deprecated one. A choice no order can give (a pin to a deprecated deployment, say)
is an error naming each model: such an export would not be followed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from catalog.errors import HelmError
from catalog.helm.ordering import Listed, order_for_rule
from catalog.helm.versions import installed_helm_version
from catalog.query.export import export_catalog
from catalog.resolve.policies import DEPLOYMENTS_SINCE, helm_rule, helm_version_tuple

if TYPE_CHECKING:
    from catalog.api import Catalog
    from catalog.db.schema import DeploymentInfo

INSTALLED = "installed"
"""`--for-helm` without a version: the installed crfm-helm's, else the newest rule."""
NEWEST = "0.5.7"
"""A version with the newest rule (`last`), for when no crfm-helm is installed."""
_SHOWN = 10


@dataclass(frozen=True)
class HelmExport:
    """What `export --for-helm` wrote, and for which HELM."""

    paths: tuple[Path, ...]
    helm_version: str
    """The version asked for, or the installed one; `0.5.7 and later` for the newest rule."""
    rule: str


def export_for_helm(
    catalog: Catalog, out_dir: Path, version: str = INSTALLED, *, force: bool = False
) -> HelmExport:
    """Write HELM's three files into `out_dir`, ordered for HELM `version`'s rule."""
    if version == INSTALLED:
        installed = installed_helm_version()
        label = installed if installed is not None else f"{NEWEST} and later"
        version = installed or NEWEST
    else:
        label = version
    if helm_version_tuple(version) < DEPLOYMENTS_SINCE:
        raise HelmError(
            f"crfm-helm {version} predates model deployments (PR #1903, crfm-helm 0.4.0): its "
            "files cannot say which deployment runs a model",
            hint="give --for-helm 0.4.0 or later",
        )
    rule = helm_rule(version)

    def ordered(deployments: list[DeploymentInfo]) -> list[DeploymentInfo]:
        """Called inside the export's read transaction, so the choices match the rows."""
        served = {d.model_name for d in deployments}
        choices = {model: catalog.default_deployment(model) for model in served}
        listed = [Listed(d.name, d.model_name, d.deprecated) for d in deployments]
        ordering = order_for_rule(rule, listed, choices)
        if ordering.unexpressible:
            lines = [
                f"{u.model}: the catalog runs it on {u.chosen or 'nothing'}, HELM would run it "
                f"on {u.helm_choice or 'nothing'} ({u.reason})"
                for u in ordering.unexpressible
            ]
            more = len(lines) - _SHOWN
            shown = "; ".join(lines[:_SHOWN]) + (f"; and {more} more" if more > 0 else "")
            raise HelmError(
                f"no order of the deployments makes crfm-helm {label} pick the catalog's "
                f"choice for {len(lines)} model(s); nothing was written: {shown}",
                hint="run HELM on the catalog itself (helm-run --plugins catalog.helm_plugin), "
                "or unpin those models",
            )
        by_name = {d.name: d for d in deployments}
        return [by_name[name] for name in ordering.deployments]

    header = (
        f"# Written by `catalog export --for-helm` from a model catalog, for crfm-helm {label}.\n"
        f"# The deployments are ordered so that HELM's own rule ({_RULES[rule]}) picks the\n"
        "# catalog's default deployment of every model, pins included. Use this directory as\n"
        "# HELM's config directory (or, for crfm-helm 0.5.7 and later, as its prod_env).\n\n"
    )
    paths = export_catalog(
        catalog.connection, out_dir, force=force, deployment_order=ordered, header=header
    )
    return HelmExport(tuple(paths), label, rule)


_RULES = {
    "last": "the last non-deprecated deployment of a model",
    "first": "the deployment named like the model, else the first non-deprecated one",
}
