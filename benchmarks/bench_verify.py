"""Cost of ``mlrepro verify`` against ``mlrepro run --force`` on the same project.

    python benchmarks/bench_verify.py [--rows 0] [--trees 0] [--repeat 3]

Copies examples/diabetes to a temp folder (with ``--rows N``: replaces its table by N
synthetic visits resampled from it, all before as_of), records it with ``mlrepro run``, then
times ``run --force`` and ``verify`` alternately as real CLI processes and prints the best
and the median of each and their ratios (target: verify <= 1.1x run --force; the best-of
ratio is the robust one on a busy machine). ``--trees`` overrides the
forest size. Both commands re-execute every stage; verify also checks the recorded
artifacts, compares each stage and audits seeds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "diabetes"
IGNORE = (".mlrepro", "mlrepro.lock", ".mlrepro.lock.pid", "predictions*")


def synthesize(db: Path, rows: int) -> None:
    """Replace ``visits`` by ``rows`` rows resampled from it (deterministic, before as_of)."""
    import numpy as np

    with sqlite3.connect(db) as conn:
        cur = conn.execute("SELECT * FROM visits WHERE recorded_at < '2026-06-30'")
        names = [d[0] for d in cur.description]
        base = cur.fetchall()
        rng = np.random.default_rng(0)
        pick = rng.integers(0, len(base), rows)
        start = 1_735_689_600  # 2025-01-01
        step = (1_782_777_600 - start) / rows  # spread up to 2026-06-29
        out = []
        for i, j in enumerate(pick):
            r = list(base[j])
            r[0] = i + 1
            r[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start + i * step))
            for k in range(3, len(r) - 1):  # jitter the features, keep NULLs
                if r[k] is not None:
                    r[k] = round(r[k] * (1 + rng.normal(0, 0.01)), 4)
            out.append(r)
        conn.execute("DELETE FROM visits")
        marks = ", ".join("?" for _ in names)
        conn.executemany(f"INSERT INTO visits VALUES ({marks})", out)
    with sqlite3.connect(db) as conn:
        conn.execute("VACUUM")


def mlrepro(project: Path, *args: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "mlrepro.cli.main", *args, "-q", "-p", str(project)],
        env=env,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"mlrepro {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=0, help="synthetic rows (0: the example)")
    parser.add_argument("--trees", type=int, default=0, help="n_estimators (0: the manifest's)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="mlrepro-bench-") as tmp:
        project = Path(tmp) / "diabetes"
        shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(*IGNORE))
        if args.rows:
            synthesize(project / "data" / "diabetes.db", args.rows)
        if args.trees:
            manifest = project / "mlrepro.yaml"
            text = manifest.read_text().replace("n_estimators: 200", f"n_estimators: {args.trees}")
            manifest.write_text(text)
        mlrepro(project, "run")  # record (also warms the OS file cache)
        runs, verifies = [], []
        for i in range(args.repeat):  # interleaved, alternating which goes first
            pair = [("run", "--force"), ("verify",)]
            for cmd in pair if i % 2 == 0 else pair[::-1]:
                (runs if cmd[0] == "run" else verifies).append(mlrepro(project, *cmd))
        rows = args.rows or "398 (example)"
        print(f"project: diabetes, rows: {rows}, trees: {args.trees or 200}, repeat: {args.repeat}")
        for label, times in (("run --force", runs), ("verify", verifies)):
            each = ", ".join(f"{t:.2f}" for t in times)
            best, median = min(times), statistics.median(times)
            print(f"{label:<12} best {best:6.2f} s  median {median:6.2f} s  ({each})")
        best = min(verifies) / min(runs)
        median = statistics.median(verifies) / statistics.median(runs)
        print(f"verify / run --force: best {best:.2f}x, median {median:.2f}x (target <= 1.1x)")


if __name__ == "__main__":
    main()
