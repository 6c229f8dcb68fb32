"""Fixtures for the reliability tests: small example projects, trained once per session."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from .helpers import make_small, run_cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
IGNORE = shutil.ignore_patterns(".mlrepro", "mlrepro.lock", "predictions*", "__pycache__")


@pytest.fixture(scope="session")
def trained_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small diabetes project after one complete ``mlrepro run`` (do not modify)."""
    project = tmp_path_factory.mktemp("trained") / "diabetes"
    shutil.copytree(EXAMPLES / "diabetes", project, ignore=IGNORE)
    make_small(project)
    proc = run_cli(["run", "-q"], project)
    assert proc.returncode == 0, proc.stderr
    return project


@pytest.fixture
def small_project(copy_example: Callable[..., Path]) -> Path:
    """A fresh copy of the small diabetes project, never run."""
    return make_small(copy_example("diabetes"))


@pytest.fixture
def trained_copy(trained_small: Path, tmp_path: Path) -> Path:
    """A private copy of the trained small project."""
    dest = tmp_path / "trained"
    shutil.copytree(trained_small, dest)
    return dest
