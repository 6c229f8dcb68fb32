"""The one way tests run the CLI: in this process (fast) or in a fresh interpreter.

``run_cli`` calls the real entry point (``mlrepro.cli.main.main``) as the shell would and
returns a ``Result``; what the command printed is also written on to the test's own
stdout/stderr, so ``capsys`` sees it too. ``run_subprocess`` runs ``python -m mlrepro`` in a
new interpreter, for import checks, signals, crashes and concurrency.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Result:
    """Exit code and output of one command; unpacks as ``code, out, err``."""

    code: int
    out: str
    err: str

    def __iter__(self) -> Iterator[Any]:
        return iter((self.code, self.out, self.err))

    def __getitem__(self, index: int) -> Any:
        return (self.code, self.out, self.err)[index]

    # the names of subprocess.CompletedProcess, so either runner's result reads the same
    @property
    def returncode(self) -> int:
        return self.code

    @property
    def stdout(self) -> str:
        return self.out

    @property
    def stderr(self) -> str:
        return self.err

    def json(self) -> Any:
        return json.loads(self.out)


def run_cli(*args: str | Path, cwd: Path | None = None) -> Result:
    """Run ``mlrepro ARGS`` in this process (in ``cwd``); never raises SystemExit."""
    from mlrepro.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    before = os.getcwd()
    code = 0
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main([str(a) for a in args])
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        os.chdir(before)
    sys.stdout.write(out.getvalue())
    sys.stderr.write(err.getvalue())
    return Result(code, out.getvalue(), err.getvalue())


def run_subprocess(
    *args: str | Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    python_args: tuple[str, ...] = (),
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m mlrepro ARGS`` in a fresh interpreter with this checkout importable.

    ``env`` adds to (and overrides) this process's environment.
    """
    full_env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, *python_args, "-m", "mlrepro", *map(str, args)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
