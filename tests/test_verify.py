"""`mlrepro verify` end to end: real pipelines, real databases, real artifacts (no mocks).

The diabetes example is run once per module; each test verifies its own copy, changed the
way the test needs (database rows, lock entries, artifact bytes).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import run_cli

from mlrepro.fingerprint import fingerprint_frame, hash_file

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = REPO_ROOT / "examples" / "diabetes"
OUTPUTS = (".mlrepro", "mlrepro.lock", ".mlrepro.lock.pid", "predictions*", "__pycache__")
BACKFILL = (
    "INSERT INTO visits VALUES (9001, ?, 'north', 50, 1, 25.5, 90, 180, 100, 40, 4, 4.5, 90, 150)"
)


def verify_json(capsys: pytest.CaptureFixture[str], project: Path, *args: str) -> tuple[int, dict]:
    code, out, _ = run_cli("verify", "-p", project, "--json", *args)
    return code, json.loads(out)


def verdicts(report: dict) -> dict[str, str]:
    return {s["stage"]: s["verdict"] for s in report["stages"]}


def stage_of(report: dict, name: str) -> dict:
    return next(s for s in report["stages"] if s["stage"] == name)


def tree_digest(root: Path) -> dict[str, str]:
    """File -> content hash for everything in a project folder."""
    return {
        p.relative_to(root).as_posix(): hash_file(p) for p in sorted(root.rglob("*")) if p.is_file()
    }


def sql(project: Path, statement: str, *params: object) -> None:
    with sqlite3.connect(project / "data" / "diabetes.db") as conn:
        conn.execute(statement, params)


def edit_lock(project: Path, change) -> None:  # noqa: ANN001 - a callable taking the lock
    path = project / "mlrepro.lock"
    lock = json.loads(path.read_text())
    change(lock)
    path.write_text(json.dumps(lock, indent=2, sort_keys=True))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The diabetes example, run once: manifest, data, .mlrepro/, mlrepro.lock."""
    root = tmp_path_factory.mktemp("recorded") / "diabetes"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(*OUTPUTS))
    assert run_cli("run", "-q", "-p", root).code == 0
    return root


@pytest.fixture
def project(recorded: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "project"
    shutil.copytree(recorded, dest)
    return dest


# ---------------------------------------------------------------------------- unchanged


def test_unchanged_project_is_identical_and_untouched(capsys, project):
    before = tree_digest(project)
    code, out, err = run_cli("verify", "-p", project)
    assert code == 0, out + err
    for stage in ("extract", "features", "select", "train", "predict"):
        assert f"│ {stage:<8} │ identical" in out
    assert "reproduced: 5 identical" in out
    assert tree_digest(project) == before  # verify never writes the project


def test_json_report_shape(capsys, project):
    code, report = verify_json(capsys, project)
    assert code == 0
    assert report["reproduced"] is True and report["exit_code"] == 0
    assert report["cause"] is None
    assert report["tolerance"] == {"rtol": 1e-9, "atol": 1e-12}
    assert verdicts(report) == dict.fromkeys(
        ["extract", "features", "select", "train", "predict"], "identical"
    )
    train = stage_of(report, "train")
    assert train["fed"] == {"features": "recorded", "select": "recorded"}
    pipeline = train["outputs"]["pipeline"]
    assert pipeline["recorded"] == pipeline["reproduced"]
    assert pipeline["artifact"] == "ok"
    assert report["audit"] == []
    assert report["environment"] == []  # recorded on this machine


def test_verify_in_a_copied_project_folder(capsys, recorded, tmp_path):
    """Lock paths are relative: a copy elsewhere (the original gone) verifies the same."""
    first = tmp_path / "a" / "proj"
    shutil.copytree(recorded, first)
    moved = tmp_path / "elsewhere" / "renamed"
    shutil.copytree(first, moved)
    shutil.rmtree(first)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "mlrepro.cli.main", "verify", "--json"],
        cwd=moved,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert set(verdicts(json.loads(proc.stdout)).values()) == {"identical"}


# ------------------------------------------------------------------------------ source


