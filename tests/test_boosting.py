"""LightGBM, XGBoost and CatBoost as plugins, end to end (issue 11): run, skip on rerun,
verify identical, bundle, predict --bundle, serve; versions in the environment record;
models fingerprinted by their native dump."""

from __future__ import annotations

import copy
import json
import pickle
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from cli_helpers import run_cli

from mlrepro import load_bundle
from mlrepro.fingerprint import fingerprint_model

PLUGINS = {
    "lightgbm": (
        "lightgbm.LGBMClassifier",
        {"n_estimators": 25, "num_leaves": 7, "min_child_samples": 5, "verbose": -1},
    ),
    "xgboost": (
        "xgboost.XGBClassifier",
        {"n_estimators": 25, "max_depth": 3, "verbosity": 0, "n_jobs": 2},
    ),
    "catboost": (
        "catboost.CatBoostClassifier",
        {"iterations": 25, "depth": 4, "verbose": 0, "allow_writing_files": False},
    ),
}


def _project(copy_example, library: str) -> Path:  # noqa: ANN001 - the conftest factory
    project = copy_example("breast_cancer")
    path = project / "mlrepro.yaml"
    data = yaml.safe_load(path.read_text())
    estimator, params = PLUGINS[library]
    data["plugins"] = [library]
    data["model"]["estimator"] = estimator
    data["model"]["params"] = params
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return project


@pytest.mark.slow
@pytest.mark.parametrize("library", sorted(PLUGINS))
def test_plugin_end_to_end(copy_example, capsys, tmp_path, library: str) -> None:
    project = _project(copy_example, library)
    first = run_cli("run", "--json", "-p", project)
    assert first.code == 0, first.err
    assert {s["status"] for s in first.json()["stages"]} == {"ran"}
    lock = json.loads((project / "mlrepro.lock").read_text())
    train = lock["stages"]["train"]
    assert train["details"]["estimator"].startswith(f"{library}.")
    environment = lock["environments"][train["environment"]]  # stored once per lock
    assert environment["packages"][library] == metadata.version(library)
    assert train["details"]["hyperparameters"]  # recorded, with the plugin's own names

    again = run_cli("run", "--json", "-p", project)
    assert again.code == 0
    assert {s["status"] for s in again.json()["stages"]} == {"skipped"}

    verify = run_cli("verify", "--json", "-p", project)
    assert verify.code == 0, verify.out
    verdicts = {s["stage"]: s["verdict"] for s in verify.json()["stages"]}
    assert verdicts == dict.fromkeys(verdicts, "identical"), verdicts

    bundle = tmp_path / f"{library}.mlrepro"
    assert run_cli("bundle", "-q", "-o", bundle, "-p", project).code == 0
    inspect = run_cli("inspect", "--json", bundle)
    assert inspect.code == 0
    assert inspect.json()["environment_diff"] == []  # the plugin is not reported "absent"
    assert f"{library} {metadata.version(library)}" in inspect.json()["card"]

    new = project / "data" / "new_biopsies.csv"
    out = tmp_path / "predictions.csv"
    predicted = run_cli("predict", "--bundle", bundle, "--input", new, "--output", out)
    assert predicted.code == 0, predicted.err
    batch = pd.read_csv(out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load_bundle(bundle)
    frame = pd.read_csv(new)
    embedded = model.predict(frame)
    assert batch["prediction"].tolist() == embedded["prediction"].tolist()
    assert model.model_fingerprint == train["outputs"]["pipeline"]["fingerprint"]

    from mlrepro.serving.http import create_app

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*httpx2")
        from fastapi.testclient import TestClient

    records = json.loads(frame.to_json(orient="records"))
    with TestClient(create_app(model)) as client:
        answer = client.post("/predict", json=records)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model_fingerprint"] == model.model_fingerprint
    served = [p["prediction"] for p in body["predictions"]]
    assert served == embedded["prediction"].tolist()
    probabilities = [p["proba_1"] for p in body["predictions"]]
    assert np.allclose(probabilities, embedded["proba_1"].to_numpy())


# ------------------------------------------------------------------ native fingerprints


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(0)
    X = rng.rand(300, 5)
    return X, (X[:, 0] + 0.3 * rng.rand(300) > 0.6).astype(int)


def _fit(library: str, **params: object) -> object:
    import importlib

    estimator, base = PLUGINS[library]
    module, _, name = estimator.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    X, y = _data()
    return cls(**{**base, **params, "random_state": 7}).fit(X, y)


@pytest.mark.parametrize("library", sorted(PLUGINS))
def test_native_fingerprint_is_the_model_content(library: str) -> None:
    a, b = _fit(library), _fit(library)
    fp = fingerprint_model(a)
    assert fingerprint_model(b) == fp  # two trainings (CatBoost: new GUID, finish time)
    assert fingerprint_model(pickle.loads(pickle.dumps(a))) == fp
    assert fingerprint_model(copy.deepcopy(a)) == fp
    threads = {"lightgbm": "n_jobs", "xgboost": "n_jobs", "catboost": "thread_count"}[library]
    assert fingerprint_model(_fit(library, **{threads: 1})) == fp  # execution-only
    more = {"lightgbm": "n_estimators", "xgboost": "n_estimators", "catboost": "iterations"}
    assert fingerprint_model(_fit(library, **{more[library]: 26})) != fp


def test_catboost_dump_leaves_out_only_volatile_fields() -> None:
    from mlrepro.fingerprint.native import native_form

    model = _fit("catboost")
    form = native_form(model)
    info = form["model"]["model_info"]
    assert "model_guid" not in info and "train_finish_time" not in info
    assert form["model"]["oblivious_trees"]  # the trees themselves are in it


# ------------------------------------------------------------------ parameters (item 2)


def test_keyword_estimators_accept_their_own_parameters() -> None:
    from mlrepro.core.resolve import build

    prefixes = ("sklearn.", "lightgbm.", "xgboost.", "catboost.")
    lgbm = build("lightgbm.LGBMClassifier", {"verbose": -1, "num_iterations": 5}, prefixes, "m", 0)
    assert lgbm.get_params()["verbose"] == -1
    xgb = build("xgboost.XGBClassifier", {"n_estimators": 5, "verbosity": 0}, prefixes, "m", 0)
    assert xgb.get_params()["n_estimators"] == 5
    cat = build("catboost.CatBoostClassifier", {"iterations": 5, "verbose": 0}, prefixes, "m", 0)
    assert cat.get_params()["iterations"] == 5


@pytest.mark.parametrize(
    ("library", "params", "says"),
    [
        ("lightgbm", {"num_leaves": -1, "verbose": -1}, "num_leaves"),
        ("catboost", {"depth": 99, "verbose": 0, "allow_writing_files": False}, "depth"),
        ("xgboost", {"max_depth": -2, "verbosity": 0}, "max_depth"),
    ],
)
def test_a_parameter_the_library_refuses_is_a_clear_error(
    copy_example, capsys, library: str, params: dict, says: str
) -> None:
    project = _project(copy_example, library)
    path = project / "mlrepro.yaml"
    data = yaml.safe_load(path.read_text())
    data["model"]["params"] = params
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    result = run_cli("run", "-p", project)
    assert result.code == 2, result.err  # never 70
    assert "manifest field 'model.params'" in result.err and "refused to train" in result.err
    assert says.split("_")[0] in result.err.lower()
    assert "hint: check model.params against the documentation" in result.err
