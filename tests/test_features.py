"""FeatureSteps semantics, column exclusion, seeding and selection."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlrepro.core import manifest as mf
from mlrepro.core.resolve import build, derive_seed
from mlrepro.errors import DataError, ManifestError
from mlrepro.pipeline.features import SPLIT_COLUMN, fit_features
from mlrepro.pipeline.select import fit_selection
from mlrepro.transformers import FeatureSteps


def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 60
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "ts": pd.date_range("2026-01-01", periods=n, freq="D"),
            "a": rng.normal(size=n),
            "color": rng.choice(["red", "green", "blue"], size=n),
            "b": rng.normal(size=n),
            "y": rng.normal(size=n),
        }
    )


def test_steps_apply_in_order_and_one_hot_replaces_in_place() -> None:
    df = frame()[["a", "color", "b"]]
    steps = FeatureSteps(
        [
            ("onehot", OneHotEncoder(sparse_output=False), ["color"]),
            ("scale", StandardScaler(), "numeric"),
        ]
    )
    out = steps.fit_transform(df)
    assert list(out.columns) == ["a", "color_blue", "color_green", "color_red", "b"]
    # 'numeric' is resolved after one-hot, so the indicator columns are scaled too
    assert abs(out["color_red"].mean()) < 1e-9
    assert abs(out["a"].std(ddof=0) - 1) < 1e-9
    again = steps.transform(df[["b", "color", "a"]])  # input order does not matter
    pd.testing.assert_frame_equal(out, again)


def test_untouched_columns_pass_through() -> None:
    df = frame()[["a", "color", "b"]]
    steps = FeatureSteps([("imp", SimpleImputer(), ["b"])])
    out = steps.fit_transform(df)
    assert list(out.columns) == ["a", "color", "b"]
    assert (out["color"] == df["color"]).all()


def test_transform_reports_missing_columns() -> None:
    steps = FeatureSteps([("scale", StandardScaler(), ["a"])]).fit(frame()[["a", "b"]])
    with pytest.raises(DataError, match=r"input: missing column\(s\) \['b'\]"):
        steps.transform(frame()[["a"]])


def manifest_for(**changes) -> mf.Manifest:
    data = {
        "name": "t",
        "seed": 3,
        "source": {
            "url": "sqlite://",
            "query": "q",
            "timestamp_column": "ts",
            "as_of": "2026-01-01",
            "order_by": ["id"],
        },
        "target": "y",
        "features": [
            {
                "name": "onehot",
                "transformer": "sklearn.preprocessing.OneHotEncoder",
                "params": {"sparse_output": False},
                "columns": ["color"],
            },
            {
                "name": "scale",
                "transformer": "sklearn.preprocessing.StandardScaler",
                "columns": "numeric",
            },
        ],
        "model": {
            "estimator": "sklearn.ensemble.RandomForestRegressor",
            "params": {"n_estimators": 5},
        },
    }
    data.update(changes)
    return mf.from_dict(data)


def test_target_timestamp_and_keys_are_not_features() -> None:
    transformer, matrix, details = fit_features(frame(), manifest_for())
    assert details["input_columns"] == ["a", "color", "b"]
    assert "id" not in matrix.columns and "ts" not in matrix.columns
    assert list(matrix.columns)[-2:] == ["y", SPLIT_COLUMN]
    assert details["train_rows"] == 48 and details["test_rows"] == 12


def test_listing_an_excluded_column_makes_it_a_feature() -> None:
    m = manifest_for(
        features=[
            {
                "name": "keep_id",
                "transformer": "sklearn.preprocessing.StandardScaler",
                "columns": ["id"],
            }
        ]
    )
    _, _, details = fit_features(frame(), m)
    assert "id" in details["input_columns"] and "y" not in details["input_columns"]


def test_features_are_fitted_on_training_rows_only() -> None:
    m = manifest_for(
        features=[
            {
                "name": "scale",
                "transformer": "sklearn.preprocessing.StandardScaler",
                "columns": ["a"],
            }
        ]
    )
    transformer, matrix, _ = fit_features(frame(), m)
    train = matrix[SPLIT_COLUMN] == "train"
    assert abs(matrix.loc[train, "a"].mean()) < 1e-9
    assert abs(matrix.loc[~train, "a"].mean()) > 1e-6


def test_random_state_is_derived_from_seed_unless_set() -> None:
    prefixes = ("sklearn.",)
    est = build("sklearn.ensemble.RandomForestRegressor", {}, prefixes, "model.estimator", 42)
    assert est.random_state == derive_seed(42, "model.estimator/random_state")
    assert (
        build(
            "sklearn.ensemble.RandomForestRegressor",
            {"random_state": 5},
            prefixes,
            "model.estimator",
            42,
        ).random_state
        == 5
    )
    # explicitly null stays null (the verify audit reports it)
    assert (
        build(
            "sklearn.ensemble.RandomForestRegressor",
            {"random_state": None},
            prefixes,
            "model.estimator",
            42,
        ).random_state
        is None
    )
    assert derive_seed(42, "x") != derive_seed(43, "x")


def test_nested_estimators_and_callables_resolve() -> None:
    est = build(
        "sklearn.feature_selection.SelectFromModel",
        {
            "estimator": {
                "class": "sklearn.ensemble.ExtraTreesRegressor",
                "params": {"n_estimators": 3},
            }
        },
        ("sklearn.",),
        "selection.method",
        1,
    )
    assert est.estimator.n_estimators == 3 and est.estimator.random_state is not None
    sel = build(
        "sklearn.feature_selection.SelectKBest",
        {"score_func": "sklearn.feature_selection.mutual_info_regression"},
        ("sklearn.",),
        "selection.method",
        1,
    )
    assert sel.score_func.__name__ == "mutual_info_regression"


@pytest.mark.parametrize(
    ("params", "message", "hint"),
    [
        (
            {"n_estimator": 3},
            "RandomForestRegressor has no parameter 'n_estimator'",
            "did you mean 'n_estimators'?",
        ),
        ({"bogus_thing": 1}, "has no parameter 'bogus_thing'", "valid parameters:"),
    ],
)
def test_unknown_estimator_parameter(params, message, hint) -> None:
    with pytest.raises(ManifestError) as info:
        build("sklearn.ensemble.RandomForestRegressor", params, ("sklearn.",), "model.estimator", 1)
    assert message in info.value.message and hint in info.value.hint


def test_unknown_class_suggests_the_closest() -> None:
    with pytest.raises(ManifestError) as info:
        build("sklearn.preprocessing.StandardScalar", {}, ("sklearn.",), "features[0]", 1)
    assert "did you mean 'sklearn.preprocessing.StandardScaler'?" in info.value.hint


def test_selection_records_ordered_names_and_checks_k() -> None:
    m = manifest_for(
        selection={"method": "sklearn.feature_selection.SelectKBest", "params": {"k": 2}}
    )
    _, matrix, details = fit_features(frame(), m)
    selector, selected = fit_selection(matrix, m, details["task"])
    assert len(selected) == 2
    assert selected == [c for c in details["output_columns"] if c in selected]
    too_many = manifest_for(
        selection={"method": "sklearn.feature_selection.SelectKBest", "params": {"k": 99}}
    )
    with pytest.raises(ManifestError, match="k=99 but the features stage produces only 5"):
        fit_selection(matrix, too_many, details["task"])


def test_text_column_without_encoder_is_a_clear_error() -> None:
    m = manifest_for(
        features=[],
        selection={"method": "sklearn.feature_selection.SelectKBest", "params": {"k": 2}},
    )
    _, matrix, details = fit_features(frame(), m)
    with pytest.raises(DataError) as info:
        fit_selection(matrix, m, details["task"])
    assert "['color'] are not numeric" in info.value.message
    assert "OneHotEncoder" in info.value.hint
