"""A read-only copy of a trained project (a mounted release, a CI cache): reading commands
work, writing ones say what cannot be written (issue 11, item 3).

The copy is made really read-only, not just chmod-ed (root ignores file modes):
- as root, the CLI runs in its own mount namespace with the copy bind-mounted read-only
  (``unshare -m`` + ``mount -o remount,bind,ro``), so every write gets EROFS;
- as root without mount namespaces, the copy is ``chmod -R a-w`` and the CLI runs as the
  unprivileged user ``nobody`` (``setpriv``), so writes get EACCES;
- as another user, the copy is ``chmod -R a-w`` (writes get EACCES).
Without any of these, the tests skip locally and fail in CI.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from conftest import in_ci

from mlrepro.fingerprint import hash_file

REPO_ROOT = Path(__file__).resolve().parents[1]
MOUNT = 'mount --bind "$1" "$2" && mount -o remount,bind,ro "$2" && shift 2 && exec "$@"'


def _can_mount() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount --make-rprivate / 2>/dev/null; true"],
        capture_output=True,
    )
    return probe.returncode == 0


NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "NO_COLOR": "1", "COLUMNS": "200"}


def _can_drop_to_nobody() -> bool:
    if shutil.which("setpriv") is None:
        return False
    probe = subprocess.run(
        [*NOBODY, sys.executable, "-c", "import mlrepro.cli.main"],
        capture_output=True,
        env=_env(),
        cwd="/",
    )
    return probe.returncode == 0


def _mode() -> str:
    if os.geteuid() != 0:
        return "chmod"
    if _can_mount():
        return "mount"
    if _can_drop_to_nobody():
        return "nobody"
    reason = (
        "running as root without 'unshare -m' (CAP_SYS_ADMIN) or a Python that user nobody "
        "can run (setpriv): cannot make a folder read-only"
    )
    if in_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


class ReadOnly:
    """Runs the CLI with ``project`` read-only at ``view`` (its path inside the command)."""

    def __init__(self, source: Path, view: Path) -> None:
        self.mode = _mode()
        self.source, self.view = source, view
        self.outside = view.parent / "outside"  # a writable folder for outputs
        if self.mode == "nobody":  # a copy nobody can reach (pytest's tmp is 0700)
            base = Path(tempfile.mkdtemp(prefix="mlrepro-ro-"))
            base.chmod(0o755)
            self.source = base / source.name
            shutil.copytree(source, self.source)
            self.outside = base / "outside"
            self._base = base
        if self.mode == "mount":
            view.mkdir(parents=True, exist_ok=True)
        else:
            self.view = self.source
            for path in [self.source, *self.source.rglob("*")]:
                path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        self.outside.mkdir(parents=True, exist_ok=True)
        self.outside.chmod(0o777)

    def cli(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "mlrepro.cli.main", *map(str, args)]
        if self.mode == "mount":
            command = ["unshare", "-m", "sh", "-c", MOUNT, "sh", str(self.source), str(self.view)]
            command += [sys.executable, "-m", "mlrepro.cli.main", *map(str, args)]
        elif self.mode == "nobody":
            command = [*NOBODY, *command]
        return subprocess.run(
            command, capture_output=True, text=True, timeout=300, env=_env(), cwd=self.outside
        )

    def restore(self) -> None:
        if self.mode != "mount":
            for path in [self.source, *self.source.rglob("*")]:
                path.chmod(path.stat().st_mode | stat.S_IWUSR)
        if self.mode == "nobody":
            shutil.rmtree(self._base, ignore_errors=True)


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hash_file(p) for p in root.rglob("*") if p.is_file()}


def _small(project: Path) -> None:
    path = project / "mlrepro.yaml"
    data = yaml.safe_load(path.read_text())
    data["model"]["params"] = {"n_estimators": 10, "max_depth": 4}
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture
def read_only_trained(copy_example, tmp_path):  # noqa: ANN201 - yields ReadOnly
    project = copy_example("diabetes")
    _small(project)
    ran = subprocess.run(
        [sys.executable, "-m", "mlrepro.cli.main", "run", "-q", "-p", str(project)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert ran.returncode == 0, ran.stderr
    ro = ReadOnly(project, tmp_path / "mnt")
    before = _tree(ro.source)
    yield ro
    after = _tree(ro.source)
    ro.restore()
    assert after == before  # nothing was written, whatever the mode


@pytest.mark.slow
def test_reading_commands_work_on_a_read_only_project(read_only_trained, tmp_path) -> None:
    ro = read_only_trained
    p = ro.view
    status = ro.cli("status", "--json", "-p", p)
    assert status.returncode == 0, status.stderr
    assert {s["state"] for s in json.loads(status.stdout)["stages"]} == {"up to date"}

    run = ro.cli("run", "--json", "-p", p)
    assert run.returncode == 0, run.stderr
    assert {s["status"] for s in json.loads(run.stdout)["stages"]} == {"skipped"}

    verify = ro.cli("verify", "--offline", "--json", "-p", p)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert json.loads(verify.stdout)["reproduced"] is True

    online = ro.cli("verify", "-p", p)  # re-queries the (read-only) SQLite file
    assert online.returncode == 0, online.stdout + online.stderr

    bundle = ro.outside / "model.mlrepro"
    made = ro.cli("bundle", "-o", bundle, "-p", p, "--json")
    assert made.returncode == 0, made.stderr
    inspect = ro.cli("inspect", bundle)
    assert inspect.returncode == 0 and "Model card" in inspect.stdout


@pytest.mark.slow
def test_writing_commands_say_what_cannot_be_written(read_only_trained) -> None:
    ro = read_only_trained
    p = ro.view
    forced = ro.cli("run", "--force", "-p", p)
    assert forced.returncode == 2, forced.stderr
    assert "stage 'extract' would run (--force)" in forced.stderr
    assert f"the project folder {p / '.mlrepro'} is read-only" in forced.stderr
    assert "hint: run it on a writable copy" in forced.stderr

    one = ro.cli("train", "--force", "-p", p)
    assert one.returncode == 2 and "stage 'train' would run" in one.stderr

    inside = ro.cli("bundle", "-o", p / "model.mlrepro", "-p", p)
    assert inside.returncode == 2, inside.stderr
    assert f"cannot write to {p}" in inside.stderr
    assert "unexpected" not in inside.stderr

    predicted = ro.cli("predict", "-p", p, "--input", p / "data" / "new_visits.csv",
                       "--output", p / "out.csv")  # fmt: skip
    assert predicted.returncode == 2 and f"cannot write to {p}" in predicted.stderr


@pytest.mark.slow
def test_a_stale_read_only_project_names_the_stage(copy_example, tmp_path) -> None:
    project = copy_example("diabetes")  # never run: no .mlrepro/, no lock
    ro = ReadOnly(project, tmp_path / "mnt")
    try:
        result = ro.cli("run", "-p", ro.view)
        assert not (ro.source / ".mlrepro").exists()
    finally:
        ro.restore()
    assert result.returncode == 2, result.stderr
    assert "stage 'extract' would run (never run)" in result.stderr
    assert f"the project folder {ro.view} is read-only" in result.stderr
