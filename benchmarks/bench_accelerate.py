"""The accelerated runtime vs the fitted pipeline, measured side by side in one run.

    python benchmarks/bench_accelerate.py [--rows 1000000] [--threads N] [--iters 300]
                                          [--models rf,gb,hgb,rfc] [--workdir DIR]
                                          [--model lightgbm|xgboost] [--repeat 3]

Batch: four pipelines (impute + one-hot + scale, then a RandomForestRegressor of 100
trees, a GradientBoostingRegressor of 150 stages, a HistGradientBoostingRegressor, a
RandomForestClassifier of 100 trees) trained on 20k generated rows; each contender runs in
a fresh subprocess on the same generated frame of --rows rows already in memory:

* sklearn:   ``predict_frame``-equivalent (``pipeline.predict`` + ``predict_proba``);
* sklearn2:  the same with the forest's ``n_jobs=2`` (only for forests);
* program:   ``compile_pipeline(...).predict(frame)`` after ``warm_up()`` (numba threads:
  ``--threads``, default all of ``NUMBA_NUM_THREADS``);
* baseline:  builds the frame and loads everything, predicts nothing (the RSS floor).

``--model lightgbm`` / ``--model xgboost`` (extra ``boosting``) benchmarks that plugin
estimator instead (an LGBMRegressor of 200 trees, 31 leaves / an XGBRegressor of 200 trees,
depth 6, on the same features; the reference is the library's own multi-threaded
``predict``) and skips the single-record part unless ``--iters`` is given.

Each contender predicts the whole frame --repeat times in its process (the median is
reported; peak RSS covers all of them). It prints wall seconds, throughput ratios
(sklearn / program) and peak RSS of each process (``wait4``). Single record: the diabetes
example trained by the CLI, ``predict_record`` against the pipeline on a one-row DataFrame,
p50/p99 over --iters records. Both paths are checked to agree first. The machine may be
shared: read ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MODELS = ("rf", "gb", "hgb", "rfc")
PLUGIN_MODELS = ("lightgbm", "xgboost")


def make_frame(n: int, seed: int):  # noqa: ANN201
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    cols = {f"x{i}": rng.normal(size=n) for i in range(8)}
    frame = pd.DataFrame(cols)
    frame["x0"] = frame["x0"].where(rng.random(n) > 0.05)  # 5% missing, imputed
    frame["site"] = rng.choice(np.array(["a", "b", "c", "d"], dtype=object), size=n)
    return frame


def target(frame, kind: str):  # noqa: ANN001, ANN201
    import numpy as np

    s = frame["x0"].fillna(0).to_numpy() + np.sin(frame["x1"].to_numpy()) * 2
    s = s + frame["x2"].to_numpy() * frame["x3"].to_numpy() + (frame["site"] == "b").to_numpy()
    return s if kind == "reg" else (s > 0.5).astype(np.int64)


def _plugin(name: str):  # noqa: ANN202
    if name == "lightgbm":
        import lightgbm

        return lightgbm.LGBMRegressor(n_estimators=200, num_leaves=31, verbose=-1)
    import xgboost

    return xgboost.XGBRegressor(n_estimators=200, max_depth=6)


def train(name: str, out: Path) -> None:
    import joblib
    from sklearn import ensemble
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from mlrepro.transformers import FeatureSteps, KeepColumns

    frame = make_frame(20_000, seed=1)
    model = {
        "rf": lambda: ensemble.RandomForestRegressor(100, max_depth=12, random_state=0),
        "gb": lambda: ensemble.GradientBoostingRegressor(n_estimators=150, random_state=0),
        "hgb": lambda: ensemble.HistGradientBoostingRegressor(max_iter=200, random_state=0),
        "rfc": lambda: ensemble.RandomForestClassifier(100, max_depth=12, random_state=0),
        "lightgbm": lambda: _plugin("lightgbm"),
        "xgboost": lambda: _plugin("xgboost"),
    }[name]()
    y = target(frame, "clf" if name == "rfc" else "reg")
    features = FeatureSteps(
        [
            ("impute", SimpleImputer(strategy="median"), ["x0"]),
            ("onehot", OneHotEncoder(sparse_output=False), ["site"]),
            ("scale", StandardScaler(), "numeric"),
        ]
    )
    matrix = features.fit_transform(frame, y)
    select = KeepColumns().fit(matrix)
    model.fit(matrix, y)
    joblib.dump(Pipeline([("features", features), ("select", select), ("model", model)]), out)


def child(args: argparse.Namespace) -> None:
    """One contender in this (fresh) process; prints a JSON line."""
    import joblib

    from mlrepro.accelerate import compile_pipeline
    from mlrepro.accelerate.equivalence import reference_outputs

    pipeline = joblib.load(args.child_model)  # written by this benchmark run
    task = "classification" if args.child_name == "rfc" else "regression"
    frame = make_frame(args.rows, seed=2)
    program = None
    compile_s = 0.0
    if args.child_mode == "program":
        t0 = time.perf_counter()
        program = compile_pipeline(pipeline, task)
        program.warm_up()
        compile_s = time.perf_counter() - t0
    if args.child_mode == "sklearn2":
        pipeline.named_steps["model"].set_params(n_jobs=2)
    times = []
    for _ in range(1 if args.child_mode == "baseline" else args.repeat):
        t0 = time.perf_counter()
        if args.child_mode == "program":
            out = program.predict(frame, threads=args.threads or None)
            assert out is not None, "the program fell back on generated data"
        elif args.child_mode != "baseline":
            out = reference_outputs(pipeline, frame, task)
        times.append(time.perf_counter() - t0)
    seconds = statistics.median(times)
    print(json.dumps({"seconds": seconds, "compile": compile_s}))


def run_child(args: argparse.Namespace, name: str, mode: str, model: Path) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--rows",
        str(args.rows),
        "--child-mode",
        mode,
        "--child-name",
        name,
        "--child-model",
        str(model),
        "--repeat",
        str(args.repeat),
    ]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    assert proc.stdout is not None
    text = proc.stdout.read()
    if status != 0:
        raise SystemExit(f"{name}/{mode} failed")
    got = json.loads(text.strip().splitlines()[-1])
    got["rss_mb"] = usage.ru_maxrss / 1024
    return got


def batch(args: argparse.Namespace, workdir: Path) -> None:
    import numba

    threads = args.threads or numba.config.NUMBA_NUM_THREADS
    print(
        f"batch predict, {args.rows:,} rows in memory; cores: {os.cpu_count()}, numba threads:"
        f" {threads} (machine possibly shared)"
    )
    print(f"{'model':6} {'contender':9} {'seconds':>8} {'rows/s':>12} {'ratio':>7} {'peak RSS':>9}")
    for name in args.models.split(","):
        model = workdir / f"{name}.joblib"
        if not model.exists():
            train(name, model)
        modes = ["baseline", "sklearn", *(["sklearn2"] if name in ("rf", "rfc") else []), "program"]
        res = {m: run_child(args, name, m, model) for m in modes}
        prog = res["program"]["seconds"]
        for m in modes:
            r = res[m]
            rate = args.rows / r["seconds"] if m != "baseline" else float("nan")
            ratio = r["seconds"] / prog if m != "baseline" else float("nan")
            extra = f"  (compile+warm-up {r['compile']:.2f}s)" if m == "program" else ""
            print(
                f"{name:6} {m:9} {r['seconds']:8.2f} {rate:12,.0f} {ratio:6.2f}x"
                f" {r['rss_mb']:7.0f}MB{extra}"
            )


def record_latency(args: argparse.Namespace, workdir: Path) -> None:
    import joblib
    import numpy as np
    import pandas as pd

    from mlrepro.accelerate import compile_pipeline
    from mlrepro.accelerate.equivalence import reference_outputs

    project = workdir / "diabetes"
    if not (project / ".mlrepro").exists():
        shutil.rmtree(project, ignore_errors=True)
        shutil.copytree(
            REPO / "examples" / "diabetes",
            project,
            ignore=shutil.ignore_patterns(".mlrepro", "*.lock*", "predictions*"),
        )
        env = dict(os.environ, PYTHONPATH=str(REPO))
        subprocess.run(
            [sys.executable, "-m", "mlrepro.cli.main", "run", "-q"],
            cwd=project,
            env=env,
            check=True,
        )
    pipeline = next(
        obj
        for obj in (joblib.load(p) for p in (project / ".mlrepro" / "objects").glob("*/*.joblib"))
        if type(obj).__name__ == "Pipeline"
    )
    frame = pd.read_csv(project / "data" / "new_visits.csv")
    records = [
        {k: (None if pd.isna(v) else v) for k, v in r.items()} for r in frame.to_dict("records")
    ]
    program = compile_pipeline(pipeline, "regression")
    program.warm_up()
    for r in records:
        a = program.predict_record(r)
        b = reference_outputs(pipeline, pd.DataFrame([r]), "regression")
        assert a is not None and np.array_equal(a["prediction"], b["prediction"])
    ref, acc = [], []
    for i in range(args.iters):
        r = records[i % len(records)]
        t0 = time.perf_counter()
        reference_outputs(pipeline, pd.DataFrame([r]), "regression")
        ref.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        program.predict_record(r)
        acc.append(time.perf_counter() - t0)
    p = lambda xs, q: float(np.percentile(xs, q)) * 1000  # noqa: E731
    print(
        f"\nsingle record, diabetes (RandomForestRegressor 200 trees, depth 8), {args.iters} "
        "records; both agree bitwise"
    )
    print(f"  pipeline on a 1-row DataFrame: p50 {p(ref, 50):.3f} ms  p99 {p(ref, 99):.3f} ms")
    print(f"  program.predict_record:        p50 {p(acc, 50):.3f} ms  p99 {p(acc, 99):.3f} ms")
    print(f"  ratio p50 {p(acc, 50) / p(ref, 50):.4f}x  p99 {p(acc, 99) / p(ref, 99):.4f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--iters", type=int, default=-1)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--model", choices=PLUGIN_MODELS, default="", help="a plugin model only")
    parser.add_argument("--workdir", default="")
    parser.add_argument("--repeat", type=int, default=3, help="predictions per contender (median)")
    parser.add_argument("--skip-batch", action="store_true")
    parser.add_argument("--child-mode", default="")
    parser.add_argument("--child-name", default="")
    parser.add_argument("--child-model", default="")
    args = parser.parse_args()
    if args.child_mode:
        child(args)
        return
    if args.model:
        args.models = args.model
    skip_record = (args.model and args.iters < 0) or args.iters == 0
    args.iters = 300 if args.iters < 0 else args.iters
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-accelerate-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if not args.skip_batch:
        batch(args, workdir)
    if not skip_record:
        record_latency(args, workdir)


if __name__ == "__main__":
    main()
