"""Concurrent use: readers during syncs, two syncs at once, a cache reader during a migration.

Every worker is a separate process running the real code. The steps are coordinated through
small files (a progress counter per reader, a flag when the writer is done), never by sleeping
for a while and hoping: the writer's next step waits until every reader has completed a full
read after its last one, so each reader is known to have read between every two writes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from cache_helpers import key, response, write_shard
from conftest import HELM_CONFIGS, dump, require_shared

from catalog import Catalog

# Every worker is a process of its own: what is under test is processes sharing one database.
pytestmark = pytest.mark.slow

READERS = 8
SYNCS = 6
# A model of both snapshots whose default deployment both can answer.
COMMON_MODEL = "openai/gpt2"

# A reader: open, then one read transaction over everything it asks, plus a one-statement
# `Catalog.sql` (its own connection), in a loop until the writer is done, then once more.
READER = r"""
import hashlib, json, os, sys, traceback
from pathlib import Path
from catalog import Catalog

db, progress, stop, result, model = sys.argv[1:6]
COUNTS = "SELECT (SELECT count(*) FROM deployments) AS d, (SELECT count(*) FROM models) AS m"
seen, errors, iterations = {}, [], 0

def signature(resolutions):
    text = json.dumps([[r.model, r.model_deployment] for r in resolutions])
    return hashlib.sha256(text.encode()).hexdigest()[:16]

while True:
    last = Path(stop).exists()
    try:
        with Catalog.open(db) as catalog:
            connection = catalog.connection
            connection.execute("BEGIN")
            try:
                default = catalog.default_deployment(model)
                d, m = connection.execute(COUNTS).fetchone()
                text = signature(catalog.resolve("model=text"))
            finally:
                connection.execute("COMMIT")
            row = catalog.sql(COUNTS)[0]
        view = json.dumps([d, m, default, text])
        seen[view] = seen.get(view, 0) + 1
        one = json.dumps([row["d"], row["m"]])
        seen["sql " + one] = seen.get("sql " + one, 0) + 1
    except Exception:
        errors.append(traceback.format_exc())
    iterations += 1
    Path(progress + ".tmp").write_text(str(iterations))
    os.replace(progress + ".tmp", progress)
    if last:
        break
Path(result).write_text(json.dumps({"iterations": iterations, "seen": seen, "errors": errors}))
"""

# The writer: one process, one sync per line read from stdin, alternating the two sources.
WRITER = r"""
import sys
from catalog import Catalog

db, first, second = sys.argv[1:4]
for number, _ in enumerate(sys.stdin):
    source = first if number % 2 == 0 else second
    with Catalog.open(db) as catalog:
        report = catalog.sync([source])
    assert not report.skipped_unchanged and report.changed_anything
    print(source, flush=True)
"""


def _count(path: Path) -> int:
    try:
        return int(path.read_text())
    except (FileNotFoundError, ValueError):
        return 0


def _wait_for_progress(
    readers: Sequence[subprocess.Popen[bytes]], files: Sequence[Path], at_least: Sequence[int]
) -> list[int]:
    """Block until every reader has counted up to `at_least`; fail if one died meanwhile."""
    while True:
        counts = [_count(f) for f in files]
        if all(c >= n for c, n in zip(counts, at_least, strict=True)):
            return counts
        for process in readers:
            if process.poll() is not None:
                pytest.fail(f"a reader exited early with code {process.returncode}")
        time.sleep(0.01)


def _view(path: Path) -> tuple[str, str]:
    """What a reader of one whole snapshot sees: the transaction view and the SQL counts."""
    script = READER.replace("while True:", "for _ in range(1):")
    work = path.parent
    result = work / f"{path.stem}.json"
    stop = work / "stop-now"
    stop.touch()
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(path),
            str(work / "p"),
            str(stop),
            str(result),
            COMMON_MODEL,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    found = json.loads(result.read_text())
    assert found["errors"] == []
    (view,) = (v for v in found["seen"] if not v.startswith("sql "))
    (counts,) = (v for v in found["seen"] if v.startswith("sql "))
    return view, counts


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two catalogs synced alone from v0.5.0 and v0.5.12, and what a reader sees in each."""
    found: dict[str, Any] = {}
    for name in ("v0.5.0", "v0.5.12"):
        source = require_shared(HELM_CONFIGS / name)
        path = tmp_path_factory.mktemp(name) / "catalog.db"
        with Catalog.open(path) as catalog:
            catalog.sync([source])
        found[name] = {"source": source, "db": path, "view": _view(path)}
    assert found["v0.5.0"]["view"] != found["v0.5.12"]["view"]
    return found


