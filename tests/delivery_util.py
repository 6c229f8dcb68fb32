"""Helpers shared by the delivery tests (bundle, batch, dask).

Training an example takes a few seconds, so ``trained_bundle`` trains each example once per
test session (in a session temp folder) and hands out the same bundle to every test.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = REPO_ROOT / "examples"
_IGNORE = shutil.ignore_patterns(".mlrepro", "mlrepro.lock", ".mlrepro.lock.pid", "predictions*")
_CACHE: dict[str, tuple[Path, Path]] = {}


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m mlrepro.cli.main ARGS`` with this checkout on PYTHONPATH."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "mlrepro.cli.main", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI in this process (fast); the same result shape as ``cli``."""
    from mlrepro.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    before = os.getcwd()
    code: int = 0
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        os.chdir(before)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def train_project(name: str, dest: Path) -> Path:
    """Copy ``examples/<name>`` to ``dest`` and run its pipeline in-process."""
    from mlrepro.core import manifest
    from mlrepro.pipeline.runner import Runner

    shutil.copytree(EXAMPLES / name, dest, ignore=_IGNORE)
    runner = Runner(manifest.load(dest))
    runner.run(["extract", "features", "select", "train"])
    return dest


def trained_bundle(name: str, base: Path) -> tuple[Path, Path]:
    """(project folder, bundle file) of an example, trained once per session under ``base``."""
    if name not in _CACHE:
        from mlrepro.core import manifest
        from mlrepro.delivery import bundle

        project = train_project(name, base / name)
        path = base / f"{name}.mlrepro"
        bundle.build(manifest.load(project), path)
        _CACHE[name] = (project, path)
    return _CACHE[name]
