"""A run entry's groups, as HELM's run-spec function gives them (for `--groups-to-run`).

helm-run keeps a run spec when one of its `groups` is in --groups-to-run; those groups are set
by the run-spec function of the entry's name (`mmlu` -> ['mmlu'], others differ), before the
entry's own `groups` are appended, so only HELM's code knows them. They do not depend on the
model, so one call per entry is enough. Building a run spec imports every run-spec module of
HELM (a few seconds, once) and, for a few scenarios (raft, big_bench), downloads files.
"""

from __future__ import annotations

from collections.abc import Sequence

from catalog.errors import HelmError, HelmNotInstalledError
from catalog.helm.versions import helm_importable


def run_spec_groups(name: str | None, args: Sequence[tuple[str, str]]) -> tuple[str, ...]:
    """The groups of the run spec HELM builds for `name:args` (model arguments left out)."""
    if not helm_importable():
        raise HelmNotInstalledError(
            "--groups-to-run needs crfm-helm: a run's groups come from HELM's run-spec "
            "functions, which only HELM's code knows",
            hint="pip install --no-deps crfm-helm && pip install -r requirements-helm.txt, "
            "or leave out --groups-to-run",
        )
    if name is None:
        raise HelmError("a run entry without a name has no run-spec function, so no groups")
    from helm.benchmark.run_expander import RUN_EXPANDERS
    from helm.benchmark.run_spec import get_run_spec_function
    from helm.common.object_spec import parse_object_spec

    description = name + (":" + ",".join(f"{k}={v}" for k, v in args) if args else "")
    spec = parse_object_spec(description)
    function = get_run_spec_function(spec.class_name)
    if function is None:
        raise HelmError(f"HELM has no run-spec function named {name!r}")
    arguments = {key: value for key, value in spec.args.items() if key not in RUN_EXPANDERS}
    try:
        run_spec = function(**arguments)
    except Exception as error:
        raise HelmError(
            f"HELM's run-spec function {name!r} failed: {type(error).__name__}: {error}"
        ) from error
    return tuple(str(group) for group in run_spec.groups)
