"""features: fit the feature steps on the training rows, transform every row."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlrepro.core.manifest import Manifest
from mlrepro.core.resolve import build, derive_seed
from mlrepro.errors import DataError, ManifestError
from mlrepro.guards.safe_text import strip_values
from mlrepro.pipeline.datachecks import check_inputs
from mlrepro.transformers import FeatureSteps, missing_columns_error

SPLIT_COLUMN = "__split__"


def task_of(manifest: Manifest) -> str:
    """``classification`` or ``regression``, from the estimator as the manifest builds it.

    Built with its parameters: a Pipeline or a VotingClassifier cannot be created without
    them, and a pipeline is a classifier when its last step is one.
    """
    from sklearn.base import is_classifier

    m = manifest.model
    est = build(m.estimator, m.params, manifest.allowed_prefixes(), "model.estimator", 0)
    return "classification" if is_classifier(est) else "regression"


def split_mask(y: pd.Series, manifest: Manifest, task: str) -> np.ndarray:
    """Boolean mask of the training rows: a seeded, optionally stratified split."""
    from sklearn.model_selection import train_test_split

    n = len(y)
    if n < 2:
        raise DataError(
            f"the snapshot has {n} row(s); at least 2 are needed to split train/test",
            hint="check source.query and source.as_of",
        )
    stratify = manifest.model.stratify
    if stratify is None:
        stratify = task == "classification" and y.value_counts().min() >= 2
    seed = derive_seed(manifest.seed, "split")
    idx = np.arange(n)
    try:
        train_idx, _ = train_test_split(
            idx,
            test_size=manifest.model.test_size,
            random_state=seed,
            stratify=y.to_numpy() if stratify else None,
        )
    except ValueError as exc:
        raise DataError(
            f"cannot split {n} rows with test_size={manifest.model.test_size}: {strip_values(exc)}",
            hint="use more rows, another model.test_size, or model.stratify: false",
        ) from None
    mask = np.zeros(n, dtype=bool)
    mask[train_idx] = True
    return mask


def input_columns(snapshot: pd.DataFrame, manifest: Manifest) -> list[str]:
    """Columns that enter the features: all but the excluded ones, unless listed by a step."""
    listed = {c for s in manifest.features if not isinstance(s.columns, str) for c in s.columns}
    excluded = set(manifest.excluded_columns) - listed
    return [c for c in snapshot.columns if c not in excluded]


def check_target(snapshot: pd.DataFrame, manifest: Manifest) -> pd.Series:
    if manifest.target not in snapshot.columns:
        raise missing_columns_error(
            [manifest.target], list(snapshot.columns), "target (manifest field 'target')"
        )
    y = snapshot[manifest.target]
    if y.isna().any():
        rows = np.flatnonzero(y.isna().to_numpy())[:5].tolist()
        raise DataError(
            f"target '{manifest.target}' has {int(y.isna().sum())} missing value(s) (rows {rows})",
            hint="filter those rows out in source.query (WHERE target IS NOT NULL)",
        )
    return y


def fit_features(snapshot: pd.DataFrame, manifest: Manifest) -> tuple[Any, pd.DataFrame, dict]:
    """Return the fitted FeatureSteps, the feature matrix (+ target, split) and details."""
    task = task_of(manifest)
    y = check_target(snapshot, manifest)
    if task == "regression" and not pd.api.types.is_numeric_dtype(y):
        raise DataError(
            f"target '{manifest.target}' holds text, but {manifest.model.estimator} is a "
            "regressor (it predicts numbers)",
            hint="use a classifier for class labels (e.g. sklearn.linear_model."
            "LogisticRegression), or a numeric target",
        )
    train = split_mask(y, manifest, task)
    cols = input_columns(snapshot, manifest)
    for step in manifest.features:
        if not isinstance(step.columns, str):
            missing = [c for c in step.columns if c not in snapshot.columns]
            if missing:
                raise missing_columns_error(
                    missing, list(snapshot.columns), f"features step '{step.name}'"
                )
    prefixes = manifest.allowed_prefixes()
    steps = []
    for i, step in enumerate(manifest.features):
        where = f"features[{i}]"
        est = build(step.transformer, step.params, prefixes, where, manifest.seed)
        if not hasattr(est, "fit_transform") and not hasattr(est, "transform"):
            raise ManifestError(
                f"manifest field '{where}.transformer': {step.transformer} is not a transformer",
                hint="feature steps need a class with fit/transform",
            )
        steps.append((step.name, est, step.columns))
    transformer = FeatureSteps(steps)
    X = snapshot[cols]
    warnings = check_inputs(X, train)
    try:
        transformer.fit(X.loc[train], y.loc[train])
        out = transformer.transform(X)
    except DataError:
        raise
    except ValueError as exc:
        raise DataError(
            f"a feature step failed: {strip_values(exc)}",
            hint="check the step's columns and parameters (e.g. text columns need an encoder)",
        ) from None
    matrix = out.reset_index(drop=True)
    matrix[manifest.target] = y.to_numpy()
    matrix[SPLIT_COLUMN] = np.where(train, "train", "test")
    details = {
        "task": task,
        "input_columns": cols,
        "output_columns": list(transformer.feature_names_out_),
        "steps": [
            {"name": n, "class": type(e).__module__ + "." + type(e).__name__, "columns": c}
            for n, e, c, _ in transformer.fitted_steps_
        ],
        "train_rows": int(train.sum()),
        "test_rows": int((~train).sum()),
    }
    if warnings:
        details["warnings"] = warnings
    return transformer, matrix, details
