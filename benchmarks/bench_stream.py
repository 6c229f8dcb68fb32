"""Streaming: ``mlrepro stream`` messages/s end to end through Redis, batches of 1 and 100.

    python benchmarks/bench_stream.py [--redis URL] [--models diabetes,breast_cancer]
                                      [--batches 1,100] [--messages 600,20000]
                                      [--workdir DIR]

Without ``--redis`` a throwaway ``redis-server`` (no persistence) is started on a free
loopback port. For each model and batch size the input stream is filled first, then one
consumer process starts; the clock runs from its "reading" line until every message has
its output (or dead letter), so start-up and bundle verification are not counted. Each
message is one JSON record; the output carries the input id and the model fingerprint.

``--models tiny`` is the diabetes example with a depth-2 decision tree in place of the forest:
the model costs little there, so it shows what the stream itself costs. ``excl. model`` is
1 / (1/stream - 1/direct): the rate if the pipeline took no time at all.

For reference, ``direct`` is the same records through ``pipeline.predict`` (and
``predict_proba`` for a classifier) in batches of the same size, in one process, with no
Redis, no validation and no writes: the ratio stream / direct is what delivery costs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import _bench_util as util


def start_redis(workdir: Path) -> tuple[subprocess.Popen, str]:
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server not found: apt-get install -y redis-server, or --redis URL")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
    args += ["--appendonly", "no", "--dir", str(workdir)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    return proc, f"redis://127.0.0.1:{port}/0"


def direct(bundle: Path, records: list[dict], batch: int, n: int) -> float:
    """Messages/s of the bare pipeline on the same batches (no Redis, no validation)."""
    import pandas as pd

    from mlrepro import load_bundle

    model = load_bundle(bundle, check_environment=False)
    cols, proba = list(model.metadata.input_columns), model.metadata.task == "classification"
    batches = [(records * (batch // len(records) + 1))[:batch] for _ in range(max(1, n // batch))]
    t0 = time.perf_counter()
    for b in batches:
        X = pd.DataFrame(b)[cols]
        model.pipeline.predict(X)
        if proba:
            model.pipeline.predict_proba(X)
    return len(batches) * batch / (time.perf_counter() - t0)


def tiny_bundle(workdir: Path) -> Path:
    """The diabetes example with a depth-2 decision tree (the model costs next to nothing)."""
    import yaml

    out = workdir / "tiny.mlrepro"
    if out.exists():
        return out
    project = workdir / "tiny"
    shutil.rmtree(project, ignore_errors=True)
    shutil.copytree(util.REPO / "examples" / "diabetes", project)
    manifest = yaml.safe_load((project / "mlrepro.yaml").read_text())
    manifest["model"]["estimator"] = "sklearn.tree.DecisionTreeRegressor"
    manifest["model"]["params"] = {"max_depth": 2}
    (project / "mlrepro.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    for args in (["run", "-q"], ["bundle", "-q", "-o", str(out)]):
        cmd = [sys.executable, "-m", "mlrepro.cli.main", *args]
        subprocess.run(cmd, cwd=project, env=util.env(), check=True)
    return out


def run_stream(
    bundle: Path, url: str, records: list[dict], batch: int, n: int, extra: tuple[str, ...] = ()
) -> float:
    import redis

    client = redis.Redis.from_url(url)
    tag = uuid.uuid4().hex[:8]
    streams = {"input": f"b{tag}:in", "output": f"b{tag}:out"}
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        pipe.xadd(streams["input"], {"record": json.dumps(records[i % len(records)])})
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    args = [sys.executable, "-m", "mlrepro.cli.main", "stream", str(bundle), "--redis", url]
    args += ["--input", streams["input"], "--output", streams["output"], "--batch", str(batch)]
    args += list(extra)
    proc, _ = util.start(args, "reading")
    try:
        t0 = time.perf_counter()
        dead = f"{streams['input']}:dead"
        while client.xlen(streams["output"]) + client.xlen(dead) < n:
            time.sleep(0.005)
            if time.perf_counter() - t0 > 600:
                raise SystemExit("the consumer did not finish in 10 minutes")
        elapsed = time.perf_counter() - t0
    finally:
        util.stop(proc)
        client.delete(*streams.values(), f"{streams['input']}:dead")
    return n / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--redis", default=None)
    ap.add_argument("--models", default="diabetes,breast_cancer")
    ap.add_argument("--batches", default="1,100")
    ap.add_argument("--messages", default="600,20000", help="messages per batch size")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-stream-"))
    workdir.mkdir(parents=True, exist_ok=True)
    server, url = (None, args.redis) if args.redis else start_redis(workdir)
    sizes = [int(b) for b in args.batches.split(",")]
    counts = [int(m) for m in args.messages.split(",")]
    try:
        print(f"{'model':<14} {'batch':>5} {'messages':>8} {'stream msg/s':>12} "
              f"{'direct msg/s':>12} {'ratio':>6} {'excl. model':>11}")  # fmt: skip
        for name in args.models.split(","):
            if name == "tiny":
                bundle, records = tiny_bundle(workdir), util.records("diabetes")
            else:
                bundle, records = util.bundle(name, workdir), util.records(name)
            for batch, n in zip(sizes, counts, strict=True):
                rate = run_stream(bundle, url, records, batch, n)
                ref = direct(bundle, records, batch, min(n, 5000))
                spare = 1 / rate - 1 / ref  # seconds per message beyond the pipeline's
                excl = f"{1 / spare:11.0f}" if spare > 0 else f"{'-':>11}"
                print(f"{name:<14} {batch:>5} {n:>8} {rate:12.0f} {ref:12.0f} "
                      f"{rate / ref:6.2f} {excl}", flush=True)  # fmt: skip
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)


if __name__ == "__main__":
    main()
