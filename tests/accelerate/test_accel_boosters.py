"""LightGBM and XGBoost (plugin estimators, extra 'boosting') compiled and proven equal.

Missing locally -> the module skips; in CI (``CI=true``, which installs ``.[dev]``, which
includes ``boosting``) -> it fails.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from accel_helpers import fit_pipeline, frame_of, need_module, need_numba, target_of

need_numba()
need_module("lightgbm", "boosting")
need_module("xgboost", "boosting")

import lightgbm as lgb  # noqa: E402
import xgboost as xgb  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler  # noqa: E402

from mlrepro.accelerate import (  # noqa: E402
    Refused,
    check_equivalence,
    compile_pipeline,
    load_program,
)
from mlrepro.accelerate.equivalence import reference_outputs  # noqa: E402
from mlrepro.accelerate.program import LGBM_ZERO  # noqa: E402

KINDS = ["regression", "binary", "multiclass"]


def _model(lib: str, kind: str, **extra: Any) -> Any:
    if lib == "lightgbm":
        cls = lgb.LGBMRegressor if kind == "regression" else lgb.LGBMClassifier
        params = {"n_estimators": 15, "num_leaves": 7, "min_child_samples": 5, "verbose": -1}
        return cls(**{**params, "n_jobs": 1, **extra})
    cls = xgb.XGBRegressor if kind == "regression" else xgb.XGBClassifier
    return cls(**{"n_estimators": 15, "max_depth": 3, "n_jobs": 1, **extra})


def _target(frame: pd.DataFrame, lib: str, kind: str) -> Any:
    """target_of's score plus the unscaled columns c and d (so that trees split on them)."""
    score = target_of(frame, "regression") / 10
    score = score + frame["c"].to_numpy() / 20 + np.where(frame["d"].to_numpy() > 0.7, 1.0, 0.0)
    if kind == "regression":
        return score * 10
    if kind == "binary":
        labels = np.where(score > 1.0, "yes", "no").astype(object)
        return (labels == "yes").astype(np.int64) if lib == "xgboost" else labels
    return np.digitize(score, [0.0, 1.0, 2.0])


def _task(kind: str) -> str:
    return "regression" if kind == "regression" else "classification"


def _train_frame(n: int, seed: int) -> pd.DataFrame:
    frame = frame_of(n, seed=seed, nan=0.1)  # NaN in a and b: missing_type NaN
    frame.loc[frame.index[::3], "d"] = 0.0  # many exact zeros: splits around 0
    return frame


def _test_frame(n: int, seed: int) -> pd.DataFrame:
    frame = frame_of(n, seed=seed, nan=0.1)
    frame["c"] = frame["c"].astype(float)
    frame.loc[frame.index[::7], "c"] = np.nan  # never missing in training
    frame.loc[frame.index[1::5], "d"] = 0.0
    edges = [-0.0, 5e-324, 1e-310, 1e-36, -1e-36, LGBM_ZERO, -LGBM_ZERO, 2e-35, 1e300, -1e300]
    frame.loc[frame.index[: len(edges)], "d"] = edges
    frame.loc[frame.index[10:14], "b"] = [1e30, -1e30, 3.4e38, 3.5e38]  # float32 edge
    return frame


def _steps(scale: bool) -> list[Any]:
    steps: list[Any] = [("onehot", OneHotEncoder(sparse_output=False), ["town"])]
    if scale:
        steps.append(("scale", StandardScaler(), ["a", "b"]))
    return steps


def _thresholds(pipeline: Any, lib: str) -> list[tuple[str, float]]:
    """(model input column, threshold as the library compares it) for every split."""
    model = pipeline.named_steps["model"]
    names = list(pipeline.named_steps["select"].get_feature_names_out())
    out: list[tuple[str, float]] = []
    if lib == "lightgbm":
        stack = [t["tree_structure"] for t in model.booster_.dump_model()["tree_info"]]
        while stack:
            node = stack.pop()
            if "split_feature" in node:
                out.append((names[node["split_feature"]], float(node["threshold"])))
                stack += [node["left_child"], node["right_child"]]
        return out
    frame = model.get_booster().trees_to_dataframe()
    for _, row in frame[frame["Feature"] != "Leaf"].iterrows():
        out.append((str(row["Feature"]), float(np.float32(row["Split"]))))
    return out


