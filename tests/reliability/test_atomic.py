"""Unit tests of the crash-safety primitives: atomic writes and temp-file cleanup."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mlrepro.core import atomic
from mlrepro.project.locking import clean_leftovers, project_lock


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(proc.stdout)


def test_failed_write_leaves_target_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "mlrepro.lock"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash while writing")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_written_files_get_ordinary_permissions(tmp_path: Path) -> None:
    atomic.write_bytes(tmp_path / "x", b"data")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "x").stat().st_mode) == 0o666 & ~mask


def test_clean_stale_removes_only_files_of_dead_writers(tmp_path: Path) -> None:
    dead = tmp_path / f".tmp-{_dead_pid()}-abc"
    mine = tmp_path / f".tmp-{os.getpid()}-abc"
    alive = tmp_path / ".tmp-1-abc"  # pid 1 always exists
    untagged = tmp_path / ".tmp-xyz_1"
    other = tmp_path / "data.csv"
    for p in (dead, mine, alive, untagged, other):
        p.write_text("x")
    assert atomic.clean_stale(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, alive.name, other.name])


def test_taking_the_project_lock_cleans_leftovers(tmp_path: Path) -> None:
    staging = tmp_path / ".mlrepro" / "staging"
    staging.mkdir(parents=True)
    pid = _dead_pid()
    (staging / f".tmp-{pid}-a.parquet").write_text("half")
    (tmp_path / f".tmp-{pid}-b").write_text("half a lock")
    with project_lock(tmp_path):
        pass
    assert list(staging.iterdir()) == []
    assert not list(tmp_path.glob(".tmp-*"))
    assert clean_leftovers(tmp_path) == 0


def test_disk_full_is_recognised() -> None:
    import errno

    assert atomic.is_disk_full(OSError(errno.ENOSPC, "x"))
    assert atomic.is_disk_full(OSError(errno.EDQUOT, "x"))
    assert atomic.is_disk_full(OSError("IOError: [errno 28] No space left on device"))
    assert not atomic.is_disk_full(OSError(errno.EACCES, "x"))
    assert not atomic.is_disk_full(ValueError("No space left on device"))
