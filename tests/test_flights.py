"""A flights-style real-data case (issue 11): a ~50k-row two-table SQLite database (flights
JOIN weather, NaNs, text categories, a column constant within as_of), trained with
scikit-learn's HistGradientBoosting and with LightGBM; run, verify identical, bundle, serve.
"""

from __future__ import annotations

import json
import sqlite3
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from cli_helpers import run_cli

from mlrepro import load_bundle

N_FLIGHTS = 50_000
AS_OF = "2024-01-31T23:59:59Z"
CARRIERS = ["AA", "B6", "DL", "EV", "MQ", "UA", "US", "WN", "9E", "F9"]
ORIGINS = ["EWR", "JFK", "LGA"]
DESTS = [f"D{i:02d}" for i in range(60)]


def _build_db(path: Path) -> None:
    """January (and a few February) flights of three airports; hourly weather per airport."""
    rng = np.random.default_rng(2024)
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    hours = 24 * 35  # into February: those rows are after as_of
    weather = []
    for origin in ORIGINS:
        temp = 30 + np.cumsum(rng.normal(0, 1, hours))
        wind = np.abs(rng.normal(10, 5, hours))
        wind[rng.random(hours) < 0.05] = np.nan  # sensor gaps
        precip = np.where(rng.random(hours) < 0.1, rng.exponential(0.1, hours), 0.0)
        for h in range(hours):
            stamp = (start + timedelta(hours=h)).strftime("%Y-%m-%dT%H:00:00Z")
            w = None if np.isnan(wind[h]) else float(wind[h])
            weather.append((origin, stamp, float(temp[h]), w, float(precip[h])))
    dep_hour = rng.integers(0, hours, N_FLIGHTS)
    minute = rng.integers(0, 60, N_FLIGHTS)
    carrier = rng.choice(CARRIERS, N_FLIGHTS)
    origin = rng.choice(ORIGINS, N_FLIGHTS)
    dest = rng.choice(DESTS, N_FLIGHTS)
    distance = rng.integers(100, 2500, N_FLIGHTS).astype(float)
    dep_delay = rng.gamma(1.2, 12, N_FLIGHTS) - 5
    cancelled = rng.random(N_FLIGHTS) < 0.02
    dep_delay[cancelled] = np.nan  # no departure: NULL
    arr_delay = np.where(
        cancelled,
        rng.normal(40, 20, N_FLIGHTS),
        dep_delay * 0.9 + rng.normal(0, 8, N_FLIGHTS) + (carrier == "EV") * 6,
    )
    flights = []
    for i in range(N_FLIGHTS):
        t = start + timedelta(hours=int(dep_hour[i]), minutes=int(minute[i]))
        flights.append(
            (
                i + 1,
                t.strftime("%Y-%m-%dT%H:%M:%SZ"),
                t.strftime("%Y-%m-%dT%H:00:00Z"),
                t.month,  # constant (1) for every row as of the end of January
                t.hour,
                None if i % 997 == 0 else str(carrier[i]),  # a few unknown carriers: NULL
                str(origin[i]),
                str(dest[i]),
                float(distance[i]),
                None if np.isnan(dep_delay[i]) else float(dep_delay[i]),
                float(arr_delay[i]),
                int(arr_delay[i] > 15),
            )
        )
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE weather (origin TEXT, time_hour TEXT, temp REAL, wind_speed REAL, "
            "precip REAL, PRIMARY KEY (origin, time_hour))"
        )
        conn.execute(
            "CREATE TABLE flights (flight_id INTEGER PRIMARY KEY, sched_dep TEXT, "
            "time_hour TEXT, month INTEGER, hour INTEGER, carrier TEXT, origin TEXT, "
            "dest TEXT, distance REAL, dep_delay REAL, arr_delay REAL, late INTEGER)"
        )
        conn.executemany("INSERT INTO weather VALUES (?, ?, ?, ?, ?)", weather)
        conn.executemany("INSERT INTO flights VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", flights)