def test_readers_see_one_whole_snapshot_while_a_writer_alternates(
    snapshots: dict[str, Any], tmp_path: Path
) -> None:
    old, new = snapshots["v0.5.0"], snapshots["v0.5.12"]
    db = tmp_path / "catalog.db"
    shutil.copyfile(old["db"], db)
    stop = tmp_path / "writer-done"
    progress = [tmp_path / f"reader-{n}.progress" for n in range(READERS)]
    results = [tmp_path / f"reader-{n}.json" for n in range(READERS)]
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", READER, str(db), str(p), str(stop), str(r), COMMON_MODEL],
            stderr=subprocess.PIPE,
        )
        for p, r in zip(progress, results, strict=True)
    ]
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), str(new["source"]), str(old["source"])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdin is not None and writer.stdout is not None
        counts = _wait_for_progress(readers, progress, [1] * READERS)
        for number in range(SYNCS):
            writer.stdin.write("sync\n")
            writer.stdin.flush()
            expected = (new if number % 2 == 0 else old)["source"]
            assert writer.stdout.readline().strip() == str(expected), writer.stderr.read()
            # Two more iterations each: one of them started after the commit.
            counts = _wait_for_progress(readers, progress, [c + 2 for c in counts])
        writer.stdin.close()
        assert writer.wait() == 0, writer.stderr.read()
    finally:
        stop.touch()
        for process in readers:
            process.wait()
        if writer.poll() is None:
            writer.kill()
        writer.wait()
    for process, result in zip(readers, results, strict=True):
        assert process.returncode == 0, process.stderr.read() if process.stderr else ""
        found = json.loads(result.read_text())
        assert found["errors"] == [], found["errors"][0]
        views = set(found["seen"])
        whole = {*old["view"], *new["view"]}
        assert views <= whole, views - whole
        # Every reader read between every two syncs, so it saw both catalogs, each whole.
        assert views == whole
    assert dump(db).count('INSERT INTO "syncs"') == 1 + SYNCS


# Two syncs started at once --------------------------------------------------------------------

# The real `catalog` command, started by a flag file so that both begin together.
AT_ONCE = r"""
import sys, time
from pathlib import Path
from catalog.cli import main

ready, go = Path(sys.argv[1]), Path(sys.argv[2])
ready.touch()
while not go.exists():
    time.sleep(0.001)
main(sys.argv[3:])
"""

# The same, with a short busy timeout: waiting gives up quickly instead of after 30 s.
IMPATIENT = AT_ONCE.replace(
    "from catalog.cli import main",
    "from catalog.cli import main\nimport catalog.db.connection\n"
    "catalog.db.connection.BUSY_TIMEOUT_MS = 1",
)

CONTENT_TABLES = ("models", "model_tags", "tags", "deployments", "tokenizers")


