"""Real crfm-helm for the tests that need it: found or skipped (a failure under CI), HELM's
registries restored after a test that changed them, and `helm-run` run as a user runs it.

CI installs crfm-helm 0.5.16 (requirements-helm.txt); elsewhere these tests skip with the
command that installs it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from catalog.helm.versions import PINNED_VERSION, helm_importable, installed_helm_version

INSTALL = (
    f"pip install --no-deps crfm-helm=={PINNED_VERSION} && pip install -r requirements-helm.txt"
)
HELM_RUN = Path(sys.executable).with_name("helm-run")


def require_helm() -> str:
    """The installed crfm-helm's version, which must be the pinned one."""
    version = installed_helm_version()
    if version == PINNED_VERSION and helm_importable():
        return version
    found = f"crfm-helm {version}" if version else "crfm-helm"
    reason = f"{found} is not installed as {PINNED_VERSION} here ({INSTALL})"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def helm_registries() -> Iterator[Any]:
    """HELM's deployment registry module, with HELM's registries and its default-deployment
    function put back as they were after the test.

    The plugin fills HELM's module-level lists and dicts and may replace the default-deployment
    function in the modules that hold a copy of it; other tests in this process must not see
    that. HELM's run_spec_factory is imported first, as helm-run has imported it when plugins
    load.
    """
    require_helm()
    import helm.benchmark.run_spec_factory  # noqa: F401  (a holder of the function, as in helm-run)
    from helm.benchmark import model_deployment_registry as mdr
    from helm.benchmark import model_metadata_registry as mmr
    from helm.benchmark import tokenizer_config_registry as tcr

    containers: list[Any] = [
        mmr.ALL_MODELS_METADATA,
        mmr.MODEL_NAME_TO_MODEL_METADATA,
        mdr.ALL_MODEL_DEPLOYMENTS,
        mdr.DEPLOYMENT_NAME_TO_MODEL_DEPLOYMENT,
        tcr.ALL_TOKENIZER_CONFIGS,
        tcr.TOKENIZER_NAME_TO_CONFIG,
    ]
    saved = [container.copy() for container in containers]
    original = mdr.get_default_model_deployment_for_model
    try:
        yield mdr
    finally:
        for container, copy in zip(containers, saved, strict=True):
            container.clear()
            if isinstance(container, list):
                container.extend(copy)
            else:
                container.update(copy)
        for name, module in list(sys.modules.items()):
            if not name.startswith("helm.") or module is None:
                continue
            function = getattr(module, "get_default_model_deployment_for_model", None)
            if getattr(function, "__catalog_original__", None) is original:
                module.get_default_model_deployment_for_model = original


def hide_crfm_helm(monkeypatch: pytest.MonkeyPatch) -> None:
    """This interpreter as it is where crfm-helm is not installed: no directory on sys.path
    holds its distribution, and no `helm` module is loaded (an import of it fails). Anything
    else the test needs from that directory must already be imported."""
    kept = [entry for entry in sys.path if not any(Path(entry).glob("crfm_helm-*.dist-info"))]
    monkeypatch.setattr(sys, "path", kept)
    for name in [n for n in sys.modules if n == "helm" or n.startswith("helm.")]:
        monkeypatch.delitem(sys.modules, name)
    import importlib

    importlib.invalidate_caches()


# helm-run ------------------------------------------------------------------------------------

RUN_SPEC_PAIR = re.compile(r"model_deployment='([^']*)', model='([^']*)'")


def helm_run(
    *args: str | os.PathLike[str],
    work: Path,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`helm-run ARGS --suite S --max-eval-instances 1 --dry-run --skip-instances` in `work`,
    writing only under it, offline, with `env` added (CATALOG_HELM_PLUGIN never inherited)."""
    require_helm()
    environment = {key: value for key, value in os.environ.items() if key != "CATALOG_HELM_PLUGIN"}
    environment.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    environment.pop("HELM_LOG_LEVEL", None)
    environment.update(env or {})
    command = [
        str(HELM_RUN),
        *map(str, args),
        "--suite",
        "S",
        "--max-eval-instances",
        "1",
        "--dry-run",
        "--skip-instances",
        "-o",
        str(work / "out"),
        "--local-path",
        str(work / "prod_env"),
    ]
    return subprocess.run(
        command, capture_output=True, text=True, cwd=work, env=environment, timeout=300
    )


def run_spec_pairs(stdout: str) -> list[tuple[str, str]]:
    """(model, model_deployment) of every RunSpec helm-run logged, in its order."""
    pairs = []
    for line in stdout.splitlines():
        if "RunSpec(name=" in line:
            found = RUN_SPEC_PAIR.findall(line)
            assert len(found) == 1, line[:300]
            deployment, model = found[0]
            pairs.append((model, deployment))
    return pairs
