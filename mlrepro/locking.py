"""One writer per project: a cross-process lock around anything that writes the store."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from .errors import ConcurrencyError
from .store import STORE_DIR

LOCK_FILE = "project.lock"


@contextlib.contextmanager
def project_lock(root: Path, wait: float = 0.0) -> Iterator[None]:
    """Hold the project's write lock; fail fast (or after ``wait`` seconds) if taken."""
    from filelock import FileLock, Timeout

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
        yield
    finally:
        lock.release()
