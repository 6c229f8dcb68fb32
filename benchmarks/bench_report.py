"""Time ``mlrepro report --no-verify`` (plots and permutation importance) on a big project.

    python benchmarks/bench_report.py [--rows 100000] [--trees 20] [--repeat 3]

Copies examples/diabetes to a temp folder, replaces its table by N synthetic rows (as
``bench_verify.py`` does), records it with ``mlrepro run``, then times the report as a CLI
process, and prints the report's size.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_verify import EXAMPLE, IGNORE, mlrepro, synthesize  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--trees", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mlrepro-bench-") as tmp:
        project = Path(tmp) / "diabetes"
        shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(*IGNORE))
        if args.rows:
            synthesize(project / "data" / "diabetes.db", args.rows)
        manifest = project / "mlrepro.yaml"
        text = manifest.read_text().replace("n_estimators: 200", f"n_estimators: {args.trees}")
        manifest.write_text(text)
        run = mlrepro(project, "run")
        out = Path(tmp) / "report.html"
        times = [
            mlrepro(project, "report", "--no-verify", "-o", str(out)) for _ in range(args.repeat)
        ]
        print(f"project: diabetes, rows: {args.rows}, trees: {args.trees}, run: {run:.2f} s")
        each = ", ".join(f"{t:.2f}" for t in times)
        print(
            f"report --no-verify: best {min(times):.2f} s, median "
            f"{statistics.median(times):.2f} s ({each}); {out.stat().st_size / 1024:.0f} KiB"
        )


if __name__ == "__main__":
    main()
