"""The bad-input corpus: every malformed input is refused, or warned about, where it is wrong.

Each case is one line of a table: the input, the exit code, the stable finding code and the
line the message must name. Every case also proves that the catalog is byte for byte what it
was before (a `.dump` of the database); a warning-only case must still fail under --strict.
What each case yields is decided here:

- not YAML at all (syntax, a tab in the indentation, non-UTF-8 bytes, two documents, a
  collection as a key, a Python tag) -> an error with line (and column where YAML gives one);
- a byte-order mark, an empty or comment-only file, an unknown top-level or entry key, a
  duplicate key, a name defined twice, a placeholder -> a warning (exit 0, exit 1 with --strict);
- a wrong type, a null where a mapping or name belongs, a bad name (no '/', empty, spaces,
  quotes, non-ASCII, too long), a bad length or number -> an error naming the key's line;
- a missing directory, a file where the directory belongs, a directory or FIFO where a file
  belongs, a symlink loop or a dangling symlink -> an error naming the path;
- a malformed run entry -> an error naming the column; a bad entry of a run-entries file -> a
  line of its own (file:line), the other entries still resolved, exit 1;
- a bad aliases file -> an error naming file:line; a bad shard in a cache directory -> listed
  by `cache plan`, refused by `cache migrate` (exit 1), and no file of the cache changes.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES, dump, run_cli, run_cli_process
from helm_yaml import empty_database

from catalog import Catalog

BASE = FIXTURES / "sync" / "base"
M, D, T = "model_metadata.yaml", "model_deployments.yaml", "tokenizer_configs.yaml"

MODEL = (
    "models:\n"
    "  - name: acme/new\n"  # line 2
    "    display_name: New\n"  # 3
    "    description: A new model.\n"  # 4
    "    creator_organization_name: Acme\n"  # 5
    "    access: open\n"  # 6
)
DEPLOYMENT = (
    "model_deployments:\n"
    "  - name: acme/new-dep\n"  # line 2
    "    model_name: acme/alpha-1\n"  # 3
    "    tokenizer_name: acme/alpha\n"  # 4
    "    max_sequence_length: 4096\n"  # 5
    "    client_spec:\n"  # 6
    "      class_name: helm.clients.simple_client.SimpleClient\n"  # 7
)
TOKENIZER = (
    "tokenizer_configs:\n"
    "  - name: acme/new-tok\n"  # line 2
    "    tokenizer_spec:\n"  # 3
    "      class_name: helm.tokenizers.simple_tokenizer.SimpleTokenizer\n"  # 4
    '    end_of_text_token: "</s>"\n'  # 5
)


Source = tuple[str, str | bytes]  # (file name, content)
CLIENT = "class_name: helm.clients.simple_client.SimpleClient"
SPEC = "tokenizer_spec:\n      class_name: helm.tokenizers.simple_tokenizer.SimpleTokenizer"


def _edit(text: str, old: str, new: str) -> str:
    assert old in text, f"{old!r} is not in the template"
    return text.replace(old, new, 1)


def m(old: str = "", new: str = "", *, add: str = "") -> tuple[str, str]:
    """MODEL with `old` replaced by `new`, or with `add` appended."""
    return M, (_edit(MODEL, old, new) if old else MODEL) + add


def d(old: str = "", new: str = "", *, add: str = "") -> tuple[str, str]:
    return D, (_edit(DEPLOYMENT, old, new) if old else DEPLOYMENT) + add


def t(old: str = "", new: str = "", *, add: str = "") -> tuple[str, str]:
    return T, (_edit(TOKENIZER, old, new) if old else TOKENIZER) + add


@dataclass(frozen=True)
class Case:
    """One bad source file, synced as a layer over the base catalog."""

    id: str
    source: Source
    exit_code: int  # without --strict; with it every case exits 1
    code: str
    line: int | None
    says: str = ""  # a phrase the message must hold

    @property
    def file(self) -> str:
        return self.source[0]


SYNC_CASES = [
    # Not YAML, or not a YAML the catalog reads.
    Case("unclosed-flow-list", (M, "models: [\n  {name: acme/x,\n"), 1, "yaml-syntax", 3),
    Case("tab-in-indentation", m("    access", "\taccess"), 1, "yaml-syntax", 6, "with a tab"),
    Case("inconsistent-indentation", m("    access", "   access"), 1, "yaml-syntax", 6),
    Case("unclosed-quote", m("New", '"New'), 1, "yaml-syntax", 7, "from line 3"),
    Case("undefined-alias", m("New", "*nothing"), 1, "yaml-syntax", 3),
    Case("python-tag", m("New", "!!python/object/apply:os.system [id]"), 1, "yaml-tag", 3),
    Case("two-documents", m(add="---\nmodels: []\n"), 1, "multiple-documents", 7),
    Case("collection-as-key", m(add="    ? [a, b]\n    : c\n"), 1, "yaml-key", 7),
    Case("control-character", m("New", "New\x07"), 1, "yaml-syntax", 3),
    Case("not-utf8", (M, MODEL.encode().replace(b"New", b"Caf\xe9")), 1, "not-utf8", 3, "0xe9"),
    Case("utf16", (M, MODEL.encode("utf-16")), 1, "not-utf8", 1, "UTF-16"),
    Case("impossible-date", m(add="    release_date: 2024-02-30\n"), 1, "yaml-value", 7),
    # Accepted with a warning.
    Case("byte-order-mark", (M, b"\xef\xbb\xbf" + MODEL.encode()), 0, "byte-order-mark", 1),
    Case("empty-file", (M, ""), 0, "empty-file", 1),
    Case("comment-only", (M, "# nothing here yet\n"), 0, "empty-file", 1),
    Case("top-level-null", (M, "models:\n"), 0, "empty-file", 1),
    Case("unknown-top-level-key", m(add="deployments: []\n"), 0, "unknown-top-level-key", 7),
    Case("unknown-entry-key", m(add="    release: 2024-01-01\n"), 0, "unknown-key", 7),
    Case("duplicate-key", m(add="    access: closed\n"), 0, "duplicate-key", 7),
    Case("glued-comment", d(add="    deprecated: true# old\n"), 0, "suspicious-boolean", 8),
    Case("stray-args", d(add="    args: {x: 1}\n"), 0, "unknown-key", 8),
    Case("unknown-model", d("acme/alpha-1", "acme/ghost"), 0, "placeholder-model", 2),
    Case("duplicate-name", d(add=DEPLOYMENT.split("\n", 1)[1]), 0, "duplicate-name", 8),
    # The shape is wrong: null, a list or a scalar where a mapping belongs.
    Case("top-level-list", (M, "- name: acme/x\n"), 1, "wrong-type", 1),
    Case("top-level-scalar", (M, "models\n"), 1, "wrong-type", 1),
    Case("models-is-a-mapping", (M, "models:\n  name: acme/x\n"), 1, "wrong-type", 1),
    Case("model-entry-null", (M, "models:\n  - ~\n"), 1, "wrong-type", 2),
    Case("model-entry-list", (M, "models:\n  - [acme/x, New]\n"), 1, "wrong-type", 2),
    Case("deployment-entry-string", (D, "model_deployments:\n  - acme/x\n"), 1, "wrong-type", 2),
    Case("tokenizer-entry-null", (T, "tokenizer_configs:\n  -\n"), 1, "wrong-type", 2),
    Case("tokenizer-configs-string", (T, "tokenizer_configs: none\n"), 1, "wrong-type", 1),
    # Names.
    Case("name-missing", m("- name: acme/new\n   ", "-"), 1, "missing-field", 2),
    Case("name-null", m("name: acme/new", "name:"), 1, "missing-field", 2),
    Case("name-empty", m("name: acme/new", 'name: ""'), 1, "bad-name", 2),
    Case("name-without-slash", m("acme/new", "acme-new"), 1, "bad-name", 2),
    Case("name-with-two-slashes", m("acme/new", "acme/new/v2"), 1, "bad-name", 2),
    Case("name-with-space", m("acme/new", "acme/new model"), 1, "bad-name", 2),
    Case("name-with-quote", m("acme/new", "acme/o'new"), 1, "bad-name", 2),
    Case("name-non-ascii", m("acme/new", "acme/modèle"), 1, "bad-name", 2),
    Case("name-is-a-list", m("acme/new", "[acme/new]"), 1, "wrong-type", 2),
    Case("name-is-a-number", d("acme/new-dep", "42"), 1, "wrong-type", 2),
    Case("name-too-long", t("acme/new-tok", "acme/" + "x" * 300), 1, "bad-name", 2, "longer than"),
    Case("tokenizer-name-with-quote", t("acme/new-tok", 'acme/new"tok'), 1, "bad-name", 2),
    Case("model-name-with-space", d("acme/alpha-1", "acme/alpha 1"), 1, "bad-name", 3),
    Case("tokenizer-name-non-ascii", d("acme/alpha\n", "acme/alphä\n"), 1, "bad-name", 4),
    # Fields of models.
    Case("display-name-mapping", m("New", "{en: New}"), 1, "wrong-type", 3),
    Case("access-unknown", m("access: open", "access: public"), 1, "bad-access", 6),
    Case("release-date-words", m(add="    release_date: last spring\n"), 1, "wrong-type", 7),
    Case("num-parameters-negative", m(add="    num_parameters: -7\n"), 1, "bad-number", 7),
    Case("num-parameters-absurd", m(add=f"    num_parameters: {10**30}\n"), 1, "bad-number", 7),
    Case("tags-string", m(add="    tags: TEXT_MODEL_TAG\n"), 1, "wrong-type", 7),
    Case("tag-null", m(add="    tags: [TEXT_MODEL_TAG, ~]\n"), 1, "wrong-type", 7),
    # Fields of deployments.
    Case("length-negative", d("4096", "-1"), 1, "bad-length", 5),
    Case("length-zero", d("4096", "0"), 1, "bad-length", 5),
    Case("length-absurd", d("4096", "99999999999999"), 1, "bad-length", 5),
    Case("length-string", d("4096", "4k"), 1, "wrong-type", 5),
    Case("length-float", d("4096", "4096.5"), 1, "wrong-type", 5),
    Case("length-boolean", d("4096", "true"), 1, "wrong-type", 5),
    Case("client-spec-missing", d(f"    client_spec:\n      {CLIENT}\n"), 1, "missing-field", 2),
    Case("client-spec-null", d(f"      {CLIENT}\n"), 1, "missing-field", 2),
    Case("client-spec-string", d(f"\n      {CLIENT}", " X"), 1, "wrong-type", 6),
    Case("client-class-missing", d(CLIENT, "args: {}"), 1, "missing-field", 7),
    Case("client-args-list", d(add="      args: [a, b]\n"), 1, "wrong-type", 8),
    Case("client-args-nan", d(add="      args: {temperature: .nan}\n"), 1, "bad-value", 8),
    Case("deprecated-number", d(add="    deprecated: 3\n"), 1, "wrong-type", 8),
    # Fields of tokenizers.
    Case("tokenizer-spec-null", t(SPEC, "tokenizer_spec: ~"), 1, "missing-field", 2),
    Case("tokenizer-spec-list", t("class_name:", "- class_name:"), 1, "wrong-type", 3),
    Case("end-of-text-token-number", t('"</s>"', "2"), 1, "wrong-type", 5),
]  # fmt: skip


def _xfail_params(cases: list[Any]) -> list[object]:
    """Cases that show a known bug in a module outside the sync: strict, so a fix is noticed."""
    return [
        pytest.param(
            case,
            id=case.id,
            marks=[pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else [],
        )
        for case in cases
    ]


@pytest.fixture(scope="module")
def base_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A catalog synced from the base fixture, copied by each case."""
    path = empty_database(tmp_path_factory.mktemp("corpus") / "base.db")
    with Catalog.open(path) as catalog:
        catalog.sync([BASE])
    return path