def test_backfilled_row_is_source_changed_and_named(capsys, project):
    sql(project, BACKFILL, "2026-03-01T10:00:00")  # before as_of: changes the training set
    code, out, _ = run_cli("verify", "-p", project)
    assert code == 1
    assert "│ extract  │ source changed │" in out
    assert "1 row(s) added: visit_id=9001" in out
    assert "'extract' is the first stage that diverged" in out
    code, report = verify_json(capsys, project)
    assert code == 1
    assert report["cause"] == "extract"
    extract = stage_of(report, "extract")
    assert extract["row_keys"] == {"added": [9001]}
    assert "downstream stages start from the recorded snapshot" in extract["notes"]
    # downstream stages ran from the recorded snapshot: the pipeline itself reproduces
    for stage in ("features", "select", "train", "predict"):
        assert stage_of(report, stage)["verdict"] == "identical"


def test_rows_after_as_of_keep_the_extract_identical(capsys, project):
    sql(project, BACKFILL, "2026-08-01T10:00:00")  # after as_of: not part of the snapshot
    code, report = verify_json(capsys, project)
    assert code == 0
    assert verdicts(report)["extract"] == "identical"


def test_edited_and_deleted_rows_are_named(capsys, project):
    sql(project, "UPDATE visits SET bmi = bmi + 1 WHERE visit_id = 5")
    sql(project, "DELETE FROM visits WHERE visit_id = 7")
    code, report = verify_json(capsys, project, "--stage", "extract")
    assert code == 1
    extract = stage_of(report, "extract")
    assert extract["verdict"] == "source changed"
    assert extract["row_keys"] == {"removed": [7], "changed": [5]}
    assert any("row count 398 -> 397" in r for r in extract["reasons"])


def test_source_emptied_before_as_of_is_source_changed(capsys, project):
    """The re-query fails (zero rows): a verdict, and the rest runs on the recorded snapshot."""
    sql(project, "DELETE FROM visits WHERE recorded_at < '2026-06-30'")
    code, report = verify_json(capsys, project)
    assert code == 1
    extract = stage_of(report, "extract")
    assert extract["verdict"] == "source changed"
    assert extract["reasons"] == [
        "re-execution failed: the source query returned zero rows as of 2026-06-30T00:00:00Z"
    ]
    assert [stage_of(report, s)["verdict"] for s in ("features", "train", "predict")] == [
        "identical"
    ] * 3


def test_changed_prediction_input_is_source_changed(capsys, project):
    path = project / "data" / "new_visits.csv"
    lines = path.read_text().splitlines(keepends=True)
    assert lines[1].startswith("399,west,52.0,1.0,23.0,")
    lines[1] = lines[1].replace(",23.0,", ",33.0,", 1)  # bmi, a selected feature
    path.write_text("".join(lines))
    code, report = verify_json(capsys, project, "--stage", "predict")
    assert code == 1
    predict = stage_of(report, "predict")
    assert predict["verdict"] == "source changed"
    assert predict["reasons"][0] == "the prediction input data/new_visits.csv changed"
    assert predict["row_keys"] == {"changed": [399]}
    assert predict["stats"]["differing_values"] == 1


def test_predictions_from_a_query_into_a_table(capsys, tmp_path):
    """predict.query is not pinned by as_of: only its rows decide; the table is never written."""
    project = tmp_path / "query"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(*OUTPUTS))
    manifest = project / "mlrepro.yaml"
    text = manifest.read_text().replace("n_estimators: 200", "n_estimators: 20")
    manifest.write_text(
        text[: text.index("predict:")]
        + "predict:\n"
        + "  query: SELECT * FROM visits WHERE recorded_at > '2026-06-30' AND bp IS NOT NULL\n"
        + "  table: predictions\n"
    )
    assert run_cli("run", "-q", "-p", project)[0] == 0
    code, report = verify_json(capsys, project)
    assert code == 0
    assert set(verdicts(report).values()) == {"identical"}

    def table() -> list[tuple]:
        with sqlite3.connect(project / "data" / "diabetes.db") as conn:
            return conn.execute("SELECT * FROM predictions ORDER BY visit_id").fetchall()

    before = table()
    sql(project, "UPDATE visits SET bmi = bmi + 3 WHERE visit_id = 410")
    code, report = verify_json(capsys, project, "--stage", "predict")
    assert code == 1
    predict = stage_of(report, "predict")
    assert predict["verdict"] == "source changed"
    assert predict["reasons"][0].startswith("predict.query is re-run now")
    assert predict["row_keys"] == {"changed": [410]}
    assert table() == before  # the recorded predictions table is read, never rewritten


def test_unreachable_source_says_to_use_offline(capsys, project):
    (project / "data" / "diabetes.db").unlink()
    code, _, err = run_cli("verify", "-p", project)
    assert code == 5
    assert "does not exist" in err
    assert "mlrepro verify --offline" in err


