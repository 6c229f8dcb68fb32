"""Estimators mlrepro puts into the fitted end-to-end pipeline.

``FeatureSteps`` applies the manifest's feature steps in order on a DataFrame: each step
transforms its columns and passes the rest through in place; a step that changes the
column count (one-hot) replaces its columns with its output names at the same position.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, clone

from mlrepro.errors import DataError, MlreproError


def select_columns(spec: Any, frame: pd.DataFrame) -> list[str]:
    """Resolve a step's ``columns`` (names or a selector) against the current frame."""
    if spec == "all":
        return list(frame.columns)
    if spec == "numeric":
        return [
            c
            for c in frame.columns
            if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
        ]
    if spec == "categorical":
        return [
            c
            for c in frame.columns
            if not pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c])
        ]
    return list(spec)


def missing_columns_error(missing: list[str], available: list[str], what: str) -> DataError:
    import difflib

    shown = sorted(missing)[:10]
    close = {m: difflib.get_close_matches(m, available, n=1) for m in shown}
    sugg = [f"'{m}' -> '{c[0]}'" for m, c in close.items() if c]
    return DataError(
        f"{what}: missing column(s) {shown}" + (" ..." if len(missing) > 10 else ""),
        hint=("did you mean " + ", ".join(sugg) + "? " if sugg else "")
        + "provide these columns or fix the column names",
    )


def step_error(name: str, est: Any, frame: pd.DataFrame, exc: Exception) -> DataError:
    """Name the step, its class and the columns that broke it; never the values."""
    from mlrepro.guards.safe_text import strip_values

    what = f"feature step '{name}' ({type(est).__name__})"
    text = strip_values(exc)
    cols = [str(c) for c in frame.columns]
    texty = [c for c in cols if not pd.api.types.is_numeric_dtype(frame[c])]
    if texty and any(w in text.lower() for w in ("convert", "numeric", "float", "dtype")):
        return DataError(
            f"{what} needs numbers, but column(s) {texty[:5]} hold text",
            hint="encode them in an earlier step (e.g. sklearn.preprocessing.OneHotEncoder) "
            "or take them out of this step's columns",
        )
    shown = cols[:5] + (["..."] if len(cols) > 5 else [])
    return DataError(
        f"{what} failed on column(s) {shown}: {text}",
        hint="check the step's columns and parameters (NaN values need an imputer step)",
    )


def _output_names(fitted: Any, cols: list[str], width: int, step: str) -> list[str]:
    if width == len(cols):
        return list(cols)
    if hasattr(fitted, "get_feature_names_out"):
        try:
            return [str(n) for n in fitted.get_feature_names_out(cols)]
        except Exception:  # some transformers cannot name their outputs
            pass
    return [f"{step}_{i}" for i in range(width)]


def _dense(out: Any) -> np.ndarray:
    if hasattr(out, "toarray"):
        return out.toarray()
    if isinstance(out, pd.DataFrame):
        return out.to_numpy()
    return np.asarray(out)


def _check_shape(name: str, est: Any, out: np.ndarray, rows: int) -> None:
    """A step must return a 2-D table with one row per input row (not None, not a scalar)."""
    if out.ndim == 2 and out.shape[0] == rows:
        return
    found = "None" if out.ndim == 0 and out.dtype == object else f"shape {out.shape}"
    raise DataError(
        f"feature step '{name}' ({type(est).__name__}) returned {found}, not a table of "
        f"{rows} row(s)",
        hint="a step's transform (e.g. FunctionTransformer's func) must return one row per "
        "input row; fix or remove the step",
    )


def _splice(frame: pd.DataFrame, cols: list[str], out: pd.DataFrame) -> pd.DataFrame:
    """Replace ``cols`` with ``out``'s columns at the position of the first of ``cols``."""
    parts: list[pd.DataFrame] = []
    placed = False
    keep: list[str] = []
    colset = set(cols)
    for c in frame.columns:
        if c in colset:
            if not placed:
                if keep:
                    parts.append(frame[keep])
                    keep = []
                parts.append(out)
                placed = True
        else:
            keep.append(c)
    if keep:
        parts.append(frame[keep])
    if not placed:
        parts.append(out)
    result = pd.concat(parts, axis=1) if parts else out
    dupes = result.columns[result.columns.duplicated()].tolist()
    if dupes:
        raise DataError(
            f"feature steps produce duplicate column names {dupes[:5]}",
            hint="rename columns or list the clashing columns in one step",
        )
    return result


class FeatureSteps(TransformerMixin, BaseEstimator):
    """Ordered feature steps over a DataFrame; see the module docstring."""

    def __init__(self, steps: list[tuple[str, Any, Any]] | None = None) -> None:
        self.steps = steps

    def _apply(self, X: pd.DataFrame, y: Any, fit: bool) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            raise DataError("features need a DataFrame with named columns", hint="pass a frame")
        frame = X
        fitted: list[Any] = getattr(self, "fitted_steps_") if not fit else []  # noqa: B009
        for i, (name, transformer, spec) in enumerate(self.steps or []):
            if fit:
                cols = select_columns(spec, frame)
                missing = [c for c in cols if c not in frame.columns]
                if missing:
                    raise missing_columns_error(
                        missing, list(frame.columns), f"feature step '{name}'"
                    )
                est = clone(transformer)
                if not cols:
                    fitted.append((name, est, cols, []))
                    continue
                try:
                    out = _dense(est.fit_transform(frame[cols], y))
                except MlreproError:
                    raise
                except Exception as exc:  # the step's own code (a plugin, a func) failed
                    raise step_error(name, est, frame[cols], exc) from None
                _check_shape(name, est, out, len(frame))
                names = _output_names(est, cols, out.shape[1], name)
                fitted.append((name, est, cols, names))
            else:
                _, est, cols, names = fitted[i]
                if not cols:
                    continue
                out = _dense(est.transform(frame[cols]))
                _check_shape(name, est, out, len(frame))
            out_df = pd.DataFrame(out, columns=names, index=frame.index)
            out_df = out_df.infer_objects()
            frame = _splice(frame, cols, out_df)
        if fit:
            self.fitted_steps_ = fitted
            self.feature_names_out_ = [str(c) for c in frame.columns]
        return frame

    def fit(self, X: pd.DataFrame, y: Any = None) -> FeatureSteps:
        self.fit_transform(X, y)
        return self

    def fit_transform(self, X: pd.DataFrame, y: Any = None, **_: Any) -> pd.DataFrame:
        self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        self.n_features_in_ = len(X.columns)
        return self._apply(X, y, fit=True)

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        expected = list(self.feature_names_in_)
        missing = [c for c in expected if c not in X.columns]
        if missing:
            raise missing_columns_error(missing, list(X.columns), "input")
        return self._apply(X[expected], None, fit=False)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.feature_names_out_, dtype=object)

    def set_output(self, *, transform: Any = None) -> FeatureSteps:
        return self  # always pandas


class KeepColumns(TransformerMixin, BaseEstimator):
    """The selection step when the manifest has no ``selection``: keep every feature."""

    def __init__(self, columns: list[str] | None = None) -> None:
        self.columns = columns

    def fit(self, X: pd.DataFrame, y: Any = None) -> KeepColumns:
        self.feature_names_in_ = np.asarray(list(X.columns), dtype=object)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return X[list(self.columns if self.columns is not None else self.feature_names_in_)]

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        cols = self.columns if self.columns is not None else self.feature_names_in_
        return np.asarray(list(cols), dtype=object)

    def set_output(self, *, transform: Any = None) -> KeepColumns:
        return self