@pytest.fixture
def db(base_db: Path, tmp_path: Path) -> Path:
    return Path(shutil.copy(base_db, tmp_path / "catalog.db"))


def assert_finding(stderr: str, path: Path, line: int | None, code: str, severity: str) -> None:
    """One line of stderr is `path[:line[:column]]: severity: ... [code]`."""
    where = f"{path}:{line}:" if line is not None else f"{path}: "
    findings = [
        text
        for text in stderr.splitlines()
        if text.startswith(where) and f" {severity}: " in text and text.endswith(f"[{code}]")
    ]
    assert findings, f"no {severity} [{code}] at {where} in:\n{stderr}"
    assert "Traceback" not in stderr


def write_layer(directory: Path, case: Case) -> Path:
    directory.mkdir()
    file_name, content = case.source
    path = directory / file_name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


@pytest.mark.parametrize("case", SYNC_CASES, ids=lambda c: c.id)
def test_a_bad_source_file_is_reported_where_it_is_wrong(
    case: Case, db: Path, tmp_path: Path
) -> None:
    bad_file = write_layer(tmp_path / "layer", case)
    before = dump(db)

    strict = run_cli("sync", "--strict", BASE, bad_file.parent, db=db)
    assert strict.returncode == 1, strict.stderr
    assert_finding(strict.stderr, bad_file, case.line, case.code, "error")
    assert case.says in strict.stderr
    assert "nothing was written" in strict.stderr
    assert dump(db) == before

    lenient = run_cli("sync", BASE, bad_file.parent, db=db)
    assert lenient.returncode == case.exit_code, lenient.stderr
    severity = "error" if case.exit_code else "warning"
    assert_finding(lenient.stderr, bad_file, case.line, case.code, severity)
    if case.exit_code:
        assert dump(db) == before
    else:
        assert " error: " not in lenient.stderr


