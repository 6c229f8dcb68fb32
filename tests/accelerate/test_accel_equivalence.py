"""The compiled program reproduces the fitted pipeline: examples, model types, steps, edges."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from accel_helpers import (  # noqa: F401 (example_pipelines is a fixture)
    example_pipelines,
    fit_pipeline,
    frame_of,
    need_numba,
    target_of,
)

need_numba()

from sklearn import ensemble, linear_model, tree  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.preprocessing import (  # noqa: E402
    FunctionTransformer,
    MaxAbsScaler,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
)

from mlrepro.accelerate import (  # noqa: E402
    TOLERANCE,
    check_equivalence,
    compile_pipeline,
    load_program,
)
from mlrepro.accelerate.equivalence import reference_outputs  # noqa: E402


def assert_same(got: dict[str, Any], ref: dict[str, Any], exact: bool = True) -> None:
    assert list(got) == list(ref)
    for key in ref:
        g, r = np.asarray(got[key]), np.asarray(ref[key])
        assert g.dtype == r.dtype, key
        if exact or g.dtype.kind not in "fc":
            np.testing.assert_array_equal(g, r, err_msg=key)
        else:
            assert np.all(np.abs(g - r) <= TOLERANCE * (1 + np.abs(r))), key


def nan_steps() -> list[Any]:
    return [
        ("impute", SimpleImputer(strategy="median"), ["a", "b"]),
        ("onehot", OneHotEncoder(handle_unknown="error", sparse_output=False), ["town"]),
        ("scale", StandardScaler(), "numeric"),
    ]


# ---- the two examples, trained by the CLI ------------------------------------------------


@pytest.mark.parametrize("name", ["diabetes", "breast_cancer"])
def test_examples_bitwise(example_pipelines: dict[str, Any], name: str) -> None:
    pipeline, task, new = example_pipelines[name]
    program = load_program(compile_pipeline(pipeline, task).to_bytes())
    eq = check_equivalence(program, pipeline, new, task)
    assert eq.ok and eq.fallback_rows == 0 and eq.rows == len(new), eq
    assert eq.max_abs == 0.0
    assert eq.labels_identical is (True if task == "classification" else None)
    ref = reference_outputs(pipeline, new, task)
    assert_same(program.predict(new), ref)
    for i in range(3):
        record = {k: (None if pd.isna(v) else v) for k, v in new.iloc[i].to_dict().items()}
        one = program.predict_record(record)
        assert one is not None
        assert_same(one, reference_outputs(pipeline, new.iloc[i : i + 1], task))
        assert_same(one, program.predict(new.iloc[i : i + 1]))
    d = program.describe()
    assert d["runtime"] == "numba" and d["format"] == 1 and isinstance(d["numba"], str)


def test_diabetes_missing_values_are_imputed(example_pipelines: dict[str, Any]) -> None:
    pipeline, task, new = example_pipelines["diabetes"]
    frame = new.copy()
    frame.loc[frame.index[::3], "bmi"] = np.nan
    frame.loc[frame.index[::4], "bp"] = np.nan
    program = compile_pipeline(pipeline, task)
    eq = check_equivalence(program, pipeline, frame, task)
    assert eq.ok and eq.fallback_rows == 0 and eq.max_abs == 0.0, eq
    assert program.describe()["model"] == "RandomForestRegressor"
    assert program.describe()["trees"] == 200


# ---- model types -------------------------------------------------------------------------

REGRESSORS = {
    "rf": lambda: ensemble.RandomForestRegressor(n_estimators=12, max_depth=6, random_state=0),
    "et": lambda: ensemble.ExtraTreesRegressor(n_estimators=8, random_state=0),
    "dt": lambda: tree.DecisionTreeRegressor(max_depth=7, random_state=0),
    "gb": lambda: ensemble.GradientBoostingRegressor(n_estimators=30, random_state=0),
    "gb_huber": lambda: ensemble.GradientBoostingRegressor(
        n_estimators=10, loss="huber", random_state=0
    ),
    "hgb": lambda: ensemble.HistGradientBoostingRegressor(max_iter=30, random_state=0),
    "hgb_poisson": lambda: ensemble.HistGradientBoostingRegressor(
        max_iter=20, loss="poisson", random_state=0
    ),
    # 33-64 leaves on a side of the root: 64-bit leaf masks (so up to 128 leaves in a
    # tree); more than 64: the node walk
    "hgb_wide": lambda: ensemble.HistGradientBoostingRegressor(
        max_iter=8, max_leaf_nodes=60, min_samples_leaf=2, random_state=0
    ),
    "hgb_wider": lambda: ensemble.HistGradientBoostingRegressor(
        max_iter=8, max_leaf_nodes=100, min_samples_leaf=2, random_state=0
    ),
    "hgb_deep": lambda: ensemble.HistGradientBoostingRegressor(
        max_iter=5, max_leaf_nodes=None, min_samples_leaf=1, random_state=0
    ),
    "gb_deep": lambda: ensemble.GradientBoostingRegressor(
        n_estimators=5, max_depth=9, random_state=0
    ),
    "linear": linear_model.LinearRegression,
    "ridge": lambda: linear_model.Ridge(alpha=0.5),
    "lasso": lambda: linear_model.Lasso(alpha=0.01),
    "enet": lambda: linear_model.ElasticNet(alpha=0.01),
}
CLASSIFIERS = {
    "rf": lambda: ensemble.RandomForestClassifier(n_estimators=12, max_depth=6, random_state=0),
    "et": lambda: ensemble.ExtraTreesClassifier(n_estimators=8, random_state=0),
    "dt": lambda: tree.DecisionTreeClassifier(max_depth=6, random_state=0),
    "gb": lambda: ensemble.GradientBoostingClassifier(n_estimators=15, random_state=0),
    "hgb": lambda: ensemble.HistGradientBoostingClassifier(max_iter=15, random_state=0),
    "hgb_wide": lambda: ensemble.HistGradientBoostingClassifier(
        max_iter=6, max_leaf_nodes=60, min_samples_leaf=2, random_state=0
    ),
    "logreg": lambda: linear_model.LogisticRegression(max_iter=500),
}
NAN_CAPABLE = {"rf", "et", "dt", "hgb", "hgb_poisson", "hgb_wide", "hgb_wider", "hgb_deep"}
KERNEL = {"hgb": "leaf-mask/32", "hgb_wide": "leaf-mask/64", "hgb_deep": "walk"}
KERNEL |= {"hgb_wider": "leaf-mask/64"}
CLASSIFIER_KERNEL = {("hgb_wide", "binary"): "leaf-mask/32"}  # its trees split evenly
KERNEL |= {"gb": "leaf-mask/32", "gb_deep": "walk", "et": "walk", "linear": None}
LINEAR = {"linear", "ridge", "lasso", "enet", "logreg"}


def _edge_frame(program_pipeline: Any, n: int, seed: int) -> pd.DataFrame:
    frame = frame_of(n, seed=seed)
    frame.loc[0, "a"] = -0.0
    frame.loc[1, "a"] = 5e-324  # denormal
    frame.loc[2, "b"] = 1e300  # finite in float64, inf in float32
    frame.loc[3, "d"] = 1e-310
    return frame


def _threshold_frame(pipeline: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """Rows whose scaled features sit exactly on (and next to) the trees' thresholds."""
    model = pipeline.named_steps["model"]
    ests = getattr(model, "estimators_", [model])
    first = np.ravel(ests)[0] if not hasattr(model, "tree_") else model
    t = getattr(first, "tree_", None)
    if t is None:
        return frame
    scaler = pipeline.named_steps["features"].fitted_steps_[-1][1]
    out = frame.iloc[: min(len(frame), 30)].copy()
    out["c"] = out["c"].astype(float)
    names = list(pipeline.named_steps["select"].get_feature_names_out())
    scaled_cols = list(pipeline.named_steps["features"].fitted_steps_[-1][2])
    for row, node in enumerate(np.flatnonzero(t.children_left >= 0)[: len(out)]):
        col = names[t.feature[node]]
        if col not in scaled_cols or col not in out.columns:
            continue
        j = scaled_cols.index(col)
        thr = float(np.float32(t.threshold[node]))
        value = thr * scaler.scale_[j] + scaler.mean_[j]  # undo the scaler, roughly
        out.iloc[row, out.columns.get_loc(col)] = np.nextafter(value, [-1e9, 0, 1e9][row % 3])
    return out


