"""Scoring: the one place that calls ``predict``/``predict_proba`` and names their columns.

Every delivery path (project stage, ad-hoc and bundle batch, the Python API, serve, stream)
turns validated rows into predictions through ``predict_frame``; rows the model itself
rejects are isolated by bisection in ``predict_checked``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlrepro.errors import PredictionRejected
from mlrepro.guards.safe_text import strip_values
from mlrepro.predict.contract import CheckedChunk, Contract, check_chunk, describe

PROBA_PREFIX = "proba_"


def proba_columns(classes: Any) -> list[str]:
    """Output column names of a classifier's class probabilities, in ``classes_`` order."""
    return [f"{PROBA_PREFIX}{c}" for c in classes]


def output_columns(task: str, classes: Any, has_proba: bool = True) -> list[str]:
    """``prediction`` then, for a classifier with ``predict_proba``, one column per class."""
    classified = task == "classification" and has_proba and classes is not None
    probas = proba_columns(classes) if classified else []
    return ["prediction", *probas]


def predict_frame(pipeline: Any, X: pd.DataFrame, task: str, count: bool = True) -> dict[str, Any]:
    """{column: values}: ``prediction`` and, for classifiers, ``proba_<class>`` columns.

    ``count=False``: a trial prediction (finding the rows a model rejects), left out of an
    accelerated pipeline's ``rows``."""
    # numpy's floating-point warnings (a value past float32 in a cast, a division by zero in
    # a program the fallback then replaces) are noise on stderr: the model's own checks
    # raise for a value it cannot take, and that error names the problem
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if isinstance(pipeline, AcceleratedPipeline):
            return pipeline.outputs(X, task, count)
        return _reference_outputs(pipeline, X, task)


def _reference_outputs(pipeline: Any, X: pd.DataFrame, task: str) -> dict[str, Any]:
    out: dict[str, Any] = {"prediction": pipeline.predict(X)}
    if task == "classification" and hasattr(pipeline, "predict_proba"):
        proba = pipeline.predict_proba(X)
        for j, name in enumerate(proba_columns(pipeline.classes_)):
            out[name] = proba[:, j]
    return out


class AcceleratedPipeline:
    """A fitted pipeline paired with its compiled program (``mlrepro bundle --accelerate``).

    The program (``mlrepro.accelerate``) scores every batch it reproduces exactly and
    answers None for anything else (a value the reference rejects, an unseen category...);
    such a batch takes the fitted scikit-learn pipeline, so verdicts, reasons and errors
    stay the reference's. Duck-types the Pipeline (``predict``, ``classes_``, steps, and
    ``predict_proba`` when the reference has it); ``rows`` counts rows per runtime.
    """

    def __init__(self, program: Any, pipeline: Any, task: str) -> None:
        import threading

        self.program = program
        self.reference = pipeline
        self.task = task
        self._lock = threading.Lock()
        self.rows = {"accelerated": 0, "reference": 0}

    def outputs(self, X: pd.DataFrame, task: str, count: bool = True) -> dict[str, Any]:
        out = self.program.predict(X) if len(X) else None
        used = "accelerated" if out is not None else "reference"
        if out is None:
            out = _reference_outputs(self.reference, X, task)
        if count:
            with self._lock:
                self.rows[used] += len(X)
        return out

    def record_outputs(self, values: Mapping[str, Any]) -> dict[str, Any] | None:
        """One record's outputs from the program (no pandas), or None: use ``outputs``."""
        out = self.program.predict_record(values)
        if out is not None:
            with self._lock:
                self.rows["accelerated"] += 1
        return out

    def predict(self, X: pd.DataFrame) -> Any:
        return self.outputs(X, self.task)["prediction"]

    @property
    def classes_(self) -> Any:
        return self.reference.classes_

    def __getitem__(self, key: Any) -> Any:
        return self.reference[key]

    def __getattr__(self, name: str) -> Any:  # predict_proba, steps, named_steps, ...
        if name.startswith("__") or name in ("program", "reference", "task", "rows", "_lock"):
            raise AttributeError(name)
        return getattr(self.reference, name)

    def __getstate__(self) -> dict[str, Any]:  # shipped to Dask workers as the safe bytes
        return {"program": self.program.to_bytes(), "pipeline": self.reference, "task": self.task}

    def __setstate__(self, state: dict[str, Any]) -> None:
        from mlrepro.accelerate import load_program

        program = load_program(state["program"])
        AcceleratedPipeline.__init__(self, program, state["pipeline"], state["task"])


