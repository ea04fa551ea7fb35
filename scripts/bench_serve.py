"""Benchmark `catalog serve`: time from the command to its first page, against Datasette's own.

    python scripts/bench_serve.py [--source DIR] [--runs 7]

A catalog is synced from --source (default ../shared/helm-configs/v0.5.12) into a temporary
directory. Each round starts, one after the other on a free port: `catalog serve` (live, the
catalog's metadata, canned queries, search and charts), `catalog serve --snapshot` (a
checkpointed copy first), and the baseline `datasette serve` on the same file with none of
that. Each is timed from the start of the process to the first complete answer to `/`, then
stopped. Medians, and each as a ratio to the baseline from the same rounds. Needs the web
extra (`pip install '.[web]'`).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from catalog import Catalog

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO.parent / "shared" / "helm-configs" / "v0.5.12"
GIVE_UP_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def seconds_to_first_page(command: list[str], port: int) -> float:
    """Start `command`, poll `/` until it answers 200 with a body, stop the process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while True:
            if process.poll() is not None:
                message = process.stderr.read().decode() if process.stderr else ""
                raise SystemExit(f"error: {' '.join(command)} exited: {message.strip()}")
            if time.perf_counter() - start > GIVE_UP_SECONDS:
                raise SystemExit(f"error: no page from {' '.join(command)} in {GIVE_UP_SECONDS} s")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
                    if answer.status == 200 and answer.read():
                        return time.perf_counter() - start
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.01)
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-serve-") as scratch:
        db = Path(scratch) / "catalog.db"
        with Catalog.open(str(db)) as catalog:
            catalog.sync([str(args.source)])

        def catalog_serve(*extra: str) -> tuple[list[str], int]:
            port = free_port()
            cli = [sys.executable, "-m", "catalog.cli", "--db", str(db), "serve"]
            return [*cli, "--port", str(port), *extra], port

        def datasette_serve() -> tuple[list[str], int]:
            port = free_port()
            return [sys.executable, "-m", "datasette", "serve", str(db), "--port", str(port)], port

        kinds = {
            "catalog serve": lambda: catalog_serve(),
            "catalog serve --snapshot": lambda: catalog_serve("--snapshot"),
            "datasette serve (baseline)": datasette_serve,
        }
        times: dict[str, list[float]] = {kind: [] for kind in kinds}
        for _ in range(args.runs):  # interleaved, so that a slow moment hits every kind alike
            for kind, make in kinds.items():
                times[kind].append(seconds_to_first_page(*make()))

    medians = {kind: statistics.median(values) for kind, values in times.items()}
    baseline = medians["datasette serve (baseline)"]
    print(f"catalog synced from {args.source}; time to first page of /, median of {args.runs}")
    for kind, seconds in medians.items():
        print(f"{kind:28} {seconds:6.2f} s = {seconds / baseline:5.2f} x datasette's own start")


if __name__ == "__main__":
    main()