@pytest.mark.parametrize("name", sorted(REGRESSORS))
def test_regressors(name: str) -> None:
    frame = frame_of(300, seed=1, nan=0.1 if name in NAN_CAPABLE else 0.0)
    y = target_of(frame, "regression")
    if name == "hgb_poisson":
        y = np.abs(y)
    steps = nan_steps() if name not in NAN_CAPABLE else nan_steps()[1:]
    pipeline = fit_pipeline(
        frame, y, steps, REGRESSORS[name](), k=None if name in NAN_CAPABLE else 4
    )
    program = load_program(compile_pipeline(pipeline, "regression").to_bytes())
    if name in KERNEL:
        assert program.kernel() == KERNEL[name]
    test = _edge_frame(pipeline, 200, seed=2)
    if name in NAN_CAPABLE:
        test.loc[test.index[5::7], "a"] = np.nan
    eq = check_equivalence(program, pipeline, test, "regression")
    assert eq.ok, eq
    assert eq.labels_identical is None
    if name not in LINEAR:
        assert eq.max_abs == 0.0
        assert eq.fallback_rows <= 1  # the 1e300 row overflows float32: sklearn raises
    eq = check_equivalence(program, pipeline, _threshold_frame(pipeline, test), "regression")
    assert eq.ok and (name in LINEAR or eq.max_abs == 0.0), eq


