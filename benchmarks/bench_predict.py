"""Batch prediction at scale: mlrepro predict vs calling the pipeline directly.

    python benchmarks/bench_predict.py [--rows 10000000] [--sizes 1000000,3000000]
                                       [--model forest|linear] [--dask-workers 2]
                                       [--workdir DIR] [--skip-dask] [--repeat 1]

Trains a small synthetic project (20 input columns: 18 numeric, 1 categorical, an id),
bundles it, writes parquet inputs of each size (row groups of 1M rows, cached in
--workdir) and measures, each in a fresh subprocess:

* direct: ``pipeline.predict(frame)`` on the whole input already in memory (the baseline;
  reading the file is not timed);
* mlrepro: ``mlrepro predict --bundle ... --input in.parquet --output out.parquet``, the
  whole command (start-up, bundle verification, reading, validation, writing);
* dask: the same command with ``--engine dask --workers N`` (a local cluster).

It prints wall times, rows/s, throughput ratios (direct / mlrepro; >= 0.9 is the target)
and peak RSS: exact for single processes (``wait4``), sampled over the process tree for
the Dask run (client + workers).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
NUMERIC = 18
CATEGORIES = ("a", "b", "c", "d")
TRAIN_ROWS = 20_000
ROW_GROUP = 1_000_000

MODELS = {  # estimator, params (YAML flow mapping)
    "forest": ("sklearn.ensemble.RandomForestRegressor", "{n_estimators: 50, max_depth: 10}"),
    "linear": ("sklearn.linear_model.Ridge", "{alpha: 1.0}"),
}


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.setdefault("OMP_NUM_THREADS", "1")  # same threading for every contender
    return env


def frame(rows: int, seed: int, start: int = 0):  # noqa: ANN201 - a DataFrame
    import pandas as pd

    rng = np.random.default_rng(seed)
    data = {"row_id": np.arange(start, start + rows, dtype=np.int64)}
    for i in range(NUMERIC):
        data[f"x{i}"] = rng.standard_normal(rows)
    data["cat"] = pd.array(rng.choice(CATEGORIES, rows), dtype="str")
    return pd.DataFrame(data)


def make_project(root: Path, model: str) -> Path:
    """A trained, bundled project; returns the bundle path."""
    bundle = root / f"bench-{model}.mlrepro"
    if bundle.exists():
        return bundle
    project = root / f"project-{model}"
    (project / "data").mkdir(parents=True, exist_ok=True)
    df = frame(TRAIN_ROWS, seed=1)
    weights = np.linspace(-1, 1, NUMERIC)
    df["target"] = df[[f"x{i}" for i in range(NUMERIC)]].to_numpy() @ weights
    df["target"] += np.sin(3 * df["x0"]) + (df["cat"] == "a") * 2.0
    df["ts"] = "2026-01-01T00:00:00"
    db = project / "data" / "train.db"
    db.unlink(missing_ok=True)
    with sqlite3.connect(db) as conn:
        df.to_sql("rows", conn, index=False)
    estimator, params = MODELS[model]
    (project / "mlrepro.yaml").write_text(
        textwrap.dedent(
            f"""\
            name: bench-{model}
            seed: 7
            source:
              url: sqlite:///data/train.db
              query: SELECT * FROM rows
              timestamp_column: ts
              as_of: "2026-06-30T00:00:00Z"
              order_by: [row_id]
            target: target
            features:
              - name: onehot
                transformer: sklearn.preprocessing.OneHotEncoder
                params: {{handle_unknown: error, sparse_output: false}}
                columns: [cat]
              - name: scale
                transformer: sklearn.preprocessing.StandardScaler
                columns: numeric
            model:
              estimator: {estimator}
              params: {params}
              test_size: 0.2
            """
        )
    )
    cli = [sys.executable, "-m", "mlrepro.cli.main"]
    subprocess.run([*cli, "run", "-q", "-p", str(project)], check=True, env=_env())
    subprocess.run(
        [*cli, "bundle", "-q", "-p", str(project), "-o", str(bundle)], check=True, env=_env()
    )
    return bundle


def make_input(root: Path, rows: int) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = root / f"input-{rows}.parquet"
    if path.exists():
        return path
    tmp = path.with_suffix(".tmp")
    writer = None
    for start in range(0, rows, ROW_GROUP):
        n = min(ROW_GROUP, rows - start)
        table = pa.Table.from_pandas(frame(n, seed=start + 2, start=start), preserve_index=False)
        writer = writer or pq.ParquetWriter(tmp, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()
    tmp.replace(path)
    return path


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def measure(cmd: list[str], sample_tree: bool = False) -> tuple[float, int, str, float]:
    """(wall seconds, peak RSS bytes, stdout, CPU seconds) of a command run to completion."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, text=True)
    peak_tree = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.1):
            peak_tree[0] = max(peak_tree[0], _tree_rss(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    if sample_tree:
        sampler.start()
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    done.set()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}")
    peak = usage.ru_maxrss * 1024  # kilobytes on Linux
    return seconds, max(peak, peak_tree[0]), out, usage.ru_utime + usage.ru_stime


DIRECT = """
import json, sys, time
import pandas as pd
from mlrepro import load_bundle
pipeline = load_bundle(sys.argv[1], check_environment=False).pipeline
X = pd.read_parquet(sys.argv[2])
start, cpu = time.perf_counter(), time.process_time()
pipeline.predict(X)
print(json.dumps({"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu}))
"""


def gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="the large input")
    parser.add_argument("--sizes", default="1000000,3000000", help="smaller inputs for RSS")
    parser.add_argument("--model", choices=sorted(MODELS), default="forest")
    parser.add_argument("--dask-workers", type=int, default=2)
    parser.add_argument("--skip-dask", action="store_true")
    parser.add_argument("--repeat", type=int, default=1, help="best of N for the large input")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)

    root = args.workdir or Path(tempfile.gettempdir()) / "mlrepro-bench-predict"
    root.mkdir(parents=True, exist_ok=True)
    sizes = sorted({int(s) for s in args.sizes.split(",") if s} | {args.rows})
    sizes = [s for s in sizes if s <= args.rows]
    bundle = make_project(root, args.model)
    print(f"model: {' '.join(MODELS[args.model])}, bundle {bundle}")
    cli = [sys.executable, "-m", "mlrepro.cli.main", "predict", "--bundle", str(bundle), "-q"]
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    results = []
    for rows in sizes:
        path = make_input(root, rows)
        out = root / f"out-{rows}.parquet"
        runs = args.repeat if rows == args.rows else 1
        cmd = [*cli, "--input", str(path), "--output", str(out)]
        t, rss, _, cpu = min((measure(cmd) for _ in range(runs)), key=lambda r: r[0])
        results.append((rows, t, rss, cpu))
        print(
            f"mlrepro  {rows:>11,} rows  {t:8.1f} s  {rows / t:>10,.0f} rows/s  "
            f"peak {gib(rss)}  cpu {cpu:.1f} s"
        )

    rows = args.rows
    path = root / f"input-{rows}.parquet"
    cmd = [sys.executable, "-c", DIRECT, str(bundle), str(path)]
    runs = [measure(cmd) for _ in range(args.repeat)]
    direct_rss = max(r[1] for r in runs)
    direct, direct_cpu = min((json.loads(r[2])["seconds"], json.loads(r[2])["cpu"]) for r in runs)
    mlrepro_t, mlrepro_cpu = results[-1][1], results[-1][3]
    print(f"direct   {rows:>11,} rows  {direct:8.1f} s  {rows / direct:>10,.0f} rows/s  ", end="")
    print(f"peak {gib(direct_rss)}  cpu {direct_cpu:.1f} s (input in memory; predict timed)")
    print(f"throughput ratio mlrepro/direct: {direct / mlrepro_t:.2f}  (target >= 0.9)")
    print(
        f"CPU ratio direct/mlrepro (all threads, start-up included): {direct_cpu / mlrepro_cpu:.2f}"
    )
    print("peak RSS by input size: " + ", ".join(f"{r:,} -> {gib(m)}" for r, _, m, _ in results))
    if not args.skip_dask:
        out_path = root / f"out-dask-{rows}.parquet"
        cmd = [*cli, "--input", str(path), "--output", str(out_path), "--engine", "dask"]
        cmd += ["--workers", str(args.dask_workers)]
        t, rss, _, _ = measure(cmd, sample_tree=True)
        print(
            f"dask     {rows:>11,} rows  {t:8.1f} s  {rows / t:>10,.0f} rows/s  "
            f"peak {gib(rss)} (client + {args.dask_workers} workers, sampled)"
        )
        print(f"throughput ratio dask/direct: {direct / t:.2f}, dask/mlrepro local: ", end="")
        print(f"{mlrepro_t / t:.2f}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