def test_the_corpus_covers_every_file_kind_and_is_large_enough() -> None:
    kinds = {case.file for case in SYNC_CASES}
    assert kinds == {M, D, T}
    ids = [case.id for case in SYNC_CASES]
    assert len(ids) == len(set(ids))
    tables = (SOURCE_CASES, RUN_ENTRY_CASES, CONF_CASES, CACHE_CASES, ALIAS_CASES)
    assert len(ids) + sum(len(table) for table in tables) >= 40


# Source directories --------------------------------------------------------------------------


def _missing(tmp: Path) -> tuple[Path, Path]:
    return tmp / "nowhere", tmp / "nowhere"


def _file_as_dir(tmp: Path) -> tuple[Path, Path]:
    path = tmp / "model_metadata.yaml"
    path.write_text(MODEL)
    return path, path


def _empty_dir(tmp: Path) -> tuple[Path, Path]:
    (tmp / "empty").mkdir()
    return tmp / "empty", tmp / "empty"


def _in_layer(make: Callable[[Path], None]) -> Callable[[Path], tuple[Path, Path]]:
    def setup(tmp: Path) -> tuple[Path, Path]:
        layer = tmp / "layer"
        layer.mkdir()
        (layer / D).write_text(DEPLOYMENT)
        make(layer / M)
        return layer, layer / M

    return setup


