"""Ctrl-C (SIGINT) ends a run with exit code 130 and leaves no partial artifacts."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cli_helpers import run_cli, run_subprocess

from mlrepro.errors import EXIT_INTERRUPTED

from .conftest import Traced
from .helpers import (
    check_integrity,
    cli_env,
    orphan_objects,
    output_fingerprints,
    read_lock,
    temp_files,
)

# (event label, stages that must be recorded afterwards)
MOMENTS = [
    ("extract:parquet-batch", []),  # the snapshot half written in staging
    ("features:rename:after", ["extract"]),  # transformer placed, not in the lock yet
    ("select:lock-write", ["extract", "features"]),  # selector placed, lock not rewritten
    ("train:model-dump", ["extract", "features", "select"]),
    ("predict:parquet-table", ["extract", "features", "select", "train"]),
]


def _assert_clean(project: Path, stages: list[str]) -> None:
    lock = check_integrity(project)
    assert sorted((lock or {"stages": {}})["stages"]) == sorted(stages)
    assert temp_files(project) == []
    assert orphan_objects(project) == []  # artifacts of the interrupted stage were removed
    assert not (project / "predictions.parquet").exists() or "predict" in stages


@pytest.mark.slow
def test_sigint_at_chosen_moments_exits_130_cleanly(traced: Traced, tmp_path: Path) -> None:
    def interrupted(label: str) -> tuple[Path, subprocess.CompletedProcess[str]]:
        project = tmp_path / label.replace(":", "-")
        shutil.copytree(traced.base, project)
        n = traced.events.index(label) + 1
        env = cli_env(hook=True, MLREPRO_CRASH=f"int@{n}", MLREPRO_CRASH_LOG=str(tmp_path / "x"))
        return project, run_subprocess("run", "-q", cwd=project, env=env)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(interrupted, [label for label, _ in MOMENTS]))

    for (label, stages), (project, proc) in zip(MOMENTS, results, strict=True):
        assert proc.returncode == EXIT_INTERRUPTED, (label, proc.returncode, proc.stderr)
        assert proc.stderr.strip().endswith("interrupted"), label
        assert "Traceback" not in proc.stderr, label
        _assert_clean(project, stages)
        assert run_cli("run", "-q", "-p", str(project)).code == 0
        assert output_fingerprints(check_integrity(project)) == traced.reference


@pytest.mark.slow
def test_real_ctrl_c_from_outside(small_project: Path) -> None:
    """SIGINT sent by another process (as a terminal does) while stages are running."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlrepro.cli.main", "run"],
        cwd=small_project,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # "extract   ran in ..." once the first stage is done
    assert first.startswith("extract"), first
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED, (proc.returncode, err)
    assert err.strip().endswith("interrupted")
    lock = check_integrity(small_project)
    assert lock is not None and "extract" in lock["stages"]
    assert "predict" not in lock["stages"]
    assert temp_files(small_project) == []
    assert orphan_objects(small_project) == []


def test_swallowed_keyboard_interrupt_still_stops_the_run(
    small_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A KeyboardInterrupt dropped by a library (e.g. in a weakref callback) still ends the run
    at the next stage with 130: the handler's flag is checked between stages."""
    import dataclasses

    from mlrepro.pipeline import registry

    original = registry.STAGES["features"]

    def features_swallowing_ctrl_c(ctx):  # type: ignore[no-untyped-def]
        # what "Exception ignored in: <weakref callback>" amounts to:
        with contextlib.suppress(KeyboardInterrupt):
            signal.getsignal(signal.SIGINT)(signal.SIGINT, None)  # the installed handler
        return original.execute(ctx)

    swallowing = dataclasses.replace(original, execute=features_swallowing_ctrl_c)
    monkeypatch.setitem(registry.STAGES, "features", swallowing)
    assert run_cli("run", "-q", "-p", str(small_project)).code == EXIT_INTERRUPTED
    lock = read_lock(small_project)
    assert sorted(lock["stages"]) == ["extract", "features"]  # select never started
    assert temp_files(small_project) == []
