"""Judge one stage: compare its re-executed lock record and artifacts with the recorded ones.

Differences read ``recorded -> reproduced``. Fingerprints decide "identical"; when they
differ, the artifacts are loaded and compared (frames value by value, fitted estimators
attribute by attribute, models by their predictions) to tell "equivalent" from "different"
and to say what differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlrepro.core.manifest import Manifest
from mlrepro.errors import ArtifactError
from mlrepro.fingerprint import fingerprint_params
from mlrepro.pipeline import plan
from mlrepro.pipeline.registry import STAGES
from mlrepro.project.store import Store, is_pickle
from mlrepro.verify.compare import (
    DIFFERENT,
    EQUIVALENT,
    IDENTICAL,
    Diff,
    NumStats,
    Tolerance,
    compare_text,
    compare_values,
)
from mlrepro.verify.framediff import compare_frames
from mlrepro.verify.modeldiff import compare_fitted, compare_outputs, prediction_deltas

SOURCE_CHANGED, TAMPERED, SKIPPED = "source changed", "tampered", "skipped"
# A stage of the manifest that the lock has no record of (it failed, or never ran): there
# is nothing to reproduce, so verify must not pass.
NEVER_RECORDED = "never recorded"
VERDICTS = (IDENTICAL, EQUIVALENT, DIFFERENT, SOURCE_CHANGED, TAMPERED, NEVER_RECORDED, SKIPPED)
FAILED = (DIFFERENT, SOURCE_CHANGED, TAMPERED, NEVER_RECORDED)


# Details (lock) compared per stage; the rest is covered by params and outputs.
DETAIL_KEYS = {
    "extract": (),
    "features": ("task", "input_columns", "output_columns", "train_rows", "test_rows"),
    "select": ("selected",),
    "train": (
        "estimator",
        "hyperparameters",
        "structure",
        "input_columns",
        "features",
        "metrics",
        "classes",
        "train_rows",
        "test_rows",
    ),
    "predict": ("rejected",),
}
PREDICTION_IGNORE = ("model_fingerprint",)  # the train stage judges the model itself


def short(fp: str | None) -> str:
    return (fp or "-")[:15]


@dataclass
class StageReport:
    """The verdict of one stage, why, and what it was compared with."""

    stage: str
    verdict: str = IDENTICAL
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    stats: NumStats = field(default_factory=NumStats)
    keys: dict[str, list[Any]] = field(default_factory=dict)
    fed: dict[str, str] = field(default_factory=dict)
    environment: list[str] = field(default_factory=list)
    causes: list[str] = field(default_factory=list)  # the differences that can explain it
    duration_s: float = 0.0
    # reproduced - recorded predictions / probabilities where they differ (report histogram)
    deltas: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "verdict": self.verdict,
            "reasons": self.reasons,
            "notes": self.notes,
            "outputs": self.outputs,
            "stats": self.stats.to_dict() if self.stats.compared else None,
            "row_keys": self.keys,
            "fed": self.fed,
            "environment": self.environment,
            "environment_causes": self.causes,
            "duration_s": round(self.duration_s, 4),
            "prediction_differences": delta_summary(self.deltas),
        }


def delta_summary(deltas: list[float]) -> dict[str, Any] | None:
    """Count, mean and extremes of ``reproduced - recorded`` predictions (None: none differ)."""
    if not deltas:
        return None
    return {
        "count": len(deltas),
        "nonzero": sum(1 for d in deltas if d != 0.0),
        "mean": sum(deltas) / len(deltas),
        "min": min(deltas),
        "max": max(deltas),
        "max_abs": max(abs(d) for d in deltas),
    }


def never_recorded(stage: str, lock_name: str) -> StageReport:
    """The verdict of a manifest stage missing from the lock."""
    return StageReport(
        stage,
        NEVER_RECORDED,
        [
            f"{stage}: never recorded: the manifest has this stage, but {lock_name} has no "
            "record of it (it failed or never ran), so there is no recorded result to reproduce"
        ],
    )


class Artifacts:
    """Recorded artifacts (the project's store, read only) and re-executed ones (scratch)."""

    def __init__(self, manifest: Manifest, project: Store, scratch: Any, offline: bool) -> None:
        self.m = manifest
        self.project = project
        self.scratch = scratch  # the Runner executing into the scratch folder
        self.offline = offline
        self._states: dict[tuple[str, str], str] = {}

    def state(self, record: dict[str, Any]) -> str:
        """ok | missing | tampered | table (predictions written to a database table)."""
        if "path" not in record:
            return "table"
        key = (record["path"], record.get("file_hash", ""))
        if key not in self._states:  # hash each recorded file once per verification
            path = self.project.root / record["path"]
            if not path.is_file():
                self._states[key] = "missing"
            else:
                self._states[key] = "ok" if self.project.is_intact(record) else TAMPERED
        return self._states[key]

    def loads(self, record: dict[str, Any]) -> bool:
        """Whether the recorded artifact may be deserialized (pickles only when trusted)."""
        return self.project.allow_pickles or not is_pickle(record)

    def recorded(self, kind: str, record: dict[str, Any]) -> Any:
        if kind == "frame":
            return self.project.read_frame(record)
        if kind == "model":
            return self.project.read_model(record)
        return self.project.read_text(record)

    def reproduced(self, kind: str, record: dict[str, Any]) -> Any:
        store = self.scratch.store
        if kind == "frame":
            return store.read_frame(record)
        if kind == "model":
            return store.read_model(record)
        return store.read_text(record)

    def recorded_predictions(self, record: dict[str, Any]) -> Any:
        import pandas as pd

        if "table" in record:
            import sqlalchemy as sa

            from mlrepro.core.sources import engine_for, redact, resolve_url

            p = self.m.predict
            url = (p.output_url if p else None) or self.m.source.url
            engine = engine_for(resolve_url(url, self.m.root), redact(url))
            try:
                return pd.read_sql_table(record["table"], engine)
            except sa.exc.SQLAlchemyError:
                return None
            finally:
                engine.dispose()
        path = self.project.verified_path(record)
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path)
        return self.project.read_frame(record)

    def fed_matrix(self) -> Any:
        return self.scratch.store.read_frame(self.scratch.output("features", "matrix"))


