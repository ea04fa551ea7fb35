"""The catalog inside `helm-run`: HELM's own registries filled from a catalog database.

`helm-run --plugins catalog.helm_plugin` imports the plugin after HELM has registered its
built-in configs and `--local-path` ones, and before it builds any run spec. The plugin then:

1. empties HELM's registries in place (other HELM modules hold the very list and dict objects,
   so they must never be rebound) and registers the catalog's models, tokenizers and
   deployments through HELM's own functions, as HELM's own classes, so every HELM code path
   (run expanders, window services, clients, plots) sees exactly the catalog, including what
   only a private layer defines;
2. registers the deployments in an order in which HELM's own rule (the last non-deprecated
   deployment of a model) picks the catalog's default of every model, pins and policy
   included (catalog.helm.ordering), so HELM's unchanged code gives the catalog's answers;
3. only if some choice no order can give exists (a pin to a deprecated deployment, the
   `first` policy's same-name rule), replaces `get_default_model_deployment_for_model` in
   HELM's registry module and in every loaded HELM module holding a copy of it (in crfm-helm
   0.5.16: helm.benchmark.run_spec_factory; modules imported later copy the replaced one);
   tests/test_helm_plugin.py proves that no holder is missed.

Models without a deployment in the catalog keep HELM's run-time generators. A missing,
outdated or empty catalog stops helm-run with the catalog's own message before any request.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalog.api import Catalog
from catalog.errors import CatalogError, HelmError
from catalog.helm.ordering import Listed, order_for_rule, simulate
from catalog.helm.shapes import (
    model_deployment_fields,
    model_metadata_fields,
    tokenizer_config_fields,
)
from catalog.resolve.policies import helm_rule

if TYPE_CHECKING:
    from catalog.db.schema import DeploymentInfo, ModelInfo, TokenizerInfo

DEFAULT_FUNCTION = "get_default_model_deployment_for_model"
_ORIGINAL = "__catalog_original__"
"""Set on the replacement function: the HELM function it stands in for."""


@dataclass(frozen=True)
class PluginReport:
    """What the plugin loaded into HELM, for its one log line and for tests."""

    path: Path
    sync_id: int | None
    policy: str
    policy_reason: str
    pins: int
    models: int
    deployments: int
    tokenizers: int
    helm_rule: str
    answered_by_function: tuple[str, ...]
    """Models whose default HELM's rule cannot give by order: answered by the replacement."""
    patched_modules: tuple[str, ...]
    """HELM modules whose default-deployment function was replaced (empty: none needed)."""
    seconds: float

    def log_line(self) -> str:
        sync = f"sync {self.sync_id}" if self.sync_id is not None else "never synced"
        line = (
            f"model-catalog: HELM runs on the catalog {self.path} ({sync}, policy "
            f"{self.policy}: {self.policy_reason}, {self.pins} pin{'s' if self.pins != 1 else ''})"
            f": {self.models} models, {self.deployments} deployments, {self.tokenizers} "
            f"tokenizers, loaded in {self.seconds:.2f} s"
        )
        if self.patched_modules:
            line += (
                f"; {len(self.answered_by_function)} default(s) HELM's rule cannot give by "
                f"order are answered by the catalog ({', '.join(self.patched_modules)})"
            )
        return line


def load_into_helm(path_or_url: str | os.PathLike[str] | None = None) -> PluginReport:
    """What importing the plugin does inside helm-run: load the catalog named by `path_or_url`
    (default: $CATALOG_DB, else ./catalog.db, as the `catalog` command), log one line.

    A catalog error stops the process with exit code 1 and the catalog's own message
    (`error: ...`, `hint: ...`) on stderr: helm-run must not go on with HELM's own catalog.
    """
    from helm.common.hierarchical_logger import hlog

    try:
        with Catalog.open(path_or_url, create=False) as catalog:
            report = install(catalog)
    except CatalogError as error:
        print(f"error: {error.message}", file=sys.stderr)
        hint = error.hint or "check the catalog with `catalog check`"
        print(f"hint: {hint} (CATALOG_DB names the catalog helm-run loads)", file=sys.stderr)
        sys.stderr.flush()
        raise SystemExit(1) from error
    hlog(report.log_line())
    return report


