"""Throughput of ``fingerprint_frame`` against plain hashing of the same raw bytes.

    python benchmarks/bench_fingerprint.py [--rows 5000000] [--cols 20]

Builds a half float64, half int64 frame and reports the best of ``--repeat`` runs for:
fingerprint_frame, blake3 of the concatenated column bytes (single-threaded and with
blake3's thread pool) and hashlib.sha256 of the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections.abc import Callable

import blake3
import numpy as np
import pandas as pd

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from mlrepro.fingerprint import fingerprint_frame  # noqa: E402


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def build_frame(rows: int, cols: int, null_fraction: float) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    data = {}
    for i in range(cols):
        if i % 2:
            data[f"i{i}"] = rng.integers(-(2**40), 2**40, rows, dtype=np.int64)
        else:
            values = rng.standard_normal(rows)
            if null_fraction:
                values[rng.random(rows) < null_fraction] = np.nan  # nulls once in arrow
            data[f"f{i}"] = values
    return pd.DataFrame(data)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--cols", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--null-fraction", type=float, default=0.0, help="share of NaN in float columns"
    )
    args = parser.parse_args(argv)

    df = build_frame(args.rows, args.cols, args.null_fraction)
    raw = b"".join(df[c].to_numpy().tobytes() for c in df.columns)
    size = len(raw)
    gb = size / 1e9
    print(f"frame: {args.rows:,} rows x {args.cols} cols, {gb:.2f} GB of raw values")

    timings = {
        "fingerprint_frame": best_of(args.repeat, lambda: fingerprint_frame(df)),
        "blake3 raw (1 thread)": best_of(args.repeat, lambda: blake3.blake3(raw).digest()),
        "blake3 raw (threads)": best_of(
            args.repeat,
            lambda: blake3.blake3(raw, max_threads=blake3.blake3.AUTO).digest(),
        ),
        "sha256 raw": best_of(args.repeat, lambda: hashlib.sha256(raw).digest()),
    }
    for name, seconds in timings.items():
        print(f"  {name:<22} {seconds * 1e3:8.1f} ms  {gb / seconds:6.2f} GB/s")

    fp = timings["fingerprint_frame"]
    print(
        f"fingerprint: {gb / fp:.2f} GB/s "
        f"({timings['blake3 raw (1 thread)'] / fp:.2f}x raw blake3, "
        f"{timings['blake3 raw (threads)'] / fp:.2f}x raw blake3 threaded, "
        f"{timings['sha256 raw'] / fp:.1f}x sha256)"
    )


if __name__ == "__main__":
    main()
