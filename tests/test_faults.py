"""Faults: a full disk, read-only files, corrupt and too-new databases.

Each fault is made real, not simulated in Python: a file-size limit (RLIMIT_FSIZE) or a small
tmpfs fills up under the real command; a read-only bind mount or `chattr +i` stops even root
from writing (chmod does not, so it serves only when the tests do not run as root). Where the
tests may not mount, the tmpfs cases fall back to the file-size limit, which needs no
privilege: no case is ever skipped.
"""

from __future__ import annotations

import hashlib
import os
import random
import resource
import shutil
import signal
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cache_helpers import key, response, state, write_shard
from conftest import HELM_CONFIGS, dump, run_cli, run_cli_process
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog.db.revisions import HEAD_REVISION

# Making faults real ---------------------------------------------------------------------------


def _mount(*args: str) -> bool:
    if shutil.which("mount") is None or os.geteuid() != 0:
        return False
    result = subprocess.run(["mount", *args], capture_output=True, text=True)
    return result.returncode == 0


def _unmount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


class LimitedSpace:
    """A directory where writing stops after a few bytes, until `free()` gives space back.

    `tmpfs`: a small file system mounted there (writes fail with ENOSPC, as on a full disk);
    when mounting is not allowed, and for `file-size-limit`: the command runs under
    RLIMIT_FSIZE (writes past the limit fail with EFBIG, SIGXFSZ being ignored).
    """

    def __init__(self, directory: Path, how: str) -> None:
        self.directory = directory
        self.how = how
        self.limit: int | None = None
        directory.mkdir(parents=True, exist_ok=True)

    def fill_to(self, room: int) -> None:
        """Leave about `room` bytes for the next command (per file under a file-size limit)."""
        if self.how == "tmpfs":
            used = sum(p.stat().st_size for p in self.directory.rglob("*") if p.is_file())
            saved = self.directory.parent / f"{self.directory.name}.saved"
            shutil.copytree(self.directory, saved)
            size = (used + room + 4095) // 4096 * 4096
            if _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(self.directory)):
                shutil.copytree(saved, self.directory, dirs_exist_ok=True)
                shutil.rmtree(saved)
                return
            shutil.rmtree(saved)
            self.how = "file-size-limit"
        self.limit = room

    def free(self) -> None:
        if self.how == "tmpfs":
            assert _mount("-o", "remount,size=512m", str(self.directory))
        self.limit = None

    def close(self) -> None:
        if self.how == "tmpfs":
            _unmount(self.directory)

    def run(self, *args: str | os.PathLike[str], db: Path) -> subprocess.CompletedProcess[str]:
        """The command; in a process of its own under a file-size limit (a process's limit)."""
        limit = self.limit
        if limit is None:
            return run_cli(*args, db=db)

        def limited() -> None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

        return run_cli_process(*args, db=db, preexec_fn=limited)


@pytest.fixture(
    params=[pytest.param("file-size-limit", marks=pytest.mark.slow), "tmpfs"],
)
def limited_space(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LimitedSpace]:
    space = LimitedSpace(tmp_path / "disk", str(request.param))
    try:
        yield space
    finally:
        space.close()


def _unwritable(path: Path) -> bool:
    try:
        if path.is_dir():
            probe = path / ".write-probe"
            probe.touch()
            probe.unlink()
        else:
            with path.open("r+b"):
                pass
    except OSError:
        return True
    return False


def _chattr(flag: str, path: Path) -> bool:
    if shutil.which("chattr") is None:
        return False
    return subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0


@contextmanager
def read_only(*paths: Path) -> Iterator[str]:
    """Make files and directories unwritable, even for root; yields how it was done.

    Not root: chmod. Root: a read-only bind mount of each path, else `chattr +i`. The result is
    checked by trying to write; the test fails (it is not skipped) if nothing worked. The paths
    are on the disk (`disk_tmp_path`): a memory file system has no `chattr +i`.
    """
    if os.geteuid() != 0:
        modes = {path: path.stat().st_mode for path in paths}
        for path in paths:
            path.chmod(modes[path] & ~0o222)
        try:
            yield "chmod"
        finally:
            for path in paths:
                path.chmod(modes[path])
        return
    undo: list[Callable[[], None]] = []
    how = "bind-mount"
    try:
        for path in paths:
            if _mount("--bind", str(path), str(path)):
                undo.append(lambda path=path: _unmount(path))
                if _mount("-o", "remount,bind,ro", str(path)) and _unwritable(path):
                    continue
            how = "chattr"
            if _chattr("+i", path):
                undo.append(lambda path=path: _chattr_off(path))
            if not _unwritable(path):
                pytest.fail(f"cannot make {path} read-only for root here (bind mount, chattr +i)")
        yield how
    finally:
        for step in reversed(undo):
            step()


