"""SIGKILL at many moments of a run, spread over every stage: nothing is ever lost.

A fault-injection hook (``crashhook/sitecustomize.py``) makes ``python -m mlrepro.cli.main run``
kill itself with SIGKILL at the N-th I/O event: a stage starting, a parquet or model being
written, before and after each rename, the lock write. After each kill the lock (if any)
must parse and name only artifacts with the recorded byte hash and content fingerprint, and
the next ordinary ``run`` must complete, clean up what the killed run left behind and end
with exactly the fingerprints of an uninterrupted run.

The killed runs are real subprocesses (two at a time); the following runs are made in this
process through ``mlrepro.cli.main`` (no second import of scikit-learn per case).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_helpers import run_cli, run_subprocess

from .conftest import Traced
from .helpers import check_integrity, cli_env, orphan_objects, output_fingerprints, temp_files

pytestmark = pytest.mark.slow

STAGES = ("extract", "features", "select", "train", "predict")
# Crash points, per stage (the first event of each kind in that stage):
#   start            extract only: nothing written yet (later starts equal the previous
#                    stage's last event)
#   <data write>     a temp file half written in the store's staging folder
#   rename:after     an artifact in place that no lock names yet
#   lock-write       all outputs in place, the lock not yet rewritten
#   last rename:before  the new lock fully written to its temp file, not yet renamed
# and the final prune of unreferenced objects.
DATA_WRITES = ("parquet-batch", "parquet-file", "model-dump", "parquet-table")


def trace_events(project: Path, log: Path) -> list[str]:
    proc = run_subprocess(
        "run",
        "-q",
        cwd=project,
        env=cli_env(hook=True, MLREPRO_CRASH="trace", MLREPRO_CRASH_LOG=str(log)),
    )
    assert proc.returncode == 0, proc.stderr
    return log.read_text().split()


def kill_points(events: list[str]) -> list[tuple[int, str]]:
    """1-based event numbers to crash at, with their labels."""
    chosen: list[int] = []
    for stage in STAGES:
        mine = [(i, e.split(":", 1)[1]) for i, e in enumerate(events) if e.startswith(f"{stage}:")]

        def first(kinds: tuple[str, ...], mine=mine) -> int | None:
            return next((i for i, kind in mine if kind in kinds), None)

        lock_renames = [i for i, kind in mine if kind == "rename:before"]
        chosen += [
            i
            for i in (
                first(("start",)) if stage == "extract" else None,
                first(DATA_WRITES),
                first(("rename:after",)),
                first(("lock-write",)),
                lock_renames[-1] if lock_renames else None,
            )
            if i is not None
        ]
    chosen += [i for i, e in enumerate(events) if e.endswith(":prune")]
    return [(i + 1, events[i]) for i in sorted(set(chosen))]


@dataclass
class Crash:
    project: Path
    label: str
    left_temp: list[str]


def crash(base: Path, work: Path, n: int, label: str, edit: Callable | None) -> Crash:
    """Copy ``base``, SIGKILL a run of it at event ``n``, check what the crash left."""
    project = work / f"kill-{n}"
    shutil.copytree(base, project)
    if edit:
        edit(project)
    env = cli_env(hook=True, MLREPRO_CRASH=f"kill@{n}", MLREPRO_CRASH_LOG=str(work / f"{n}.log"))
    killed = run_subprocess("run", "-q", cwd=project, env=env)
    assert killed.returncode == -9, f"{label}: expected SIGKILL, got {killed.returncode}"
    check_integrity(project)  # the lock parses and names only intact artifacts
    return Crash(project, label, temp_files(project))


def recover(c: Crash, reference: dict[str, str]) -> None:
    """The next run completes, cleans up and gives the uninterrupted run's results."""
    assert run_cli("run", "-q", "-p", str(c.project)).code == 0, f"after kill at {c.label}"
    lock = check_integrity(c.project)
    assert lock is not None
    assert output_fingerprints(lock) == reference, f"after kill at {c.label}: results differ"
    assert temp_files(c.project) == [], f"after kill at {c.label}: temp files left"
    assert orphan_objects(c.project) == [], f"after kill at {c.label}: orphan objects"


def crash_all(base: Path, work: Path, points: list[tuple[int, str]], edit=None) -> list[Crash]:
    with ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2))) as pool:
        futures = [pool.submit(crash, base, work, n, label, edit) for n, label in points]
        return [f.result() for f in futures]


def test_sigkill_at_every_stage_never_corrupts(traced: Traced, tmp_path: Path) -> None:
    points = kill_points(traced.events)
    assert len(points) >= 20
    assert {label.split(":")[0] for _, label in points} == set(STAGES)

    crashes = crash_all(traced.base, tmp_path, points)
    # the kills really left debris (half-written temp files) for the next run to clean up
    assert any(c.left_temp for c in crashes)
    for c in crashes:
        recover(c, traced.reference)


def _move_as_of(project: Path) -> None:
    manifest = project / "mlrepro.yaml"
    manifest.write_text(
        manifest.read_text().replace("2026-06-30T00:00:00Z", "2026-05-31T00:00:00Z")
    )


def test_sigkill_during_rerun_keeps_previous_state(trained_small: Path, tmp_path: Path) -> None:
    """Over an existing lock (as_of moved: every stage reruns) the old state stays usable."""
    probe = tmp_path / "probe"
    shutil.copytree(trained_small, probe)
    _move_as_of(probe)
    events = trace_events(probe, tmp_path / "trace.log")
    reference = output_fingerprints(check_integrity(probe))

    # per stage: just after its last artifact (predictions: the overwritten file) is placed,
    # before the lock names it
    points = []
    for stage in STAGES:
        placed = [i for i, e in enumerate(events) if e == f"{stage}:rename:after"]
        points.append((placed[-2] + 1, f"{events[placed[-2]]}#{len(placed) - 1}"))
    for c in crash_all(trained_small, tmp_path, points, _move_as_of):
        recover(c, reference)