def test_offline_starts_from_the_recorded_snapshot(capsys, project):
    sql(project, BACKFILL, "2026-03-01T10:00:00")  # ignored: the database is not queried
    code, report = verify_json(capsys, project, "--offline")
    assert code == 0
    assert verdicts(report) == {
        "extract": "skipped",
        "features": "identical",
        "select": "identical",
        "train": "identical",
        "predict": "identical",
    }
    assert stage_of(report, "features")["fed"] == {"extract": "recorded"}


def test_offline_without_the_recorded_snapshot_is_an_artifact_error(capsys, project):
    shutil.rmtree(project / ".mlrepro")
    code, _, err = run_cli("verify", "-p", project, "--offline")
    assert code == 4
    assert "--offline needs the recorded snapshot" in err
    assert "hint: verify without --offline" in err


def test_without_the_artifact_cache_fingerprints_still_verify(capsys, project):
    """A colleague may send mlrepro.yaml + mlrepro.lock + data only (no .mlrepro/)."""
    shutil.rmtree(project / ".mlrepro")
    code, report = verify_json(capsys, project)
    assert code == 0
    assert set(verdicts(report).values()) == {"identical"}
    assert stage_of(report, "train")["outputs"]["pipeline"]["artifact"] == "missing"


# ------------------------------------------------------------------- lock and artifacts


def test_hyperparameter_edited_in_the_lock_is_named(capsys, project):
    def more_trees(lock: dict) -> None:
        train = lock["stages"]["train"]
        train["params"]["model"]["params"]["n_estimators"] = 300
        recorded_env = lock["environments"][train["environment"]]  # one record, by fingerprint
        recorded_env["packages"]["scikit-learn"] = "1.4.2"  # recorded elsewhere

    edit_lock(project, more_trees)
    code, out, _ = run_cli("verify", "-p", project)
    assert code == 1
    assert "│ train    │ different" in out
    assert "parameter model.params.n_estimators: 300 -> 200" in out
    assert "the lock record was edited" in out
    assert "'train' is the first stage that diverged" in out
    assert "hint: mlrepro.yaml and mlrepro.lock disagree" in out
    from sklearn import __version__ as sklearn_version

    assert "differs from the recording in what can explain this: scikit-learn: 1.4.2 -> " in out
    assert f"1.4.2 -> {sklearn_version} (the pipeline's " in out


def test_hyperparameter_changed_in_the_manifest_is_named(capsys, project):
    manifest = project / "mlrepro.yaml"
    text = manifest.read_text()
    manifest.write_text(text.replace("n_estimators: 200", "n_estimators: 30"))
    code, report = verify_json(capsys, project, "--stage", "train")
    assert code == 1
    reasons = stage_of(report, "train")["reasons"]
    assert "parameter model.params.n_estimators: 200 -> 30" in reasons
    assert "hyperparameters.n_estimators: 200 -> 30" in reasons
    # the recorded model is not unpickled: its behaviour comes from matrix_predictions
    assert any(r.startswith("pipeline: predictions on the 398 matrix rows differ") for r in reasons)
    assert any(r.startswith("matrix_predictions: numeric values") for r in reasons)
    # trusted: both models are loaded, predicted on the matrix and compared
    code, report = verify_json(capsys, project, "--stage", "train", "--trust-artifacts")
    assert code == 1
    reasons = stage_of(report, "train")["reasons"]
    assert any(r.startswith("pipeline: predictions on the 398 matrix rows") for r in reasons)


@pytest.mark.parametrize(
    ("stage", "output", "exit_code"),
    [("train", "pipeline", 4), ("extract", "snapshot", 4)],
)
def test_tampered_artifact_is_reported(capsys, project, stage, output, exit_code):
    lock = json.loads((project / "mlrepro.lock").read_text())
    path = lock["stages"][stage]["outputs"][output]["path"]
    with open(project / path, "ab") as f:
        f.write(b"\0")
    code, out, _ = run_cli("verify", "-p", project)
    assert code == exit_code
    assert f"│ {stage:<8} │ tampered" in out
    assert f"recorded artifact {path} ({stage}.{output}) was modified or corrupted" in out
    assert "'mlrepro run --force' rebuilds it" in out


