"""REST serving: ``mlrepro serve`` vs a minimal FastAPI endpoint around the same pipeline.

    python benchmarks/bench_serve.py [--models diabetes,breast_cancer] [--sizes 1,100]
                                     [--seconds 4] [--rounds 3] [--clients 4]
                                     [--workdir DIR]

Both servers run under uvicorn on loopback, one process each, access log off. The baseline
server loads the same bundle and calls ``pipeline.predict`` (and ``predict_proba`` for a
classifier: the same work mlrepro does) with no schema, no validation, no ids and no
fingerprints, on a frame built two ways:

* ``baseline``: ``pandas.DataFrame(records)[columns]``, the usual minimal endpoint;
* ``tuned``: one numpy float64 array (or list) per column, the way mlrepro builds its frame,
  so only validation and the answer's extras separate it from mlrepro.

mlrepro validates every record (generated request model + the CLI's contract) and answers
with ids and fingerprints.

For each model and batch size (records per request), ``--clients`` threads send requests
over keep-alive connections for ``--seconds``; the contenders alternate for ``--rounds``
rounds (so background load hits both alike) and the median round is reported: requests/s,
p50 and p99 latency, and the throughput ratios mlrepro / baseline (target >= 0.8) and
mlrepro / tuned.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import _bench_util as util

BASELINE = textwrap.dedent(
    '''
    """A minimal FastAPI endpoint calling the fitted pipeline directly, no validation."""
    import os

    import numpy as np
    import pandas as pd
    from fastapi import FastAPI

    from mlrepro import load_bundle

    model = load_bundle(os.environ["BENCH_BUNDLE"], check_environment=False)
    pipeline, columns = model.pipeline, list(model.metadata.input_columns)
    proba = model.metadata.task == "classification"
    numeric = {c.name for c in model.columns if c.dtype.startswith(("float", "int"))}
    app = FastAPI()


    def answer(X):
        out = {"predictions": pipeline.predict(X).tolist()}
        if proba:
            out["proba"] = pipeline.predict_proba(X).tolist()
        return out


    @app.post("/predict")
    def predict(records: list[dict]):
        return answer(pd.DataFrame(records)[columns])


    @app.post("/tuned")
    def tuned(records: list[dict]):
        data = {c: [r[c] for r in records] for c in columns}
        return answer(pd.DataFrame({c: np.array(v, "float64") if c in numeric else v
                                    for c, v in data.items()}))
    '''
)


def serve_mlrepro(bundle: Path) -> tuple[object, str]:
    args = [sys.executable, "-m", "mlrepro.cli.main", "serve", str(bundle), "--port", "0"]
    proc, line = util.start([*args, "--log-level", "warning"], "listening on")
    return proc, line.split("listening on ")[1].split()[0]


def serve_baseline(bundle: Path, workdir: Path) -> tuple[object, str]:
    import os
    import socket

    (workdir / "baseline_app.py").write_text(BASELINE)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ["BENCH_BUNDLE"] = str(bundle)
    args = [sys.executable, "-m", "uvicorn", "baseline_app:app", "--app-dir", str(workdir)]
    args += ["--port", str(port), "--log-level", "info", "--no-access-log"]
    proc, _ = util.start(args, "Uvicorn running on")
    return proc, f"http://127.0.0.1:{port}"


def load(base: str, path: str, body: list[dict], seconds: float, clients: int) -> dict[str, float]:
    """Requests/s and latency percentiles (ms) of ``clients`` threads for ``seconds``."""
    import httpx

    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start_at = time.perf_counter() + 0.2
    stop_at = start_at + seconds

    def worker(i: int) -> None:
        with httpx.Client(base_url=base, timeout=60) as client:
            client.post(path, json=body)  # warm the connection
            while time.perf_counter() < start_at:
                time.sleep(0.001)
            while (t0 := time.perf_counter()) < stop_at:
                r = client.post(path, json=body)
                latencies[i].append(time.perf_counter() - t0)
                errors[i] += r.status_code != 200

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [x for lat in latencies for x in lat]
    if sum(errors):
        raise SystemExit(f"{sum(errors)} requests to {base} failed")
    return {
        "rps": len(flat) / seconds,
        "p50": util.percentile(flat, 0.50) * 1000,
        "p99": util.percentile(flat, 0.99) * 1000,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="diabetes,breast_cancer")
    ap.add_argument("--sizes", default="1,100")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-serve-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"# {args.clients} client threads, {args.seconds:g} s per round, median of {args.rounds}")
    print(f"{'model':<14} {'batch':>5}  {'contender':<9} {'req/s':>8} {'p50 ms':>8} "
          f"{'p99 ms':>8}  mlrepro/this")  # fmt: skip
    for name in args.models.split(","):
        bundle = util.bundle(name, workdir)
        records = util.records(name)
        baseline, mlrepro = serve_baseline(bundle, workdir), serve_mlrepro(bundle)
        targets = {
            "baseline": (baseline[1], "/predict"),
            "tuned": (baseline[1], "/tuned"),
            "mlrepro": (mlrepro[1], "/predict"),
        }
        try:
            for size in (int(s) for s in args.sizes.split(",")):
                body = (records * (size // len(records) + 1))[:size]
                runs: dict[str, list[dict[str, float]]] = {k: [] for k in targets}
                for _ in range(args.rounds):
                    for key, (base, path) in targets.items():
                        runs[key].append(load(base, path, body, args.seconds, args.clients))
                med = {
                    k: {m: statistics.median(r[m] for r in v) for m in ("rps", "p50", "p99")}
                    for k, v in runs.items()
                }
                for key, m in med.items():
                    ratio = med["mlrepro"]["rps"] / m["rps"]
                    shown = f"{ratio:12.2f}" if key != "mlrepro" else ""
                    print(f"{name:<14} {size:>5}  {key:<9} {m['rps']:8.1f} {m['p50']:8.2f} "
                          f"{m['p99']:8.2f}  {shown}", flush=True)  # fmt: skip
        finally:
            for proc, _ in (baseline, mlrepro):
                util.stop(proc)


if __name__ == "__main__":
    main()