@dataclass
class ChunkResult:
    """One scored chunk: predictions of the valid rows, and the rejected rows with reasons.

    ``rejects`` has a ``row`` column (position in the chunk), the chunk's columns as text and
    a ``reason`` column; ``extra`` names input columns the model does not use.
    """

    rows: int
    predictions: pd.DataFrame
    rejects: pd.DataFrame
    extra: list[str] = field(default_factory=list)


def _model_error(exc: Exception) -> str:
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "unknown categor" in msg.lower():
        return "unseen category in a one-hot encoded column"
    return strip_values(msg)  # library messages quote the user's values: never echo them


GUARD_ROWS = 16  # single rows tried, evenly spread, before bisecting a rejected chunk


def _isolate(pipeline: Any, X: pd.DataFrame, contract: Contract) -> dict:
    """{row position: reason} for rows the model itself rejects, found by bisection.

    First up to ``GUARD_ROWS`` single rows, evenly spread, are predicted: if every one of
    them fails, the model rejects the data as a whole (a model/data mismatch, not a few bad
    rows) and the error is raised; a chunk no longer than the probe gets each row's reason.
    Otherwise the chunk is bisected; that takes at most ``2 * len(X)`` predictions however
    the rejected rows are spread.
    """
    probe = np.unique(np.linspace(0, len(X) - 1, num=min(len(X), GUARD_ROWS)).astype(int))
    failed: dict[int, ValueError] = {}
    for pos in probe:
        try:
            predict_frame(pipeline, X.iloc[[int(pos)]], contract.task, count=False)
            break
        except ValueError as exc:
            failed[int(pos)] = exc
    else:
        if len(probe) < len(X):  # every spread row fails: not a row problem
            raise next(iter(failed.values()))
    if len(failed) == len(X):  # a small chunk: every row was tried on its own and failed
        return {pos: f"the model rejected the row: {_model_error(e)}" for pos, e in failed.items()}
    return _bisect(pipeline, X, contract)


def _bisect(pipeline: Any, X: pd.DataFrame, contract: Contract) -> dict:
    try:
        predict_frame(pipeline, X, contract.task, count=False)
        return {}
    except ValueError as exc:
        if len(X) == 1:
            return {0: f"the model rejected the row: {_model_error(exc)}"}
    half = len(X) // 2
    bad = _bisect(pipeline, X.iloc[:half], contract)
    for pos, why in _bisect(pipeline, X.iloc[half:], contract).items():
        bad[pos + half] = why
    return bad


def predict_checked(
    pipeline: Any, checked: CheckedChunk, contract: Contract, *, isolate: bool = True
) -> ChunkResult:
    """Predict the valid rows of a checked chunk; see ``score_chunk``."""
    chunk, valid, reasons = checked.chunk, checked.valid, dict(checked.reasons)
    ok = np.ones(len(chunk), dtype=bool)
    ok[list(reasons)] = False
    columns: dict[str, Any] = {}
    if reasons and not isolate:
        # the caller fails on any invalid row: name those rows, do not let the model's
        # error about some other row hide them (nor spend a prediction on the rest)
        return ChunkResult(
            rows=len(chunk),
            predictions=_assemble(
                chunk, np.zeros(len(chunk), dtype=bool), {}, contract, checked.keep
            ),
            rejects=rejects_frame(chunk, ok, reasons),
            extra=checked.extra,
        )
    if ok.any():
        try:
            columns = predict_frame(pipeline, valid, contract.task)
        except ValueError as exc:
            if not isolate:
                raise _model_rejected(exc) from None
            try:
                model_bad = _isolate(pipeline, valid, contract)
            except ValueError:
                raise _model_rejected(exc) from None
            positions = np.flatnonzero(ok)
            for pos, why in model_bad.items():
                reasons[int(positions[pos])] = why
            ok[list(reasons)] = False
            valid = valid.iloc[[i for i in range(len(valid)) if i not in model_bad]]
            columns = predict_frame(pipeline, valid, contract.task) if len(valid) else {}
    return ChunkResult(
        rows=len(chunk),
        predictions=_assemble(chunk, ok, columns, contract, checked.keep),
        rejects=rejects_frame(chunk, ok, reasons),
        extra=checked.extra,
    )


