"""One writer per project: a cross-process lock around anything that writes the store.

The lock is an OS file lock (``flock``), released by the kernel when its holder dies, so a
run killed with SIGKILL never blocks the next one. Whoever takes the lock first removes the
temp files such a killed run left behind.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from mlrepro.core import atomic
from mlrepro.errors import ConcurrencyError
from mlrepro.project.paths import check_store
from mlrepro.project.store import STORE_DIR

LOCK_FILE = "project.lock"


@contextlib.contextmanager
def project_lock(root: Path, wait: float = 0.0) -> Iterator[None]:
    """Hold the project's write lock; fail fast (or after ``wait`` seconds) if taken."""
    from filelock import FileLock, Timeout

    check_store(Path(root))  # never write or delete through a planted symlink
    folder = Path(root) / STORE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    lock = FileLock(str(path) + ".flock", timeout=wait)
    try:
        lock.acquire()
    except Timeout:
        holder = ""
        with contextlib.suppress(OSError):
            holder = path.read_text().strip()
        raise ConcurrencyError(
            f"another mlrepro process{f' (pid {holder})' if holder else ''} is writing this "
            "project",
            hint="wait for it to finish, or pass --wait SECONDS to queue behind it",
        ) from None
    try:
        with contextlib.suppress(OSError):
            path.write_text(str(os.getpid()))
        clean_leftovers(Path(root))
        yield
    finally:
        lock.release()


def clean_leftovers(root: Path) -> int:
    """Remove temp files of killed runs: in the store and next to the lock / outputs."""
    removed = atomic.clean_stale(root / STORE_DIR, recursive=True)
    return removed + atomic.clean_stale(root)