@pytest.mark.parametrize("labels", ["binary", "multiclass"])
@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
def test_classifiers(name: str, labels: str) -> None:
    frame = frame_of(400, seed=3, nan=0.1 if name in NAN_CAPABLE else 0.0)
    y = target_of(frame, labels)
    steps = nan_steps() if name not in NAN_CAPABLE else nan_steps()[1:]
    pipeline = fit_pipeline(
        frame, y, steps, CLASSIFIERS[name](), k=None if name in NAN_CAPABLE else 5
    )
    program = load_program(compile_pipeline(pipeline, "classification").to_bytes())
    if name in KERNEL:
        assert program.kernel() == CLASSIFIER_KERNEL.get((name, labels), KERNEL[name])
    test = frame_of(250, seed=4, nan=0.1 if name in NAN_CAPABLE else 0.0)
    eq = check_equivalence(program, pipeline, test, "classification")
    assert eq.ok and eq.labels_identical and eq.fallback_rows == 0, eq
    if name not in LINEAR:
        assert eq.max_abs == 0.0
    assert_same(
        program.predict(test), reference_outputs(pipeline, test, "classification"),
        exact=name not in LINEAR,
    )  # fmt: skip
    eq = check_equivalence(program, pipeline, _threshold_frame(pipeline, test), "classification")
    assert eq.ok and eq.labels_identical, eq


# ---- feature steps -----------------------------------------------------------------------

STEPS = {
    "impute_mean": [("i", SimpleImputer(), ["a", "b"])],
    "impute_const": [("i", SimpleImputer(strategy="constant", fill_value=-3.5), ["a", "b"])],
    "minmax_clip": [("m", MinMaxScaler(feature_range=(-1, 2), clip=True), ["b", "c"])],
    "maxabs": [("m", MaxAbsScaler(), ["b", "d"])],
    "robust": [("r", RobustScaler(quantile_range=(10, 90)), ["b", "c", "d"])],
    "identity": [("f", FunctionTransformer(), ["c", "d"])],
    "onehot_drop_ignore": [
        ("o", OneHotEncoder(drop="first", handle_unknown="ignore", sparse_output=False), ["town"])
    ],
    "onehot_numeric": [("o", OneHotEncoder(sparse_output=False), ["c"])],
    "ordinal": [
        (
            "o",
            OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
            ["town"],
        )
    ],
}


@pytest.mark.parametrize("name", sorted(STEPS))
def test_feature_steps(name: str) -> None:
    frame = frame_of(300, seed=5, nan=0.1)
    y = target_of(frame, "regression")
    steps = list(STEPS[name])
    if not any(est.__class__.__name__ in ("OneHotEncoder", "OrdinalEncoder")
               and cols == ["town"] for _, est, cols in steps):  # fmt: skip
        steps.append(("oh", OneHotEncoder(sparse_output=False), ["town"]))
    steps.append(("s", StandardScaler(), "numeric"))
    model = ensemble.HistGradientBoostingRegressor(max_iter=10, random_state=0)
    pipeline = fit_pipeline(frame, y, steps, model)
    program = load_program(compile_pipeline(pipeline, "regression").to_bytes())
    test = frame_of(200, seed=6, nan=0.1)
    test.loc[test.index[:5], "b"] = [1e6, -1e6, 0.0, -0.0, 1e-300]  # clip and extremes
    eq = check_equivalence(program, pipeline, test, "regression")
    assert eq.ok and eq.max_abs == 0.0 and eq.fallback_rows == 0, eq