def _link_to(target: str) -> Callable[[Path], None]:
    """A symbolic link at the path, to `target` (relative to its directory)."""

    def link(path: Path) -> None:
        path.symlink_to(target)

    return link


def _dir_loop(tmp: Path) -> tuple[Path, Path]:
    (tmp / "loop").symlink_to(tmp / "loop")
    return tmp / "loop", tmp / "loop"


@dataclass(frozen=True)
class SourceCase:
    id: str
    setup: Callable[[Path], tuple[Path, Path]]  # -> (SOURCE_DIR argument, path to be named)
    code: str
    reason: str


LOOP, DEVICE = "symbolic link loop", "special file"
SOURCE_CASES = [
    SourceCase("missing-directory", _missing, "bad-source-dir", "no such directory"),
    SourceCase("file-given-as-directory", _file_as_dir, "bad-source-dir", "not a directory"),
    SourceCase("directory-without-catalog-files", _empty_dir, "no-catalog-files", "holds none of"),
    SourceCase("directory-symlink-loop", _dir_loop, "bad-source-dir", LOOP),
    SourceCase("directory-for-a-file", _in_layer(Path.mkdir), "not-a-file", "a directory stands"),
    SourceCase("fifo-for-a-file", _in_layer(os.mkfifo), "not-a-file", DEVICE),
    SourceCase("device-for-a-file", _in_layer(_link_to("/dev/zero")), "not-a-file", DEVICE),
    SourceCase("file-symlink-loop", _in_layer(_link_to(M)), "unreadable", LOOP),
    SourceCase("dangling-symlink", _in_layer(_link_to("gone.yaml")), "unreadable", "missing file"),
]  # fmt: skip


