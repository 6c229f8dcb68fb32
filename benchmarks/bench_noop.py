"""No-op ``mlrepro run`` / ``status`` against ``dvc repro`` and ``python -c pass``.

    python benchmarks/bench_noop.py [--rounds N]

Builds the diabetes example (``mlrepro run``) and, when ``dvc`` is importable, an equivalent
DVC pipeline in a temp dir: five stages (extract, features, select, train, predict), each a
small python script with its deps and outs, reproduced once. Then times, alternating the
contenders round by round, the process wall time of:

    python -c pass          the interpreter's own start-up (the floor)
    mlrepro --version
    mlrepro status / status --json
    mlrepro run / run --json          everything up to date
    dvc repro                         everything up to date

and prints medians and the ratios to ``dvc repro`` and to ``python -c pass``. Install DVC
for the comparison with ``pip install dvc`` (not part of mlrepro's extras: it is heavy).
Targets: no-op run <= 0.3x dvc repro, <= 0.25 s.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

STAGE_SCRIPT = """\
import hashlib, sys
data = b"".join(open(p, "rb").read() for p in sys.argv[2:])
open(sys.argv[1], "wb").write(hashlib.sha256(data).digest() * 1000)
"""

STAGES = [  # name, deps, out: the shape of mlrepro's pipeline
    ("extract", ["data/diabetes.db"], "snapshot.bin"),
    ("features", ["snapshot.bin"], "matrix.bin"),
    ("select", ["matrix.bin"], "selector.bin"),
    ("train", ["matrix.bin", "selector.bin"], "pipeline.bin"),
    ("predict", ["pipeline.bin", "data/new_visits.csv"], "predictions.bin"),
]


def env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")


def dvc_project(work: Path, data: Path) -> Path | None:
    if importlib.util.find_spec("dvc") is None:
        return None
    root = work / "dvc"
    shutil.copytree(data, root / "data")
    (root / "stage.py").write_text(STAGE_SCRIPT)
    lines = ["stages:"]
    for name, deps, out in STAGES:
        lines += [
            f"  {name}:",
            f"    cmd: python stage.py {out} {' '.join(deps)}",
            "    deps:",
            "      - stage.py",
            *[f"      - {d}" for d in deps],
            "    outs:",
            f"      - {out}",
        ]
    (root / "dvc.yaml").write_text("\n".join(lines) + "\n")
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "repro", "-q"]):
        subprocess.run(cmd, cwd=root, env=env(), check=True, capture_output=True)
    return root


def timed(cmd: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True)
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.decode()[-500:]}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    py = sys.executable
    mlrepro = [py, "-m", "mlrepro"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        project = work / "diabetes"
        shutil.copytree(REPO / "examples" / "diabetes", project)
        subprocess.run([*mlrepro, "run", "-q"], cwd=project, env=env(), check=True)
        time.sleep(2.2)  # let the artifacts' timestamps settle: the stat cache takes them
        subprocess.run(
            [*mlrepro, "status"], cwd=project, env=env(), check=True, capture_output=True
        )
        dvc_root = dvc_project(work, REPO / "examples" / "diabetes" / "data")
        contenders: dict[str, tuple[list[str], Path]] = {
            "python -c pass": ([py, "-c", "pass"], project),
            "mlrepro --version": ([*mlrepro, "--version"], project),
            "mlrepro status": ([*mlrepro, "status"], project),
            "mlrepro status --json": ([*mlrepro, "status", "--json"], project),
            "mlrepro run (no-op)": ([*mlrepro, "run"], project),
            "mlrepro run --json": ([*mlrepro, "run", "--json"], project),
        }
        if dvc_root is not None:
            dvc = shutil.which("dvc", path=str(Path(py).parent)) or "dvc"
            contenders["dvc repro (no-op)"] = ([dvc, "repro"], dvc_root)
        else:
            print("dvc is not installed: `pip install dvc` to compare with `dvc repro`")
        times: dict[str, list[float]] = {k: [] for k in contenders}
        for cmd, cwd in contenders.values():
            timed(cmd, cwd)  # warm the file cache
        for _ in range(args.rounds):
            for name, (cmd, cwd) in contenders.items():
                times[name].append(timed(cmd, cwd))
    med = {k: statistics.median(v) for k, v in times.items()}
    floor = med["python -c pass"]
    dvc_med = med.get("dvc repro (no-op)")
    print(f"median of {args.rounds} alternating rounds, process wall time (cpus: {os.cpu_count()})")
    header = f"{'command':<24}{'median s':>10}{'x pass':>9}"
    print(header + (f"{'x dvc':>9}" if dvc_med else ""))
    for name, m in med.items():
        line = f"{name:<24}{m:>10.3f}{m / floor:>9.1f}"
        print(line + (f"{m / dvc_med:>9.2f}" if dvc_med else ""))
    run = med["mlrepro run (no-op)"]
    verdict = f"no-op run {run:.3f} s (target <= 0.25 s)"
    if dvc_med:
        verdict += f", {run / dvc_med:.2f}x dvc repro (target <= 0.3x)"
    print(verdict)


if __name__ == "__main__":
    main()
