"""Gather what a report shows: lineage from the lock, metrics, evaluation plots, verify.

Everything read from a lock or a bundle is untrusted: values are type-checked here and
escaped by the renderers; recorded artifacts are only read through the store's integrity
check (``Store.verified_path``), so a tampered pickle is never loaded for a plot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from mlrepro.environment import record as env
from mlrepro.errors import MlreproError
from mlrepro.redaction import redact
from mlrepro.report import plots
from mlrepro.report.plots import Plot
from mlrepro.version import __version__

STAGE_ORDER = ("extract", "features", "select", "train", "predict")
MAX_EVAL_ROWS = 20_000  # held-out rows used for plots and permutation importance


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


@dataclass
class StageNode:
    """One stage of the lineage as the lock records it."""

    name: str
    inputs: dict[str, str]
    params: dict[str, Any]
    outputs: dict[str, dict[str, Any]]
    started_at: str = ""
    duration_s: float | None = None
    code_version: str = ""


@dataclass
class ReportData:
    """Everything a renderer needs; built by ``from_project`` or ``from_bundle``."""

    project: str
    origin: str  # "project" | "bundle"
    generated_at: str
    source: dict[str, Any]
    stages: list[StageNode]
    task: str = ""
    target: str = ""
    estimator: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    train_rows: int | None = None
    test_rows: int | None = None
    features: list[str] = field(default_factory=list)
    verify: Any = None  # a verify Report, or None (not verified)
    plots: list[Plot] = field(default_factory=list)
    importance: list[tuple[str, float, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # why something is not shown
    environment: list[str] = field(default_factory=list)  # recorded (train) -> now
    fingerprints: dict[str, str] = field(default_factory=dict)  # bundle / model
    mlrepro_version: str = __version__

    @property
    def verdict(self) -> str:
        if self.verify is None:
            return "not verified"
        return "reproduced" if self.verify.exit_code == 0 else "not reproduced"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _text(value: Any) -> str:
    return redact(str(value)) if value is not None else ""


def lineage(lock: dict[str, Any]) -> tuple[dict[str, Any], list[StageNode]]:
    """The source and the stages of a lock, in pipeline order (unknown stages last)."""
    stages = as_dict(lock.get("stages"))
    names = [s for s in STAGE_ORDER if s in stages] + sorted(
        str(s) for s in stages if s not in STAGE_ORDER
    )
    nodes = []
    for name in names:
        rec = as_dict(stages.get(name))
        outputs = {
            str(k): {
                kk: vv
                for kk, vv in as_dict(v).items()
                if kk in ("fingerprint", "rows", "columns", "path", "table")
            }
            for k, v in as_dict(rec.get("outputs")).items()
        }
        duration = rec.get("duration_s")
        nodes.append(
            StageNode(
                name=str(name),
                inputs={str(k): _text(v) for k, v in as_dict(rec.get("inputs")).items()},
                params=as_dict(rec.get("params")),
                outputs=outputs,
                started_at=_text(rec.get("started_at")),
                duration_s=float(duration) if isinstance(duration, (int, float)) else None,
                code_version=_text(rec.get("code_version")),
            )
        )
    extract = as_dict(stages.get("extract"))
    details, params = as_dict(extract.get("details")), as_dict(extract.get("params"))
    source = {
        "url": _text(details.get("url") or params.get("url")),
        "query": _text(details.get("query") or params.get("query")),
        "as_of": _text(details.get("as_of") or params.get("as_of")),
        "timestamp_column": _text(details.get("timestamp_column")),
        "order_by": [_text(c) for c in as_list(details.get("order_by"))],
        "rows": details.get("rows") if isinstance(details.get("rows"), int) else None,
    }
    return source, nodes


def _train_facts(data: ReportData, lock: dict[str, Any]) -> None:
    train = as_dict(as_dict(lock.get("stages")).get("train"))
    details = as_dict(train.get("details"))
    features = as_dict(as_dict(as_dict(lock.get("stages")).get("features")).get("details"))
    data.task = _text(details.get("task") or features.get("task"))
    data.estimator = _text(details.get("estimator"))
    data.metrics = {
        str(k): float(v)
        for k, v in as_dict(details.get("metrics")).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    for attr in ("train_rows", "test_rows"):
        value = details.get(attr)
        setattr(data, attr, value if isinstance(value, int) else None)
    data.features = [_text(f) for f in as_list(details.get("features"))]
    if train:
        data.environment = env.diff(as_dict(train.get("environment")), env.capture())


def from_project(
    manifest: Any, verify_report: Any = None, *, with_plots: bool = True
) -> ReportData:
    """The report of a project: its lock, its recorded artifacts and, if given, a verify."""
    from mlrepro.pipeline.runner import Runner

    runner = Runner(manifest)
    lock = runner.lock
    if not as_dict(lock.get("stages")):
        from mlrepro.errors import ArtifactError
        from mlrepro.project.lockfile import LOCK_NAME

        raise ArtifactError(
            f"{manifest.root / LOCK_NAME} records no stages: nothing to report",
            hint="run 'mlrepro run' to record the pipeline first",
        )
    source, nodes = lineage(lock)
    data = ReportData(manifest.name, "project", _now(), source, nodes, verify=verify_report)
    data.target = manifest.target
    _train_facts(data, lock)
    if with_plots:
        evaluate(data, runner, manifest)
    if verify_report is not None and with_plots:
        for stage in verify_report.stages:
            if stage.deltas:
                data.plots.append(plots.delta_histogram(stage.stage, stage.deltas))
    return data


def from_bundle(verified: Any) -> ReportData:
    """The report of a bundle (``mlrepro serve``'s GET /report): lineage, metrics, card.

    A bundle carries no held-out rows, so it has no evaluation plots.
    """
    from mlrepro.delivery import bundle as fmt

    lock = as_dict(verified.json(fmt.LOCK))
    meta = verified.metadata()
    source, nodes = lineage(lock)
    data = ReportData(_text(meta.get("project")), "bundle", _now(), source, nodes)
    data.target = _text(meta.get("target"))
    _train_facts(data, lock)
    data.fingerprints = {
        "bundle": verified.fingerprint,
        "model": _text(meta.get("model_fingerprint")),
    }
    data.notes.append(
        "a bundle carries no training rows, so this report has no evaluation plots: run "
        "'mlrepro report' in the project for them"
    )
    return data


def evaluate(data: ReportData, runner: Any, manifest: Any) -> None:
    """Plots on the held-out rows of the recorded matrix, with the recorded pipeline."""
    try:
        matrix = runner.store.read_frame(_record(runner.lock, "features", "matrix"))
        pipeline = runner.store.read_model(_record(runner.lock, "train", "pipeline"))
    except MlreproError as exc:
        data.notes.append(f"no evaluation plots: {exc.message}")
        return
    try:
        data.plots.extend(_evaluation_plots(data, matrix, pipeline, manifest))
    except Exception as exc:  # a plot must never cost the report; say why it is missing
        data.notes.append(f"no evaluation plots: {type(exc).__name__}: {redact(str(exc))[:200]}")


def _record(lock: dict[str, Any], stage: str, name: str) -> dict[str, Any]:
    """A lock output record that names a file inside the project, or an ArtifactError."""
    from pathlib import PurePosixPath

    from mlrepro.errors import ArtifactError

    rec = as_dict(as_dict(as_dict(as_dict(lock.get("stages")).get(stage)).get("outputs")).get(name))
    path, file_hash = rec.get("path"), rec.get("file_hash")
    if not rec:
        raise ArtifactError(f"the lock records no {stage}.{name}", hint="run 'mlrepro run'")
    if not isinstance(path, str) or not isinstance(file_hash, str):
        raise ArtifactError(
            f"the lock's {stage}.{name} record is malformed (no path or file_hash)",
            hint="restore mlrepro.lock from version control, or run 'mlrepro run --force'",
        )
    parts = PurePosixPath(path).parts
    if not parts or parts[0] != ".mlrepro" or ".." in parts or "\\" in path:
        raise ArtifactError(
            f"the lock's {stage}.{name} names {path!r}, outside .mlrepro/; not reading it",
            hint="restore mlrepro.lock from version control, or run 'mlrepro run --force'",
        )
    return rec


def _evaluation_plots(data: ReportData, matrix: Any, pipeline: Any, manifest: Any) -> list[Plot]:
    import numpy as np

    from mlrepro.core.resolve import derive_seed
    from mlrepro.pipeline.features import SPLIT_COLUMN

    target = manifest.target
    if target not in matrix.columns or SPLIT_COLUMN not in matrix.columns:
        data.notes.append("no evaluation plots: the recorded matrix has no target or split")
        return []
    test = matrix[matrix[SPLIT_COLUMN].to_numpy() == "test"]
    if not len(test):
        data.notes.append("no evaluation plots: the split left no held-out rows")
        return []
    if len(test) > MAX_EVAL_ROWS:
        test = test.sample(MAX_EVAL_ROWS, random_state=derive_seed(manifest.seed, "report"))
        data.notes.append(f"plots use {MAX_EVAL_ROWS:,} of the held-out rows, sampled with a seed")
    head = pipeline[1:]  # selection + model: the matrix is the feature steps' output
    X = test.drop(columns=[target, SPLIT_COLUMN])
    y = test[target].to_numpy()
    y_pred = head.predict(X)
    out: list[Plot] = []
    if data.task == "classification":
        classes = list(getattr(head, "classes_", np.unique(y)))
        out.append(plots.confusion(y, y_pred, classes))
        if hasattr(head, "predict_proba"):
            proba = head.predict_proba(X)
            out.append(plots.roc(y, proba, classes))
            out.append(plots.precision_recall(y, proba, classes))
        scoring = "accuracy"
    else:
        out.append(plots.predicted_vs_actual(y, y_pred))
        out.append(plots.residuals(y, y_pred))
        scoring = "r2"
    from sklearn.inspection import permutation_importance

    Xs = head[:-1].transform(X)
    model = head[-1]
    result = permutation_importance(
        model,
        Xs,
        y,
        scoring=scoring,
        n_repeats=5,
        random_state=derive_seed(manifest.seed, "permutation"),
    )
    names = [str(c) for c in getattr(Xs, "columns", range(Xs.shape[1]))]
    data.importance = sorted(
        zip(names, result.importances_mean.tolist(), result.importances_std.tolist(), strict=True),
        key=lambda t: -t[1],
    )
    out.append(plots.importance(data.importance, scoring, len(test)))
    return out
