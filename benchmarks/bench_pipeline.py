"""Pipeline overhead: `mlrepro run --force` vs a plain scikit-learn script, in one run.

Prints, each measured now on this machine (median of --repeat runs, fresh processes):
  * ratio of `mlrepro run --force` to benchmarks/baseline_sklearn.py (same work; target <= 1.05)
  * the no-op `mlrepro run` time (every stage skipped; no scikit-learn import)
  * the `mlrepro --help` time
With --scale K the example's visits table is replicated K times (new ids, jittered
values) so that the fixed start-up cost (imports) weighs less against real work.
Usage: python benchmarks/bench_pipeline.py [--repeat 5] [--scale 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], cwd: Path, repeat: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def enlarge(db: Path, scale: int) -> None:
    """Replicate the visits table ``scale`` times with new ids and jittered numbers."""
    import sqlite3

    import numpy as np
    import pandas as pd

    con = sqlite3.connect(db)
    df = pd.read_sql("SELECT * FROM visits", con)
    rng = np.random.default_rng(0)
    parts = []
    for k in range(scale):
        part = df.copy()
        part["visit_id"] = part["visit_id"] + k * len(df)
        for col in ["age", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6", "progression"]:
            part[col] = part[col] * (1 + rng.normal(0, 0.01, len(part))) if k else part[col]
        parts.append(part)
    pd.concat(parts).to_sql("visits", con, index=False, if_exists="replace")
    con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--scale", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "diabetes"
        shutil.copytree(ROOT / "examples" / "diabetes" / "data", project / "data")
        shutil.copy(ROOT / "examples" / "diabetes" / "mlrepro.yaml", project)
        if args.scale > 1:
            enlarge(project / "data" / "diabetes.db", args.scale)
        cli = [sys.executable, "-m", "mlrepro.cli.main"]
        subprocess.run(
            [*cli, "run"],
            cwd=project,
            check=True,
            capture_output=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # warm the page cache
        base = timed(
            [sys.executable, str(ROOT / "benchmarks" / "baseline_sklearn.py"), str(project)],
            project,
            args.repeat,
        )
        force = timed([*cli, "run", "--force"], project, args.repeat)
        noop = timed([*cli, "run"], project, args.repeat)
        helptime = timed([*cli, "--help"], project, args.repeat)
    print(f"diabetes example x{args.scale}, median of {args.repeat} runs")
    print(f"plain scikit-learn script : {base:.3f} s")
    print(f"mlrepro run --force       : {force:.3f} s  (ratio {force / base:.2f}x, target <= 1.05)")
    print(f"mlrepro run (no-op)       : {noop:.3f} s  ({noop / base:.2f}x the script)")
    print(f"mlrepro --help            : {helptime:.3f} s")


if __name__ == "__main__":
    main()
