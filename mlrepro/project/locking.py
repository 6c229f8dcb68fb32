"""One writer per project: a cross-process lock around anything that writes the store.

The lock is an OS file lock (``flock``), released by the kernel when its holder dies, so a
run killed with SIGKILL never blocks the next one. Whoever takes the lock first removes the
temp files such a killed run left behind.

A project this process cannot write (a read-only mount, a release folder owned by someone
else) gets no lock: nothing will be written, so there is nothing to serialise. The caller
learns it from ``Held.writable`` and refuses what would write, naming the path.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlrepro.core import atomic
from mlrepro.errors import ConcurrencyError, ReadOnlyError
from mlrepro.project.paths import check_store
from mlrepro.project.store import STORE_DIR

LOCK_FILE = "project.lock"


@dataclass(frozen=True)
class Held:
    """What ``project_lock`` got: the lock, or a read-only project (no lock needed)."""

    root: Path
    writable: bool

    def refuse(self, what: str) -> ReadOnlyError:
        """The error for an operation that would write into a read-only project."""
        where = self.root / STORE_DIR if (self.root / STORE_DIR).is_dir() else self.root
        return ReadOnlyError(
            f"{what}, but the project folder {where} is read-only (cannot write "
            f"{STORE_DIR}/ or mlrepro.lock)",
            hint="run it on a writable copy of the project; a run with nothing to do, "
            "status, verify --offline and bundle -o ELSEWHERE work on a read-only project",
        )


def _writable(root: Path) -> bool:
    folder = root / STORE_DIR
    target = folder if folder.is_dir() else root
    return os.access(target, os.W_OK) and os.access(root, os.W_OK)


@contextlib.contextmanager
def project_lock(root: Path, wait: float = 0.0) -> Iterator[Held]:
    """Hold the project's write lock; fail fast (or after ``wait`` seconds) if taken.

    A project that cannot be written yields ``Held(writable=False)`` without a lock.
    """
    root = Path(root)
    lock = _acquire(root, wait) if _writable(root) else None
    if lock is None:  # read-only: nothing will be written, so nothing to serialise
        yield Held(root, writable=False)
        return
    try:
        with contextlib.suppress(OSError):
            (root / STORE_DIR / LOCK_FILE).write_text(str(os.getpid()))
        clean_leftovers(root)
        yield Held(root, writable=True)
    finally:
        lock.release()


class _Flock:
    """``flock(LOCK_EX)`` on a lock file, polled until ``wait`` runs out.

    The same kernel lock filelock's ``UnixFileLock`` takes (so older mlrepro versions and
    this one exclude each other), without importing filelock (~25 ms: logging, secrets,
    decimal), which a no-op ``run`` would otherwise spend on its lock alone.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self, wait: float) -> None:
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        deadline = time.monotonic() + max(wait, 0.0)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    self.fd = fd
                    return
                except BlockingIOError:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise _Timeout from None
                    time.sleep(min(0.05, left))
        except BaseException:
            os.close(fd)
            raise

    def release(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)  # closing the last descriptor releases the flock


class _Timeout(Exception):
    pass


def _file_lock(path: str, wait: float) -> Any:
    """An acquired lock on ``path``: flock, or filelock where flock is not available."""
    if os.name == "posix":
        lock = _Flock(path)
        try:
            lock.acquire(wait)
            return lock
        except OSError as exc:  # e.g. a file system without flock (ENOSYS, EOPNOTSUPP)
            if exc.errno not in (errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK):
                raise
    from filelock import FileLock, Timeout

    try:
        flock = FileLock(path, timeout=wait)
        flock.acquire()
    except Timeout:  # a TimeoutError, hence an OSError: must not reach the caller's OSError
        raise _Timeout from None
    return flock


def _acquire(root: Path, wait: float) -> Any:
    """The acquired lock, or None when the project turns out not to be writable."""
    check_store(Path(root))  # never write or delete through a planted symlink
    folder = Path(root) / STORE_DIR
    path = folder / LOCK_FILE
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = _file_lock(str(path) + ".flock", wait)
    except _Timeout:
        holder = ""
        with contextlib.suppress(OSError):
            holder = path.read_text().strip()
        raise ConcurrencyError(
            f"another mlrepro process{f' (pid {holder})' if holder else ''} is writing this "
            "project",
            hint="wait for it to finish, or pass --wait SECONDS to queue behind it",
        ) from None
    except OSError as exc:
        if atomic.is_not_writable(exc):
            return None
        raise
    return lock


def clean_leftovers(root: Path) -> int:
    """Remove temp files of killed runs: in the store and next to the lock / outputs."""
    removed = atomic.clean_stale(root / STORE_DIR, recursive=True)
    return removed + atomic.clean_stale(root)