def install(catalog: Catalog) -> PluginReport:
    """Make HELM's registries in this process hold exactly `catalog` (see the module doc)."""
    from helm.benchmark import model_deployment_registry as deployments_registry
    from helm.benchmark import model_metadata_registry as models_registry
    from helm.benchmark import tokenizer_config_registry as tokenizers_registry

    from catalog.helm.versions import installed_helm_version

    started = time.perf_counter()
    with catalog.connection.read():
        last_sync = catalog.connection.execute(
            "SELECT id FROM syncs ORDER BY id DESC LIMIT 1"
        ).fetchone()
        models = catalog.models()
        deployments = catalog.deployments()
        tokenizers = catalog.tokenizers()
        pins = catalog.pins()
        policy, reason = catalog.policy_reason()
        # The catalog's answers, from the same read as the rows they order.
        served = {d.model_name for d in deployments}
        answers = {
            ignore: {
                m.name: catalog.default_deployment(m.name, ignore_deprecated=ignore)
                for m in models
                if m.name in served
            }
            for ignore in (False, True)
        }
    if not models:
        raise HelmError(
            f"the catalog at {catalog.path} holds no model (was it ever synced?); helm-run "
            "would run on an empty catalog",
            hint="catalog sync --helm [YOUR_CONFIG_DIR]",
        )
    rule = helm_rule(installed_helm_version() or "0.5.16")
    listed = [Listed(d.name, d.model_name, d.deprecated) for d in deployments]
    ordering = order_for_rule(rule, listed, answers[False])
    by_name = {d.name: d for d in deployments}
    ordered = [by_name[name] for name in ordering.deployments]
    ordered_listed = [Listed(d.name, d.model_name, d.deprecated) for d in ordered]
    # What HELM's unchanged rule answers on that order; where it differs, the catalog answers.
    exceptions: dict[bool, dict[str, str | None]] = {}
    for ignore, chosen_by_model in answers.items():
        helm_answers = simulate(rule, ordered_listed, chosen_by_model, ignore_deprecated=ignore)
        exceptions[ignore] = {
            model: chosen
            for model, chosen in chosen_by_model.items()
            if helm_answers.get(model) != chosen
        }

    for container in (
        models_registry.ALL_MODELS_METADATA,
        models_registry.MODEL_NAME_TO_MODEL_METADATA,
        deployments_registry.ALL_MODEL_DEPLOYMENTS,
        deployments_registry.DEPLOYMENT_NAME_TO_MODEL_DEPLOYMENT,
        tokenizers_registry.ALL_TOKENIZER_CONFIGS,
        tokenizers_registry.TOKENIZER_NAME_TO_CONFIG,
    ):
        container.clear()
    for model in models:
        models_registry.register_model_metadata(_helm_model(models_registry, model))
    for tokenizer in tokenizers:
        if not tokenizer.is_placeholder:
            tokenizers_registry.register_tokenizer_config(
                _helm_tokenizer(tokenizers_registry, tokenizer)
            )
    for deployment in ordered:
        deployments_registry.register_model_deployment(
            _helm_deployment(deployments_registry, deployment)
        )
    patched = _set_default_function(deployments_registry, exceptions)
    return PluginReport(
        path=catalog.path,
        sync_id=None if last_sync is None else int(last_sync[0]),
        policy=policy,
        policy_reason=reason,
        pins=len(pins),
        models=len(models),
        deployments=len(deployments),
        tokenizers=sum(1 for t in tokenizers if not t.is_placeholder),
        helm_rule=rule,
        answered_by_function=tuple(sorted(set(exceptions[False]) | set(exceptions[True]))),
        patched_modules=patched,
        seconds=time.perf_counter() - started,
    )


def _helm_model(registry: Any, model: ModelInfo) -> Any:
    """HELM's ModelMetadata; a placeholder as HELM itself makes one (get_unknown_model_metadata:
    creator "Unknown", today's date)."""
    if model.is_placeholder:
        return registry.get_unknown_model_metadata(model.name)
    return registry.ModelMetadata(**model_metadata_fields(model))


def _helm_deployment(registry: Any, deployment: DeploymentInfo) -> Any:
    fields = model_deployment_fields(deployment, registry.ClientSpec, registry.WindowServiceSpec)
    return registry.ModelDeployment(**fields)


def _helm_tokenizer(registry: Any, tokenizer: TokenizerInfo) -> Any:
    return registry.TokenizerConfig(**tokenizer_config_fields(tokenizer, registry.TokenizerSpec))


def default_function_holders(registry: Any) -> dict[str, Any]:
    """Every loaded HELM module whose `get_default_model_deployment_for_model` is HELM's
    function or a replacement made by this plugin (the registry module itself included)."""
    current = getattr(registry, DEFAULT_FUNCTION)
    original = getattr(current, _ORIGINAL, current)
    holders = {}
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "helm" or name.startswith("helm.")):
            continue
        function = getattr(module, DEFAULT_FUNCTION, None)
        if function is not None and getattr(function, _ORIGINAL, function) is original:
            holders[name] = module
    return holders


def _set_default_function(
    registry: Any, exceptions: Mapping[bool, Mapping[str, str | None]]
) -> tuple[str, ...]:
    """Put HELM's own function back in every holder, or, when some model's default cannot be
    given by order, a replacement that answers those models and asks HELM for the rest."""
    holders = default_function_holders(registry)
    current = getattr(registry, DEFAULT_FUNCTION)
    original: Callable[..., str | None] = getattr(current, _ORIGINAL, current)
    if not any(exceptions.values()):
        for module in holders.values():
            setattr(module, DEFAULT_FUNCTION, original)
        return ()
    answers = {ignore: dict(chosen) for ignore, chosen in exceptions.items()}

    @functools.wraps(original)
    def get_default_model_deployment_for_model(
        model_name: str, warn_arg_deprecated: bool = False, ignore_deprecated: bool = False
    ) -> str | None:
        chosen = answers[bool(ignore_deprecated)]
        if model_name in chosen:
            return chosen[model_name]
        return original(model_name, warn_arg_deprecated, ignore_deprecated)

    setattr(get_default_model_deployment_for_model, _ORIGINAL, original)
    for module in holders.values():
        setattr(module, DEFAULT_FUNCTION, get_default_model_deployment_for_model)
    return tuple(sorted(holders))
