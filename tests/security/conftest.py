"""The hostile-project fixture: a trained project an attacker can rewrite, and a decoy.

``hostile`` is a fresh copy of the small diabetes project after a complete ``mlrepro run``
(copied from one session-wide training), next to a ``decoy`` file outside the project that
an attack tries to read, link, delete or overwrite. Helpers edit its lock the way an
attacker would: with hashes that match, so only path confinement stops them.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import run_subprocess
from reliability.helpers import make_small

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
IGNORE = shutil.ignore_patterns(".mlrepro", "mlrepro.lock", "predictions*", "__pycache__")
DECOY_TEXT = "decoy: an attack must leave this file as it is\n"


@dataclass
class Hostile:
    """A trained project (``root``) under attack and a decoy file outside it."""

    root: Path
    decoy: Path
    outside: Path  # the folder holding root and decoy: nothing new may appear here

    @property
    def lock_path(self) -> Path:
        return self.root / "mlrepro.lock"

    def lock(self) -> dict[str, Any]:
        return json.loads(self.lock_path.read_text())

    def write_lock(self, data: dict[str, Any]) -> None:
        self.lock_path.write_text(json.dumps(data, indent=2, sort_keys=True))

    def point(self, stage: str, output: str, path: str, target: Path | None = None) -> None:
        """Make the lock record ``stage.output`` name ``path``, with ``target``'s hash."""
        from mlrepro.fingerprint import hash_file

        lock = self.lock()
        rec = lock["stages"][stage]["outputs"][output]
        rec["path"] = path
        rec["file_hash"] = hash_file(target or self.decoy)
        self.write_lock(lock)

    def decoy_intact(self) -> bool:
        return self.decoy.is_file() and self.decoy.read_text() == DECOY_TEXT

    def outside_entries(self) -> set[str]:
        return {p.name for p in self.outside.iterdir()}


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small diabetes project after one ``mlrepro run`` (never modified: copy it)."""
    project = tmp_path_factory.mktemp("security-trained") / "diabetes"
    shutil.copytree(EXAMPLES / "diabetes", project, ignore=IGNORE)
    make_small(project)
    proc = run_subprocess("run", "-q", cwd=project)
    assert proc.returncode == 0, proc.stderr
    return project


@pytest.fixture
def hostile(trained_project: Path, tmp_path: Path) -> Hostile:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = outside / "project"
    shutil.copytree(trained_project, root, symlinks=True)
    decoy = outside / "decoy.yaml"
    decoy.write_text(DECOY_TEXT)
    return Hostile(root, decoy, outside)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Any]:
    """Run the CLI in-process (``tests/cli_helpers.py``), ``-p`` added by the caller."""
    from cli_helpers import run_cli as run

    return lambda *args: run(*args)