def score_chunk(
    pipeline: Any,
    chunk: pd.DataFrame,
    contract: Contract,
    *,
    keep: list[str] | tuple[str, ...] = (),
    isolate: bool = True,
) -> ChunkResult:
    """Validate one chunk and predict its valid rows; invalid rows are returned, not raised.

    With ``isolate``, rows the model rejects (e.g. a category seen only in the test rows)
    are found by bisection and rejected with the model's message; without it the model's
    error is raised as ``PredictionRejected``.
    """
    return predict_checked(pipeline, check_chunk(chunk, contract, keep), contract, isolate=isolate)


def _model_rejected(exc: Exception) -> PredictionRejected:
    return PredictionRejected(
        f"the model rejected the input: {_model_error(exc)}",
        hint="check the input against the training schema (mlrepro inspect)",
    )


def _assemble(
    chunk: pd.DataFrame, ok: np.ndarray, columns: dict[str, Any], contract: Contract, keep: Any
) -> pd.DataFrame:
    out = pd.DataFrame(index=pd.RangeIndex(int(ok.sum())))
    for col in [*contract.id_columns, *keep]:
        if col in chunk.columns and col not in out.columns:
            out[col] = chunk.loc[ok, col].to_numpy()
    if columns:
        for name, values in columns.items():
            out[name] = values
    else:
        for name in output_columns(contract.task, contract.classes):
            out[name] = pd.Series(dtype="float64")
    out["model_fingerprint"] = contract.model_fingerprint
    return out


def rejects_frame(chunk: pd.DataFrame, ok: np.ndarray, reasons: dict[int, str]) -> pd.DataFrame:
    # Values as text: a rejected value may not fit the column's type (e.g. "abc" in a
    # numeric column), and quarantine files of different chunks must share one schema.
    bad = np.flatnonzero(~ok)
    rejected = chunk.iloc[bad].astype("string").reset_index(drop=True)
    rejected.insert(0, "row", bad.astype("int64"))
    rejected["reason"] = pd.array([reasons[int(i)] for i in bad], dtype="string")
    return rejected


def predict_chunk(
    pipeline: Any,
    chunk: pd.DataFrame,
    contract: Contract,
    *,
    on_invalid: str = "fail",
    keep: list[str] | tuple[str, ...] = (),
    offset: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Predict one chunk; returns (predictions, rejected rows with reasons or None)."""
    result = score_chunk(pipeline, chunk, contract, keep=keep, isolate=on_invalid != "fail")
    rejects = result.rejects
    if len(rejects) and on_invalid == "fail":
        reasons = dict(zip(rejects["row"].tolist(), rejects["reason"].tolist(), strict=True))
        raise rejected_error(reasons, offset)
    rejects = rejects.assign(row=rejects["row"] + offset)
    return result.predictions, rejects if on_invalid == "quarantine" else None


def rejected_error(reasons: dict[int, str], offset: int = 0) -> PredictionRejected:
    return PredictionRejected(
        f"{len(reasons)} input row(s) are invalid: {describe(reasons, offset)}",
        hint="fix the rows, or use --on-invalid skip|quarantine to predict the rest",
    )
