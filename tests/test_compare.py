"""Pure comparisons behind `mlrepro verify` (no pipeline runs)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlrepro.verify.compare import Tolerance, compare_numbers, compare_values, list_change
from mlrepro.verify.framediff import compare_frames
from mlrepro.verify.modeldiff import compare_fitted, compare_outputs

TOL = Tolerance()


def frame(**cols):
    return pd.DataFrame(cols)


def test_numbers_nan_equals_nan_and_counts_differences():
    stats = compare_numbers([1.0, np.nan, 3.0, 0.0], [1.0, np.nan, 3.0 + 1e-13, 1e-20], TOL)
    assert (stats.compared, stats.differing, stats.beyond) == (4, 2, 0)
    assert stats.max_abs == pytest.approx(1e-13, rel=1e-2)
    assert math.isinf(stats.max_rel)  # 0 -> 1e-20 has no relative scale
    stats = compare_numbers([1.0], [np.nan], TOL)
    assert stats.beyond == 1 and math.isinf(stats.max_abs)


def test_keyed_frames_name_added_removed_and_changed_rows():
    rec = frame(id=[1, 2, 3], x=[1.0, 2.0, 3.0], s=["a", "b", "c"])
    new = frame(id=[1, 3, 4], x=[1.0, 3.5, 4.0], s=["a", "c", "d"])
    diff = compare_frames(rec, new, TOL, key=["id"])
    assert diff.verdict == "different"
    assert diff.keys == {"added": [4], "removed": [2], "changed": [3]}
    assert "1 row(s) added: id=4" in diff.reasons


def test_frames_with_a_non_numeric_change_are_different_even_if_numbers_are_close():
    rec = frame(id=[1, 2], x=[1.0, 2.0], s=["a", "b"])
    new = frame(id=[1, 2], x=[1.0, 2.0 + 1e-15], s=["a", "B"])
    diff = compare_frames(rec, new, TOL, key=["id"])
    assert diff.verdict == "different"
    assert diff.keys == {"changed": [2]}


def test_frames_within_tolerance_are_equivalent_with_statistics():
    rec = frame(x=[1.0, 2.0, 3.0])
    new = frame(x=[1.0, 2.0 * (1 + 1e-12), 3.0])
    diff = compare_frames(rec, new, TOL)
    assert diff.verdict == "equivalent"
    assert diff.stats.differing == 1 and diff.stats.beyond == 0
    assert diff.stats.max_rel == pytest.approx(1e-12, rel=1e-3)


@pytest.mark.parametrize(
    ("new", "reason"),
    [
        (frame(b=[1], a=[1]), "columns reordered: order changed: [a, b] -> [b, a]"),
        (frame(a=[1], b=[1], c=[1]), "columns added: c"),
        (frame(a=[1]), "columns removed: b"),
        (frame(a=[1.0], b=[1]), "column a: dtype int64 -> float64"),
        (frame(a=[1, 2], b=[1, 2]), "row count 1 -> 2"),
    ],
)
def test_frame_structure_changes(new, reason):
    diff = compare_frames(frame(a=[1], b=[1]), new, TOL)
    assert diff.verdict == "different"
    assert reason in diff.reasons


def test_row_order_change_is_different():
    rec = frame(id=[1, 2], x=[1.0, 2.0])
    diff = compare_frames(rec, rec.iloc[::-1], TOL, key=["id"])
    assert diff.verdict == "different"
    assert "row order changed (rows are ordered by id)" in diff.reasons


def test_values_name_parameter_changes_recorded_to_reproduced():
    rec = {"model": {"params": {"n_estimators": 200, "max_depth": 8}}, "seed": 1}
    new = {"model": {"params": {"n_estimators": 300}}, "seed": 1}
    diff = compare_values(rec, new)
    assert diff.reasons == [
        "model.params.n_estimators: 200 -> 300",
        "model.params.max_depth: 8 -> absent",
    ]


def test_values_metrics_within_tolerance_are_equivalent():
    diff = compare_values({"r2": 0.5, "f": ["a", "b"]}, {"r2": 0.5 + 1e-15, "f": ["a", "b"]}, TOL)
    assert diff.verdict == "equivalent"
    diff = compare_values({"f": ["a", "b"]}, {"f": ["b", "a"]}, TOL)
    assert diff.reasons == ["f: order changed: [a, b] -> [b, a]"]


def test_list_change_names_additions_and_removals():
    assert list_change(["a", "b"], ["a", "c"]) == "added c, removed b"


def test_fitted_estimators_compare_attributes():
    from sklearn.preprocessing import StandardScaler

    X = np.arange(12.0).reshape(6, 2)
    a, b = StandardScaler().fit(X), StandardScaler().fit(X)
    assert compare_fitted(a, b, TOL).verdict == "identical"
    b.mean_ = b.mean_ * (1 + 1e-13)
    assert compare_fitted(a, b, TOL).verdict == "equivalent"
    b.set_params(with_std=False)
    diff = compare_fitted(a, b, TOL)
    assert diff.verdict == "different"
    assert "with_std: True -> False" in diff.reasons[0]


def test_labels_compare_exactly():
    diff = compare_outputs(np.array([0, 1, 1]), np.array([0, 0, 1]), TOL, "labels", labels=True)
    assert diff.reasons == ["labels: 1 of 3 differ"]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=30),
    st.floats(0, 1e-10),
)
def test_relative_noise_below_rtol_is_never_different(values, noise):
    rec = frame(x=values)
    new = frame(x=[v * (1 + noise) for v in values])
    diff = compare_frames(rec, new, Tolerance(rtol=1e-9, atol=0))
    assert diff.verdict in ("identical", "equivalent")
    assert compare_frames(rec, rec.copy(), TOL).verdict == "identical"