def lock_problems(stage: str, rec: dict[str, Any], lock: dict[str, Any]) -> list[str]:
    """Places where the recorded lock is not a consistent chain (edited or stale)."""
    problems = []
    params_fp = rec.get("params_fingerprint")
    if fingerprint_params(rec.get("params", {})) != params_fp:
        problems.append(
            "the lock record was edited: its params do not match its params_fingerprint"
        )
    elif rec.get("code_version") == plan.code_version(stage) and rec.get("key") != (
        plan.stage_key(stage, params_fp, rec.get("inputs", {}))
    ):
        problems.append("the lock record was edited: its key does not match its inputs")
    for name, (up, out) in STAGES[stage].inputs.items():
        upstream = lock["stages"].get(up, {}).get("outputs", {}).get(out, {})
        want = rec.get("inputs", {}).get(name)
        if upstream and want != upstream.get("fingerprint"):
            problems.append(
                f"stale lock: {stage} was recorded from {up}.{out} {short(want)}, but the lock's "
                f"{up} now records {short(upstream.get('fingerprint'))} ('{up}' re-ran alone)"
            )
    return problems


def judge(
    stage: str,
    rec: dict[str, Any],
    new: dict[str, Any],
    lock: dict[str, Any],
    art: Artifacts,
    tol: Tolerance,
) -> StageReport:
    """Compare one stage's re-executed record ``new`` with the recorded ``rec``."""
    report = StageReport(stage)
    diff = Diff()
    for problem in lock_problems(stage, rec, lock):
        diff.flag(DIFFERENT, problem)
    params = compare_values(rec.get("params", {}), new["params"])
    for reason in params.reasons:
        diff.flag(DIFFERENT, f"parameter {reason}")
    if rec.get("code_version") != new["code_version"]:
        report.notes.append(f"code version {rec.get('code_version')} -> {new['code_version']}")
    data = Diff()
    for name, r_out in sorted(rec.get("outputs", {}).items(), key=_main_first):
        n_out = new["outputs"].get(name)
        out_diff, state = _judge_output(stage, name, r_out, n_out, rec, new, art, tol, data)
        report.outputs[name] = {
            "recorded": r_out.get("fingerprint"),
            "reproduced": (n_out or {}).get("fingerprint"),
            "verdict": out_diff.verdict,
            "artifact": state,
        }
        data.merge(out_diff)
    keys = DETAIL_KEYS[stage]
    details = compare_values(
        {k: v for k, v in rec.get("details", {}).items() if k in keys},
        {k: v for k, v in new.get("details", {}).items() if k in keys},
        tol,
    )
    data.merge(details)
    diff.merge(data)
    report.verdict = diff.verdict
    report.reasons, report.stats, report.keys = diff.reasons, diff.stats, diff.keys
    report.deltas = diff.deltas if any(diff.deltas) else []
    _overrule(report, rec, new, art, data_differs=data.verdict == DIFFERENT, params=params)
    return report


