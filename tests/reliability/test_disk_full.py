"""A full disk fails with exit code 4 and leaves the previous state intact.

ENOSPC is injected at each kind of write (the streamed snapshot, a model, the lock, and a
pyarrow error that only says so in its text); one test fills a real tmpfs when the machine
lets us mount one.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cli_helpers import run_cli

from mlrepro.cli import console
from mlrepro.core import atomic
from mlrepro.core.atomic import DiskFullError
from mlrepro.errors import EXIT_ARTIFACT

from .helpers import check_integrity, orphan_objects, temp_files


def _no_space(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def _arrow_no_space(*args: object, **kwargs: object) -> None:
    raise OSError("Error writing bytes to file. Detail: [errno 28] No space left on device")


def _edit(project: Path, old: str, new: str) -> None:
    path = project / "mlrepro.yaml"
    path.write_text(path.read_text().replace(old, new))


def _lock_commit_fails(real_commit):  # type: ignore[no-untyped-def]
    def commit(tmp: Path, target: Path) -> None:
        if target.name == "mlrepro.lock":
            _no_space()
        real_commit(tmp, target)

    return commit


WHERE = {
    # name: (manifest change so that one stage reruns, object to patch, attribute, fake)
    "snapshot": ("2026-06-30T00:00:00Z", "2026-06-29T00:00:00Z", "pyarrow.parquet.ParquetWriter",
                 "write_batch", _no_space),
    "model": ("n_estimators: 10", "n_estimators: 11", "joblib", "dump", _no_space),
    "lock": ("n_estimators: 10", "n_estimators: 11", "mlrepro.core.atomic", "commit", None),
    "arrow-text-only": ("2026-06-30T00:00:00Z", "2026-06-29T00:00:00Z",
                        "pyarrow.parquet.ParquetWriter", "write_batch", _arrow_no_space),
}  # fmt: skip


@pytest.mark.parametrize("where", sorted(WHERE))
def test_disk_full_keeps_previous_state(trained_copy: Path, monkeypatch, capsys, where) -> None:
    old, new, target, attr, fake = WHERE[where]
    _edit(trained_copy, old, new)
    lock_before = (trained_copy / "mlrepro.lock").read_bytes()
    objects_before = sorted(p.name for p in (trained_copy / ".mlrepro").rglob("*") if p.is_file())
    monkeypatch.setattr(f"{target}.{attr}", fake or _lock_commit_fails(atomic.commit))
    seen: list[Exception] = []
    monkeypatch.setattr(console, "print_error", seen.append)

    assert run_cli("run", "-p", str(trained_copy)).code == EXIT_ARTIFACT
    assert len(seen) == 1 and isinstance(seen[0], DiskFullError)
    assert "no space left on device" in seen[0].message
    assert "free some disk space" in seen[0].hint
    assert (trained_copy / "mlrepro.lock").read_bytes() == lock_before
    check_integrity(trained_copy)
    assert temp_files(trained_copy) == [] and orphan_objects(trained_copy) == []
    after = sorted(p.name for p in (trained_copy / ".mlrepro").rglob("*") if p.is_file())
    assert after == objects_before

    monkeypatch.undo()
    assert run_cli("run", "-q", "-p", str(trained_copy)).code == 0  # space is back: it completes


@pytest.fixture
def tmpfs(tmp_path: Path):  # type: ignore[no-untyped-def]
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


@pytest.mark.slow
def test_real_full_disk(trained_small: Path, tmpfs: Path, capsys) -> None:
    project = tmpfs / "p"
    shutil.copytree(trained_small, project)
    _edit(project, "n_estimators: 10", "n_estimators: 40")  # a model 4x the size
    lock_before = (project / "mlrepro.lock").read_bytes()
    free = shutil.disk_usage(tmpfs).free
    filler = tmpfs / "filler"
    filler.write_bytes(b"\0" * max(0, free - 96 * 1024))  # leave ~96 KiB

    code = run_cli("run", "-p", str(project)).code
    err = capsys.readouterr().err
    assert code == EXIT_ARTIFACT, err
    assert "no space left on device" in err and "hint: free some disk space" in err
    assert (project / "mlrepro.lock").read_bytes() == lock_before
    check_integrity(project)
    assert temp_files(project) == [] and orphan_objects(project) == []

    filler.unlink()
    assert run_cli("run", "-q", "-p", str(project)).code == 0
    check_integrity(project)
