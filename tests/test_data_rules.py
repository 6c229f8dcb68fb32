"""Rules on the source data (issue 11, items 6-8): no LIMIT window before the as_of cut, a
unique order_by, constant columns and id-like features are warnings recorded in the lock."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml
from cli_helpers import run_cli

from mlrepro.core.sqltext import row_window_clause


def _edit(project: Path, change) -> None:  # noqa: ANN001 - a callable on the manifest dict
    path = project / "mlrepro.yaml"
    data = yaml.safe_load(path.read_text())
    data["model"]["params"] = {"n_estimators": 10, "max_depth": 4}
    data.pop("predict", None)
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _lock(project: Path) -> dict:
    return json.loads((project / "mlrepro.lock").read_text())


# ------------------------------------------------------------------ item 6: LIMIT / OFFSET


@pytest.mark.parametrize(
    ("query", "clause"),
    [
        ("SELECT * FROM t LIMIT 5", "LIMIT"),
        ("select * from t order by id limit 5 offset 10", "LIMIT"),
        ("SELECT * FROM t ORDER BY id OFFSET 3 ROWS FETCH NEXT 5 ROWS ONLY", "OFFSET"),
        ("SELECT * FROM t FETCH FIRST 5 ROWS ONLY", "FETCH FIRST"),
        ("SELECT TOP 10 * FROM t", "TOP"),
        ("SELECT DISTINCT TOP (5) a FROM t", "TOP"),
        ("SELECT a FROM t UNION ALL SELECT a FROM u LIMIT 9", "LIMIT"),
        ("SELECT * FROM t\n-- a comment\nLIMIT 1", "LIMIT"),
    ],
)
def test_top_level_row_windows_are_found(query: str, clause: str) -> None:
    assert row_window_clause(query) == clause


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM t",
        'SELECT "limit", [offset], `fetch` FROM t',
        "SELECT 'LIMIT 3' AS x FROM t WHERE note <> 'it''s OFFSET 2'",
        "SELECT * FROM t -- LIMIT 4",
        "SELECT * FROM t /* LIMIT 4 */ WHERE a = 1",
        "SELECT $$ LIMIT 1 $$ AS s FROM t",
        "SELECT top, a FROM t",
        # a LIMIT inside a correlated lookup picks a row per outer row: not a window
        "SELECT f.*, (SELECT w.temp FROM weather w WHERE w.hour <= f.dep ORDER BY w.hour DESC "
        "LIMIT 1) AS temp FROM flights f",
    ],
)
def test_no_false_positives(query: str) -> None:
    assert row_window_clause(query) is None


def test_limit_is_refused_before_anything_is_written(copy_example, capsys) -> None:
    project = copy_example("diabetes")
    _edit(project, lambda d: d["source"].update(query="SELECT * FROM visits LIMIT 200"))
    result = run_cli("run", "-p", project)
    assert result.code == 2
    assert "manifest field 'source.query': a top-level LIMIT is not allowed" in result.err
    assert "shift the LIMIT window" in result.err
    assert "hint: remove LIMIT from source.query" in result.err
    assert not (project / "mlrepro.lock").exists()
    assert not (project / ".mlrepro" / "objects").exists()


# ------------------------------------------------------------------ item 7: order_by


def test_non_unique_order_by_is_refused_with_the_count(copy_example, capsys) -> None:
    project = copy_example("diabetes")
    # small chunks: repeats that straddle a chunk boundary must be counted too
    _edit(project, lambda d: d["source"].update(order_by=["clinic"], chunk_size=7))
    with sqlite3.connect(project / "data" / "diabetes.db") as conn:
        rows, distinct = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT clinic) FROM visits "
            "WHERE recorded_at <= '2026-06-30T00:00:00Z'"
        ).fetchone()
    result = run_cli("extract", "-p", project)
    assert result.code == 3, result.err
    assert (
        f"source.order_by [clinic] is not a unique key: {rows - distinct} of {rows} rows"
        in result.err
    )
    assert "hint: add columns to source.order_by until it is unique" in result.err
    assert not (project / "mlrepro.lock").exists()


def test_composite_unique_order_by_passes(copy_example, capsys) -> None:
    project = copy_example("diabetes")
    _edit(project, lambda d: d["source"].update(order_by=["clinic", "visit_id"], chunk_size=7))
    assert run_cli("extract", "-q", "-p", project).code == 0


def test_id_like_feature_is_a_recorded_warning(copy_example, capsys) -> None:
    project = copy_example("diabetes")

    def change(d: dict) -> None:
        d["source"]["query"] = "SELECT *, visit_id * 7 AS patient_id FROM visits"
        d.pop("selection")

    _edit(project, change)
    result = run_cli("run", "-p", project)
    assert result.code == 0, result.err
    assert "warning: model feature 'patient_id' looks like a row identifier" in result.err
    warnings = _lock(project)["stages"]["train"]["details"]["warnings"]
    assert any("'patient_id'" in w for w in warnings)
    assert not any("'visit_id'" in w for w in warnings)  # the key is excluded: no warning


# ------------------------------------------------------------------ item 8: constants


def test_constant_column_is_a_warning_in_lock_and_card(copy_example, capsys, tmp_path) -> None:
    project = copy_example("diabetes")
    _edit(project, lambda d: d["source"].update(query="SELECT *, 2026 AS year FROM visits"))
    result = run_cli("run", "--json", "-p", project)
    assert result.code == 0, result.err
    assert "warning: column 'year' has the same value in all" in result.err
    features = next(s for s in result.json()["stages"] if s["stage"] == "features")
    assert any("'year'" in w for w in features["warnings"])
    recorded = _lock(project)["stages"]["features"]["details"]["warnings"]
    assert recorded == features["warnings"]

    bundle = tmp_path / "m.mlrepro"
    assert run_cli("bundle", "-q", "-p", project, "-o", bundle).code == 0
    card = run_cli("inspect", bundle)
    assert "## Warnings" in card.out and "column 'year' has the same value" in card.out
    assert run_cli("verify", "--offline", "-p", project).code == 0


# ------------------------------------------------------------------ PostgreSQL


def _pg_project(root: Path, url: str, order_by: list[str], query: str) -> Path:
    root.mkdir()
    manifest = {
        "name": "pg-flights",
        "source": {
            "url": url,
            "query": query,
            "timestamp_column": "sched_dep",
            "as_of": "2024-01-20T00:00:00Z",
            "order_by": order_by,
            "chunk_size": 300,
        },
        "target": "arr_delay",
        "features": [
            {
                "name": "encode",
                "transformer": "sklearn.preprocessing.OrdinalEncoder",
                "params": {
                    "handle_unknown": "use_encoded_value",
                    "unknown_value": -1,
                    "encoded_missing_value": -1,
                },
                "columns": ["carrier"],
            }
        ],
        "model": {
            "estimator": "sklearn.ensemble.HistGradientBoostingRegressor",
            "params": {"max_iter": 20},
        },
    }
    (root / "mlrepro.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return root


@pytest.mark.postgres
def test_postgres_join_order_by_and_limit(tmp_path, capsys, pg_clean_schema) -> None:
    import sqlalchemy as sa

    with pg_clean_schema.engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE weather (hour timestamptz PRIMARY KEY, temp double precision);"
                "INSERT INTO weather SELECT timestamptz '2024-01-01' + i * interval '1 hour', "
                "CASE WHEN i % 11 = 0 THEN NULL ELSE 20 + i % 9 END "
                "FROM generate_series(0, 24 * 31) AS i;"
                "CREATE TABLE flights (flight_id integer PRIMARY KEY, sched_dep timestamptz, "
                "carrier text, year integer, arr_delay double precision);"
                "INSERT INTO flights SELECT i, timestamptz '2024-01-01' + i * interval '17 "
                "minutes', (ARRAY['AA','DL','UA',NULL])[1 + i % 4], 2024, (i % 37) - 10.5 "
                "FROM generate_series(1, 2400) AS i;"
            )
        )
    join = (
        "SELECT f.flight_id, f.sched_dep, f.carrier, f.year, w.temp, f.arr_delay "
        "FROM flights f LEFT JOIN weather w ON w.hour = date_trunc('hour', f.sched_dep)"
    )
    url = pg_clean_schema.url
    dup = _pg_project(tmp_path / "dup", url, ["carrier"], join)
    result = run_cli("extract", "-p", dup)
    assert result.code == 3, result.err
    assert "source.order_by [carrier] is not a unique key:" in result.err

    limited = _pg_project(
        tmp_path / "limit", url, ["flight_id"], join + " FETCH FIRST 10 ROWS ONLY"
    )
    result = run_cli("run", "-p", limited)
    assert result.code == 2 and "a top-level FETCH FIRST is not allowed" in result.err

    good = _pg_project(tmp_path / "good", url, ["flight_id"], join)
    result = run_cli("run", "--json", "-p", good)
    assert result.code == 0, result.err
    features = next(s for s in result.json()["stages"] if s["stage"] == "features")
    assert any("'year'" in w for w in features["warnings"])  # constant: a warning
    verify = run_cli("verify", "--json", "-p", good)
    assert verify.code == 0, verify.out