def test_float_only_difference_is_equivalent(capsys, project):
    """Recorded predictions off by a relative 1e-12 (as from another BLAS) are equivalent."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    def perturb(lock: dict) -> None:
        rec = lock["stages"]["predict"]["outputs"]["predictions"]
        path = project / rec["path"]
        table = pq.read_table(path)
        i = table.schema.get_field_index("prediction")
        table = table.set_column(i, "prediction", pc.multiply(table["prediction"], 1 + 1e-12))
        pq.write_table(table, path)
        rec["fingerprint"] = fingerprint_frame(pq.read_table(path).to_pandas())
        rec["file_hash"] = hash_file(path)

    edit_lock(project, perturb)
    code, report = verify_json(capsys, project, "--stage", "predict")
    assert code == 0
    predict = stage_of(report, "predict")
    assert predict["verdict"] == "equivalent"
    stats = predict["stats"]
    assert stats["differing_values"] == 20 and stats["beyond_tolerance"] == 0
    assert 0 < stats["max_abs_diff"] < 1e-9
    assert 0 < stats["max_rel_diff"] <= 1.01e-12
    code, out, _ = run_cli("verify", "-p", project, "--stage", "predict")
    assert code == 0
    assert "│ predict  │ equivalent" in out
    assert "20 of 20 value(s) differ, max abs diff" in out
    # a tighter tolerance than the difference: different
    code, report = verify_json(capsys, project, "--stage", "predict", "--rtol", "1e-14")
    assert code == 1
    assert verdicts(report) == {"predict": "different"}


@pytest.mark.slow
def test_unseeded_model_is_different_and_flagged_by_the_audit(capsys, recorded, tmp_path):
    project = tmp_path / "unseeded"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(*OUTPUTS))
    manifest = project / "mlrepro.yaml"
    manifest.write_text(
        manifest.read_text().replace(
            "params: {n_estimators: 200, max_depth: 8}",
            "params: {n_estimators: 20, max_depth: 8, random_state: null}",
        )
    )
    assert run_cli("run", "-q", "-p", project)[0] == 0
    code, report = verify_json(capsys, project, "--stage", "train")
    assert code == 1
    assert verdicts(report) == {"train": "different"}
    assert report["audit"] == [
        {
            "where": "model: params.random_state",
            "class": "sklearn.ensemble.RandomForestRegressor",
            "problem": "random_state is null: results change from run to run",
            "fix": "remove 'random_state: null' to derive it from 'seed'",
        }
    ]
    code, out, _ = run_cli("verify", "-p", project, "--stage", "train")
    assert "audit: model: params.random_state" in out


# ----------------------------------------------------------------------- --stage, errors


def test_stage_runs_alone_on_recorded_inputs(capsys, project):
    code, report = verify_json(capsys, project, "--stage", "select")
    assert code == 0
    assert verdicts(report) == {"select": "identical"}
    assert stage_of(report, "select")["fed"] == {"features": "recorded"}


def test_stage_without_its_recorded_inputs_is_an_artifact_error(capsys, project):
    lock = json.loads((project / "mlrepro.lock").read_text())
    (project / lock["stages"]["select"]["outputs"]["selector"]["path"]).unlink()
    code, _, err = run_cli("verify", "-p", project, "--stage", "train", "--trust-artifacts")
    assert code == 4
    assert "--stage train needs the recorded outputs of 'select'" in err
    assert "recorded select.selector is missing" in err
    # untrusted (the default), the recorded selector would never be loaded: select re-runs
    code, report = verify_json(capsys, project, "--stage", "train")
    assert code == 0
    assert stage_of(report, "train")["fed"]["select"] == "reproduced"


def test_differing_stage_feeds_downstream_its_recorded_outputs(capsys, project):
    """A changed select stage is the cause; train still runs on the recorded selector."""
    manifest = project / "mlrepro.yaml"
    manifest.write_text(manifest.read_text().replace("params: {k: 6}", "params: {k: 5}"))
    code, report = verify_json(capsys, project)
    assert code == 1
    assert report["cause"] == "select"
    select = stage_of(report, "select")
    assert "parameter selection.params.k: 6 -> 5" in select["reasons"]
    assert any(r.startswith("selected: removed") for r in select["reasons"])
    # the recorded selector is a pickle: without --trust-artifacts train gets the new one
    train = stage_of(report, "train")
    assert train["fed"]["select"] == "reproduced" and train["verdict"] == "different"
    assert any("loaded only with --trust-artifacts" in n for n in train["notes"])
    code, report = verify_json(capsys, project, "--trust-artifacts")
    assert report["cause"] == "select" and verdicts(report)["train"] == "identical"


def test_stage_rerun_alone_leaves_a_stale_lock(capsys, project):
    manifest = project / "mlrepro.yaml"
    manifest.write_text(manifest.read_text().replace("strategy: median", "strategy: mean"))
    assert run_cli("features", "-q", "-p", project)[0] == 0
    code, report = verify_json(capsys, project)
    assert code == 1
    assert verdicts(report)["features"] == "identical"
    assert report["cause"] == "select"
    assert any(
        r.startswith("stale lock: select was recorded from features.matrix")
        for r in stage_of(report, "select")["reasons"]
    )


def test_recorded_stage_no_longer_in_the_manifest_is_skipped(capsys, project):
    manifest = project / "mlrepro.yaml"
    text = manifest.read_text()
    manifest.write_text(text[: text.index("predict:")])
    code, report = verify_json(capsys, project)
    assert code == 0
    predict = stage_of(report, "predict")
    assert predict["verdict"] == "skipped"
    assert predict["reasons"] == ["recorded, but no longer in the manifest"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stage", "deploy"], "--stage 'deploy' is not a stage of this project"),
        (["--offline", "--stage", "extract"], "use just one of --offline or --stage extract"),
        (["--rtol", "-1"], "--rtol must be >= 0"),
    ],
)
def test_usage_errors(capsys, project, args, message):
    code, _, err = run_cli("verify", "-p", project, *args)
    assert code == 2
    assert message in err
    assert "hint:" in err


def test_project_without_a_lock_is_an_error(capsys, tmp_path):
    project = tmp_path / "fresh"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(*OUTPUTS))
    code, out, err = run_cli("verify", "-p", project, "--json")
    assert code == 4
    assert "mlrepro.lock does not exist: nothing to verify" in err
    assert json.loads(out)["hint"].startswith("run 'mlrepro run'")


def test_verify_help_does_not_import_pandas_or_sklearn():
    code = (
        "import sys\n"
        "from mlrepro.cli.main import main\n"
        "try:\n    main(['verify', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('pandas', 'sklearn', 'numpy') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "--offline" in proc.stdout and "--stage" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "[]"


# ---------------------------------------------------------------------------- PostgreSQL


@pytest.mark.postgres
@pytest.mark.slow
def test_postgres_source_identical_then_backfilled(capsys, pg_clean_schema, tmp_path):
    import sqlalchemy as sa

    project = tmp_path / "pg"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(*OUTPUTS))
    with sqlite3.connect(project / "data" / "diabetes.db") as conn:
        cur = conn.execute("SELECT * FROM visits ORDER BY visit_id")
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    meta = sa.MetaData()
    columns = [sa.Column("visit_id", sa.Integer, primary_key=True)]
    columns.append(sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False))
    columns.append(sa.Column("clinic", sa.Text, nullable=False))
    columns += [sa.Column(n, sa.Float) for n in names[3:]]
    visits = sa.Table("visits", meta, *columns)
    meta.create_all(pg_clean_schema.engine)
    for r in rows:
        r["recorded_at"] = r["recorded_at"] + "+00:00"
    with pg_clean_schema.engine.begin() as conn:
        conn.execute(visits.insert(), rows)
    manifest = project / "mlrepro.yaml"
    text = manifest.read_text().replace("sqlite:///data/diabetes.db", pg_clean_schema.url)
    manifest.write_text(text.replace("n_estimators: 200", "n_estimators: 40"))
    assert run_cli("run", "-q", "-p", project)[0] == 0

    code, report = verify_json(capsys, project)
    assert code == 0, report
    assert set(verdicts(report).values()) == {"identical"}

    new = dict(rows[0], visit_id=9001, recorded_at="2026-03-01T10:00:00+00:00")
    with pg_clean_schema.engine.begin() as conn:
        conn.execute(visits.insert(), [new])
        conn.execute(sa.text("UPDATE visits SET s1 = s1 + 0.5 WHERE visit_id = 12"))
    code, out, _ = run_cli("verify", "-p", project)
    assert code == 1
    assert "│ extract  │ source changed │" in out
    assert "1 row(s) added: visit_id=9001" in out
    assert "1 row(s) changed: visit_id=12" in out
    password = sa.make_url(pg_clean_schema.url).password
    assert f":{password}@" not in out  # the password is never printed
