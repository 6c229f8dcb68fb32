"""Two ``mlrepro run`` on one project at once.

The documented policy: the second fails fast with exit code 2 and names the holder, or with
``--wait SECONDS`` queues behind it. A writer killed while holding the lock never blocks the
next one (the OS releases the lock with the process). The store is never corrupted.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import run_cli, run_subprocess

from mlrepro.errors import EXIT_USAGE

from .conftest import Traced
from .helpers import check_integrity, cli_env, orphan_objects, temp_files

pytestmark = pytest.mark.slow


def _start_paused(project: Path, tmp_path: Path, event: str, events: list[str]) -> subprocess.Popen:
    """Start a run that stops at ``event`` while holding the project lock."""
    log = tmp_path / "pause"
    n = events.index(event) + 1
    env = cli_env(hook=True, MLREPRO_CRASH=f"pause@{n}", MLREPRO_CRASH_LOG=str(log))
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlrepro.cli.main", "run", "-q"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (tmp_path / "pause.paused").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the first run never reached the pause point"
        time.sleep(0.05)
    return proc


def _release(tmp_path: Path) -> None:
    (tmp_path / "pause.go").touch()


def test_second_run_fails_fast_then_first_completes(traced: Traced, tmp_path: Path) -> None:
    project = tmp_path / "p"
    shutil.copytree(traced.base, project)
    first = _start_paused(project, tmp_path, "train:start", traced.events)
    lock_before = (project / "mlrepro.lock").read_bytes()  # extract..select recorded

    second = run_subprocess("run", cwd=project)
    assert second.returncode == EXIT_USAGE
    assert f"another mlrepro process (pid {first.pid}) is writing this project" in second.stderr
    assert "--wait" in second.stderr  # the hint names the way out
    assert (project / "mlrepro.lock").read_bytes() == lock_before

    _release(tmp_path)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    check_integrity(project)
    assert orphan_objects(project) == [] and temp_files(project) == []


def test_second_run_with_wait_queues_behind_the_first(traced: Traced, tmp_path: Path) -> None:
    project = tmp_path / "p"
    shutil.copytree(traced.base, project)
    first = _start_paused(project, tmp_path, "features:start", traced.events)
    second = subprocess.Popen(
        [sys.executable, "-m", "mlrepro.cli.main", "run", "--json", "--wait", "120"],
        cwd=project,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)
    assert second.poll() is None  # still waiting for the lock
    _release(tmp_path)
    assert first.wait(timeout=120) == 0
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    # the second found everything done by the first
    assert {s["status"] for s in json.loads(out)["stages"]} == {"skipped"}
    lock = check_integrity(project)
    assert lock is not None and len(lock["stages"]) == 5
    assert orphan_objects(project) == [] and temp_files(project) == []


def test_writer_killed_while_holding_the_lock_does_not_block(
    traced: Traced, tmp_path: Path
) -> None:
    project = tmp_path / "p"
    shutil.copytree(traced.base, project)
    first = _start_paused(project, tmp_path, "select:start", traced.events)
    first.kill()
    first.wait(timeout=60)
    # no --wait: the lock must be free at once
    assert run_cli("run", "-q", "-p", str(project)).code == 0
    check_integrity(project)
    assert orphan_objects(project) == [] and temp_files(project) == []
