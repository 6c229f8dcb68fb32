"""Fixtures for the report, CI-output, notebook and MLflow tests.

``trained`` runs both examples once per session (diabetes: regression, breast_cancer:
classification) and returns their folders; a test that changes a project works on its own
copy (``project_copy``), never on the shared one.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_IGNORE = (".mlrepro", "mlrepro.lock", ".mlrepro.lock.pid", "predictions*", "__pycache__")


def _train(name: str, root: Path) -> Path:
    from mlrepro.notebook import open_project

    dest = root / name
    shutil.copytree(EXAMPLES_DIR / name, dest, ignore=shutil.ignore_patterns(*EXAMPLE_IGNORE))
    open_project(dest).run()
    return dest


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("trained")
    return {name: _train(name, root) for name in ("diabetes", "breast_cancer")}


@pytest.fixture
def project_copy(trained: dict[str, Path], tmp_path: Path) -> Callable[[str], Path]:
    """A private copy of a trained example (lock and artifacts included)."""

    def copy(name: str) -> Path:
        dest = tmp_path / name
        shutil.copytree(trained[name], dest)
        return dest

    return copy