@pytest.mark.parametrize("case", SOURCE_CASES, ids=lambda c: c.id)
def test_an_unusable_source_path_is_named(case: SourceCase, db: Path, tmp_path: Path) -> None:
    source, named = case.setup(tmp_path)
    before = dump(db)
    result = run_cli("sync", BASE, source, db=db)
    assert result.returncode == 1, result.stderr
    assert_finding(result.stderr, named, None, case.code, "error")
    assert case.reason in result.stderr
    assert dump(db) == before


# Run entries ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunEntryCase:
    id: str
    entry: str
    message: str  # the message names the column where there is one


ALPHA = "mmlu:model=acme/alpha-1"
RUN_ENTRY_CASES = [
    RunEntryCase("empty", "", "the run entry is empty"),
    RunEntryCase("blank", "   ", "the run entry is empty"),
    RunEntryCase("no-arguments", "mmlu:", "column 6: no arguments after ':'"),
    RunEntryCase("empty-name", ":model=text", "column 1: the name before ':' is empty"),
    RunEntryCase("model-without-value", "mmlu:model=", "column 12: model= has no value"),
    RunEntryCase("no-model", "mmlu:subject=anatomy", "names no model"),
    RunEntryCase("empty-argument", "mmlu:,model=text", "column 6: an empty argument"),
    RunEntryCase("trailing-comma", f"{ALPHA},", "column 25: an empty argument"),
    RunEntryCase("argument-without-equals", f"{ALPHA},k", "column 25: 'k' is not of the form"),
    RunEntryCase("space-for-colon", "mmlu model=text", "column 1: 'mmlu model' is not a valid"),
    RunEntryCase("spaces-around-model", "mmlu:model= x/y", "column 12: model= has spaces around"),
    RunEntryCase("unknown-model", "mmlu:model=acme/alpha-9", "did you mean 'acme/alpha-1'"),
    RunEntryCase("non-ascii-model", "mmlu:model=acme/модель", "unknown model 'acme/модель'"),
    RunEntryCase("sql-in-model", "mmlu:model=x' OR '1'='1", "unknown model \"x' OR '1'='1\""),
    RunEntryCase("unknown-deployment", "mmlu:model_deployment=x/y", "unknown deployment 'x/y'"),
    RunEntryCase("other-model-deployment", f"{ALPHA},model_deployment=beta/b-large", "not 'acme"),
]  # fmt: skip


@pytest.mark.parametrize("case", RUN_ENTRY_CASES, ids=lambda c: c.id)
def test_a_bad_run_entry_is_refused_with_its_column(
    case: RunEntryCase, base_db: Path, db: Path
) -> None:
    before = dump(db)
    result = run_cli("resolve", case.entry, db=db)
    assert result.returncode == 1
    assert result.stderr.startswith("error: "), result.stderr
    assert case.message in result.stderr
    assert result.stdout == ""
    assert dump(db) == before


@dataclass(frozen=True)
class ConfCase:
    """A run-entries file for `catalog resolve --file`; `line` is where the message points."""

    id: str
    content: str | bytes
    exit_code: int
    line: int | None
    message: str
    xfail: str | None = None


_GOOD = '  {description: "mmlu:model=acme/alpha-1", priority: 1}\n'


def conf(*entries: str) -> str:
    """A run-entries file: one good entry on line 2, then `entries` from line 3."""
    return "entries: [\n" + _GOOD + "".join(f"  {e}\n" for e in entries) + "]\n"


