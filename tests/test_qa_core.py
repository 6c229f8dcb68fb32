"""Regressions found by QA on new data sets and mistakes a new user makes (core pipeline)."""

from __future__ import annotations

import json

import pytest
from cli_helpers import run_cli


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nosuch"], "No such command"),
        (["run", "--nosuch"], "No such option"),
        (["verify", "--rtol"], "requires an argument"),
    ],
)
def test_usage_errors_are_exit_2_not_internal(capsys, args, message) -> None:
    result = run_cli(*args)
    assert result.code == 2, result.err
    assert message in result.err
    assert "bug in mlrepro" not in result.err


def _manifest(params_model: dict, selection: dict | None = None) -> object:
    from mlrepro.core.manifest import from_dict

    data = {
        "name": "qa",
        "source": {
            "url": "sqlite:///x.db",
            "query": "SELECT * FROM t",
            "timestamp_column": "ts",
            "as_of": "2020-01-01",
            "order_by": ["id"],
        },
        "target": "y",
        "model": {"estimator": "sklearn.svm.SVC", "params": params_model},
    }
    if selection:
        data["selection"] = selection
    return from_dict(data)


def test_parameter_errors_name_the_manifest_field() -> None:
    """'model.params.x' / 'selection.params.x' is where the user wrote it, not '.estimator.'."""
    from mlrepro.errors import ManifestError
    from mlrepro.pipeline.preflight import check_classes

    with pytest.raises(ManifestError, match=r"'model\.params\.probabilty': SVC has no"):
        check_classes(_manifest({"probabilty": True}))
    nested = {
        "method": "sklearn.feature_selection.RFE",
        "params": {"estimator": {"class": "sklearn.svm.SVC", "params": {"C1": 1}}},
    }
    with pytest.raises(ManifestError, match=r"'selection\.params\.estimator\.params\.C1'"):
        check_classes(_manifest({}, nested))


def test_estimator_class_as_a_plain_string_parameter_is_explained() -> None:
    from mlrepro.errors import ManifestError
    from mlrepro.pipeline.preflight import check_classes

    selection = {
        "method": "sklearn.feature_selection.RFE",
        "params": {"estimator": "sklearn.linear_model.LogisticRegression"},
    }
    with pytest.raises(ManifestError) as info:
        check_classes(_manifest({}, selection))
    assert "'selection.params.estimator'" in info.value.message
    assert "{class: sklearn.linear_model.LogisticRegression" in info.value.hint


def test_derived_seeds_are_unchanged_by_message_paths() -> None:
    """Seeds derive from the internal key; changing it would change every recorded model."""
    from mlrepro.core.resolve import build

    est = build("sklearn.svm.SVC", {}, ("sklearn.",), "model.estimator", 42)
    from mlrepro.core.resolve import derive_seed

    assert est.random_state == derive_seed(42, "model.estimator/random_state")


def _sqlite_events(path, stamps: list) -> str:
    import sqlite3

    con = sqlite3.connect(path)
    con.execute("CREATE TABLE events (id INTEGER, ts TEXT, x1 REAL, x2 REAL, y REAL)")
    con.executemany(
        "INSERT INTO events VALUES (?, ?, ?, ?, ?)",
        [(i, ts, float(i % 3), float(i % 5), float(i % 4)) for i, ts in enumerate(stamps)],
    )
    con.commit()
    con.close()
    return f"sqlite:///{path}"


def test_sqlite_iso_text_cut_keeps_milliseconds_and_offsets(tmp_path, capsys) -> None:
    """A row 0.9 s after as_of is not in the snapshot; offsets are converted to UTC."""
    from test_extract import make_project, snapshot

    stamps = [f"2026-02-01T0{i % 10}:00:00+00:00" for i in range(20)] + [
        "2026-03-01T00:00:00.900Z",  # after as_of: out
        "2026-03-01T01:00:00.000+01:00",  # = as_of: in
        "2026-03-01T02:00:00.500+02:00",  # 0.5 s after: out
        "2026-02-28T23:59:59.999Z",  # in
    ]
    url = _sqlite_events(tmp_path / "db.sqlite", stamps)
    project = make_project(tmp_path / "p", url)
    r = run_cli("extract", "-p", project)
    assert r.code == 0, r.err
    assert snapshot(project)["id"].tolist() == [*range(20), 21, 23]
    # an as_of with milliseconds is honoured too
    project2 = make_project(tmp_path / "p2", url, as_of="2026-03-01T00:00:00.500Z")
    assert run_cli("extract", "-p", project2).code == 0
    assert snapshot(project2)["id"].tolist() == [*range(20), 21, 22, 23]  # 22 is at as_of


@pytest.mark.parametrize("bad", ["2026-01-05T10:00:00+0100", "01/05/2026"])
def test_sqlite_unreadable_timestamps_are_refused_not_dropped(tmp_path, capsys, bad) -> None:
    from test_extract import make_project

    stamps = [f"2026-01-0{1 + i % 9}T10:00:00Z" for i in range(20)] + [bad]
    project = make_project(tmp_path / "p", _sqlite_events(tmp_path / "db.sqlite", stamps))
    r = run_cli("extract", "-p", project)
    assert r.code == 3, r.err
    assert "timestamp column 'ts': 1 of 21 value(s) are not ISO 8601" in r.err
    assert bad not in r.err  # no data values in messages
    assert not (project / "mlrepro.lock").exists()


