"""select: fit the selection method on the training rows; record the chosen features."""

from __future__ import annotations

from typing import Any

import pandas as pd

from mlrepro.core.manifest import Manifest
from mlrepro.core.resolve import build
from mlrepro.errors import DataError, ManifestError, MlreproError
from mlrepro.guards.safe_text import strip_values
from mlrepro.pipeline.features import SPLIT_COLUMN
from mlrepro.transformers import KeepColumns

_UNIVARIATE = ("SelectKBest", "SelectPercentile", "SelectFpr", "SelectFdr", "SelectFwe")


def feature_columns(matrix: pd.DataFrame, manifest: Manifest) -> list[str]:
    return [c for c in matrix.columns if c not in (manifest.target, SPLIT_COLUMN)]


def fit_selection(matrix: pd.DataFrame, manifest: Manifest, task: str) -> tuple[Any, list[str]]:
    cols = feature_columns(matrix, manifest)
    train = matrix[SPLIT_COLUMN].to_numpy() == "train"
    X, y = matrix.loc[train, cols], matrix.loc[train, manifest.target]
    if manifest.selection is None:
        selector = KeepColumns(cols).fit(X, y)
        return selector, cols
    params = dict(manifest.selection.params)
    if manifest.selection.method.rsplit(".", 1)[-1] in _UNIVARIATE and "score_func" not in params:
        # sklearn's default (f_classif) is wrong for regression targets
        params["score_func"] = (
            "sklearn.feature_selection.f_classif"
            if task == "classification"
            else "sklearn.feature_selection.f_regression"
        )
    selector = build(
        manifest.selection.method,
        params,
        manifest.allowed_prefixes(),
        "selection.method",
        manifest.seed,
    )
    k = params.get("k")
    if isinstance(k, int) and k > len(cols):
        raise ManifestError(
            f"manifest field 'selection.params.k': k={k} but the features stage produces "
            f"only {len(cols)} columns",
            hint=f"use k <= {len(cols)} (or 'all')",
        )
    non_numeric = [c for c in cols if not pd.api.types.is_numeric_dtype(X[c])]
    if non_numeric:
        raise DataError(
            f"selection needs numeric features, but {non_numeric[:5]} are not numeric",
            hint="add a feature step that encodes them (e.g. sklearn.preprocessing.OneHotEncoder)",
        )
    try:
        selector.set_output(transform="pandas")
        selector.fit(X, y)
        selected = [str(c) for c in selector.get_feature_names_out()]
    except MlreproError:
        raise
    except Exception as exc:
        if type(exc).__name__ == "InvalidParameterError" or not isinstance(exc, ValueError):
            # a parameter sklearn refuses, or a score_func / plugin that misbehaves
            raise ManifestError(
                f"manifest field 'selection': fitting {manifest.selection.method} failed "
                f"({type(exc).__name__}: {strip_values(exc)})",
                hint="check selection.params: a score_func must take (X, y) and return "
                "one score per feature (e.g. sklearn.feature_selection.f_regression)",
            ) from None
        raise DataError(
            f"selection failed: {strip_values(exc)}",
            hint="check selection.params and the features (NaN values need an imputer step)",
        ) from None
    return selector, selected
