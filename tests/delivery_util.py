"""Helpers shared by the delivery tests (bundle, batch, dask).

Training an example takes a few seconds, so ``trained_bundle`` trains each example once per
test session (in a session temp folder) and hands out the same bundle to every test.
"""

from __future__ import annotations

import shutil
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = REPO_ROOT / "examples"
_IGNORE = shutil.ignore_patterns(".mlrepro", "mlrepro.lock", ".mlrepro.lock.pid", "predictions*")
_CACHE: dict[str, tuple[Path, Path]] = {}


def train_project(name: str, dest: Path) -> Path:
    """Copy ``examples/<name>`` to ``dest`` and run its pipeline in-process."""
    from mlrepro.core import manifest
    from mlrepro.pipeline.runner import Runner

    shutil.copytree(EXAMPLES / name, dest, ignore=_IGNORE)
    runner = Runner(manifest.load(dest))
    runner.run()  # every stage of the manifest (a stage never run fails verify)
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