def _overrule(
    report: StageReport,
    rec: dict[str, Any],
    new: dict[str, Any],
    art: Artifacts,
    *,
    data_differs: bool,
    params: Diff,
) -> None:
    """Verdicts that say where a difference comes from: the data, or a modified artifact."""
    stage = report.stage
    if stage == "extract" and data_differs and params.verdict == IDENTICAL:
        report.verdict = SOURCE_CHANGED
        as_of = rec.get("details", {}).get("as_of", art.m.source.as_of)
        report.reasons.insert(
            0, f"the source returns different rows for the same query as of {as_of}"
        )
    pinned = bool(art.m.predict and art.m.predict.input)  # a file is hashed; a query is not
    if stage == "predict" and not pinned and data_differs:
        report.verdict = SOURCE_CHANGED
        report.reasons.insert(
            0, "predict.query is re-run now and is not pinned by as_of: its rows have changed"
        )
    recorded_input = rec.get("inputs", {}).get("input")
    if stage == "predict" and pinned and recorded_input != new["inputs"].get("input"):
        report.verdict = SOURCE_CHANGED
        same = all(o["recorded"] == o["reproduced"] for o in report.outputs.values())
        also = " (the predictions made from it are identical)" if same else ""
        report.reasons.insert(0, f"the prediction input {_predict_input(art.m)} changed{also}")
    for name, entry in report.outputs.items():
        if entry["artifact"] == TAMPERED:
            report.verdict = TAMPERED
            path = rec["outputs"][name]["path"]
            report.reasons.insert(0, _tampered_text(stage, name, path, entry))


def _main_first(item: tuple[str, Any]) -> tuple[bool, str]:
    return (item[0] == "schema", item[0])  # the schema follows the snapshot


def _predict_input(m: Manifest) -> str:
    p = m.predict
    return (p.input or "query") if p else "-"


def _tampered_text(stage: str, name: str, path: str, entry: dict[str, Any]) -> str:
    text = (
        f"recorded artifact {path} ({stage}.{name}) was modified or corrupted: "
        "its bytes no longer match the lock's file_hash"
    )
    if entry["recorded"] == entry["reproduced"]:
        text += "; the re-executed output matches the lock, 'mlrepro run --force' rebuilds it"
    return text


_KINDS = {
    "snapshot": "frame",
    "matrix": "frame",
    "schema": "text",
    "transformer": "model",
    "selector": "model",
    "pipeline": "pipeline",
    "predictions": "predictions",
    "matrix_predictions": "frame",
    "program": "program",
}


def _judge_output(
    stage: str,
    name: str,
    r_out: dict[str, Any],
    n_out: dict[str, Any] | None,
    rec: dict[str, Any],
    new: dict[str, Any],
    art: Artifacts,
    tol: Tolerance,
    so_far: Diff,
) -> tuple[Diff, str]:
    state = art.state(r_out)
    if n_out is None:
        return Diff().flag(DIFFERENT, f"{name}: not produced by the re-execution"), state
    if r_out.get("fingerprint") == n_out.get("fingerprint"):
        return Diff(), state
    fps = f"{short(r_out.get('fingerprint'))} -> {short(n_out.get('fingerprint'))}"
    if name == "schema" and so_far.verdict != IDENTICAL:
        return Diff().flag(DIFFERENT, f"schema: follows the snapshot ({fps})"), state
    usable = state == "ok" or (state == "table" and not art.offline)
    if not usable:
        why = {"missing": "is not in .mlrepro/", TAMPERED: "was modified"}.get(state, "is offline")
        return Diff().flag(
            DIFFERENT,
            f"{name}: fingerprint {fps}; the recorded artifact {why}, so the difference "
            "cannot be explained further",
        ), state
    try:
        if _KINDS.get(name) == "pipeline" and not art.loads(r_out):
            diff = _behaviour_only(rec, new, art, tol)
        else:
            diff = _explain(stage, name, r_out, n_out, new, art, tol)
    except ArtifactError as exc:
        return Diff().flag(DIFFERENT, f"{name}: fingerprint {fps}; {exc.message}"), state
    if diff.verdict == IDENTICAL:
        diff.flag(
            EQUIVALENT,
            f"fingerprint {fps}, but every value compared is identical (the difference is "
            "in metadata, e.g. a dtype detail or a library version stamp)",
        )
    diff.reasons = [f"{name}: {r}" for r in diff.reasons]
    return diff, state


