"""The whole pipeline through the real CLI: run, skip, stale, force, status, predict."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from cli_helpers import run_cli, run_subprocess

from mlrepro.project import lockfile

STAGES = ["extract", "features", "select", "train", "predict"]


@pytest.fixture
def diabetes(copy_example) -> Path:
    return copy_example("diabetes")


def edit_manifest(project: Path, change) -> None:
    path = project / "mlrepro.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_run_records_every_stage_then_skips(diabetes: Path, capsys) -> None:
    r = run_cli("run", "-p", diabetes, "--json")
    assert r.code == 0, r.err
    body = r.json()
    assert [s["stage"] for s in body["stages"]] == STAGES
    assert all(s["status"] == "ran" for s in body["stages"])

    lock = json.loads((diabetes / "mlrepro.lock").read_text())
    assert lock["lock_format"] == lockfile.LOCK_FORMAT
    for stage in STAGES:
        rec = lock["stages"][stage]
        for key in (
            "key",
            "code_version",
            "params_fingerprint",
            "inputs",
            "outputs",
            "environment",
            "started_at",
            "duration_s",
        ):
            assert key in rec, (stage, key)
        env_record = lock["environments"][rec["environment"]]  # recorded once, by fingerprint
        assert env_record["packages"]["scikit-learn"]
    assert len(lock["environments"]) == 1
    assert lock["fingerprint_format"] == 1
    snap = lock["stages"]["extract"]["outputs"]["snapshot"]
    assert snap["rows"] == 398  # 44 visits are recorded after as_of
    assert lock["stages"]["features"]["inputs"]["snapshot"] == snap["fingerprint"]
    train = lock["stages"]["train"]["details"]
    assert train["hyperparameters"]["n_estimators"] == 200
    assert train["hyperparameters"]["random_state"] is not None  # derived from seed
    assert train["structure"]["steps"][2]["members"]["count"] == 200
    assert set(train["metrics"]) == {"r2", "mae"}
    assert len(lock["stages"]["select"]["details"]["selected"]) == 6
    assert train["features"] == lock["stages"]["select"]["details"]["selected"]

    again = run_cli("run", "-p", diabetes)
    assert again.code == 0
    assert again.out.count("unchanged, skipped") == 5


def test_rerun_with_force_reproduces_fingerprints(diabetes: Path, capsys) -> None:
    assert run_cli("run", "-p", diabetes).code == 0
    first = json.loads((diabetes / "mlrepro.lock").read_text())
    r = run_cli("run", "-p", diabetes, "--force", "--json")
    assert all(s["status"] == "ran" for s in r.json()["stages"])
    second = json.loads((diabetes / "mlrepro.lock").read_text())
    for stage in STAGES:
        a = {k: v["fingerprint"] for k, v in first["stages"][stage]["outputs"].items()}
        b = {k: v["fingerprint"] for k, v in second["stages"][stage]["outputs"].items()}
        assert a == b, stage


def test_param_change_reruns_only_downstream(diabetes: Path, capsys) -> None:
    assert run_cli("run", "-p", diabetes).code == 0
    edit_manifest(diabetes, lambda d: d["model"]["params"].update(n_estimators=50))
    st = run_cli("status", "-p", diabetes, "--json").json()
    states = {s["stage"]: s for s in st["stages"]}
    assert states["select"]["state"] == "up to date"
    assert states["train"]["state"] == "stale"
    assert "parameters changed: model" in states["train"]["reason"]
    r = run_cli("run", "-p", diabetes, "--json").json()
    assert [s["status"] for s in r["stages"]] == ["skipped", "skipped", "skipped", "ran", "ran"]


def test_modified_artifact_makes_stage_stale_and_is_rebuilt(diabetes: Path, capsys) -> None:
    assert run_cli("run", "-p", diabetes).code == 0
    lock = json.loads((diabetes / "mlrepro.lock").read_text())
    path = diabetes / lock["stages"]["select"]["outputs"]["selector"]["path"]
    path.write_bytes(path.read_bytes() + b"x")
    st = {s["stage"]: s for s in run_cli("status", "-p", diabetes, "--json").json()["stages"]}
    assert st["select"]["state"] == "stale"
    assert "missing or modified: selector" in st["select"]["reason"]
    r = run_cli("run", "-p", diabetes, "--json").json()
    assert [s["status"] for s in r["stages"]][2] == "ran"


def test_stage_commands_need_upstream(diabetes: Path, capsys) -> None:
    r = run_cli("train", "-p", diabetes)
    assert r.code == 2
    assert "stage 'train' needs the output of 'features, select'" in r.err
    assert "mlrepro run" in r.err
    for stage in ["extract", "features", "select", "train"]:
        assert run_cli(stage, "-p", diabetes).code == 0
    assert "unchanged, skipped" in run_cli("train", "-p", diabetes).out


def test_adhoc_predict_csv_and_parquet(diabetes: Path, capsys, tmp_path: Path) -> None:
    assert run_cli("run", "-p", diabetes).code == 0
    lock = json.loads((diabetes / "mlrepro.lock").read_text())
    model_fp = lock["stages"]["train"]["outputs"]["pipeline"]["fingerprint"]
    new = pd.read_csv(diabetes / "data" / "new_visits.csv")
    shuffled = new[list(reversed(new.columns))].assign(extra="x")  # reordered + extra column
    shuffled.to_parquet(tmp_path / "in.parquet")
    out = tmp_path / "out.csv"
    r = run_cli(
        "predict",
        "-p",
        diabetes,
        "--input",
        tmp_path / "in.parquet",
        "--output",
        out,
        "--json",
    )
    assert r.code == 0, r.err
    summary = r.json()
    assert summary["predicted"] == len(new) and summary["rejected"] == 0
    preds = pd.read_csv(out)
    assert list(preds.columns) == ["visit_id", "prediction", "model_fingerprint"]
    assert (preds["model_fingerprint"] == model_fp).all()
    recorded = pd.read_parquet(diabetes / "predictions.parquet")
    pd.testing.assert_series_equal(preds["prediction"], recorded["prediction"], check_names=False)
    assert "ignoring 1 input column(s) the model does not use: extra" in r.err


def test_predict_missing_columns_are_listed(diabetes: Path, capsys, tmp_path: Path) -> None:
    assert run_cli("run", "-p", diabetes).code == 0
    new = pd.read_csv(diabetes / "data" / "new_visits.csv").drop(columns=["bmi", "s5"])
    new.to_csv(tmp_path / "in.csv", index=False)
    r = run_cli("predict", "-p", diabetes, "-i", tmp_path / "in.csv", "-o", tmp_path / "o.csv")
    assert r.code == 3
    assert "prediction input: missing column(s) ['bmi', 's5']" in r.err
    assert not (tmp_path / "o.csv").exists()


def test_predict_into_database_table(diabetes: Path, capsys, tmp_path: Path) -> None:
    import sqlalchemy as sa

    assert run_cli("run", "-p", diabetes).code == 0
    url = f"sqlite:///{tmp_path / 'out.db'}"
    # SQL in, table out: --url serves both, so the scores land next to the visits
    r = run_cli(
        "predict",
        "-p",
        diabetes,
        "--query",
        "SELECT * FROM visits WHERE recorded_at > '2026-07-01'",
        "--url",
        f"sqlite:///{diabetes / 'data' / 'diabetes.db'}",
        "--table",
        "scores",
    )
    assert r.code == 0, r.err
    assert "predicted 43 of 43 rows -> table scores" in r.out
    assert "ignoring" not in r.err  # target and timestamp are training columns: no noise
    r = run_cli(
        "predict",
        "-p",
        diabetes,
        "-i",
        diabetes / "data" / "new_visits.csv",
        "--table",
        "scores",
        "--url",
        url,
    )
    assert r.code == 0, r.err
    df = pd.read_sql("SELECT * FROM scores", sa.create_engine(url))
    assert len(df) == 20 and "model_fingerprint" in df.columns


def test_help_and_noop_run_stay_light(diabetes: Path) -> None:
    probe = (
        "import sys\nfrom mlrepro.cli.main import main\n"
        "try:\n    main(sys.argv[1:])\n"
        "except SystemExit: pass\n"
        "print('HEAVY', sorted(m for m in ('pandas','sklearn') if m in sys.modules))"
    )
    import subprocess
    import sys

    from cli_helpers import REPO_ROOT

    env = {"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", probe, "--help"], capture_output=True, text=True, env=env, check=True
    ).stdout
    assert "HEAVY []" in out
    assert run_subprocess("run", "-p", diabetes).returncode == 0
    out = subprocess.run(
        [sys.executable, "-c", probe, "run", "-p", str(diabetes)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert "unchanged, skipped" in out
    assert "'sklearn'" not in out.split("HEAVY")[1]


def test_classification_example(copy_example, capsys) -> None:
    project = copy_example("breast_cancer")
    r = run_cli("run", "-p", project, "--json")
    assert r.code == 0, r.err
    lock = json.loads((project / "mlrepro.lock").read_text())
    metrics = lock["stages"]["train"]["details"]["metrics"]
    assert set(metrics) == {"accuracy", "f1", "roc_auc"} and metrics["accuracy"] > 0.9
    preds = pd.read_csv(project / "predictions.csv")
    assert {"prediction", "proba_0", "proba_1", "biopsy_id"} <= set(preds.columns)


@pytest.mark.parametrize("handle_unknown", ["error", "ignore"])
def test_unseen_categories_follow_the_encoders_policy(
    diabetes: Path, capsys, tmp_path: Path, handle_unknown: str
) -> None:
    def set_policy(d: dict) -> None:
        d["features"][1]["params"]["handle_unknown"] = handle_unknown

    edit_manifest(diabetes, set_policy)
    assert run_cli("run", "-p", diabetes).code == 0
    new = pd.read_csv(diabetes / "data" / "new_visits.csv")
    new.loc[0, "clinic"] = "brand-new-clinic"
    new.to_csv(tmp_path / "in.csv", index=False)
    r = run_cli(
        "predict",
        "-p",
        diabetes,
        "-i",
        tmp_path / "in.csv",
        "-o",
        tmp_path / "out.csv",
        "--json",
    )
    if handle_unknown == "error":
        assert r.code == 1
        assert "column 'clinic': unseen category" in r.err
    else:  # the manifest asked the encoder to accept new values: so does validation
        assert r.code == 0, r.err
        assert r.json()["predicted"] == len(new)
        bundle = tmp_path / "m.mlrepro"
        assert run_cli("bundle", "-p", diabetes, "-o", bundle).code == 0
        from mlrepro import load_bundle

        model = load_bundle(bundle)
        assert len(model.predict(new)) == len(new)
        spec = {c.name: c for c in model.columns}["clinic"]
        assert spec.categories is None