def test_sqlite_timestamps_mixing_numbers_and_text_are_refused(tmp_path, capsys) -> None:
    import sqlite3

    from test_extract import make_project

    path = tmp_path / "db.sqlite"
    url = _sqlite_events(path, [f"2026-01-0{1 + i % 9}T10:00:00Z" for i in range(10)])
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE m2 (id INTEGER, ts, x1 REAL, x2 REAL, y REAL)")  # no affinity
    con.execute("INSERT INTO m2 SELECT * FROM events")
    con.execute("INSERT INTO m2 VALUES (99, 1767261600, 1.0, 1.0, 1.0)")  # epoch seconds
    con.commit()
    con.close()
    project = make_project(tmp_path / "p", url, query="SELECT * FROM m2")
    r = run_cli("extract", "-p", project)
    assert r.code == 3, r.err
    assert "mixes numbers (1 rows) and text (10 rows)" in r.err


def test_model_diff_does_not_report_equal_nan_categories_or_rng_addresses() -> None:
    """verify's 'fitted state differs' listed NaN == NaN and two reprs of one RNG state."""
    import copy

    import numpy as np
    import pandas as pd
    from sklearn.preprocessing import OneHotEncoder

    from mlrepro.verify.compare import Tolerance
    from mlrepro.verify.modeldiff import compare_fitted

    frame = pd.DataFrame({"c": pd.array(["a", None, "b"], dtype=object)})
    a = OneHotEncoder().fit(frame)
    b = OneHotEncoder().fit(frame.copy())
    a.rng_ = np.random.default_rng(3)
    b.rng_ = copy.deepcopy(a.rng_)
    a.legacy_ = np.random.RandomState(5)
    b.legacy_ = np.random.RandomState(5)
    tol = Tolerance(rtol=1e-9, atol=1e-12)
    assert compare_fitted(a, b, tol).reasons == []
    b.rng_.random()  # a real state change is still reported
    assert any("rng_" in r for r in compare_fitted(a, b, tol).reasons)


def _labelled_project(tmp_path, model: dict) -> object:
    """A 60-row SQLite project with a text class label."""
    import sqlite3

    import yaml

    con = sqlite3.connect(tmp_path / "db.sqlite")
    con.execute("CREATE TABLE t (id INTEGER, ts TEXT, a REAL, b REAL, label TEXT)")
    con.executemany(
        "INSERT INTO t VALUES (?, ?, ?, ?, ?)",
        [
            (i, f"2025-01-01T00:{i:02d}:00Z", i % 3 + 0.1 * (i % 7), i % 5, ["x", "y", "z"][i % 3])
            for i in range(60)
        ],
    )
    con.commit()
    con.close()
    manifest = {
        "name": "labels",
        "source": {
            "url": f"sqlite:///{tmp_path / 'db.sqlite'}",
            "query": "SELECT * FROM t",
            "timestamp_column": "ts",
            "as_of": "2025-06-01T00:00:00Z",
            "order_by": ["id"],
        },
        "target": "label",
        "model": model,
    }
    (tmp_path / "mlrepro.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return tmp_path


@pytest.mark.parametrize(
    "model",
    [
        {
            "estimator": "sklearn.pipeline.Pipeline",
            "params": {
                "steps": [
                    ["scale", {"class": "sklearn.preprocessing.StandardScaler"}],
                    ["clf", {"class": "sklearn.linear_model.LogisticRegression"}],
                ]
            },
        },
        {
            "estimator": "sklearn.ensemble.VotingClassifier",
            "params": {
                "estimators": [
                    ["lr", {"class": "sklearn.linear_model.LogisticRegression"}],
                    ["dt", {"class": "sklearn.tree.DecisionTreeClassifier"}],
                ],
                "voting": "soft",
            },
        },
    ],
    ids=["pipeline", "voting"],
)
def test_estimators_that_need_parameters_are_classified_by_their_task(
    tmp_path, capsys, model
) -> None:
    """A Pipeline/VotingClassifier ending in a classifier was trained as a regressor (r2)."""
    project = _labelled_project(tmp_path, model)
    r = run_cli("run", "-p", project, "--json")
    assert r.code == 0, r.err
    train = json.loads((project / "mlrepro.lock").read_text())["stages"]["train"]["details"]
    assert train["task"] == "classification"
    assert set(train["metrics"]) == {"accuracy", "f1"}
    assert train["classes"] == ["x", "y", "z"]


def test_regressor_on_a_text_target_is_explained(tmp_path, capsys) -> None:
    project = _labelled_project(tmp_path, {"estimator": "sklearn.linear_model.Ridge"})
    r = run_cli("run", "-p", project)
    assert r.code == 3, r.err
    assert "target 'label' holds text, but sklearn.linear_model.Ridge is a regressor" in r.err
    assert "use a classifier" in r.err


def test_env_defaults_and_visible_url_parts_are_not_masked_as_secrets(monkeypatch) -> None:
    """`sqlite:///${DIR:-data}/x.db` masked every "data" in messages ("training *** had")."""
    from mlrepro import redaction
    from mlrepro.core.sources import expand_env

    redaction.forget_secrets()
    monkeypatch.setenv("QA_USER", "alice")
    monkeypatch.setenv("QA_PW", "S3cret-Pa55-xq7")
    monkeypatch.delenv("QA_DIR", raising=False)
    expand_env("sqlite:///${QA_DIR:-data}/x.db")
    expand_env("postgresql://${QA_USER}:${QA_PW}@localhost/db")
    text = redaction.scrub("the training data had none; user alice; pw S3cret-Pa55-xq7")
    assert text == "the training data had none; user alice; pw ***"
    monkeypatch.setenv("QA_DIR", "data")  # a folder from the environment: shown in the URL
    expand_env("sqlite:///${QA_DIR}/x.db")
    assert redaction.scrub("data") == "data"
    redaction.forget_secrets()