def test_unknown_category_ignored_or_encoded() -> None:
    frame = frame_of(200, seed=7)
    y = target_of(frame, "regression")
    for enc in (
        OneHotEncoder(handle_unknown="ignore", sparse_output=False),
        OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
    ):
        pipeline = fit_pipeline(frame, y, [("e", enc, ["town"])], linear_model.Ridge())
        program = compile_pipeline(pipeline, "regression")
        test = frame_of(50, seed=8)
        test.loc[test.index[::5], "town"] = "atlantis"
        eq = check_equivalence(program, pipeline, test, "regression")
        assert eq.ok and eq.fallback_rows == 0, eq


def test_text_dtypes_category_and_string() -> None:
    frame = frame_of(200, seed=9)
    y = target_of(frame, "binary")
    pipeline = fit_pipeline(frame, y, nan_steps()[1:], ensemble.RandomForestClassifier(5))
    program = compile_pipeline(pipeline, "classification")
    for dtype in ("category", "string", object):
        test = frame_of(60, seed=10)
        test["town"] = test["town"].astype(dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            eq = check_equivalence(program, pipeline, test, "classification")
        assert eq.ok and eq.labels_identical and eq.fallback_rows == 0, (dtype, eq)


PARALLEL_CASES = {  # one per kernel: walk, 32-bit and 64-bit leaf masks (NaNs, classes)
    "rf": ("regression", lambda: ensemble.RandomForestRegressor(10)),
    "hgb": ("regression", lambda: ensemble.HistGradientBoostingRegressor(max_iter=20)),
    "hgb_clf": (
        "multiclass",
        lambda: ensemble.HistGradientBoostingClassifier(
            max_iter=5, max_leaf_nodes=50, min_samples_leaf=1
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(PARALLEL_CASES))
def test_parallel_batch_equals_serial_and_sklearn(name: str) -> None:
    labels, make = PARALLEL_CASES[name]
    task = "regression" if labels == "regression" else "classification"
    nan = 0.0 if name == "rf" else 0.1
    frame = frame_of(400, seed=11, nan=nan)
    y = target_of(frame, labels)
    steps = nan_steps() if name == "rf" else nan_steps()[1:]
    pipeline = fit_pipeline(frame, y, steps, make())
    program = compile_pipeline(pipeline, task)
    big = frame_of(9000, seed=12, nan=nan)  # above the serial cut-off: prange over row blocks
    big = big.iloc[:8999]  # a last block shorter than the others
    ref = reference_outputs(pipeline, big, task)
    assert_same(program.predict(big), ref)
    assert_same(program.predict(big, threads=1), ref)
    for small in (big.iloc[:100], big.iloc[:10]):  # leaf masks / the walk for a few rows
        assert_same(program.predict(small), reference_outputs(pipeline, small, task))
    program.warm_up()


def test_a_frame_beyond_one_batch_is_scored_in_slices_and_falls_back_as_a_whole() -> None:
    from mlrepro.accelerate.program import BATCH_ROWS

    frame = frame_of(300, seed=13, nan=0.1)
    y = target_of(frame, "binary")
    model = ensemble.HistGradientBoostingClassifier(max_iter=4)
    pipeline = fit_pipeline(frame, y, nan_steps()[1:], model)
    program = compile_pipeline(pipeline, "classification")
    big = frame_of(BATCH_ROWS + 1234, seed=14, nan=0.1)
    assert program.kernel() == "leaf-mask/32"  # slices scored on a pool of threads
    ref = reference_outputs(pipeline, big, "classification")
    assert_same(program.predict(big), ref)
    assert_same(program.predict(big, threads=1), ref)
    big.loc[big.index[-1], "b"] = np.inf  # only the last slice holds what the program refuses
    assert program.predict(big) is None
