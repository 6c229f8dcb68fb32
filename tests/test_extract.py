"""extract: as_of cut, deterministic order, chunked reads, schema, errors; SQLite and PostgreSQL."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from cli_helpers import run_cli


def make_project(
    folder: Path,
    url: str,
    *,
    as_of: str = "2026-03-01T00:00:00Z",
    chunk_size: int = 50_000,
    query: str = "SELECT * FROM events",
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {
        "name": "events",
        "seed": 7,
        "source": {
            "url": url,
            "query": query,
            "timestamp_column": "ts",
            "as_of": as_of,
            "order_by": ["id"],
            "chunk_size": chunk_size,
        },
        "target": "y",
        "features": [
            {
                "name": "scale",
                "transformer": "sklearn.preprocessing.StandardScaler",
                "columns": "numeric",
            }
        ],
        "model": {"estimator": "sklearn.linear_model.Ridge", "test_size": 0.25},
    }
    (folder / "mlrepro.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return folder


def events_frame(n: int = 200) -> pd.DataFrame:
    ts = pd.date_range("2026-01-01", periods=n, freq="12h")
    return pd.DataFrame(
        {
            "id": range(n, 0, -1),  # stored in reverse id order: ORDER BY must fix that
            "ts": ts,
            "x1": [float(i % 17) for i in range(n)],
            "x2": [float((i * 7) % 11) for i in range(n)],
            "y": [float(i % 5) for i in range(n)],
        }
    )


def write_sqlite(path: Path, df: pd.DataFrame, ts_format: str) -> None:
    con = sqlite3.connect(path)
    out = df.copy()
    if ts_format == "epoch":
        out["ts"] = (out["ts"] - pd.Timestamp("1970-01-01")) // pd.Timedelta("1s")
    else:
        out["ts"] = out["ts"].dt.strftime(ts_format)
    out.to_sql("events", con, index=False)
    con.close()


def snapshot(project: Path) -> pd.DataFrame:
    lock = json.loads((project / "mlrepro.lock").read_text())
    return pd.read_parquet(project / lock["stages"]["extract"]["outputs"]["snapshot"]["path"])


@pytest.mark.parametrize(
    "ts_format", ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%SZ", "epoch"]
)
def test_as_of_cut_and_order_for_every_timestamp_encoding(tmp_path, capsys, ts_format) -> None:
    df = events_frame()
    write_sqlite(tmp_path / "db.sqlite", df, ts_format)
    project = make_project(tmp_path / "p", f"sqlite:///{tmp_path / 'db.sqlite'}")
    r = run_cli("extract", "-p", project)
    assert r.code == 0, r.err
    snap = snapshot(project)
    expected = df[df["ts"] <= "2026-03-01"].sort_values("id")
    assert len(snap) == len(expected) == 119
    assert snap["id"].tolist() == expected["id"].tolist()


def test_chunked_extract_gives_the_same_fingerprint(tmp_path, capsys) -> None:
    write_sqlite(tmp_path / "db.sqlite", events_frame(), "%Y-%m-%dT%H:%M:%S")
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    fps = []
    for chunk in (7, 50_000):
        project = make_project(tmp_path / f"p{chunk}", url, chunk_size=chunk)
        assert run_cli("extract", "-p", project).code == 0
        lock = json.loads((project / "mlrepro.lock").read_text())
        fps.append(lock["stages"]["extract"]["outputs"]["snapshot"]["fingerprint"])
    assert fps[0] == fps[1]


def test_relative_sqlite_url_and_env_expansion(tmp_path, capsys, monkeypatch) -> None:
    write_sqlite(tmp_path / "db.sqlite", events_frame(), "%Y-%m-%dT%H:%M:%S")
    monkeypatch.setenv("EVENTS_DB", "../db.sqlite")
    project = make_project(tmp_path / "p", "sqlite:///${EVENTS_DB}")
    r = run_cli("run", "-p", project)
    assert r.code == 0, r.err
    lock = (project / "mlrepro.lock").read_text()
    assert "${EVENTS_DB}" in lock and "../db.sqlite" not in lock


def test_schema_yaml_is_stored(tmp_path, capsys) -> None:
    write_sqlite(tmp_path / "db.sqlite", events_frame(), "%Y-%m-%dT%H:%M:%S")
    project = make_project(tmp_path / "p", f"sqlite:///{tmp_path / 'db.sqlite'}")
    assert run_cli("extract", "-p", project).code == 0
    lock = json.loads((project / "mlrepro.lock").read_text())
    text = (project / lock["stages"]["extract"]["outputs"]["schema"]["path"]).read_text()
    schema = yaml.safe_load(text)
    assert schema["columns"]["x1"]["dtype"] == "float64"
    assert schema["columns"]["id"]["dtype"] == "int64"


@pytest.mark.parametrize(
    ("kwargs", "code", "message", "hint"),
    [
        (
            {"query": "SELECT * FROM nope"},
            5,
            "the source query failed: no such table: nope",
            "check source.query",
        ),
        (
            {"as_of": "2020-01-01T00:00:00Z"},
            3,
            "the source query returned zero rows as of 2020-01-01T00:00:00Z",
            "check source.query, source.as_of",
        ),
        (
            {"query": "SELECT id, x1, y FROM events"},
            3,
            "column(s) ['ts'] named in source",
            "fix source.timestamp_column",
        ),
        (
            {"query": "SELECT id, ts, x1 FROM events"},
            3,
            "target (manifest field 'target'): missing column(s) ['y']",
            "provide these columns",
        ),
    ],
)
def test_extract_errors(tmp_path, capsys, kwargs, code, message, hint) -> None:
    write_sqlite(tmp_path / "db.sqlite", events_frame(), "%Y-%m-%dT%H:%M:%S")
    project = make_project(tmp_path / "p", f"sqlite:///{tmp_path / 'db.sqlite'}", **kwargs)
    r = run_cli("extract", "-p", project)
    assert r.code == code, r.err
    assert message in r.err and hint in r.err
    assert not (project / "mlrepro.lock").exists()
    leftovers = [p for p in (project / ".mlrepro").rglob("*") if p.is_file()]
    assert [p.name for p in leftovers if not p.name.startswith("project.lock")] == []


def test_missing_sqlite_database(tmp_path, capsys) -> None:
    project = make_project(tmp_path / "p", "sqlite:///nowhere.db")
    r = run_cli("extract", "-p", project)
    assert r.code == 5
    assert "does not exist" in r.err and "relative to the project folder" in r.err


@pytest.mark.postgres
def test_postgres_extract_matches_sqlite(tmp_path, capsys, pg_clean_schema) -> None:
    df = events_frame()
    df["ts"] = df["ts"].dt.tz_localize("UTC")
    with pg_clean_schema.engine.begin() as conn:
        df.to_sql("events", conn, index=False)
    write_sqlite(tmp_path / "db.sqlite", events_frame(), "%Y-%m-%dT%H:%M:%S")
    pg = make_project(tmp_path / "pg", pg_clean_schema.url)
    lite = make_project(tmp_path / "lite", f"sqlite:///{tmp_path / 'db.sqlite'}")
    for project in (pg, lite):
        r = run_cli("run", "-p", project)
        assert r.code == 0, r.err
    a, b = snapshot(pg), snapshot(lite)
    assert a["id"].tolist() == b["id"].tolist()
    assert len(a) == 119
    pd.testing.assert_frame_equal(a[["x1", "x2", "y"]], b[["x1", "x2", "y"]])
    pg_lock = (pg / "mlrepro.lock").read_text()
    password = sa.make_url(pg_clean_schema.url).password
    assert password and f":{password}@" not in pg_lock and ":***@" in pg_lock


@pytest.mark.postgres
def test_postgres_numeric_and_naive_timestamps(tmp_path, capsys, pg_clean_schema) -> None:
    with pg_clean_schema.engine.begin() as conn:
        conn.execute(
            sa.text(
                'CREATE TABLE events (id integer primary key, ts timestamp, "X1" numeric(10, 2), '
                "x2 double precision, y double precision)"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO events SELECT i, timestamp '2026-01-01' + i * interval '1 day', "
                "i * 1.25, i % 7, i % 3 FROM generate_series(1, 120) AS i"
            )
        )
    project = make_project(tmp_path / "p", pg_clean_schema.url)
    r = run_cli("run", "-p", project)
    assert r.code == 0, r.err
    snap = snapshot(project)
    assert len(snap) == 59  # 2026-01-02 .. 2026-03-01 inclusive
    assert str(snap["X1"].dtype) == "float64" and snap["X1"].iloc[0] == 1.25


def test_misspelt_order_by_suggests_the_column(tmp_path, capsys) -> None:
    write_sqlite(tmp_path / "db.sqlite", events_frame(), "%Y-%m-%dT%H:%M:%S")
    project = make_project(tmp_path / "p", f"sqlite:///{tmp_path / 'db.sqlite'}")
    manifest = project / "mlrepro.yaml"
    manifest.write_text(manifest.read_text().replace("- id", "- idd"))
    r = run_cli("extract", "-p", project)
    assert r.code == 3
    assert "did you mean 'idd' -> 'id'?" in r.err
