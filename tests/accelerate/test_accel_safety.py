"""Refusals, the reference-path fallback (None) and the untrusted program file."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from accel_helpers import fit_pipeline, frame_of, need_numba, target_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from program_archive import npy, program_bytes, program_members

need_numba()

from sklearn import ensemble, linear_model, svm  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, PowerTransformer, StandardScaler  # noqa: E402

from mlrepro.accelerate import (  # noqa: E402
    Refused,
    check_equivalence,
    compile_pipeline,
    load_program,
)
from mlrepro.accelerate.equivalence import reference_outputs  # noqa: E402
from mlrepro.errors import MlreproError  # noqa: E402

STEPS = [
    ("impute", SimpleImputer(strategy="median"), ["a", "b"]),
    ("onehot", OneHotEncoder(handle_unknown="error", sparse_output=False), ["town"]),
    ("scale", StandardScaler(), "numeric"),
]


@pytest.fixture(scope="module")
def forest() -> tuple[Any, Any]:
    frame = frame_of(300, seed=21, nan=0.1)
    pipeline = fit_pipeline(
        frame, target_of(frame, "binary"), STEPS, ensemble.RandomForestClassifier(8, random_state=0)
    )
    return pipeline, compile_pipeline(pipeline, "classification")


# ---- refusals ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "model", "needle"),
    [
        ([("power", PowerTransformer(), ["a", "b"])], linear_model.Ridge(), "'power'"),
        (STEPS, svm.SVR(), "SVR"),
        (
            STEPS,
            ensemble.GradientBoostingRegressor(n_estimators=3, init=linear_model.Ridge()),
            "init estimator Ridge",
        ),
        ([("i", SimpleImputer(add_indicator=True), ["a"])], linear_model.Ridge(), "add_indicator"),
    ],
)
def test_refused_names_what(steps: list[Any], model: Any, needle: str) -> None:
    frame = frame_of(120, seed=22, nan=0.1)
    frame = frame.assign(a=frame["a"].fillna(0.0), b=frame["b"].fillna(0.0))
    if not any(isinstance(s[1], OneHotEncoder) for s in steps):
        steps = [*steps, ("oh", OneHotEncoder(sparse_output=False), ["town"])]
    pipeline = fit_pipeline(frame, target_of(frame, "regression"), steps, model)
    with pytest.raises(Refused) as info:
        compile_pipeline(pipeline, "regression")
    assert needle in info.value.reason
    assert isinstance(info.value, MlreproError) and info.value.hint


def test_refused_hgb_categorical() -> None:
    frame = frame_of(200, seed=23)
    y = target_of(frame, "binary")
    frame["town"] = frame["town"].astype("category")
    model = ensemble.HistGradientBoostingClassifier(max_iter=5, categorical_features=["town"])
    pipeline = fit_pipeline(frame, y, [], model)
    with pytest.raises(Refused, match="categorical"):
        compile_pipeline(pipeline, "classification")


def test_refused_wrong_task(forest: tuple[Any, Any]) -> None:
    with pytest.raises(Refused):
        compile_pipeline(forest[0], "regression")
    with pytest.raises(Refused):
        compile_pipeline(object(), "regression")


# ---- inputs sklearn rejects or treats differently: None, never a wrong number ---------------


def _one(frame: pd.DataFrame, **change: Any) -> pd.DataFrame:
    out = frame.iloc[:5].copy()
    for col, value in change.items():
        if value is not None and not isinstance(value, str):
            out[col] = out[col].astype(float)
        else:
            out[col] = out[col].astype(object)
        out.iloc[2, out.columns.get_loc(col)] = value
    return out


@pytest.mark.parametrize(
    "change",
    [
        {"a": np.inf},
        {"b": -np.inf},
        {"c": np.nan},  # not imputed, and the forest's input must then hold NaN: exact path
        {"town": "atlantis"},  # unknown category, handle_unknown='error'
        {"d": "text"},  # text in a number column
        {"town": None},
    ],
)
def test_none_for_rejected_rows(forest: tuple[Any, Any], change: dict[str, Any]) -> None:
    pipeline, program = forest
    frame = frame_of(40, seed=24)
    bad = _one(frame, **change)
    got = program.predict(bad)
    try:
        ref = reference_outputs(pipeline, bad, "classification")
    except ValueError:
        assert got is None  # sklearn raises: the program must not answer
        return
    if got is not None:  # sklearn answers (e.g. NaN the forest routes): must be identical
        for key in ref:
            np.testing.assert_array_equal(got[key], ref[key])


def test_none_for_dtypes_and_missing_columns(forest: tuple[Any, Any]) -> None:
    _, program = forest
    frame = frame_of(20, seed=25)
    assert program.predict(frame.astype({"b": "float32"})) is None
    assert program.predict(frame.drop(columns=["d"])) is None
    assert program.predict(frame.iloc[:0]) is None
    assert program.predict(frame.assign(c=frame["c"] * 2**60)) is None
    record = frame.iloc[0].to_dict()
    assert program.predict_record({**record, "town": "atlantis"}) is None
    assert program.predict_record({**record, "b": float("inf")}) is None
    assert program.predict_record({**record, "d": "7"}) is None
    assert program.predict_record({**record, "d": True}) is None
    assert program.predict_record({k: v for k, v in record.items() if k != "a"}) is None
    assert program.predict_record(record) is not None


def test_fallback_rows_counted_and_all_fallback_fails(forest: tuple[Any, Any]) -> None:
    pipeline, program = forest
    frame = frame_of(60, seed=26)
    frame["b"] = frame["b"].astype(float)
    frame.loc[[3, 17, 40], "b"] = np.inf
    eq = check_equivalence(program, pipeline, frame, "classification")
    assert eq.ok and eq.fallback_rows == 3 and eq.rows == 60 and eq.labels_identical, eq
    frame["b"] = np.inf
    eq = check_equivalence(program, pipeline, frame, "classification")
    assert not eq.ok and eq.fallback_rows == 60 and eq.reason
    assert json.dumps(eq.to_dict(), default=str)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.tuples(
            st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=64)),
            st.floats(-1e6, 1e6) | st.sampled_from([0.0, -0.0, 5e-324, 1e300]),
            st.integers(-10, 60),
            st.sampled_from(["north", "south", "east", "west"]),
            st.floats(0, 1e3),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_generated_frames_agree_or_fall_back(forest: tuple[Any, Any], rows: list[Any]) -> None:
    pipeline, program = forest
    frame = pd.DataFrame(rows, columns=["a", "b", "c", "town", "d"])
    frame["a"] = frame["a"].astype(float)
    frame["town"] = frame["town"].astype(object)
    got = program.predict(frame)
    try:
        ref = reference_outputs(pipeline, frame, "classification")
    except ValueError:
        assert got is None
        return
    if got is None:
        return
    assert list(got) == list(ref)
    for key in ref:
        np.testing.assert_array_equal(got[key], ref[key])
    one = program.predict_record(dict(zip(["a", "b", "c", "town", "d"], rows[0], strict=True)))
    if one is not None:
        for key in ref:
            np.testing.assert_array_equal(one[key], np.asarray(ref[key])[:1])


# ---- the program file is untrusted ---------------------------------------------------------


def _with_header(data: bytes, edit: Any) -> bytes:
    m = program_members(data)
    header = json.loads(m["header.json"])
    edit(header)
    m["header.json"] = json.dumps(header).encode()
    return program_bytes(m)


def _with_array(data: bytes, name: str, edit: Any) -> bytes:
    m = program_members(data)
    arr = np.load(io.BytesIO(m[f"{name}.npy"]))
    m[f"{name}.npy"] = npy(edit(arr.copy()), allow_pickle=True)
    return program_bytes(m)


def _set_child(arr: np.ndarray, value: int) -> np.ndarray:
    arr[int(np.flatnonzero(arr >= 0)[0])] = value
    return arr


TAMPER = {
    "truncated": lambda d: d[: len(d) // 2],
    "empty": lambda d: b"",
    "garbage": lambda d: b"PK\x03\x04" + b"\x00" * 100,
    "version": lambda d: _with_header(d, lambda h: h.update(format=99)),
    "magic": lambda d: _with_header(d, lambda h: h.update(magic="other")),
    "child_out_of_range": lambda d: _with_array(d, "left", lambda a: _set_child(a, 10**9)),
    "child_backwards": lambda d: _with_array(d, "right", lambda a: _set_child(a, 0)),
    "child_negative": lambda d: _with_array(d, "left", lambda a: _set_child(a, -7)),
    "feature_out_of_range": lambda d: _with_array(d, "feature", lambda a: a + 1000),
    "value_shape": lambda d: _with_array(d, "value", lambda a: a[:-1]),
    "threshold_dtype": lambda d: _with_array(d, "threshold", lambda a: a.astype(np.float32)),
    "object_array": lambda d: _with_array(d, "value", lambda a: a.astype(object)),
    "slot_out_of_range": lambda d: _with_header(d, lambda h: h.update(model_slots=[10**6])),
    "input_index": lambda d: _with_header(
        d, lambda h: h["ops"][0].update(input=len(h["inputs"]) + 3)
    ),
    "classes": lambda d: _with_header(d, lambda h: h["classes"].update(values=["only"])),
    "unknown_op": lambda d: _with_header(d, lambda h: h["ops"].append({"op": "exec"})),
    "missing_member": lambda d: program_bytes(
        {k: v for k, v in program_members(d).items() if k != "roots.npy"}
    ),
    "header_not_json": lambda d: program_bytes({**program_members(d), "header.json": b"\xff{"}),
}


@pytest.mark.parametrize("how", sorted(TAMPER))
def test_load_rejects_tampered(forest: tuple[Any, Any], how: str) -> None:
    _, program = forest
    data = program.to_bytes()
    with pytest.raises(ValueError):
        load_program(TAMPER[how](data))


def test_roundtrip_is_deterministic_and_pickle_free(forest: tuple[Any, Any]) -> None:
    pipeline, program = forest
    data = program.to_bytes()
    assert data == program.to_bytes()
    assert b"pickle" not in data.lower()
    again = load_program(data)
    frame = frame_of(50, seed=27, nan=0.1)
    assert check_equivalence(again, pipeline, frame, "classification").max_abs == 0.0
    assert again.describe() == program.describe()


def test_a_tree_that_is_not_a_tree_is_walked_never_masked(forest: tuple[Any, Any]) -> None:
    """Both children of a split pointing at one node pass the file checks (children point
    forward inside their tree) but make a DAG: the leaf-mask tables are only built for
    proper trees, so such a program is walked, and the walk stays inside the arrays."""
    pipeline, program = forest
    assert str(program.kernel()).startswith("leaf-mask")

    def same_children(arr: np.ndarray) -> np.ndarray:
        left = np.load(io.BytesIO(program_members(data)["left.npy"]))
        arr[0] = left[0]  # the first tree's root: right child := left child
        return arr

    data = program.to_bytes()
    dag = load_program(_with_array(data, "right", same_children))
    assert dag.kernel() == "walk"
    frame = frame_of(300, seed=21)
    out = dag.predict(frame)
    assert out is not None and len(out["prediction"]) == len(frame)
    assert set(out["prediction"]) <= set(pipeline.classes_)
    for values in out.values():
        values = np.asarray(values)
        assert values.dtype.kind != "f" or np.isfinite(values).all()