CONF_CASES = [
    ConfCase("bad-entry-among-good", conf('{description: "mmlu:model="}'), 1, 3, "has no value"),
    ConfCase("unclosed-string", conf('{description: "m:model=x, priority: 1}'), 1, 3, "not closed"),
    ConfCase("priority-words", conf('{description: "m:model=x", priority: hi}'), 1, 3, "'hi'"),
    ConfCase("no-description", conf("{priority: 1}"), 1, 3, "the entry has no description"),
    ConfCase("unknown-model", conf('{description: "m:model=acme/alpha-9"}'), 1, 3, "unknown model"),
    ConfCase("list-never-closed", "entries: [\n" + _GOOD, 1, 1, "never closed with ']'"),
    ConfCase("no-entries-key", "runs: []\n", 1, 1, "unknown top-level key 'runs'"),
    ConfCase("empty-file", "", 1, 1, "no `entries: [...]` list found"),
    ConfCase("not-utf8", conf('{description: "é"}').encode("latin-1"), 1, 3, "UTF-8"),
    ConfCase("byte-order-mark", "\ufeff" + conf(), 0, None, "1 entries: 1 resolved"),
]  # fmt: skip


@pytest.mark.parametrize("case", _xfail_params(CONF_CASES))
def test_a_bad_run_entries_file_is_reported_by_line(
    case: ConfCase, db: Path, tmp_path: Path
) -> None:
    conf_path = tmp_path / "run_specs.conf"
    content = case.content
    conf_path.write_bytes(content.encode() if isinstance(content, str) else content)
    before = dump(db)
    result = run_cli("resolve", "--file", conf_path, db=db)
    assert result.returncode == case.exit_code, result.stderr
    assert case.message in result.stderr
    if case.line is not None:
        assert f"{conf_path}:{case.line}: " in result.stderr
    assert dump(db) == before


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "missing.conf", "does not exist"),
        (lambda tmp: (tmp / "dir.conf").mkdir() or tmp / "dir.conf", "is a directory"),
    ],
    ids=["missing-file", "directory"],
)
def test_an_unusable_run_entries_path_is_a_usage_error(
    make: Callable[[Path], Path], message: str, db: Path, tmp_path: Path
) -> None:
    path = make(tmp_path)
    result = run_cli("resolve", "--file", path, db=db)
    assert result.returncode == 2
    assert message in result.stderr and str(path.name) in result.stderr


# Through the real console entry point --------------------------------------------------------

SUBPROCESS_SYNC = {"tab-in-indentation", "not-utf8", "byte-order-mark", "name-with-space",
                   "length-negative", "tokenizer-spec-null"}  # fmt: skip


@pytest.mark.slow  # the console command in a fresh process, which the corpus above runs in this one
@pytest.mark.parametrize(
    "case", [c for c in SYNC_CASES if c.id in SUBPROCESS_SYNC], ids=lambda c: c.id
)
def test_representative_cases_through_a_subprocess(case: Case, db: Path, tmp_path: Path) -> None:
    bad_file = write_layer(tmp_path / "layer", case)
    before = dump(db)
    result = run_cli_process("sync", "--strict", BASE, bad_file.parent, db=db)
    assert result.returncode == 1
    assert_finding(result.stderr, bad_file, case.line, case.code, "error")
    assert dump(db) == before
    result = run_cli_process("sync", BASE, bad_file.parent, db=db)
    assert result.returncode == case.exit_code
    assert "Traceback" not in result.stderr


@pytest.mark.slow  # the console command in a fresh process
def test_representative_path_and_run_entry_cases_through_a_subprocess(
    db: Path, tmp_path: Path
) -> None:
    before = dump(db)
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    result = run_cli_process("sync", BASE, loop, db=db)
    assert result.returncode == 1
    assert_finding(result.stderr, loop, None, "bad-source-dir", "error")

    result = run_cli_process("resolve", "mmlu:model=text,,x=1", db=db)
    assert result.returncode == 1
    assert "column 17: an empty argument" in result.stderr

    conf_path = tmp_path / "run_specs.conf"
    conf_path.write_text(conf('{description: "mmlu:", priority: 1}'))
    result = run_cli_process("resolve", "--file", conf_path, db=db)
    assert result.returncode == 1
    assert f"{conf_path}:3: " in result.stderr
    for output in (result.stdout, result.stderr):
        assert "Traceback" not in output
    assert dump(db) == before


