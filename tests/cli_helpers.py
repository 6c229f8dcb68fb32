"""Run the real CLI entry point in-process and capture exit code and output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def run_cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> Result:
    """Call ``mlrepro.cli.main`` like the shell would; never raises SystemExit."""
    from mlrepro.cli.main import main

    capsys.readouterr()
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def run_subprocess(
    *args: str | Path,
    cwd: Path | None = None,
    env: dict | None = None,
    python_args: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m mlrepro.cli.main`` in a fresh interpreter (import checks, signals)."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, *python_args, "-m", "mlrepro.cli.main", *map(str, args)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
