"""Metric names accepted in ``model.metrics`` (computed by ``mlrepro.pipeline.train``)."""

from __future__ import annotations

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
