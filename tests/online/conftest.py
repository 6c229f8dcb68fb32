"""Fixtures for ``mlrepro serve`` / ``mlrepro stream`` tests.

``bundles`` trains both examples once per session and bundles them (diabetes: regression
with an imputed nullable column and a categorical one; breast_cancer: classification).
``Proc`` runs ``python -m mlrepro.cli.main ...`` as a real process with this checkout first on
``PYTHONPATH`` and collects its stderr lines, so tests can wait for a line.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples"


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep
    )
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Proc:
    """A ``mlrepro`` CLI process; stderr lines are collected as they arrive."""

    def __init__(self, *args: str, cwd: Path | None = None) -> None:
        self.args = args
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "mlrepro.cli.main", *args],
            cwd=cwd,
            env=cli_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float = 60) -> str:
        """The first stderr line containing ``text``; fails if the process ends first."""
        deadline = time.monotonic() + timeout
        for line in self.lines:
            if text in line:
                return line
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            self.lines.append(line)
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r} from mlrepro {self.args}:\n{self.stderr()}")

    def stderr(self) -> str:
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        return "\n".join(self.lines)

    def finish(self, timeout: float = 60) -> int:
        """Wait for the exit code (and all of stderr)."""
        rc = self.popen.wait(timeout=timeout)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            self.lines.append(line)
        return rc

    def signal(self, sig: int) -> None:
        self.popen.send_signal(sig)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        for stream in (self.popen.stdout, self.popen.stderr):
            if stream is not None:
                stream.close()


def _train_and_bundle(name: str, root: Path) -> Path:
    from mlrepro.core import manifest as manifest_mod
    from mlrepro.delivery import bundle as fmt
    from mlrepro.pipeline.runner import Runner

    project = root / name
    shutil.copytree(EXAMPLES / name, project, ignore=shutil.ignore_patterns(".mlrepro", "*.lock*"))
    m = manifest_mod.load(project)
    runner = Runner(m)
    runner.run(["extract", "features", "select", "train"])
    out = root / f"{name}.mlrepro"
    fmt.build(m, out)
    return out


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{"diabetes": path, "breast_cancer": path} of freshly trained bundles."""
    root = tmp_path_factory.mktemp("bundles")
    return {name: _train_and_bundle(name, root) for name in ("diabetes", "breast_cancer")}


@pytest.fixture(scope="session")
def new_visits() -> list[dict]:
    """The diabetes example's 20 new rows as JSON records (one has a null ``bp``)."""
    import pandas as pd

    frame = pd.read_csv(EXAMPLES / "diabetes" / "data" / "new_visits.csv")
    return json.loads(frame.to_json(orient="records"))


@pytest.fixture(scope="session")
def new_biopsies() -> list[dict]:
    import pandas as pd

    frame = pd.read_csv(EXAMPLES / "breast_cancer" / "data" / "new_biopsies.csv")
    return json.loads(frame.to_json(orient="records"))


def tamper(src: Path, dest: Path) -> Path:
    """A copy of a bundle with one letter of metadata.json changed (same size, same index)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "metadata.json":
                at = data.index(b'"task": "') + len(b'"task": "')
                data = data[:at] + data[at : at + 1].upper() + data[at + 1 :]
            zout.writestr(info, data)
    return dest


@pytest.fixture
def streams(redis_url: str) -> Iterator[dict[str, str]]:
    """Unique stream names for one test (deleted afterwards) and a client."""
    import redis

    tag = uuid.uuid4().hex[:10]
    names = {"input": f"t{tag}:in", "output": f"t{tag}:out", "dead": f"t{tag}:in:dead"}
    client = redis.Redis.from_url(redis_url)
    try:
        yield names
    finally:
        client.delete(*names.values())
        client.close()