def _content(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """The catalog's content, without the record of the syncs that made it."""
    import sqlite3

    connection = sqlite3.connect(path)
    try:
        return {
            table: sorted(connection.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
            for table in CONTENT_TABLES
        }
    finally:
        connection.close()


def _start_together(
    script: str, db: Path, sources: Sequence[Path], work: Path
) -> list[subprocess.CompletedProcess[str]]:
    go = work / "go"

    def sync_args(source: Path) -> list[str]:
        return ["--db", str(db), "sync", "--force", str(source)]

    processes = []
    for number, source in enumerate(sources):
        ready = work / f"ready-{number}"
        processes.append(
            (
                ready,
                subprocess.Popen(
                    [sys.executable, "-c", script, str(ready), str(go), *sync_args(source)],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
            )
        )
    while not all(ready.exists() for ready, _ in processes):
        for _, process in processes:
            assert process.poll() is None, process.communicate()
        time.sleep(0.005)
    go.touch()
    results = []
    for _, process in processes:
        stdout, stderr = process.communicate()
        results.append(
            subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        )
    return results


@pytest.mark.parametrize("round_number", range(2))
def test_two_syncs_at_once_one_waits_and_the_catalog_is_one_of_them(
    snapshots: dict[str, Any], tmp_path: Path, round_number: int
) -> None:
    old, new = snapshots["v0.5.0"], snapshots["v0.5.12"]
    db = tmp_path / "catalog.db"
    Catalog.open(db).close()
    order = [old, new] if round_number == 0 else [new, old]
    results = _start_together(AT_ONCE, db, [s["source"] for s in order], tmp_path)
    for result in results:
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
    assert _content(db) in (_content(old["db"]), _content(new["db"]))
    assert _view(db) in (old["view"], new["view"])


def test_a_sync_that_cannot_get_the_lock_fails_cleanly_and_the_other_wins(
    snapshots: dict[str, Any], tmp_path: Path
) -> None:
    """With a busy timeout too short to wait, the loser says so and changes nothing."""
    old, new = snapshots["v0.5.0"], snapshots["v0.5.12"]
    db = tmp_path / "catalog.db"
    Catalog.open(db).close()
    for _attempt in range(20):
        results = _start_together(IMPATIENT, db, [old["source"], new["source"]], tmp_path)
        for result in results:
            assert "Traceback" not in result.stderr
            assert result.returncode in (0, 1), result.stderr
        winners = [r for r, s in zip(results, (old, new), strict=True) if r.returncode == 0]
        losers = [r for r in results if r.returncode == 1]
        for loser in losers:
            assert loser.stderr.startswith("error: "), loser.stderr
            # Refused at the write lock (the usual case) or, rarer, while opening the catalog.
            assert "locked" in loser.stderr and "another process" in loser.stderr
        assert winners, [r.stderr for r in results]
        assert _content(db) in (_content(old["db"]), _content(new["db"]))
        if len(winners) == 1:
            # The loser left nothing behind: the catalog is the winner's.
            (winner_source,) = (
                s for r, s in zip(results, (old, new), strict=True) if r.returncode == 0
            )
            assert _content(db) == _content(winner_source["db"])
            return
        (tmp_path / "go").unlink()
        for number in range(2):
            (tmp_path / f"ready-{number}").unlink()
    pytest.fail("in 20 attempts the two syncs never overlapped")


# A cache reader during a migration in place ---------------------------------------------------

# The migration, as `catalog cache migrate --in-place --prune`, pausing after every write, and
# after every opening of a shard (the moment a new shard first exists), until the reader has
# completed two more passes: so one whole pass read each state the migration went through.
MIGRATOR = r"""
import os, sys, threading, time
from pathlib import Path
import catalog.cache.migrate as cache_migration
import catalog.cache.sqlite_store as cache_store
from catalog.cli import main

reader_pid, progress = int(sys.argv[1]), Path(sys.argv[2])
cache_store.CHUNK_ROWS = 7
cache_store.FETCH_ROWS = 3
cache_migration.FLUSH_ROWS = 5
steps = 0
pausing_lock = threading.Lock()

def passes():
    try:
        return int(progress.read_text())
    except (FileNotFoundError, ValueError):
        return 0

def pause():
    # One pause at a time (the two writer threads would otherwise share the reader's passes),
    # so each step is followed by two whole passes of its own.
    global steps
    with pausing_lock:
        steps += 1
        wanted = passes() + 2
        while passes() < wanted:
            os.kill(reader_pid, 0)  # raises if the reader died: no endless wait
            time.sleep(0.002)

def pausing(owner, name):
    original = getattr(owner, name)
    def wrapper(*args, **kwargs):
        try:
            return original(*args, **kwargs)
        finally:
            pause()
    setattr(owner, name, wrapper)

Store = cache_store.SqliteDirectoryStore
for name in ("_open", "copy_entries", "prune_entries", "retire"):
    pausing(Store, name)
for staged in (cache_store._StagedCopy, cache_store._StagedRelocation):
    pausing(staged, "publish")
try:
    main(sys.argv[3:])
finally:
    print(f"steps {steps}", file=sys.stderr)
"""

# The reader: every entry must be found, with its value, in its old shard or (read after it)
# in its new one, with plain sqlite3 and with sqlitedict as HELM reads. A shard file that is
# not there (renamed away) holds no entry; anything else that goes wrong is a failure.
CACHE_READER = r"""
import json, os, pickle, sqlite3, sys, traceback
from pathlib import Path
from sqlitedict import SqliteDict

cache, expected_file, progress, stop, result = sys.argv[1:6]
expected = json.loads(Path(expected_file).read_text())
directory = Path(cache)
links = Path(result).parent / "reader-links"
links.mkdir()
passes, errors = 0, []

def with_sqlite3(shard):
    path = directory / f"{shard}.sqlite"
    try:
        connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=60)
    except sqlite3.OperationalError:
        if path.exists():
            raise
        return {}
    try:
        rows = connection.execute('SELECT key, value FROM "unnamed"').fetchall()
    finally:
        connection.close()
    return {k: pickle.loads(v) for k, v in rows}

def with_sqlitedict(shard):
    # sqlitedict opens a file by name twice (to check it, then on its own thread, allowed to
    # create it): a shard renamed to .pre-migration in between would be created again, empty,
    # by the reader itself. So the reader reads through its own hard link to the shard, made
    # outside the cache: the file that was there, whatever happens to its name.
    link = links / f"{shard}-{passes}.sqlite"
    try:
        os.link(directory / f"{shard}.sqlite", link)
    except FileNotFoundError:
        return {}
    try:
        db = SqliteDict(str(link), tablename="unnamed", flag="r", timeout=60)
        try:
            return dict(db.items())
        finally:
            db.close()
    finally:
        link.unlink()

while True:
    last = Path(stop).exists()
    for read in (with_sqlite3, with_sqlitedict):
        try:
            # Old shards first: an entry leaves its old shard only once it is in its new one.
            olds = {s: read(s) for s in sorted({o for o, _, _ in expected.values()})}
            news = {s: read(s) for s in sorted({n for _, n, _ in expected.values()})}
            for entry_key, (old, new, value) in expected.items():
                if olds[old].get(entry_key) != value and news[new].get(entry_key) != value:
                    errors.append(f"{read.__name__}: {entry_key} found nowhere")
        except Exception:
            errors.append(traceback.format_exc())
    passes += 1
    Path(progress + ".tmp").write_text(str(passes))
    os.replace(progress + ".tmp", progress)
    if last:
        break
Path(result).write_text(json.dumps({"passes": passes, "errors": errors[:5]}))
"""


def test_a_cache_reader_never_fails_during_a_migration_in_place(
    snapshots: dict[str, Any], tmp_path: Path
) -> None:
    db = tmp_path / "catalog.db"
    shutil.copyfile(snapshots["v0.5.12"]["db"], db)
    cache = tmp_path / "cache"
    # meta splits over several hosts and keeps a tokenizer entry (so it is pruned, not
    # renamed); aisingapore moves whole into a new shard (its file renamed, after its backup
    # is copied); together already exists (inserts); openai's entries stay.
    meta_models = ["meta/llama-7b", "meta/opt-175b", "meta/llama-3.1-70b-instruct"]
    shards: dict[str, dict[str, Any]] = {
        "meta": {
            key(model=m, prompt=n): response(f"{m} {n}") for m in meta_models for n in range(9)
        },
        "aisingapore": {
            key(model="aisingapore/sea-lion-7b-instruct", prompt=n): response(str(n))
            for n in range(12)
        },
        "together": {key(model="together/bloom", prompt="own"): response("own")},
        "openai": {key(engine="davinci", prompt=n): response(str(n)) for n in range(4)},
    }
    shards["meta"][key(tokenizer="meta-llama/Llama-2-7b-hf", text="t")] = {"tokens": [1]}
    for shard, entries in shards.items():
        write_shard(cache, shard, entries)
    with Catalog.open(db) as catalog:
        plan = catalog.plan_cache_migration(cache)
    assert {s.shard for s in plan.shards if len(s.moves) > 1} == {"meta"}
    expected = _where_entries_go(db, shards)
    assert len({new for _, new, _ in expected.values()}) >= 4
    expected_file = tmp_path / "expected.json"
    expected_file.write_text(json.dumps(expected))

    progress, stop, result = tmp_path / "passes", tmp_path / "stop", tmp_path / "result.json"
    migrate_args = ["--db", str(db), "cache", "migrate", str(cache), "--in-place", "--prune", "-q"]
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CACHE_READER,
            *map(str, (cache, expected_file, progress, stop, result)),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        migration = subprocess.run(
            [sys.executable, "-c", MIGRATOR, str(reader.pid), str(progress), *migrate_args],
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        stop.touch()
        reader.wait()
    assert migration.returncode == 0, migration.stderr
    steps = int(migration.stderr.split("steps ")[-1])
    assert steps >= 8  # copies, merges, batches, prunes and a rename, each read after
    assert reader.returncode == 0, reader.stderr.read() if reader.stderr else ""
    found = json.loads(result.read_text())
    assert found["errors"] == [], found["errors"][0]
    assert found["passes"] >= 2 * steps
    names = sorted(p.name for p in cache.iterdir())
    assert "aisingapore.sqlite.pre-migration" in names and "meta.sqlite" in names


def _where_entries_go(db: Path, shards: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """key -> [old shard, new shard (the old one if it stays), value], by the catalog's routing."""
    from catalog.cache.routing import catalog_router

    found: dict[str, Any] = {}
    with Catalog.open(db) as catalog:
        router, _ = catalog_router(catalog.connection, catalog.engine)
        for shard, entries in shards.items():
            for entry_key, value in entries.items():
                outcome = router.route(shard, entry_key)
                new = outcome.host if outcome.kind == "move" and outcome.host else shard
                found[entry_key] = [shard, new, value]
    return found
