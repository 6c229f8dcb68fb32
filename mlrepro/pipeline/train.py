"""train: fit the estimator on the training rows, score the held-out rows, compose the
fitted end-to-end pipeline (features + selection + model)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from mlrepro.core import metrics as metric_fns
from mlrepro.core.manifest import Manifest
from mlrepro.core.resolve import build
from mlrepro.errors import DataError, ManifestError
from mlrepro.guards.safe_text import strip_values
from mlrepro.pipeline.datachecks import id_feature_warnings
from mlrepro.pipeline.features import SPLIT_COLUMN


def jsonable(value: Any) -> Any:
    """Parameters as JSON: estimators become {class, params}, callables their path."""
    if isinstance(value, (str, bool, int)) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if hasattr(value, "get_params"):
        return {"class": _path(value), "params": params_of(value)}
    if callable(value):
        return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', repr(value))}"
    return repr(value)


def _path(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def params_of(est: Any) -> dict[str, Any]:
    return {k: jsonable(v) for k, v in sorted(est.get_params(deep=False).items())}


def structure(est: Any) -> Any:
    """Composition of a model: pipeline steps and ensemble members, recursively."""
    node: dict[str, Any] = {"class": _path(est)}
    if hasattr(est, "steps") and isinstance(est.steps, list):
        node["steps"] = [
            {"name": n, **(structure(s) if hasattr(s, "get_params") else {"class": str(s)})}
            for n, s, *_ in est.steps
        ]
    members = getattr(est, "estimators_", None)
    if isinstance(members, (list, np.ndarray)) and len(members):
        flat = np.ravel(np.asarray(members, dtype=object))
        node["members"] = {"count": len(flat), "class": _path(flat[0])}
    named = getattr(est, "estimators", None)
    if isinstance(named, list) and named and isinstance(named[0], tuple):
        node["estimators"] = [{"name": n, **structure(e)} for n, e in named]
    if hasattr(est, "fitted_steps_"):
        node["steps"] = [
            {"name": n, "class": _path(e), "columns": c} for n, e, c, _ in est.fitted_steps_
        ]
    return node


def open_categories(transformer: Any) -> list[str]:
    """Input columns handled by an encoder that accepts unseen values (not 'error')."""
    open_cols: set[str] = set()
    for _, est, cols, _ in getattr(transformer, "fitted_steps_", []):
        params = est.get_params(deep=False) if hasattr(est, "get_params") else {}
        if params.get("handle_unknown", "error") != "error":
            open_cols.update(str(c) for c in cols)
    inputs = [str(c) for c in getattr(transformer, "feature_names_in_", [])]
    return [c for c in inputs if c in open_cols]


def _from_plugin(exc: BaseException, plugins: tuple[str, ...]) -> bool:
    """True for an error raised by a plugin library (its class lives in a plugin module)."""
    module = type(exc).__module__ or ""
    top = module.split(".")[0].lstrip("_")  # catboost's error lives in '_catboost'
    return any(top == p.split(".")[0] for p in plugins)


def _plugin_refused(exc: BaseException, manifest: Manifest) -> ManifestError:
    est = manifest.model.estimator
    return ManifestError(
        f"manifest field 'model.params': {est} refused to train: {strip_values(exc)}",
        hint=f"check model.params against the documentation of {est} (a parameter value, "
        "or what it needs of the data, e.g. numeric features)",
    )


def fit_model(
    matrix: pd.DataFrame, transformer: Any, selector: Any, manifest: Manifest, task: str
) -> tuple[Any, dict[str, Any]]:
    from sklearn.pipeline import Pipeline

    selected = [str(c) for c in selector.get_feature_names_out()]
    train = matrix[SPLIT_COLUMN].to_numpy() == "train"
    X = selector.transform(
        matrix[[c for c in matrix.columns if c not in (manifest.target, SPLIT_COLUMN)]]
    )
    y = matrix[manifest.target]
    model = build(
        manifest.model.estimator,
        manifest.model.params,
        manifest.allowed_prefixes(),
        "model.estimator",
        manifest.seed,
    )
    non_numeric = [c for c in selected if not pd.api.types.is_numeric_dtype(X[c])]
    try:
        model.fit(X.loc[train], y.loc[train])
    except (ValueError, TypeError) as exc:
        if _from_plugin(exc, manifest.plugins):
            raise _plugin_refused(exc, manifest) from None
        first = strip_values(exc)
        if type(exc).__name__ == "InvalidParameterError":
            raise ManifestError(
                f"manifest field 'model.params': {first}", hint="fix the parameter value"
            ) from None
        hint = "check the features: NaN values need an imputer step"
        if non_numeric:
            hint = f"columns {non_numeric[:5]} are not numeric: add an encoder feature step"
        raise DataError(f"training failed: {first}", hint=hint) from None
    except Exception as exc:
        if not _from_plugin(exc, manifest.plugins):
            raise
        # LightGBMError, CatBoostError: not ValueErrors, but the library refusing a
        # parameter value (or, rarely, the data): a message, not an internal error.
        raise _plugin_refused(exc, manifest) from None
    X_test, y_test = X.loc[~train], y.loc[~train]
    names = manifest.model.metrics or metric_fns.DEFAULTS[task]
    valid = metric_fns.REGRESSION if task == "regression" else metric_fns.CLASSIFICATION
    wrong = [n for n in names if n not in valid]
    if wrong:
        raise ManifestError(
            f"manifest field 'model.metrics': {wrong} do not apply to {task}",
            hint=f"use metrics from: {', '.join(valid)}",
        )
    scores: dict[str, float] = {}
    if len(X_test):
        y_pred = model.predict(X_test)
        proba = (
            model.predict_proba(X_test)
            if hasattr(model, "predict_proba") and task == "classification"
            else None
        )
        classes = getattr(model, "classes_", None)
        for name in names:
            try:
                scores[name] = float(compute_metric(name, y_test, y_pred, proba, classes))
            except ValueError as exc:
                raise DataError(
                    f"metric '{name}' cannot be computed: {strip_values(exc)}",
                    hint="drop the metric or use more test rows",
                ) from None
    pipeline = Pipeline([("features", transformer), ("select", selector), ("model", model)])
    details = {
        "task": task,
        "estimator": _path(model),
        "hyperparameters": params_of(model),
        "structure": structure(pipeline),
        "input_columns": [str(c) for c in transformer.feature_names_in_],
        "open_categories": open_categories(transformer),
        "features": selected,
        "metrics": scores,
        "train_rows": int(train.sum()),
        "test_rows": int((~train).sum()),
        "classes": [jsonable(c) for c in model.classes_] if hasattr(model, "classes_") else None,
    }
    warnings = id_feature_warnings(selected, manifest.source.order_by)
    if warnings:
        details["warnings"] = warnings
    return pipeline, details


def compute_metric(name: str, y_true: Any, y_pred: Any, proba: Any, classes: Any) -> float:
    """One held-out score (names as in ``model.metrics``; see ``mlrepro.core.metrics``)."""
    from sklearn import metrics as m

    binary = classes is not None and len(classes) == 2
    avg = {"average": "binary" if binary else "macro", "pos_label": classes[1] if binary else 1}
    on_labels = {
        "r2": m.r2_score,
        "mae": m.mean_absolute_error,
        "mse": m.mean_squared_error,
        "rmse": m.root_mean_squared_error,
        "mape": m.mean_absolute_percentage_error,
        "median_ae": m.median_absolute_error,
        "explained_variance": m.explained_variance_score,
        "max_error": m.max_error,
        "accuracy": m.accuracy_score,
        "balanced_accuracy": m.balanced_accuracy_score,
        "mcc": m.matthews_corrcoef,
        "f1": lambda t, p: m.f1_score(t, p, **avg),
        "precision": lambda t, p: m.precision_score(t, p, **avg, zero_division=0),
        "recall": lambda t, p: m.recall_score(t, p, **avg, zero_division=0),
    }
    if name in on_labels:
        return float(on_labels[name](y_true, y_pred))
    if proba is None:
        raise ValueError(f"metric '{name}' needs predict_proba, which this model lacks")
    if name == "roc_auc":
        if binary:
            return float(m.roc_auc_score(y_true, proba[:, 1]))
        return float(m.roc_auc_score(y_true, proba, multi_class="ovr", labels=classes))
    if name == "log_loss":
        return float(m.log_loss(y_true, proba, labels=classes))
    raise ValueError(f"unknown metric '{name}'")
