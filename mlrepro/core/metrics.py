"""Metric names accepted in ``model.metrics`` and how to compute them."""

from __future__ import annotations

from typing import Any

REGRESSION = ("r2", "mae", "mse", "rmse", "mape", "median_ae", "explained_variance", "max_error")
CLASSIFICATION = (
    "accuracy",
    "balanced_accuracy",
    "f1",
    "precision",
    "recall",
    "roc_auc",
    "log_loss",
    "mcc",
)
ALL = REGRESSION + CLASSIFICATION
DEFAULTS = {"regression": ("r2", "mae", "rmse"), "classification": ("accuracy", "f1")}


def compute(name: str, y_true: Any, y_pred: Any, proba: Any, classes: Any) -> float:
    from sklearn import metrics as m

    binary = classes is not None and len(classes) == 2
    avg = "binary" if binary else "macro"
    pos = classes[1] if binary else 1
    if name == "r2":
        return m.r2_score(y_true, y_pred)
    if name == "mae":
        return m.mean_absolute_error(y_true, y_pred)
    if name == "mse":
        return m.mean_squared_error(y_true, y_pred)
    if name == "rmse":
        return m.root_mean_squared_error(y_true, y_pred)
    if name == "mape":
        return m.mean_absolute_percentage_error(y_true, y_pred)
    if name == "median_ae":
        return m.median_absolute_error(y_true, y_pred)
    if name == "explained_variance":
        return m.explained_variance_score(y_true, y_pred)
    if name == "max_error":
        return m.max_error(y_true, y_pred)
    if name == "accuracy":
        return m.accuracy_score(y_true, y_pred)
    if name == "balanced_accuracy":
        return m.balanced_accuracy_score(y_true, y_pred)
    if name == "f1":
        return m.f1_score(y_true, y_pred, average=avg, pos_label=pos)
    if name == "precision":
        return m.precision_score(y_true, y_pred, average=avg, pos_label=pos, zero_division=0)
    if name == "recall":
        return m.recall_score(y_true, y_pred, average=avg, pos_label=pos, zero_division=0)
    if name == "mcc":
        return m.matthews_corrcoef(y_true, y_pred)
    if proba is None:
        raise ValueError(f"metric '{name}' needs predict_proba, which this model lacks")
    if name == "roc_auc":
        if binary:
            return m.roc_auc_score(y_true, proba[:, 1])
        return m.roc_auc_score(y_true, proba, multi_class="ovr", labels=classes)
    if name == "log_loss":
        return m.log_loss(y_true, proba, labels=classes)
    raise ValueError(f"unknown metric '{name}'")
