"""Hot swap: ``mlrepro serve --registry --alias`` while the alias moves, vs no moves.

    python benchmarks/bench_swap.py [--seconds 12] [--swaps 4] [--clients 4] [--poll 1.0]
                                    [--rounds 2] [--workdir DIR] [--registry URL]

Two diabetes models (seeds 42 and 43, same input contract) are published to a folder
registry (or ``--registry URL``, e.g. a PostgreSQL database, where the server also wakes on
``NOTIFY``); one server follows the alias. Each round has two phases of ``--seconds``, with
``--clients`` threads sending 5-record requests over keep-alive connections:

* ``steady``: the alias does not move (the baseline, measured in the same run);
* ``swapping``: the alias alternates between the two models ``--swaps`` times.

Reported: p50/p99 latency of both phases and the ratio p99 swapping / p99 steady; the swap
time, from the moment ``mlrepro publish`` returned (the alias moved) to the first answer
carrying the new model's fingerprint, split into the poll wait and the server's own
fetch + verify + contract check + warm-up (``/metadata`` ``last_swap.seconds``); and, for
scale, the time a restart takes (``mlrepro serve FILE`` started -> first answer).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import _bench_util as util


def model(workdir: Path, seed: int) -> Path:
    out = workdir / f"diabetes-{seed}.mlrepro"
    if out.exists():
        return out
    project = workdir / f"diabetes-{seed}"
    shutil.rmtree(project, ignore_errors=True)
    shutil.copytree(util.REPO / "examples" / "diabetes", project)
    manifest = project / "mlrepro.yaml"
    manifest.write_text(manifest.read_text().replace("seed: 42", f"seed: {seed}", 1))
    for args in (["run", "-q"], ["bundle", "-q", "-o", str(out)]):
        subprocess.run(
            [sys.executable, "-m", "mlrepro.cli.main", *args],
            cwd=project,
            env=util.env(),
            check=True,
        )
    return out


def publish(registry: Path | str, bundle: Path) -> float:
    """Move the alias; returns the monotonic time the move was done."""
    subprocess.run(
        [sys.executable, "-m", "mlrepro.cli.main", "publish", str(bundle), "--registry",
         str(registry), "--alias", "prod", "-q"],
        env=util.env(), check=True,
    )  # fmt: skip
    return time.monotonic()


def fingerprint(bundle: Path) -> str:
    from mlrepro import load_bundle

    return load_bundle(bundle, check_environment=False).model_fingerprint


class Load:
    """``clients`` threads posting ``body``; every answer kept as (sent, received, fp)."""

    def __init__(self, base: str, body: list[dict], clients: int) -> None:
        import httpx

        self.answers: list[tuple[float, float, str]] = []
        self.errors = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()

        def worker() -> None:
            with httpx.Client(base_url=base, timeout=60) as http:
                while not self.stop.is_set():
                    sent = time.monotonic()
                    r = http.post("/predict", json=body)
                    got = time.monotonic()
                    with self.lock:
                        if r.status_code != 200:
                            self.errors += 1
                        else:
                            self.answers.append((sent, got, r.json()["model_fingerprint"]))

        self.threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
        for t in self.threads:
            t.start()

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)


def latencies(answers: list[tuple[float, float, str]]) -> dict[str, float]:
    lat = [got - sent for sent, got, _ in answers]
    return {
        "n": len(lat),
        "p50": util.percentile(lat, 0.50) * 1000,
        "p99": util.percentile(lat, 0.99) * 1000,
    }


def restart_time(bundle: Path, body: list[dict]) -> float:
    import httpx

    started = time.monotonic()
    args = [sys.executable, "-m", "mlrepro.cli.main", "serve", str(bundle), "--port", "0"]
    proc, line = util.start([*args, "--log-level", "warning"], "listening on")
    base = line.split("listening on ")[1].split()[0]
    try:
        while True:
            try:
                if httpx.post(f"{base}/predict", json=body, timeout=30).status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                time.sleep(0.01)
    finally:
        util.stop(proc)


def main() -> None:
    import httpx

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--swaps", type=int, default=4)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--poll", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--registry", default=None, help="registry URL (default: a new folder)")
    args = ap.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mlrepro-bench-swap-"))
    workdir.mkdir(parents=True, exist_ok=True)
    bundles = [model(workdir, 42), model(workdir, 43)]
    fps = [fingerprint(b) for b in bundles]
    body = util.records("diabetes")[:5]
    registry: Path | str = args.registry or workdir / "registry"
    if args.registry is None:
        shutil.rmtree(registry, ignore_errors=True)
    publish(registry, bundles[0])
    cmd = [sys.executable, "-m", "mlrepro.cli.main", "serve", "--registry", str(registry)]
    cmd += ["--alias", "prod", "--poll", str(args.poll), "--port", "0", "--log-level", "warning"]
    proc, line = util.start(cmd, "listening on")
    base = line.split("listening on ")[1].split()[0]
    steady, swapping, swap_times, server_times, errors = [], [], [], [], 0
    current, watch = 0, "?"
    try:
        for _ in range(3):  # warm the server up
            httpx.post(f"{base}/predict", json=body, timeout=30)
        for _ in range(args.rounds):
            load = Load(base, body, args.clients)
            time.sleep(args.seconds)
            load.finish()
            steady.append(latencies(load.answers))
            errors += load.errors

            load = Load(base, body, args.clients)
            gap = args.seconds / (args.swaps + 1)
            moves = []
            for _ in range(args.swaps):
                time.sleep(gap)
                current = 1 - current
                moves.append((publish(registry, bundles[current]), fps[current]))
                # wait for the swap before the next move (so each is measured alone)
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    with load.lock:
                        if any(
                            a[2] == fps[current] and a[1] >= moves[-1][0]
                            for a in load.answers[-50:]
                        ):
                            break
                    time.sleep(0.005)
                meta = httpx.get(f"{base}/metadata", timeout=30).json()["registry"]
                server_times.append(meta["last_swap"]["seconds"])
                watch = meta["watch"]
            time.sleep(gap)
            load.finish()
            swapping.append(latencies(load.answers))
            errors += load.errors
            for moved, fp in moves:
                first = min(
                    (got for _, got, f in load.answers if f == fp and got >= moved), default=None
                )
                if first is not None:
                    swap_times.append(first - moved)
    finally:
        util.stop(proc)
    restart = statistics.median(restart_time(bundles[0], body) for _ in range(2))

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    print(f"clients {args.clients}, {args.seconds:g} s per phase, {args.rounds} round(s), "
          f"{args.swaps} swaps per round, --poll {args.poll:g}, watch {watch}")  # fmt: skip
    print(f"steady    p50 {med(steady, 'p50'):7.1f} ms  p99 {med(steady, 'p99'):7.1f} ms  "
          f"({sum(r['n'] for r in steady)} requests)")  # fmt: skip
    print(f"swapping  p50 {med(swapping, 'p50'):7.1f} ms  p99 {med(swapping, 'p99'):7.1f} ms  "
          f"({sum(r['n'] for r in swapping)} requests)")  # fmt: skip
    print(f"ratio p99 swapping / steady: {med(swapping, 'p99') / med(steady, 'p99'):.2f}")
    print(f"non-2xx answers: {errors}")
    swap = statistics.median(swap_times)
    print(f"swap time (alias moved -> first answer from the new model): median {swap:.3f} s, "
          f"max {max(swap_times):.3f} s over {len(swap_times)} swaps")  # fmt: skip
    print(f"  of which the server's fetch+verify+check+warm-up: median "
          f"{statistics.median(server_times):.3f} s (the rest: waiting for the poll)")  # fmt: skip
    print(f"restart instead (serve FILE started -> first answer): {restart:.2f} s; "
          f"ratio swap / restart: {statistics.median(swap_times) / restart:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
