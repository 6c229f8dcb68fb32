"""Crash-safe file writes: temp file in the same folder, fsync, rename, fsync folder.

Temp files are named ``.tmp-<pid>-<random>``: a process killed with SIGKILL cannot remove
its own, so the next writer removes those whose process is gone (``clean_stale``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from mlrepro.errors import EXIT_ARTIFACT, MlreproError, ReadOnlyError

TMP_PREFIX = ".tmp-"
# ENOSPC: disk full; EDQUOT: quota exceeded; EFBIG: file size limit (ulimit -f)
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
# EROFS: a read-only mount; EACCES / EPERM: no write permission
_READ_ONLY_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM}


class DiskFullError(MlreproError):
    exit_code = EXIT_ARTIFACT
    kind = "disk-full"


def is_disk_full(exc: BaseException) -> bool:
    """True for an OSError that means "no space left" (also as reported by pyarrow)."""
    if not isinstance(exc, OSError):
        return False
    return exc.errno in _FULL_ERRNOS or "No space left on device" in str(exc)


def is_not_writable(exc: BaseException) -> bool:
    """True for an OSError that means "this place cannot be written"."""
    return isinstance(exc, OSError) and exc.errno in _READ_ONLY_ERRNOS


def not_writable_error(folder: Path, exc: OSError | None = None) -> ReadOnlyError:
    why = (
        "it is on a read-only file system"
        if exc is not None and exc.errno == errno.EROFS
        else ("this user has no permission to write there")
    )
    return ReadOnlyError(
        f"cannot write to {folder}: {why}",
        hint="run the command on a writable copy of the project (or point -o/--output "
        "elsewhere); status, verify --offline, bundle and a run with nothing to do work on "
        "a read-only project",
    )


def disk_full_error(what: str) -> DiskFullError:
    return DiskFullError(
        f"no space left on device while writing {what}",
        hint="free some disk space and run again; the previous lock and artifacts are intact",
    )


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a folder be fsynced
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _make_dirs(folder: Path) -> None:
    """Create ``folder`` (and parents) durably: a new entry is fsynced into its parent."""
    if folder.is_dir():
        return
    _make_dirs(folder.parent)
    with contextlib.suppress(FileExistsError):
        folder.mkdir()
    _fsync_dir(folder.parent)


def _umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it (at import: no threads yet)
    os.umask(mask)
    return mask


# mkstemp makes 0600 files; a renamed lock or predictions file should get the permissions
# any other new file would (0644 under the usual umask).
_FILE_MODE = 0o666 & ~_umask()


def _new_temp(folder: Path, suffix: str = "") -> Path:
    try:
        _make_dirs(folder)
        fd, name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{os.getpid()}-", suffix=suffix, dir=folder)
    except OSError as exc:
        if is_not_writable(exc):
            raise not_writable_error(folder, exc) from None
        raise
    try:
        if hasattr(os, "fchmod"):  # POSIX
            os.fchmod(fd, _FILE_MODE)
    finally:
        os.close(fd)
    return Path(name)


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temp path next to ``target``; on success it replaces ``target`` atomically.

    On any error (including KeyboardInterrupt) the temp file is removed and ``target`` is
    left as it was.
    """
    target = Path(target)
    try:
        tmp = _new_temp(target.parent)
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full_error(target.name) from None
        raise
    try:
        yield tmp
        commit(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if is_disk_full(exc):
            raise disk_full_error(target.name) from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(target: Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_with(target: Path, writer: Callable[[Path], None]) -> None:
    with atomic_path(target) as tmp:
        writer(tmp)


def _owner_alive(name: str) -> bool:
    """Whether the process that made temp file ``name`` may still be writing it."""
    pid_text = name[len(TMP_PREFIX) :].split("-", 1)[0]
    if not pid_text.isdigit():
        return False  # an untagged (older) temp file: nobody can still own it safely
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: the process exists
        return True
    return True


def clean_stale(folder: Path, *, recursive: bool = False, suffix: str = "") -> int:
    """Remove temp files (ending in ``suffix``) whose writer is gone (killed); how many."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    pattern = f"{TMP_PREFIX}*{suffix}"
    found = folder.rglob(pattern) if recursive else folder.glob(pattern)
    count = 0
    for p in found:
        if p.is_file() and not p.is_symlink() and not _owner_alive(p.name):
            with contextlib.suppress(OSError):
                p.unlink()
                count += 1
    return count


def clean_temp_files(folder: Path) -> int:
    """Remove temp files left behind by killed processes under ``folder``; returns how many."""
    return clean_stale(folder, recursive=True)


@contextlib.contextmanager
def temp_path(folder: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a fresh temp path in ``folder``; removed on error or if left behind."""
    try:
        tmp = _new_temp(Path(folder), suffix)
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full_error("a temporary file") from None
        raise
    try:
        yield tmp
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full_error("an artifact") from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def commit(tmp: Path, target: Path) -> None:
    """Durably move a finished temp file to ``target`` (same filesystem)."""
    _make_dirs(target.parent)
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    _fsync_dir(target.parent)