def test_edge_values_that_helm_accepts_are_stored_as_written(db: Path, tmp_path: Path) -> None:
    """The other side of the corpus: limits are inclusive, and an empty text is still text."""
    longest = "acme/" + "x" * 195
    layer = tmp_path / "layer"
    layer.mkdir()
    (layer / M).write_text(
        m("name: acme/new", f"name: {longest}", add="    num_parameters: 1000000000000000\n")[1]
        .replace("Acme", '""')
        .replace("New", '""')
    )
    (layer / D).write_text(d("4096", str(2**31 - 1), add="    deprecated: false\n")[1])
    result = run_cli("sync", BASE, layer, db=db)
    assert result.returncode == 0, result.stderr
    with Catalog.open(db) as catalog:
        model = catalog.model(longest)
        assert (model.creator_organization_name, model.display_name) == ("", "")
        assert model.num_parameters == 10**15
        assert catalog.deployment("acme/new-dep").max_sequence_length == 2**31 - 1


# Cache directories and aliases files (catalog cache plan | migrate) --------------------------


def tree(directory: Path) -> dict[str, object]:
    """Every entry under `directory`, not following links: file bytes, link targets, dirs."""
    found: dict[str, object] = {}
    for path in sorted(directory.rglob("*")):
        name = str(path.relative_to(directory))
        if path.is_symlink():
            found[name] = ("link", os.readlink(path))
        elif path.is_dir():
            found[name] = "dir"
        else:
            found[name] = path.read_bytes()
    return found


def _good_cache(tmp: Path) -> Path:
    """A cache whose one shard (acme.sqlite) is fine, as HELM wrote it."""
    from cache_helpers import key, response, write_shard

    cache = tmp / "cache"
    write_shard(cache, "acme", {key(model="acme/alpha-1", prompt="hi"): response("hello")})
    return cache


def _add_shard(make: Callable[[Path], None]) -> Callable[[Path], tuple[Path, str]]:
    """A good cache plus one bad `beta.sqlite`; the message must name that file."""

    def setup(tmp: Path) -> tuple[Path, str]:
        cache = _good_cache(tmp)
        make(cache / "beta.sqlite")
        return cache, "cache/beta.sqlite"

    return setup


def _without_unnamed_table(path: Path) -> None:
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE other (key TEXT PRIMARY KEY, value BLOB)")
    connection.commit()
    connection.close()


def _bytes(data: bytes) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.write_bytes(data)

    return write


_SQLITE_MAGIC = b"SQLite format 3\x00"


def _missing_cache(tmp: Path) -> tuple[Path, str]:
    return tmp / "no-cache", "no-cache"


def _cache_loop(tmp: Path) -> tuple[Path, str]:
    (tmp / "cycle").symlink_to(tmp / "cycle")
    return tmp / "cycle", "cycle"


@dataclass(frozen=True)
class CacheCase:
    id: str
    setup: Callable[[Path], tuple[Path, str]]  # -> (CACHE_DIR, the path the message names)
    message: str
    xfail: str | None = None


CACHE_CASES = [
    CacheCase("shard-not-sqlite", _add_shard(_bytes(b"garbage")), "not a SQLite database"),
    CacheCase("shard-corrupt", _add_shard(_bytes(_SQLITE_MAGIC + b"\xff" * 200)), "be read"),
    CacheCase("shard-empty", _add_shard(_bytes(b"")), "is empty"),
    CacheCase("shard-without-unnamed", _add_shard(_without_unnamed_table), "no 'unnamed' table"),
    CacheCase("directory-for-a-shard", _add_shard(Path.mkdir), "is not a regular file"),
    CacheCase("shard-symlink-loop", _add_shard(_link_to("beta.sqlite")), "symbolic link"),
    CacheCase("missing-cache-directory", _missing_cache, "does not exist"),
    CacheCase("cache-directory-symlink-loop", _cache_loop, "symbolic link loop"),
]  # fmt: skip


@pytest.mark.parametrize("case", _xfail_params(CACHE_CASES))
def test_a_bad_cache_directory_is_reported_and_left_as_it_was(
    case: CacheCase, db: Path, tmp_path: Path
) -> None:
    cache, named = case.setup(tmp_path)
    files_before = tree(tmp_path)
    before = dump(db)

    planned = run_cli("cache", "plan", cache, db=db)  # plans the good shards, then exits 1
    assert planned.returncode == 1, planned.stderr
    assert f"error: {tmp_path / named}" in planned.stderr or f"error: {cache}" in planned.stderr
    assert case.message in planned.stderr

    migrated = run_cli("cache", "migrate", cache, "--out", tmp_path / "out", "-q", db=db)
    assert migrated.returncode == 1, migrated.stderr
    assert case.message in migrated.stderr
    after = tree(tmp_path)
    after = {name: value for name, value in after.items() if not name.startswith("out")}
    assert after == files_before
    assert dump(db) == before


