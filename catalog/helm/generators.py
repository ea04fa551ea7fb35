"""What HELM generates at run time for a model the catalog has no deployment for.

HELM (since 0.5.7) answers a name no registry holds with a generator chosen by prefix
(`openai/x` becomes a deployment `openai/x` on OpenAI's client, `together/x` one on Together's,
...). helm-run runs such a model, so "no deployment" would be wrong. HELM's own generators are
asked, in HELM's order (every matching prefix, the last one wins; a ValueError means none), with
two exceptions where only "HELM may generate one" can honestly be said: crfm-helm is not
importable here (then HELM 0.5.16's prefixes, catalog.names, say which models it may be), or the
generator is a Hugging Face one, which imports transformers and downloads the model's tokenizer
from the Hub, and so is never called by the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from catalog.helm.versions import PINNED_VERSION, helm_importable, installed_helm_version
from catalog.names import helm_generates

HELM_GENERATOR = "helm-generator"
"""The `chosen_by` of a deployment that HELM would generate."""

_NOT_CALLED_PREFIXES = ("huggingface",)


@dataclass(frozen=True)
class GeneratedDeployment:
    """HELM's run-time answer for one model: the deployment, or a note that it may have one."""

    name: str | None
    host_organization: str | None
    note: str

    @property
    def certain(self) -> bool:
        return self.name is not None


def helm_generated_deployment(model: str) -> GeneratedDeployment | None:
    """The deployment HELM would generate for `model`; None if HELM certainly generates none."""
    if not helm_generates(model) and installed_helm_version() in (None, PINNED_VERSION):
        # No generator of HELM 0.5.16 (the pinned one, or the one assumed when none is
        # installed) serves the prefix: the answer is known without importing HELM, so reads
        # stay light.
        return None
    if not helm_importable():
        return GeneratedDeployment(
            None,
            None,
            "HELM may generate one at run time (crfm-helm 0.5.7 and later have a generator "
            "for its prefix; crfm-helm is not installed here, so this could not be checked)",
        )
    try:
        matching = _matching_generators(model)
    except Exception as error:  # HELM's own import failed: say so rather than guess
        return GeneratedDeployment(
            None,
            None,
            f"HELM may generate one at run time (its generators could not be loaded here: "
            f"{type(error).__name__}: {error})",
        )
    if not matching:
        return None
    prefixes = [prefix for prefix, _ in matching]
    if any(prefix.startswith(_NOT_CALLED_PREFIXES) for prefix in prefixes):
        return GeneratedDeployment(
            None,
            None,
            f"HELM may generate one at run time with its {prefixes[-1]} generator, which "
            "downloads the model's tokenizer from the Hugging Face Hub and so was not called "
            "here",
        )
    generated: Any = None
    try:
        for _, generator in matching:
            generated = generator(model)
    except ValueError:
        return None
    if generated is None:
        return None
    name = str(generated.name)
    return GeneratedDeployment(
        name,
        str(generated.host_organization),
        f"HELM will generate one at run time: deployment {name!r} (its {prefixes[-1]} generator)",
    )


def _matching_generators(model: str) -> list[tuple[str, Any]]:
    """HELM's registered generators whose prefix `model` starts with, in HELM's order."""
    from helm.benchmark import model_deployment_registry

    model_deployment_registry.discover_model_deployment_generators()
    registered: dict[str, Any] = model_deployment_registry._REGISTERED_MODEL_DEPLOYMENT_GENERATORS
    return [(prefix, gen) for prefix, gen in registered.items() if model.startswith(prefix)]


def generated_plan(
    model: str, why: str
) -> tuple[str, str | None, str | None, str | None, tuple[str, ...]]:
    """A run of `model`, which the catalog cannot give a deployment (`why`), as HELM would
    make it: (model, deployment, host, chosen_by, warnings), the engine's planned run."""
    generated = helm_generated_deployment(model)
    if generated is None:
        return model, None, None, None, (why,)
    if generated.name is None:
        return model, None, None, None, (f"{why}; {generated.note}",)
    return (
        model,
        generated.name,
        generated.host_organization,
        HELM_GENERATOR,
        (f"{why}; {generated.note}",),
    )
