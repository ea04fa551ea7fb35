"""One migration of a cache directory at a time.

Two migrations of one cache at once would each rename and fill shards the other is reading.
A migration holds a lock on each directory it uses for as long as it runs: exclusive on the
directory it writes (the cache with `--in-place`, the output directory with `--out`), shared on
a cache it only reads (`--out`, `--dry-run`), so that several `--out` runs may read one cache
while no in-place run may change it under them.

The lock is `flock` on the directory itself, opened read-only: it needs no file in the cache
(a read-only cache can be migrated `--out`, and no stray file appears among the shards), and
the kernel drops it when the process ends, however it ends (SIGKILL included), so a killed run
never leaves a stale lock. A second run does not wait: it stops at once, naming the process that
holds the lock (read from /proc/locks where the system has it).
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from catalog.errors import CacheMigrationError

_PROC_LOCKS = Path("/proc/locks")


@contextmanager
def directory_lock(directory: Path, *, exclusive: bool) -> Iterator[None]:
    """Hold an exclusive (a migration writes `directory`) or a shared (it only reads it) lock
    on `directory` until the block ends; another migration's lock stops this one at once."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(descriptor, mode | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = lock_holder(descriptor)
            who = f" (pid {holder})" if holder is not None else ""
            raise CacheMigrationError(
                f"{directory}: another migration is running{who}; nothing was changed",
                hint="let it finish, or stop it (a stopped run is finished by running it "
                "again), then run this command again",
            ) from None
        yield
    finally:
        os.close(descriptor)  # releases the lock


def lock_holder(descriptor: int) -> int | None:
    """The process holding an flock on the file of `descriptor`, from /proc/locks; None if
    the system does not say (no /proc, or the holder ended meanwhile)."""
    status = os.fstat(descriptor)
    wanted = f"{os.major(status.st_dev):02x}:{os.minor(status.st_dev):02x}:{status.st_ino}"
    try:
        lines = _PROC_LOCKS.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 4242 00:2e:1234 0 EOF"; a waiter's line has "->" after
        # the number.
        if "->" in fields or len(fields) < 6 or fields[1] != "FLOCK":
            continue
        if fields[5] == wanted and fields[4].isdigit() and int(fields[4]) != os.getpid():
            return int(fields[4])
    return None