def _chattr_off(path: Path) -> None:
    _chattr("-i", path)


def _digest(directory: Path) -> dict[str, str]:
    """Every file under `directory` with a hash of its bytes."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def _assert_clean_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


# Catalogs ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def templates(
    tmp_path_factory: pytest.TempPathFactory, v050_template: Path, v0512_template: Path
) -> dict[str, Path]:
    """Catalogs synced from v0.5.0 and from v0.5.12, closed (no -wal or -shm beside them)."""
    found = {}
    for name, template in (("v0.5.0", v050_template), ("v0.5.12", v0512_template)):
        found[name] = tmp_path_factory.mktemp(name) / "catalog.db"
        shutil.copyfile(template, found[name])
    return found


CONTENT_TABLES = ("models", "model_tags", "tags", "deployments", "tokenizers", "pins", "settings")


def _content(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """The catalog's rows in any order, without the record of the syncs that made them."""
    connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return {
            table: sorted(connection.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
            for table in CONTENT_TABLES
        }
    finally:
        connection.close()


def _sources_digest() -> dict[str, str]:
    return {
        name: hashlib.sha256(p.read_bytes()).hexdigest()
        for name in ("v0.5.0", "v0.5.12")
        for p in sorted((HELM_CONFIGS / name).iterdir())
    }


# A full disk ------------------------------------------------------------------------------------


def test_a_full_disk_during_a_sync_is_a_clear_error_and_the_retry_succeeds(
    templates: dict[str, Path], limited_space: LimitedSpace
) -> None:
    db = limited_space.directory / "catalog.db"
    shutil.copyfile(templates["v0.5.0"], db)
    before, sources = dump(db), _sources_digest()
    limited_space.fill_to(64 * 1024)
    source = HELM_CONFIGS / "v0.5.12"

    failed = limited_space.run("sync", source, db=db)

    _assert_clean_error(failed, "the database is unchanged", "hint: ")
    assert "full" in failed.stderr or "file-size limit" in failed.stderr
    assert dump(db) == before
    assert _sources_digest() == sources
    limited_space.free()
    retried = limited_space.run("sync", source, db=db)
    assert retried.returncode == 0, retried.stderr
    assert _content(db) == _content(templates["v0.5.12"])


def _meta_cache(directory: Path, entries: int = 300) -> None:
    """meta moves whole to together; openai mostly stays. Big enough to fill a small disk."""
    rng = random.Random(7)
    write_shard(
        directory,
        "meta",
        {key(model="meta/llama-7b", prompt=n): rng.randbytes(2_000) for n in range(entries)},
    )
    write_shard(directory, "openai", {key(engine="davinci", prompt="e"): response("e")})


@pytest.mark.parametrize("mode", ["in-place", "out"])
def test_a_full_disk_during_a_cache_migration_is_a_clear_error_and_the_retry_succeeds(
    templates: dict[str, Path], limited_space: LimitedSpace, tmp_path: Path, mode: str
) -> None:
    db = tmp_path / "catalog.db"
    shutil.copyfile(templates["v0.5.12"], db)
    cache = limited_space.directory / "cache"
    _meta_cache(cache)
    reference = tmp_path / "reference"
    shutil.copytree(cache, reference / "cache")

    def where(base: Path) -> list[str | Path]:
        return ["--in-place"] if mode == "in-place" else ["--out", base / "out"]

    out_args = where(limited_space.directory)
    done = run_cli("cache", "migrate", reference / "cache", *where(reference), db=db)
    assert done.returncode == 0, done.stderr
    before = state(cache)
    limited_space.fill_to(64 * 1024)

    failed = limited_space.run("cache", "migrate", cache, *out_args, "-q", db=db)

    _assert_clean_error(failed, "hint: ")
    assert "full" in failed.stderr or "file-size limit" in failed.stderr
    assert state(cache) == before
    assert not [p for p in limited_space.directory.rglob("*") if "migrating-tmp" in p.name]
    limited_space.free()
    retried = limited_space.run("cache", "migrate", cache, *out_args, "-q", db=db)
    assert retried.returncode == 0, retried.stderr
    assert state(cache) == state(reference / "cache")
    if mode == "out":
        assert state(limited_space.directory / "out") == state(reference / "out")


# Read-only files --------------------------------------------------------------------------------

READS = [
    ("show", "model", "openai/gpt2"),
    ("list", "deployments", "--host", "openai"),
    ("resolve", "model=text"),
    ("query", "SELECT count(*) AS n FROM models"),
    ("check",),
    ("explain", "openai/gpt2"),
    ("pins",),
    ("db", "current"),
]
WRITES = [
    ("sync", str(HELM_CONFIGS / "v0.5.12")),
    ("pin", "openai/gpt2", "huggingface/gpt2"),
    ("settings", "set", "policy", "last"),
]


def test_a_read_only_database_file_reads_and_refuses_writes_clearly(
    templates: dict[str, Path], disk_tmp_path: Path
) -> None:
    db = disk_tmp_path / "catalog.db"
    shutil.copyfile(templates["v0.5.0"], db)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    with read_only(db):
        for args in READS:
            result = run_cli(*args, db=db)
            assert result.returncode == 0, (args, result.stderr)
        for args in WRITES:
            result = run_cli(*args, db=db)
            _assert_clean_error(result, "read", "hint: ")
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


def test_a_database_in_a_read_only_directory_is_a_clear_error(
    templates: dict[str, Path], disk_tmp_path: Path
) -> None:
    directory = disk_tmp_path / "media"
    directory.mkdir()
    db = directory / "catalog.db"
    shutil.copyfile(templates["v0.5.0"], db)
    before = _digest(directory)
    with read_only(directory, db):
        for args in READS + WRITES:
            result = run_cli(*args, db=db)
            _assert_clean_error(result, str(db), "read-only", "copy the catalog")
        missing = run_cli("sync", HELM_CONFIGS / "v0.5.0", db=directory / "new.db")
        _assert_clean_error(missing, "new.db")
    assert _digest(directory) == before


def test_a_read_only_cache_directory_is_planned_but_not_migrated_in_place(
    templates: dict[str, Path], disk_tmp_path: Path
) -> None:
    db = disk_tmp_path / "catalog.db"
    shutil.copyfile(templates["v0.5.12"], db)
    cache = disk_tmp_path / "cache"
    _meta_cache(cache, entries=5)
    before = _digest(cache)
    with read_only(cache, *sorted(cache.iterdir())):
        planned = run_cli("cache", "plan", cache, db=db)
        assert planned.returncode == 0, planned.stderr
        assert "together: 5" in planned.stdout
        in_place = run_cli("cache", "migrate", cache, "--in-place", db=db)
        _assert_clean_error(in_place, str(cache), "read-only", "--out")
        out = run_cli("cache", "migrate", cache, "--out", disk_tmp_path / "out", db=db)
        assert out.returncode == 0, out.stderr
    assert _digest(cache) == before
    assert sorted(p.name for p in (disk_tmp_path / "out").iterdir()) == [
        "openai.sqlite",
        "together.sqlite",
    ]


def test_a_read_only_output_directory_is_a_clear_error(
    templates: dict[str, Path], disk_tmp_path: Path
) -> None:
    db = disk_tmp_path / "catalog.db"
    shutil.copyfile(templates["v0.5.12"], db)
    cache = disk_tmp_path / "cache"
    _meta_cache(cache, entries=5)
    out = disk_tmp_path / "out"
    out.mkdir()
    with read_only(out):
        for target in (out, out / "sub"):
            result = run_cli("cache", "migrate", cache, "--out", target, db=db)
            _assert_clean_error(result, str(target), "cannot be written")
    assert list(out.iterdir()) == []


# Corrupt databases -------------------------------------------------------------------------------

COMMANDS = [
    *READS,
    ("list", "models", "--tag", "TEXT_MODEL_TAG"),
    ("export", "{tmp}/exported"),
    ("cache", "plan", "{tmp}/cache"),
    *WRITES,
    ("db", "upgrade"),
]


def _corruptions(real: bytes) -> dict[str, bytes]:
    rng = random.Random(3)
    middle = bytearray(real)
    for start in range(8192, len(real), 16384):
        middle[start : start + 512] = rng.randbytes(512)
    header_only = bytearray(real[:4096])
    return {
        "random-bytes": rng.randbytes(20_000),
        "truncated-to-half": real[: len(real) // 2],
        "truncated-to-one-page": bytes(header_only),
        "truncated-to-the-header": real[:100],
        "pages-overwritten": bytes(middle),
    }


@pytest.mark.parametrize(
    "corruption",
    [
        "random-bytes",
        "truncated-to-half",
        "truncated-to-one-page",
        "truncated-to-the-header",
        "pages-overwritten",
    ],
)
def test_a_corrupt_database_is_a_clear_error_not_a_traceback(
    templates: dict[str, Path], tmp_path: Path, corruption: str
) -> None:
    db = tmp_path / "catalog.db"
    db.write_bytes(_corruptions(templates["v0.5.12"].read_bytes())[corruption])
    _meta_cache(tmp_path / "cache", entries=2)
    before = db.read_bytes()
    failures = 0
    for args in COMMANDS:
        result = run_cli(*(a.format(tmp=tmp_path) for a in args), db=db)
        assert "Traceback" not in result.stderr, (args, result.stderr)
        if result.returncode != 0:
            _assert_clean_error(result)
            failures += 1
        assert db.read_bytes() == before, args
    # Whatever still works, what needs the lost pages says the file is damaged.
    assert failures >= len(COMMANDS) // 2
    # And so does the command run as a user runs it.
    for args in (("show", "model", "openai/gpt2"), ("sync", HELM_CONFIGS / "v0.5.12")):
        result = run_cli(*args, db=db)
        if result.returncode != 0:
            _assert_clean_error(result)
    assert db.read_bytes() == before


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cut=st.floats(min_value=0.0, max_value=1.0),
    noise_at=st.floats(min_value=0.0, max_value=1.0),
    noise=st.binary(min_size=0, max_size=64),
)
def test_any_damage_to_a_catalog_is_an_error_message_not_a_traceback(
    templates: dict[str, Path], tmp_path: Path, cut: float, noise_at: float, noise: bytes
) -> None:
    """Truncated anywhere and overwritten anywhere, read in process with the real CLI."""
    real = templates["v0.5.0"].read_bytes()
    damaged = bytearray(real[: max(1, int(len(real) * cut))])
    at = int(len(damaged) * noise_at)
    damaged[at : at + len(noise)] = noise
    db = tmp_path / "damaged.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    db.write_bytes(bytes(damaged))
    for args in (
        ["show", "model", "openai/gpt2"],
        ["list", "deployments"],
        ["resolve", "model=text"],
        ["check"],
        ["query", "SELECT * FROM deployment_details"],
    ):
        result = run_cli(*args, db=db)
        if result.returncode != 0:
            assert result.returncode == 1, result.stderr
            if args == ["check"] and not result.stderr:
                # check read the damaged rows and reports what is wrong with them (a tag name
                # with a NUL in it is a foreign-key violation): its findings are its output.
                assert any(line.startswith("error: ") for line in result.stdout.splitlines())
                continue
            assert result.stderr.startswith("error: "), result.stderr


def test_garbage_from_a_damaged_file_is_reported_as_damage_and_a_bug_stays_a_bug(
    templates: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever a damaged file hands over (bytes that are not JSON, a date that is not one),
    the command says the file is damaged; the same exception over a sound file is a bug, and
    is left to surface as one."""
    import catalog.query.lookups

    def garbage(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("what a damaged page could hand over")

    monkeypatch.setattr(catalog.query.lookups, "list_deployments", garbage)
    damaged = tmp_path / "damaged.db"
    real = templates["v0.5.0"].read_bytes()
    damaged.write_bytes(real[:8192] + bytes(4096) + real[12288:])
    result = run_cli("list", "deployments", db=damaged)
    _assert_clean_error(result, str(damaged), "damaged", "backup")
    sound = tmp_path / "sound.db"
    shutil.copyfile(templates["v0.5.0"], sound)
    bug = run_cli("list", "deployments", db=sound)
    assert bug.returncode == 1, bug.stderr
    assert bug.stderr.startswith("Traceback (most recent call last):"), bug.stderr
    assert bug.stderr.endswith("ValueError: what a damaged page could hand over\n"), bug.stderr


# A database from a newer version ----------------------------------------------------------------


@pytest.mark.parametrize("journal_mode", ["wal", "delete"])
def test_a_database_of_a_newer_schema_is_refused_by_every_command_and_left_alone(
    templates: dict[str, Path], tmp_path: Path, journal_mode: str
) -> None:
    """Even its journal mode stays: a newer version may have its reasons."""
    directory = tmp_path / "future"
    directory.mkdir()
    db = directory / "catalog.db"
    shutil.copyfile(templates["v0.5.0"], db)
    connection = sqlite3.connect(db, isolation_level=None)
    connection.execute("UPDATE alembic_version SET version_num = '0099_from_the_future'")
    assert connection.execute(f"PRAGMA journal_mode = {journal_mode}").fetchone() == (journal_mode,)
    connection.close()
    _meta_cache(tmp_path / "cache", entries=2)
    before = _digest(directory)
    for args in [*COMMANDS, ("cache", "migrate", "{tmp}/cache", "--in-place")]:
        if args == ("db", "current"):
            continue
        result = run_cli(*(a.format(tmp=tmp_path) for a in args), db=db)
        _assert_clean_error(result, "0099_from_the_future", "newer model-catalog", HEAD_REVISION)
        assert _digest(directory) == before, args
    _assert_clean_error(run_cli("show", "model", "openai/gpt2", db=db), "newer model-catalog")
    current = run_cli("db", "current", db=db)
    assert "unknown to this version" in current.stdout
    assert _digest(directory) == before