QUERY = (
    "SELECT f.flight_id, f.sched_dep, f.month, f.hour, f.carrier, f.origin, f.dest, "
    "f.distance, f.dep_delay, w.temp, w.wind_speed, w.precip, f.{target} "
    "FROM flights f LEFT JOIN weather w ON w.origin = f.origin AND w.time_hour = f.time_hour"
)
ENCODE = {
    "name": "encode",
    "transformer": "sklearn.preprocessing.OrdinalEncoder",
    "params": {
        "handle_unknown": "use_encoded_value",
        "unknown_value": -1,
        "encoded_missing_value": -1,
    },
    "columns": ["carrier", "origin", "dest"],
}
CASES = {
    "hist_gradient_boosting": {
        "target": "arr_delay",
        "estimator": "sklearn.ensemble.HistGradientBoostingRegressor",
        "params": {"max_iter": 60, "learning_rate": 0.1},
        "metrics": ["r2", "mae"],
    },
    "lightgbm": {
        "plugins": ["lightgbm"],
        "target": "late",
        "estimator": "lightgbm.LGBMClassifier",
        "params": {"n_estimators": 60, "num_leaves": 31, "verbose": -1},
        "metrics": ["accuracy", "roc_auc"],
    },
}


@pytest.fixture(scope="module")
def flights_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("flights") / "flights.db"
    _build_db(path)
    return path


def _project(root: Path, db: Path, case: dict) -> Path:
    root.mkdir()
    manifest = {
        "name": f"flights-{case['target']}",
        "seed": 11,
        "source": {
            "url": f"sqlite:///{db}",
            "query": QUERY.format(target=case["target"]),
            "timestamp_column": "sched_dep",
            "as_of": AS_OF,
            "order_by": ["flight_id"],
            "chunk_size": 20_000,
        },
        "target": case["target"],
        "features": [ENCODE],
        "model": {
            "estimator": case["estimator"],
            "params": case["params"],
            "test_size": 0.2,
            "metrics": case["metrics"],
        },
    }
    if case.get("plugins"):
        manifest["plugins"] = case["plugins"]
    (root / "mlrepro.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return root


def _february(db: Path, n: int = 200) -> pd.DataFrame:
    """Flights after as_of, as a production caller would send them (no target)."""
    with sqlite3.connect(db) as conn:
        query = QUERY.format(target="late") + f" WHERE f.sched_dep > '{AS_OF}' LIMIT {n}"
        frame = pd.read_sql_query(query, conn)
    return frame.drop(columns=["late"])


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_flights_run_verify_bundle_serve(flights_db, tmp_path, capsys, case: str) -> None:
    spec = CASES[case]
    project = _project(tmp_path / case, flights_db, spec)

    ran = run_cli("run", "--json", "-p", project)
    assert ran.code == 0, ran.err
    stages = {s["stage"]: s for s in ran.json()["stages"]}
    lock = json.loads((project / "mlrepro.lock").read_text())
    rows = lock["stages"]["extract"]["details"]["rows"]
    with sqlite3.connect(flights_db) as conn:
        (expected,) = conn.execute(
            "SELECT COUNT(*) FROM flights WHERE sched_dep <= ?", (AS_OF,)
        ).fetchone()
    assert rows == expected and 40_000 < rows < N_FLIGHTS  # February flights: after as_of
    assert any("'month'" in w for w in stages["features"]["warnings"])  # constant: a warning
    metrics = lock["stages"]["train"]["details"]["metrics"]
    assert metrics[spec["metrics"][0]] > 0.5  # it learned something real

    again = run_cli("run", "--json", "-p", project)
    assert {s["status"] for s in again.json()["stages"]} == {"skipped"}

    verify = run_cli("verify", "--json", "-p", project)
    assert verify.code == 0, verify.out
    verdicts = {s["stage"]: s["verdict"] for s in verify.json()["stages"]}
    assert set(verdicts.values()) == {"identical"}, verdicts

    bundle = tmp_path / f"{case}.mlrepro"
    assert run_cli("bundle", "-q", "-o", bundle, "-p", project).code == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load_bundle(bundle)
    new = _february(flights_db)
    embedded = model.predict(new)

    source = tmp_path / "new.csv"
    new.to_csv(source, index=False)
    out = tmp_path / "predictions.parquet"
    batch = run_cli("predict", "--bundle", bundle, "--input", source, "--output", out)
    assert batch.code == 0, batch.err
    assert np.allclose(pd.read_parquet(out)["prediction"], embedded["prediction"])

    from mlrepro.serving.http import create_app

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*httpx2")
        from fastapi.testclient import TestClient

    records = json.loads(new.to_json(orient="records"))
    with TestClient(create_app(model)) as client:
        answer = client.post("/predict", json=records)
    assert answer.status_code == 200, answer.text
    served = [p["prediction"] for p in answer.json()["predictions"]]
    assert np.allclose(served, embedded["prediction"].to_numpy())
