"""Benchmark deployment resolution against HELM's way of answering from the YAML files.

Every figure is the median of --runs runs, measured in the same process run as its baseline:

  (a) the default deployment of every model, time per call; baseline: the YAML loaded into
      Python lists and HELM's get_default_model_deployment_for_model (name dict, list scan).
  (b) resolving `model=text` (every text model to its deployment); baseline: HELM's group
      computation by scanning the model list, then the default of each model.
  (c) a fresh process that opens the catalog and resolves one model; baseline: a fresh process
      that loads the three YAML files with PyYAML's C loader and resolves one model.
  (d) with crfm-helm installed: inside a real `helm-run --dry-run --plugins catalog.helm_plugin`
      (HELM's own entry point, in a fresh process per run), the plugin's load time (importing
      it, opening a catalog synced with --helm and filling HELM's registries); baseline: HELM's
      own config loading in the same process (its built-in files and --local-path).

The catalog side is measured cold (a new connection, so the snapshot is built inside the
timing) and warm (the snapshot already built). Usage:

  .venv/bin/python scripts/bench_resolve.py [--snapshot DIR] [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from helm_baseline import HelmLists
from timing import median_seconds

from catalog import Catalog

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SNAPSHOT = REPO.parent / "shared" / "helm-configs" / "v0.5.12"
PROBE_MODEL = "meta/llama-2-7b"


def report(label: str, ours: float, baseline: float, unit: str, target: str) -> None:
    scale = {"us": 1e6, "ms": 1e3}[unit]
    print(
        f"{label:<44} catalog {ours * scale:10.2f} {unit}   baseline {baseline * scale:10.2f} "
        f"{unit}   ratio {ours / baseline:6.3f}   ({target})"
    )


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-resolve-") as workdir:
        measure(Path(workdir))


def measure(workdir: Path) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--snapshot", type=Path, default=DEFAULT_SNAPSHOT)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    runs = max(5, args.runs)

    db = workdir / "catalog.db"
    with Catalog.open(db) as catalog:
        catalog.sync([args.snapshot])
    helm = HelmLists(args.snapshot)
    catalog = Catalog.open(db)
    models = [row[0] for row in catalog.connection.execute("SELECT name FROM models")]
    assert [catalog.default_deployment(m) for m in models] == [
        helm.default_deployment(m) for m in models
    ], "catalog and baseline disagree"
    print(f"snapshot {args.snapshot} ({len(models)} models), median of {runs} runs\n")

    def fresh_connection() -> None:
        nonlocal catalog
        catalog.close()
        catalog = Catalog.open(db)

    def all_defaults() -> None:
        default_deployment = catalog.default_deployment
        for model in models:
            default_deployment(model)

    def baseline_defaults() -> None:
        for model in models:
            helm.default_deployment(model)

    cold = median_seconds(all_defaults, runs, setup=fresh_connection) / len(models)
    warm = median_seconds(all_defaults, runs) / len(models)
    base = median_seconds(baseline_defaults, runs) / len(models)
    report("(a) default deployment, per call, cold", cold, base, "us", "target <= 1")
    report("(a) default deployment, per call, warm", warm, base, "us", "target <= 1")

    def text_group() -> None:
        catalog.resolve("model=text")

    cold = median_seconds(text_group, runs, setup=fresh_connection)
    warm = median_seconds(text_group, runs)
    base = median_seconds(helm.text_group, runs)
    ours_text = [(r.model, r.model_deployment) for r in catalog.resolve("model=text")]
    # HELM lists a model defined twice twice; the catalog lists it once.
    assert ours_text == list(dict.fromkeys(helm.text_group())), "model=text differs"
    count = len(ours_text)
    report(f"(b) model=text ({count} models), cold", cold, base, "ms", "target <= 0.2")
    report(f"(b) model=text ({count} models), warm", warm, base, "ms", "target <= 0.2")
    catalog.close()

    ours_code = (
        "import catalog\n"
        f"c = catalog.Catalog.open({str(db)!r})\n"
        f"print(c.default_deployment({PROBE_MODEL!r}))\n"
    )
    baseline_code = (
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n"
        "from helm_baseline import HelmLists\n"
        "from pathlib import Path\n"
        f"print(HelmLists(Path({str(args.snapshot)!r})).default_deployment({PROBE_MODEL!r}))\n"
    )

    def process(code: str) -> Callable[[], None]:
        def run() -> None:
            subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)

        return run

    loaded = subprocess.run(
        [sys.executable, "-c", baseline_code + "print(sorted(sys.modules))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "'catalog'" not in loaded, "the baseline process must not import the catalog"
    ours = median_seconds(process(ours_code), runs)
    base = median_seconds(process(baseline_code), runs)
    report("(c) fresh process: open + resolve one", ours, base, "ms", "target <= 0.5")
    plugin_in_helm_run(workdir, runs)


# Run inside the child: HELM's own functions are wrapped with a timer (not replaced), then
# helm-run's own main() runs with the plugin, exactly as the console script would.
_HELM_RUN_TIMED = """
import json, sys, time
import helm.benchmark.run as run

seconds = {"helm": 0.0, "plugin": 0.0}

def timed(part, function):
    def call(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            seconds[part] += time.perf_counter() - start
    return call

run.register_builtin_configs_from_helm_package = timed(
    "helm", run.register_builtin_configs_from_helm_package
)
run.register_configs_from_directory = timed("helm", run.register_configs_from_directory)
run.import_user_plugins = timed("plugin", run.import_user_plugins)
sys.argv = ["helm-run", *sys.argv[1:]]
try:
    run.main()
finally:
    print("TIMINGS " + json.dumps(seconds), file=sys.stderr)
"""


def plugin_in_helm_run(workdir: Path, runs: int) -> None:
    """(d): the plugin's load time inside helm-run, against HELM's own config loading."""
    from catalog.sync.sources import installed_helm_version

    version = installed_helm_version()
    if version is None:
        print(
            "(d) plugin inside helm-run: skipped, crfm-helm is not installed "
            "(pip install --no-deps crfm-helm==0.5.16 && pip install -r requirements-helm.txt)"
        )
        return
    db = workdir / "helm-catalog.db"
    with Catalog.open(db) as catalog:
        catalog.sync(helm=True)  # the same entries HELM loads from its own files
        models = len(catalog.model_names())
    (workdir / "prod_env").mkdir(exist_ok=True)
    command = [
        sys.executable, "-c", _HELM_RUN_TIMED,
        "--plugins", "catalog.helm_plugin",
        "--run-entries", f"mmlu:subject=anatomy,model={PROBE_MODEL}",
        "--suite", "bench", "--max-eval-instances", "1", "--dry-run", "--skip-instances",
        "-o", str(workdir / "helm-out"), "--local-path", str(workdir / "prod_env"),
    ]  # fmt: skip
    environment = {**os.environ, "CATALOG_DB": str(db)}
    environment.pop("CATALOG_HELM_PLUGIN", None)
    plugin, helm = [], []
    for _ in range(runs):
        done = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=workdir)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert "model-catalog: HELM runs on the catalog" in done.stdout, "the plugin did not load"
        timings = json.loads(done.stderr.rsplit("TIMINGS ", 1)[1])
        plugin.append(timings["plugin"])
        helm.append(timings["helm"])
    report(
        f"(d) plugin load in helm-run ({models} models, crfm-helm {version})",
        statistics.median(plugin),
        statistics.median(helm),
        "ms",
        "target <= 0.5",
    )


if __name__ == "__main__":
    main()