def _on_thresholds(pipeline: Any, lib: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Rows whose unscaled numeric inputs sit exactly on a split threshold, one float32
    and one float64 step either side (the float64 steps round onto the float32 value)."""
    rows = []
    base = frame.iloc[0].to_dict()
    for col, t in _thresholds(pipeline, lib):
        if col not in ("c", "d"):  # a, b are scaled; town is one-hot
            continue
        t32 = np.float32(t)
        for v in (
            t,
            np.nextafter(t, -np.inf),
            np.nextafter(t, np.inf),
            float(np.nextafter(t32, np.float32(-np.inf))),
            float(np.nextafter(t32, np.float32(np.inf))),
        ):
            rows.append({**base, col: float(v)})
    assert rows, "no split on an unscaled column"
    out = pd.DataFrame(rows)
    out["c"] = out["c"].astype(float)
    return out


def _close(got: Any, ref: Any, atol: float, key: str) -> None:
    if np.asarray(ref).dtype.kind == "f":
        np.testing.assert_allclose(got, ref, rtol=0, atol=atol, err_msg=key)
    else:  # labels: identical
        np.testing.assert_array_equal(got, ref, err_msg=key)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("lib", ["lightgbm", "xgboost"])
def test_equivalent_with_nan_onehot_extremes_and_thresholds(lib: str, kind: str) -> None:
    frame = _train_frame(400, seed=3)
    pipeline = fit_pipeline(frame, _target(frame, lib, kind), _steps(scale=True), _model(lib, kind))
    task = _task(kind)
    program = load_program(compile_pipeline(pipeline, task).to_bytes())
    assert program.describe()["model"] == type(pipeline.named_steps["model"]).__name__
    test = _test_frame(300, seed=4)
    eq = check_equivalence(program, pipeline, test, task)
    # Raw scores are bit-exact; LightGBM's own sigmoid/softmax may differ by an ulp from
    # numpy's exp on some CPUs (seen with AVX-512), well inside the acceptance tolerance.
    exact = 0.0 if kind == "regression" or lib == "xgboost" else 1e-15
    assert eq.ok and eq.max_abs <= exact, eq
    assert eq.labels_identical is (None if kind == "regression" else True)
    # XGBoost reads float32: d = ±1e300 overflows (the reference path takes those rows)
    assert eq.fallback_rows == (0 if lib == "lightgbm" else 2), eq
    edges = _on_thresholds(pipeline, lib, test)
    eq = check_equivalence(program, pipeline, edges, task)
    assert eq.ok and eq.max_abs <= exact and eq.fallback_rows == 0, eq
    got = program.predict(edges)
    ref = reference_outputs(pipeline, edges, task)
    for key in ref:
        assert got[key].dtype == ref[key].dtype, key
        _close(got[key], ref[key], exact, key)
    for i in (0, 3, 5):
        record = {k: (None if pd.isna(v) else v) for k, v in test.iloc[i].to_dict().items()}
        one = program.predict_record(record)
        assert one is not None
        ref1 = reference_outputs(pipeline, test.iloc[i : i + 1], task)
        for key in ref1:
            _close(one[key], ref1[key], exact, key)


def test_strict_less_than_is_not_less_or_equal() -> None:
    """XGBoost's ``x < t``: a value exactly on a threshold goes right; rounding the
    threshold the sklearn way (``<=``) would send it left."""
    frame = _train_frame(300, seed=5)
    y = _target(frame, "xgboost", "regression")
    pipeline = fit_pipeline(frame, y, _steps(False), _model("xgboost", "regression"))
    program = compile_pipeline(pipeline, "regression")
    edges = _on_thresholds(pipeline, "xgboost", frame)
    on = edges.iloc[::5]  # exactly t
    below = edges.iloc[3::5]  # the float32 just below t
    ref_on = reference_outputs(pipeline, on, "regression")["prediction"]
    ref_below = reference_outputs(pipeline, below, "regression")["prediction"]
    assert (ref_on != ref_below).any()  # the thresholds matter
    np.testing.assert_array_equal(program.predict(on)["prediction"], ref_on)
    np.testing.assert_array_equal(program.predict(below)["prediction"], ref_below)


# base scores whose float64 logit rounds an ulp away from XGBoost's float32 logf (0.5665...
# was estimated from a real class balance), and ordinary ones
@pytest.mark.parametrize("base", [0.4555777907371521, 0.5218509435653687, 0.56653124, 0.2, 0.9])
def test_xgboost_binary_is_bit_exact_for_any_base_score(base: float) -> None:
    frame = _train_frame(400, seed=9)
    y = _target(frame, "xgboost", "binary")
    model = _model("xgboost", "binary", n_estimators=8, base_score=base)
    pipeline = fit_pipeline(frame, y, _steps(True), model)
    program = load_program(compile_pipeline(pipeline, "classification").to_bytes())
    eq = check_equivalence(program, pipeline, _test_frame(300, seed=10), "classification")
    assert eq.ok and eq.labels_identical and eq.max_abs == 0.0, eq


def test_xgboost_multi_softmax_labels_are_int32() -> None:
    frame = _train_frame(300, seed=6)
    y = _target(frame, "xgboost", "multiclass")
    model = _model("xgboost", "multiclass", objective="multi:softmax")
    pipeline = fit_pipeline(frame, y, _steps(True), model)
    program = load_program(compile_pipeline(pipeline, "classification").to_bytes())
    test = _test_frame(200, seed=7).iloc[20:]
    eq = check_equivalence(program, pipeline, test, "classification")
    assert eq.ok and eq.labels_identical and eq.max_abs == 0.0 and eq.fallback_rows == 0, eq
    assert program.predict(test)["prediction"].dtype == np.int32


@pytest.mark.slow  # numba compiles the parallel float32 kernel (several seconds)
def test_xgboost_parallel_batch_equals_reference() -> None:
    frame = _train_frame(300, seed=6)
    y = _target(frame, "xgboost", "multiclass")
    pipeline = fit_pipeline(frame, y, _steps(True), _model("xgboost", "multiclass"))
    program = compile_pipeline(pipeline, "classification")
    big = _test_frame(5000, seed=8).iloc[20:]  # above SERIAL_ROWS: the parallel kernel
    eq = check_equivalence(program, pipeline, big, "classification")
    assert eq.ok and eq.labels_identical and eq.max_abs == 0.0 and eq.fallback_rows == 0, eq


@pytest.mark.parametrize(
    "params",
    [
        {"objective": "poisson"},
        {"objective": "huber"},
        {"zero_as_missing": True},
        {"n_estimators": 1, "num_leaves": 2, "min_child_samples": 1000},  # single-leaf trees
    ],
)
def test_lightgbm_regression_variants(params: dict[str, Any]) -> None:
    frame = _train_frame(300, seed=8)
    y = np.abs(_target(frame, "lightgbm", "regression"))
    pipeline = fit_pipeline(frame, y, _steps(True), _model("lightgbm", "regression", **params))
    try:
        program = compile_pipeline(pipeline, "regression")
    except Refused as exc:  # zero_as_missing: accepted only where 0 goes the default way
        assert params.get("zero_as_missing") and "zero_as_missing" in exc.reason
        return
    eq = check_equivalence(program, pipeline, _test_frame(200, seed=9), "regression")
    assert eq.ok and eq.max_abs <= 1e-12 and eq.fallback_rows == 0, eq


# ---- refusals ------------------------------------------------------------------------------


def _fit_raw(model: Any, kind: str = "regression", **fit: Any) -> Any:
    """features/select/model with fit parameters for the model (categorical_feature)."""
    from sklearn.pipeline import Pipeline

    from mlrepro.transformers import FeatureSteps, KeepColumns

    frame = frame_of(300, seed=10)
    y = _target(frame, "xgboost" if "xgboost" in type(model).__module__ else "lightgbm", kind)
    features = FeatureSteps([("ord", OrdinalEncoder(), ["town"])])
    matrix = features.fit_transform(frame, y)
    select = KeepColumns().fit(matrix, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(select.transform(matrix), y, **fit)
    return Pipeline([("features", features), ("select", select), ("model", model)])


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda: _fit_raw(_model("xgboost", "regression", booster="dart")), "'dart'"),
        (lambda: _fit_raw(_model("xgboost", "regression", booster="gblinear")), "gblinear"),
        (
            lambda: _fit_raw(
                _model("lightgbm", "regression", min_data_per_group=5, cat_smooth=1.0),
                categorical_feature=["town"],
            ),
            "categorical",
        ),
        (
            lambda: _fit_raw(_model("xgboost", "regression", objective="reg:pseudohubererror")),
            "objective 'reg:pseudohubererror'",
        ),
        (
            lambda: _fit_raw(
                _model("lightgbm", "multiclass", objective="multiclassova"), "multiclass"
            ),
            "objective 'multiclassova",
        ),  # fmt: skip
        (lambda: _fit_raw(_model("lightgbm", "regression", linear_tree=True)), "linear_tree"),
        (
            lambda: _fit_raw(
                _model(
                    "lightgbm", "regression", boosting_type="rf", subsample=0.5, subsample_freq=1
                )
            ),
            "'rf'",
        ),  # fmt: skip
        (lambda: _fit_raw(_model("xgboost", "regression", missing=0.0)), "missing=0.0"),
    ],
)
def test_refused_with_a_reason(make: Any, needle: str) -> None:
    pipeline = make()
    task = "classification" if hasattr(pipeline.named_steps["model"], "classes_") else "regression"
    with pytest.raises(Refused) as info:
        compile_pipeline(pipeline, task)
    assert needle in info.value.reason, info.value.reason
    assert type(pipeline.named_steps["model"]).__name__ in info.value.reason


def test_refused_xgboost_early_stopping_that_truncates() -> None:
    frame = frame_of(300, seed=11)
    y = target_of(frame, "regression")
    model = _model("xgboost", "regression", n_estimators=60, early_stopping_rounds=2,
                   learning_rate=0.9)  # fmt: skip
    from sklearn.pipeline import Pipeline

    from mlrepro.transformers import FeatureSteps, KeepColumns

    features = FeatureSteps([("ord", OrdinalEncoder(), ["town"])])
    matrix = features.fit_transform(frame, y)
    select = KeepColumns().fit(matrix, y)
    X = select.transform(matrix)
    rng = np.random.default_rng(0)
    model.fit(X, y, eval_set=[(X, y + rng.normal(scale=20, size=len(y)))], verbose=False)
    assert model.best_iteration + 1 < 60
    pipeline = Pipeline([("features", features), ("select", select), ("model", model)])
    with pytest.raises(Refused, match="stopped early"):
        compile_pipeline(pipeline, "regression")
