"""Benchmark the catalog on PostgreSQL against the same work on SQLite, in the same run.

    python scripts/bench_backends.py [--postgres URL] [--runs 7]

Without --postgres a throw-away local server is started (as the tests start one). Measured on
each backend, interleaved rounds, medians: a full sync of ../shared/helm-configs/v0.5.12 into
an empty catalog, a no-op re-sync, `explain` per call, `resolve 'model=text'` (warm: the
answers come from the in-process snapshot on both), and a fresh process that opens the catalog
and resolves one model. Targets: full sync on PostgreSQL at most 3x SQLite's; warm resolution
per call within 2x; a fresh process at most 0.5x HELM's own config loading (crfm-helm's
`register_configs_from_directory` on the same files, in a fresh process, measured here too when
crfm-helm is installed; else, and for information, PyYAML's C loader parsing them, a stricter
baseline). Exit status 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from timing import median_seconds

from catalog import Catalog

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO.parent / "shared" / "helm-configs" / "v0.5.12"
PROBE = "meta/llama-3.1-8b-instruct"


class Backends:
    """A fresh empty catalog on demand, on SQLite (a file) and on PostgreSQL (a database)."""

    def __init__(self, scratch: Path, server_url: str) -> None:
        self.scratch = scratch
        self.server_url = server_url
        self.count = 0

    def fresh(self, backend: str) -> str:
        self.count += 1
        if backend == "sqlite":
            return str(self.scratch / f"c{self.count}.db")
        name = f"bench_{self.count}"
        with psycopg.connect(self.server_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name}")
            admin.execute(f"CREATE DATABASE {name}")
        return self.server_url.rsplit("/", 1)[0] + f"/{name}"


def measure(backends: Backends, backend: str, runs: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    fulls, noops = [], []
    db = ""
    for _ in range(runs):
        db = backends.fresh(backend)
        with Catalog.open(db) as catalog:  # the schema is made before the clock starts
            start = time.perf_counter()
            catalog.sync([SOURCE])
            fulls.append(time.perf_counter() - start)
            start = time.perf_counter()
            assert catalog.sync([SOURCE]).skipped_unchanged
            noops.append(time.perf_counter() - start)
    figures["full sync"] = statistics.median(fulls)
    figures["no-op re-sync"] = statistics.median(noops)
    with Catalog.open(db) as catalog:
        models = catalog.model_names()
        catalog.resolve("model=text")
        figures["explain, per call"] = (
            median_seconds(lambda: [catalog.explain(m) for m in models[:200]], runs) / 200
        )
        figures["default deployment, per call"] = median_seconds(
            lambda: [catalog.default_deployment(m) for m in models], runs
        ) / len(models)
        figures["resolve 'model=text', warm"] = median_seconds(
            lambda: catalog.resolve("model=text"), runs
        )
    code = f"import catalog\nprint(catalog.Catalog.open({db!r}).default_deployment({PROBE!r}))"
    figures["fresh process: open + resolve one"] = median_seconds(
        lambda: subprocess.run([sys.executable, "-c", code], check=True, capture_output=True), runs
    )
    return figures


def helm_config_loading(runs: int) -> tuple[str, float] | None:
    """HELM's own config loading, the figure the fresh-process target is set against: crfm-helm's
    `register_configs_from_directory` on the same three files, timed inside a fresh process
    (without the interpreter's start and HELM's imports). None without crfm-helm."""
    code = (
        "import time\n"
        "from helm.benchmark.config_registry import register_configs_from_directory\n"
        "start = time.perf_counter()\n"
        f"register_configs_from_directory({str(SOURCE)!r})\n"
        "print(time.perf_counter() - start)\n"
    )
    times = []
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if done.returncode != 0:
            return None
        times.append(float(done.stdout.split()[-1]))
    version = subprocess.run(
        [sys.executable, "-c", "import importlib.metadata as m; print(m.version('crfm-helm'))"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return (
        f"HELM's own config loading (crfm-helm {version}, in a fresh process)",
        statistics.median(times),
    )


def yaml_parse(runs: int) -> float:
    """The three files parsed by PyYAML's C loader in a fresh process, start included: a stricter
    baseline than HELM's loading, which also builds its objects with the pure-Python loader."""
    code = (
        "import yaml, sys\n"
        "for name in ('model_metadata.yaml', 'model_deployments.yaml', 'tokenizer_configs.yaml'):\n"
        f"    yaml.load(open({str(SOURCE)!r} + '/' + name, 'rb'), Loader=yaml.CSafeLoader)\n"
    )
    return median_seconds(lambda: subprocess.run([sys.executable, "-c", code], check=True), runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", help="postgresql://user@host:port/dbname of a server")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    server = None
    url = args.postgres
    if url is None:
        sys.path.insert(0, str(REPO / "tests"))
        from pg_server import PostgresServer

        server = PostgresServer()
        server.start()
        url = server.dsn("postgres")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-backends-") as scratch:
            backends = Backends(Path(scratch), url)
            measure(backends, "sqlite", 1), measure(backends, "postgresql", 1)  # warm-up
            sqlite = measure(backends, "sqlite", args.runs)
            postgres = measure(backends, "postgresql", args.runs)
            helm = helm_config_loading(args.runs)
            parse = yaml_parse(args.runs)
    finally:
        if server is not None:
            server.stop()
    targets = {
        "full sync": 3.0,
        "default deployment, per call": 2.0,
        "resolve 'model=text', warm": 2.0,
    }
    print(f"source {SOURCE}, median of {args.runs} rounds; PostgreSQL at {url}\n")
    print(f"{'':<36} {'SQLite':>12} {'PostgreSQL':>12} {'ratio':>8}")
    missed = False
    for label, seconds in sqlite.items():
        ratio = postgres[label] / seconds
        unit, scale = ("us", 1e6) if seconds < 0.001 else ("ms", 1e3)
        line = (
            f"{label:<36} {seconds * scale:9.2f} {unit} {postgres[label] * scale:9.2f} {unit} "
            f"{ratio:7.2f}x"
        )
        if label in targets:
            verdict = "ok" if ratio <= targets[label] else "MISSED"
            missed = missed or ratio > targets[label]
            line += f"  (target <= {targets[label]}x: {verdict})"
        print(line)
    baselines = [("the three files parsed by PyYAML's C loader, fresh process", parse)]
    if helm is None:
        print("\n(crfm-helm is not installed: the fresh process is compared with the parse alone)")
    else:
        baselines.insert(0, helm)
    for index, (baseline, seconds) in enumerate(baselines):
        print(f"\n{baseline}: {seconds * 1000:.1f} ms" + (" (information)" if index else ""))
        for name, figures in (("SQLite", sqlite), ("PostgreSQL", postgres)):
            ratio = figures["fresh process: open + resolve one"] / seconds
            if index:
                print(f"fresh process on {name:<11} = {ratio:5.2f}x")
                continue
            verdict = "ok" if ratio <= 0.5 else "MISSED"
            missed = missed or ratio > 0.5
            print(f"fresh process on {name:<11} = {ratio:5.2f}x (target <= 0.5x: {verdict})")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