@dataclass(frozen=True)
class AliasCase:
    """An aliases file for `catalog cache plan --aliases FILE`."""

    id: str
    content: str | bytes
    exit_code: int
    line: int | None
    message: str
    xfail: str | None = None


ALIAS_CASES = [
    AliasCase("empty", "", 0, None, ""),
    AliasCase("comment-only", "# no aliases yet\n", 0, None, ""),
    AliasCase("byte-order-mark", "\ufeffacme-1: acme/alpha-1\n", 0, None, ""),
    AliasCase("unknown-name", "x: acme/alpha-1\ny: acme/alpha-9\n", 1, 2, "did you mean"),
    AliasCase("python-tag", "x: !!python/object/apply:os.system [id]\n", 1, 1, "must be strings"),
    AliasCase("list-at-top", "- acme/alpha-1\n", 1, 1, "must map identifiers"),
    AliasCase("billion-laughs", "a: &a [x, x]\nb: &b [*a, *a]\n", 1, 1, "must be strings"),
    AliasCase("syntax", "acme-1: acme/alpha-1\nbad: [\n", 1, 3, "not valid YAML"),
    AliasCase("tab", "acme-1: acme/alpha-1\n\tb: acme/alpha-1\n", 1, 2, "not valid YAML"),
    AliasCase("two-documents", "x: acme/alpha-1\n---\ny: a/b\n", 1, 2, "document"),
    AliasCase("not-utf8", "x: acme/alpha-1\ny: é\n".encode("latin-1"), 1, 2, "not UTF-8"),
    AliasCase("value-list", "x: acme/alpha-1\ny: [acme/alpha-1]\n", 1, 2, "must be strings"),
    AliasCase("deep", "x: " + "[" * 20_000 + "]" * 20_000 + "\n", 1, 1, "nested too deep"),
]  # fmt: skip


@pytest.mark.parametrize("case", _xfail_params(ALIAS_CASES))
def test_a_bad_aliases_file_is_reported_and_changes_nothing(
    case: AliasCase, db: Path, tmp_path: Path
) -> None:
    cache = _good_cache(tmp_path)
    aliases = tmp_path / "aliases.yaml"
    content = case.content
    aliases.write_bytes(content.encode() if isinstance(content, str) else content)
    files_before = tree(tmp_path)
    before = dump(db)
    result = run_cli("cache", "plan", cache, "--aliases", aliases, db=db)
    assert result.returncode == case.exit_code, result.stderr
    assert case.message in result.stderr
    if case.exit_code:
        where = f"{aliases.name}:{case.line}" if case.line is not None else aliases.name
        assert f"error: {aliases.parent}" in result.stderr and where in result.stderr
    assert tree(tmp_path) == files_before
    assert dump(db) == before


@pytest.mark.slow  # the console command in a fresh process
def test_representative_cache_cases_through_a_subprocess(db: Path, tmp_path: Path) -> None:
    cache, _ = _add_shard(_without_unnamed_table)(tmp_path)
    files_before = tree(tmp_path)
    result = run_cli_process("cache", "migrate", cache, "--out", tmp_path / "out", "-q", db=db)
    assert result.returncode == 1
    assert f"{cache / 'beta.sqlite'}: has no 'unnamed' table" in result.stderr
    aliases = tmp_path / "aliases.yaml"
    aliases.write_text("acme-1: acme/alpha-9\n")
    result = run_cli_process("cache", "plan", cache, "--aliases", aliases, db=db)
    assert result.returncode == 1
    assert "did you mean 'acme/alpha-1'" in result.stderr
    for output in (result.stdout, result.stderr):
        assert "Traceback" not in output
    after = {n: v for n, v in tree(tmp_path).items() if not n.startswith(("out", "aliases"))}
    assert after == files_before
