"""Fixtures for the reliability tests: small example projects, trained once per session."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_helpers import run_subprocess

from .helpers import check_integrity, cli_env, make_small, output_fingerprints

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
IGNORE = shutil.ignore_patterns(".mlrepro", "mlrepro.lock", "predictions*", "__pycache__")


@pytest.fixture(scope="session")
def trained_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small diabetes project after one complete ``mlrepro run`` (do not modify)."""
    project = tmp_path_factory.mktemp("trained") / "diabetes"
    shutil.copytree(EXAMPLES / "diabetes", project, ignore=IGNORE)
    make_small(project)
    proc = run_subprocess("run", "-q", cwd=project)
    assert proc.returncode == 0, proc.stderr
    return project


@dataclass(frozen=True)
class Traced:
    """A fresh small project (``base``, never run) and the I/O events of its first run."""

    base: Path
    events: list[str]
    reference: dict[str, str]  # output fingerprints of that uninterrupted run


@pytest.fixture(scope="session")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Traced:
    """Run the small project once with the crash hook tracing every I/O event."""
    work = tmp_path_factory.mktemp("traced")
    base, probe = work / "base", work / "probe"
    shutil.copytree(EXAMPLES / "diabetes", base, ignore=IGNORE)
    make_small(base)
    shutil.copytree(base, probe)
    log = work / "trace.log"
    env = cli_env(hook=True, MLREPRO_CRASH="trace", MLREPRO_CRASH_LOG=str(log))
    proc = run_subprocess("run", "-q", cwd=probe, env=env)
    assert proc.returncode == 0, proc.stderr
    return Traced(base, log.read_text().split(), output_fingerprints(check_integrity(probe)))


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