def _behaviour_only(
    rec: dict[str, Any], new: dict[str, Any], art: Artifacts, tol: Tolerance
) -> Diff:
    """A model whose recorded pickle is not loaded: judged by its recorded predictions."""
    unloaded = (
        "the recorded model is a pickle and was not loaded (--trust-artifacts compares its "
        "fitted state)"
    )
    r_p = rec.get("outputs", {}).get("matrix_predictions")
    n_p = new.get("outputs", {}).get("matrix_predictions")
    if not r_p or not n_p or art.state(r_p) != "ok":
        return Diff().flag(
            DIFFERENT, f"fitted state differs; {unloaded}, and no recorded predictions to compare"
        )
    rows = r_p.get("rows", "?")
    if r_p.get("fingerprint") == n_p.get("fingerprint"):
        return Diff().flag(
            EQUIVALENT,
            f"fitted state differs, but the predictions on the {rows} matrix rows are "
            f"identical; {unloaded}",
        )
    recorded, reproduced = art.recorded("frame", r_p), art.reproduced("frame", n_p)
    behaviour = compare_frames(recorded, reproduced, tol)
    how = {IDENTICAL: "identical", EQUIVALENT: "within tolerance"}.get(behaviour.verdict, "differ")
    verdict = behaviour.verdict if behaviour.verdict != IDENTICAL else EQUIVALENT
    diff = Diff().flag(
        verdict,
        f"predictions on the {rows} matrix rows {how} (see matrix_predictions); {unloaded}",
    )
    diff.deltas = _prediction_column_deltas(recorded, reproduced, [])
    return diff


def _explain(
    stage: str,
    name: str,
    r_out: dict[str, Any],
    n_out: dict[str, Any],
    new: dict[str, Any],
    art: Artifacts,
    tol: Tolerance,
) -> Diff:
    kind = _KINDS.get(name, "frame")
    if kind == "frame":
        key = list(art.m.source.order_by) if name == "snapshot" else []
        recorded = art.recorded("frame", r_out)
        return compare_frames(recorded, art.reproduced("frame", n_out), tol, key=key)
    if kind == "program":  # opaque arrays; identical bytes were settled by the fingerprint
        return Diff().flag(
            DIFFERENT,
            "the compiled program differs from the recorded one (it follows the fitted "
            "pipeline; with an identical pipeline, the compiler changed: mlrepro version)",
        )
    if kind == "text":
        return compare_text(art.recorded("text", r_out), art.reproduced("text", n_out))
    if kind == "model":
        return compare_fitted(art.recorded("model", r_out), art.reproduced("model", n_out), tol)
    if kind == "pipeline":
        recorded, reproduced = art.recorded("model", r_out), art.reproduced("model", n_out)
        task = new.get("details", {}).get("task", "regression")
        return compare_models(recorded, reproduced, art.fed_matrix(), art.m.target, task, tol)
    recorded = art.recorded_predictions(r_out)
    if recorded is None:
        return Diff().flag(DIFFERENT, f"the recorded table {r_out.get('table')} cannot be read")
    ids = [c for c in art.m.source.order_by if c in recorded.columns]
    reproduced = art.reproduced("frame", n_out)
    diff = compare_frames(recorded, reproduced, tol, key=ids, ignore=PREDICTION_IGNORE)
    diff.deltas = _prediction_column_deltas(recorded, reproduced, ids)
    return diff


def _prediction_column_deltas(recorded: Any, reproduced: Any, ids: list[str]) -> list[float]:
    """Differences of the numeric prediction columns, rows matched by key (else position)."""
    cols = [
        c
        for c in recorded.columns
        if (c == "prediction" or str(c).startswith("proba_")) and c in reproduced.columns
    ]
    if not cols:
        return []
    a, b = recorded, reproduced
    if ids and not a[ids].duplicated().any() and not b[ids].duplicated().any():
        joined = a[[*ids, *cols]].merge(b[[*ids, *cols]], on=ids, suffixes=("", "__new"))
        a, b = joined[cols], joined[[f"{c}__new" for c in cols]].set_axis(cols, axis=1)
    elif len(a) != len(b):
        return []
    out: list[float] = []
    for c in cols:
        x, y = a[c].to_numpy(), b[c].to_numpy()
        if x.dtype.kind in "fiub" and y.dtype.kind in "fiub":
            out.extend(prediction_deltas(x, y))
    return out


def compare_models(
    recorded: Any, reproduced: Any, matrix: Any, target: str, task: str, tol: Tolerance
) -> Diff:
    """Fitted state, then predictions of both models on the same matrix rows."""
    from mlrepro.pipeline.features import SPLIT_COLUMN

    X = matrix.drop(columns=[target, SPLIT_COLUMN], errors="ignore")
    a, b = recorded[1:], reproduced[1:]  # skip the feature steps: the matrix is their output
    labels = task == "classification"
    what = f"{'predicted labels' if labels else 'predictions'} on the {len(X)} matrix rows"
    diff = compare_outputs(a.predict(X), b.predict(X), tol, what, labels=labels)
    if task == "classification" and hasattr(a, "predict_proba"):
        proba = compare_outputs(a.predict_proba(X), b.predict_proba(X), tol, "probabilities")
        diff.merge(proba)
    return diff.merge(compare_fitted(recorded, reproduced, tol))
