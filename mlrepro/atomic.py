"""Crash-safe file writes: temp file in the same folder, fsync, rename, fsync folder."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import MlreproError

TMP_PREFIX = ".tmp-"


class DiskFullError(MlreproError):
    exit_code = 4
    kind = "disk-full"


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a folder be fsynced
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temp path next to ``target``; on success it replaces ``target`` atomically.

    On any error (including KeyboardInterrupt) the temp file is removed and ``target`` is
    left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX, dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise DiskFullError(
                f"no space left on device while writing {target.name}",
                hint="free some disk space and run again; the previous state is intact",
            ) from None
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


def clean_temp_files(folder: Path) -> int:
    """Remove temp files left behind by a killed process; returns how many."""
    count = 0
    if not folder.exists():
        return 0
    for p in folder.rglob(f"{TMP_PREFIX}*"):
        with contextlib.suppress(OSError):
            p.unlink()
            count += 1
    return count


@contextlib.contextmanager
def temp_path(folder: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a fresh temp path in ``folder``; removed on error or if left behind."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=suffix, dir=folder)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DiskFullError(
                "no space left on device while writing an artifact",
                hint="free some disk space and run again; the previous state is intact",
            ) from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def commit(tmp: Path, target: Path) -> None:
    """Durably move a finished temp file to ``target`` (same filesystem)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    _fsync_dir(target.parent)
