"""The accelerated runtime online: ``serve`` one record per request, ``stream`` batch 1.

    python benchmarks/bench_accelerate_online.py [--seconds 4] [--rounds 3]
                                                 [--messages 2000] [--redis URL] [--no-stream]

Trains the diabetes example (200-tree forest behind imputer, one-hot and scaler steps) and
bundles it with ``--accelerate``. Both contenders use that one bundle: today's path is
``--runtime sklearn`` (the fitted scikit-learn pipeline), the new one the default
(``--runtime auto``: the compiled program). Same process model, same validation, same
answer; only the runtime differs.

serve: one client thread, one record per request over a keep-alive connection, for
``--seconds``; the two servers alternate for ``--rounds`` rounds and the median round's p50
and p99 are reported, with the ratio accelerated / sklearn (target: p50 <= 0.2x).

stream: ``--messages`` single-record messages through Redis at ``--batch 1``, messages/s
from the consumer's "reading" line to the last output, for each runtime (target >= 10x).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import _bench_util as util
from bench_serve import load
from bench_stream import run_stream, start_redis


def accelerated_bundle(workdir: Path) -> Path:
    plain = util.bundle("diabetes", workdir)  # trains the example in workdir/diabetes
    out = workdir / "diabetes-accelerated.mlrepro"
    if not out.exists():
        args = [sys.executable, "-m", "mlrepro.cli.main", "bundle", "-q", "--accelerate"]
        subprocess.run([*args, "-o", str(out)], cwd=plain.parent / "diabetes", env=util.env(),
                       check=True)  # fmt: skip
    return out


def serve(bundle: Path, runtime: str) -> tuple[object, str]:
    args = [sys.executable, "-m", "mlrepro.cli.main", "serve", str(bundle), "--port", "0"]
    proc, line = util.start([*args, "--runtime", runtime, "--log-level", "warning"], "listening")
    return proc, line.split("listening on ")[1].split()[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--redis", default=None)
    ap.add_argument("--no-stream", action="store_true")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-accel-"))
    workdir.mkdir(parents=True, exist_ok=True)
    bundle = accelerated_bundle(workdir)
    body = util.records("diabetes")[:1]
    servers = {r: serve(bundle, r) for r in ("sklearn", "auto")}
    runs: dict[str, list[dict[str, float]]] = {r: [] for r in servers}
    try:
        for _ in range(args.rounds):
            for runtime, (_, base) in servers.items():
                runs[runtime].append(load(base, "/predict", body, args.seconds, 1))
    finally:
        for proc, _ in servers.values():
            util.stop(proc)
    med = {r: {m: statistics.median(x[m] for x in v) for m in ("rps", "p50", "p99")}
           for r, v in runs.items()}  # fmt: skip
    print(f"# serve, diabetes forest, 1 record/request, 1 client, median of {args.rounds}")
    for runtime, m in med.items():
        print(f"serve  {runtime:<8} req/s {m['rps']:8.1f}  p50 {m['p50']:7.2f} ms  "
              f"p99 {m['p99']:7.2f} ms")  # fmt: skip
    print(f"serve  p50 ratio accelerated/sklearn: {med['auto']['p50'] / med['sklearn']['p50']:.3f}"
          f"  (target <= 0.2)")  # fmt: skip
    if args.no_stream:
        return
    server, url = (None, args.redis) if args.redis else start_redis(workdir)
    try:
        records = util.records("diabetes")
        rates = {r: run_stream(bundle, url, records, 1, args.messages, ("--runtime", r))
                 for r in ("sklearn", "auto")}  # fmt: skip
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
    for runtime, rate in rates.items():
        print(f"stream {runtime:<8} batch 1: {rate:8.0f} msg/s")
    print(f"stream msg/s ratio accelerated/sklearn: {rates['auto'] / rates['sklearn']:.2f}"
          f"  (target >= 10)")  # fmt: skip


if __name__ == "__main__":
    main()
