"""`mlrepro export --mlflow`: MLflow's own loader answers exactly like ``load_bundle``.

MLflow (``mlflow-skinny``, in the dev extra) with a local file store: no server. MLflow 3
refuses a file store unless ``MLFLOW_ALLOW_FILE_STORE=true``.
"""

from __future__ import annotations

import json
import shutil
import zipfile

import pandas as pd
import pytest
import yaml
from cli_helpers import run_cli

from mlrepro import load_bundle

mlflow = pytest.importorskip("mlflow")


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """{name: (MLflow model folder, bundle path inside it)} for both examples."""
    from mlrepro.cli.main import main

    out = {}
    root = tmp_path_factory.mktemp("mlflow")
    for name in ("diabetes", "breast_cancer"):
        target = root / name
        with pytest.raises(SystemExit) as exc:
            main(["export", "--mlflow", str(target), "-p", str(trained[name]), "-q"])
        assert exc.value.code == 0
        out[name] = (target, next((target / "artifacts").glob("*.mlrepro")))
    return out


@pytest.mark.parametrize(
    ("name", "data"),
    [("diabetes", "new_visits.csv"), ("breast_cancer", "new_biopsies.csv")],
)
def test_pyfunc_predicts_exactly_like_load_bundle(exported, trained, name, data):
    target, bundle_path = exported[name]
    frame = pd.read_csv(trained[name] / "data" / data)
    served = mlflow.pyfunc.load_model(str(target)).predict(frame)
    expected = load_bundle(bundle_path).predict(frame)
    pd.testing.assert_frame_equal(served, expected)
    assert len(served) == 20 and "prediction" in served.columns


def test_signature_and_metadata_come_from_the_recorded_schema(exported, trained):
    target, bundle_path = exported["diabetes"]
    model = mlflow.models.Model.load(str(target / "MLmodel"))
    bundle = load_bundle(bundle_path)
    inputs = {c["name"]: c for c in json.loads(model.signature.inputs.to_json())}
    for spec in bundle.columns:
        assert inputs[spec.name]["required"] is not spec.nullable
    assert inputs["clinic"]["type"] == "string"
    assert inputs["bmi"]["type"] == "double" and inputs["bmi"]["required"] is False
    assert inputs["visit_id"]["required"] is False  # an id column: copied when sent
    meta = model.metadata["mlrepro"]
    lock = json.loads((trained["diabetes"] / "mlrepro.lock").read_text())
    assert (
        meta["model_fingerprint"] == lock["stages"]["train"]["outputs"]["pipeline"]["fingerprint"]
    )
    assert meta["bundle_fingerprint"] == bundle.fingerprint
    assert (
        meta["fingerprints"]["extract"]["snapshot"]
        == (lock["stages"]["extract"]["outputs"]["snapshot"]["fingerprint"])
    )
    conf = yaml.safe_load((target / "MLmodel").read_text())["flavors"]["python_function"]
    assert conf["config"]["bundle_fingerprint"] == bundle.fingerprint
    assert not list(target.rglob("*.pkl"))  # a model from code: no pickle besides the bundle


def test_the_mlflow_input_signature_rejects_a_missing_column(exported, trained):
    target, _ = exported["breast_cancer"]
    frame = pd.read_csv(trained["breast_cancer"] / "data" / "new_biopsies.csv")
    with pytest.raises(mlflow.exceptions.MlflowException, match="mean_radius"):
        mlflow.pyfunc.load_model(str(target)).predict(frame.drop(columns=["mean_radius"]))


def test_a_tampered_bundle_inside_the_mlflow_model_is_refused(exported, tmp_path):
    from mlrepro.errors import ArtifactError

    target = tmp_path / "model"
    shutil.copytree(exported["diabetes"][0], target)
    bundle = next((target / "artifacts").glob("*.mlrepro"))
    with zipfile.ZipFile(bundle) as z:
        members = {i.filename: z.read(i.filename) for i in z.infolist()}
    members["MODEL_CARD.md"] = members["MODEL_CARD.md"].replace(b"#", b"=", 1)
    with zipfile.ZipFile(bundle, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    with pytest.raises(ArtifactError, match="does not match its recorded hash"):
        mlflow.pyfunc.load_model(str(target))


@pytest.mark.slow
def test_tracking_run_logs_params_metrics_and_fingerprints(capsys, exported, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    _, bundle = exported["breast_cancer"]
    store = (tmp_path / "mlruns").as_uri()
    res = run_cli(
        "export",
        "--mlflow",
        tmp_path / "m",
        "--bundle",
        bundle,
        "--tracking-uri",
        store,
        "--experiment",
        "diagnosis",
        "--json",
    )
    assert res.code == 0, res.err
    info = res.json()
    client = mlflow.tracking.MlflowClient(tracking_uri=store)
    run = client.get_run(info["run_id"])
    assert run.data.metrics["f1"] == pytest.approx(load_bundle(bundle).metadata.metrics["f1"])
    assert run.data.params["train.model.params.max_iter"] == "1000"
    assert run.data.tags["mlrepro.bundle_fingerprint"] == info["bundle_fingerprint"]
    assert run.data.tags["mlrepro.train.pipeline"] == info["model_fingerprint"]
    assert client.get_experiment(run.info.experiment_id).name == "diagnosis"
    artifacts = [a.path for a in client.list_artifacts(info["run_id"], "model")]
    assert "model/MLmodel" in artifacts


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        ((), "nothing to export to", 2),
        (("--mlflow", "{tmp}/m", "--experiment", "x"), "--experiment needs --tracking-uri", 2),
        (("--mlflow", "{tmp}/no/such/m"), "does not exist", 2),
        (("--mlflow", "{tmp}/m", "--bundle", "{tmp}/none.mlrepro"), "does not exist", 4),
        (
            ("--mlflow", "{tmp}/m", "--bundle", "{tmp}/b.mlrepro", "--expect", "b3:00"),
            "not the expected b3:00",
            4,
        ),
        (("--mlflow", "{tmp}/full"), "is not an empty folder", 2),
    ],
)
def test_export_errors(capsys, exported, tmp_path, args, message, code):
    shutil.copyfile(exported["diabetes"][1], tmp_path / "b.mlrepro")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    args = [a.format(tmp=tmp_path) for a in args]
    if "--bundle" not in args:
        args += ["-p", str(exported["diabetes"][1].parents[2])]  # any folder: fails earlier
    res = run_cli("export", *args)
    assert res.code == code, res.err
    assert message in res.err and "hint:" in res.err
    assert not (tmp_path / "m").exists()


def test_export_of_a_stale_project_is_refused(capsys, project_copy, tmp_path):
    project = project_copy("diabetes")
    manifest = project / "mlrepro.yaml"
    manifest.write_text(manifest.read_text().replace("k: 6", "k: 5"))
    res = run_cli("export", "--mlflow", tmp_path / "m", "-p", project)
    assert res.code == 2 and "is stale" in res.err and "mlrepro run" in res.err
    assert not (tmp_path / "m").exists()


def test_tracking_server_unreachable_is_a_source_error(capsys, exported, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    _, bundle = exported["diabetes"]
    res = run_cli(
        "export",
        "--mlflow",
        tmp_path / "m",
        "--bundle",
        bundle,
        "--tracking-uri",
        "http://user:s3cretpass@127.0.0.1:9",
    )
    assert res.code == 5
    assert "could not log the run" in res.err and "s3cretpass" not in res.err
    assert not (tmp_path / "m").exists()  # nothing half-done: the model folder is removed
