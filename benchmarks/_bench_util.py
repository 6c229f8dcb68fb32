"""Helpers for the online benchmarks: example bundles, a CLI process, percentiles."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = ("diabetes", "breast_cancer")
sys.path.insert(0, str(REPO))  # this checkout's mlrepro, like the processes started here


def env() -> dict[str, str]:
    out = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    out.setdefault("OMP_NUM_THREADS", "1")  # same threading for every contender
    return out


def bundle(name: str, workdir: Path) -> Path:
    """The example ``name`` trained and bundled in ``workdir`` (cached there)."""
    out = workdir / f"{name}.mlrepro"
    if out.exists():
        return out
    project = workdir / name
    shutil.rmtree(project, ignore_errors=True)
    shutil.copytree(REPO / "examples" / name, project)
    for args in (["run", "-q"], ["bundle", "-q", "-o", str(out)]):
        subprocess.run(
            [sys.executable, "-m", "mlrepro.cli.main", *args], cwd=project, env=env(), check=True
        )
    return out


def records(name: str) -> list[dict]:
    import json

    import pandas as pd

    csv = {"diabetes": "new_visits.csv", "breast_cancer": "new_biopsies.csv"}[name]
    frame = pd.read_csv(REPO / "examples" / name / "data" / csv)
    return json.loads(frame.to_json(orient="records"))


def start(args: list[str], ready: str, timeout: float = 120) -> tuple[subprocess.Popen, str]:
    """Start a process and return it with the first stderr line containing ``ready``."""
    proc = subprocess.Popen(args, env=env(), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if ready in line:  # keep draining stderr so the process never blocks on it
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, line
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise SystemExit(f"{args[:4]} did not print {ready!r}:\n{''.join(seen[-20:])}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
