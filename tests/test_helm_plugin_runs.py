"""Real `helm-run --dry-run` processes on a catalog: the plugin and the opt-in entry point as a
user runs them, and `catalog resolve --file` giving the (model, deployment) pairs helm-run
builds with the same --models-to-run, --groups-to-run and --priority.

Each helm-run takes about 4 s (HELM imports every run-spec module), so these are few and slow.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_cli
from helm_helpers import helm_run, require_helm, run_spec_pairs
from helm_yaml import deployment, write_sources

pytestmark = pytest.mark.slow

MODELS_TO_RUN = ("openai/gpt2", "meta/llama-2-7b")
CONF = """entries: [
  {description: "mmlu:subject=anatomy,model=openai/gpt2", priority: 1}
  {description: "mmlu:subject=anatomy,model=meta/llama-2-7b", priority: 1}
  {description: "mmlu:subject=anatomy,model=text", priority: 2}
  {description: "boolq:model=text", priority: 3}
  {description: "gsm:model=text_code,stop=none,stop=none", priority: 1}
  {description: "arabic_content_generation", priority: 1}
]
"""
OPTIONS = (
    "--models-to-run", *MODELS_TO_RUN, "--groups-to-run", "mmlu", "gsm", "--priority", "2",
)  # fmt: skip


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """HELM's own files plus a private layer synced with --helm, and two choices plain HELM
    cannot make: a deployment only the private layer defines (myhost/gpt2, HELM's rule picks
    it as the last one), and a pin to a deprecated deployment (oldhost/llama-2-7b, which no
    order makes HELM's rule pick: the plugin must answer it itself)."""
    require_helm()
    root = tmp_path_factory.mktemp("helm-run")
    llama = "meta-llama/Llama-2-7b-hf"  # tokenizers of HELM's own files
    private = write_sources(
        root / "private",
        [],
        [
            deployment("myhost/gpt2", "openai/gpt2", tokenizer="huggingface/gpt2"),
            deployment("myhost/llama-2-7b", "meta/llama-2-7b", tokenizer=llama),
            deployment("oldhost/llama-2-7b", "meta/llama-2-7b", deprecated=True, tokenizer=llama),
        ],
    )
    db = root / "catalog.db"
    synced = run_cli("sync", "--helm", private, db=db)
    assert synced.returncode == 0, synced.stderr
    assert run_cli("pin", "meta/llama-2-7b", "oldhost/llama-2-7b", db=db).returncode == 0
    (root / "entries.conf").write_text(CONF)
    yield root


def test_helm_run_with_the_plugin_runs_the_catalogs_choices_as_resolve_says(work: Path) -> None:
    db = work / "catalog.db"
    run = helm_run(
        "--plugins", "catalog.helm_plugin", "--conf-paths", work / "entries.conf", *OPTIONS,
        work=work, env={"CATALOG_DB": str(db)},
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    assert "Done." in run.stdout
    [loaded] = [line for line in run.stdout.splitlines() if "model-catalog:" in line]
    assert f"catalog {db} (sync 1, policy last: from crfm-helm 0.5.16 synced with --helm" in loaded
    assert "1 pin)" in loaded
    pairs = run_spec_pairs(run.stdout)
    # The pin, to a deprecated deployment, and the private layer's deployment.
    assert ("meta/llama-2-7b", "oldhost/llama-2-7b") in pairs
    assert ("openai/gpt2", "myhost/gpt2") in pairs
    assert all(model in MODELS_TO_RUN for model, _ in pairs)
    # mmlu x2, model=text x2 (--models-to-run), gsm x2; boolq (priority 3) and
    # arabic_content_generation (its group is not run) are left out.
    assert len(pairs) == 6

    resolved = run_cli("resolve", "--file", work / "entries.conf", *OPTIONS, "--json", db=db)
    assert resolved.returncode == 0, resolved.stderr
    report = json.loads(resolved.stdout)
    ours = [
        (run_["model"], run_["model_deployment"])
        for entry in report["entries"]
        for run_ in entry["resolutions"]
    ]
    assert Counter(ours) == Counter(pairs)


def test_the_entry_point_does_nothing_unless_the_user_opts_in(work: Path) -> None:
    # No opt-in: an installed model-catalog changes nothing, and does not even open the
    # catalog (CATALOG_DB names none).
    run = helm_run(
        "--run-entries", "mmlu:subject=anatomy,model=meta/llama-2-7b",
        work=work, env={"CATALOG_DB": str(work / "missing.db")},
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    assert "model-catalog" not in run.stdout + run.stderr
    assert run_spec_pairs(run.stdout) == [("meta/llama-2-7b", "together/llama-2-7b")]


def test_an_opted_in_entry_point_with_a_missing_catalog_stops_helm_run_with_its_message(
    work: Path,
) -> None:
    missing = work / "missing.db"
    run = helm_run(
        "--run-entries", "mmlu:subject=anatomy,model=meta/llama-2-7b",
        work=work, env={"CATALOG_DB": str(missing), "CATALOG_HELM_PLUGIN": "1"},
    )  # fmt: skip
    assert run.returncode == 1
    assert run.stderr.startswith(f"error: no catalog at {missing}\nhint: "), run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert "RunSpec(" not in run.stdout
    assert not missing.exists()
