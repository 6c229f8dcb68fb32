"""The input contract of a fitted pipeline and the one validator of prediction input.

``Contract`` holds the ordered input columns and the stored snapshot schema; ``check_chunk``
validates one chunk (a vectorised fast path, pandera only when a chunk may be invalid).
``mlrepro.predict.scoring`` predicts the rows that pass.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlrepro.errors import DataError, UsageError
from mlrepro.transformers import missing_columns_error

MAX_REASONS = 5
FINITE = "finite (no inf values)"


@dataclass
class Contract:
    """What a fitted pipeline expects: ordered input columns and their schema."""

    input_columns: list[str]
    schema_yaml: str
    model_fingerprint: str
    id_columns: list[str] = field(default_factory=list)  # passed through when present
    task: str = "regression"
    classes: list[Any] | None = None
    # text columns whose encoder accepts unseen values (handle_unknown other than "error"):
    # their training categories are information, not a rule
    open_columns: list[str] = field(default_factory=list)
    _schema: Any = None
    _plan: Any = None
    _training: Any = None

    def __post_init__(self) -> None:
        if self.open_columns:
            self.schema_yaml = without_categories(self.schema_yaml, self.open_columns)

    def schema(self) -> Any:
        if self._schema is None:
            self._schema = validation_schema(self.schema_yaml, self.input_columns)
        return self._schema

    def text_columns(self) -> list[str]:
        """Input and id columns the training data held as text.

        A CSV reader must keep their cells as written: ``02134`` is not the number 2134, and
        ``NA`` or ``None`` are categories, not missing values (only an empty cell is).
        """
        names = [*self.input_columns, *(c for c in self.id_columns if c not in self.input_columns)]
        return [
            spec["name"]
            for spec in column_specs(self.schema_yaml, names)
            if spec["dtype"] in ("str", "object")
        ]

    def training_columns(self) -> set[str]:
        """Every column of the training snapshot (from the stored schema)."""
        if self._training is None:
            import yaml

            doc = yaml.safe_load(self.schema_yaml) or {}
            self._training = {str(c) for c in (doc.get("columns") or {})}
        return self._training

    def plan(self) -> list[tuple[str, str, bool, Any]]:
        """Per column (name, kind, nullable, allowed values) for the vectorized fast path."""
        if self._plan is None:
            self._plan = fast_plan(self.schema())
        return self._plan


def without_categories(schema_yaml: str, columns: list[str]) -> str:
    """The schema YAML with the allowed-values check of ``columns`` removed."""
    import yaml

    doc = yaml.safe_load(schema_yaml) or {}
    for name in columns:
        col = (doc.get("columns") or {}).get(name)
        if not isinstance(col, dict):
            continue
        col.pop("isin", None)
        checks = col.get("checks")
        if isinstance(checks, dict):
            checks.pop("isin", None)
            if not checks:
                col["checks"] = None
    return yaml.safe_dump(doc, sort_keys=False)


def _finite(series: pd.Series) -> pd.Series:
    # Runs on raw values too (a coercion failure elsewhere in the column): never raise.
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return pd.Series(~np.isinf(values), index=series.index)


_BOOL_LIKE = frozenset({True, False, "True", "False", "true", "false"})


def _is_bool_like(value: Any) -> bool:
    try:
        return value in _BOOL_LIKE or value is None or value != value
    except TypeError:  # unhashable, e.g. a list
        return False


def _bool_like(series: pd.Series) -> pd.Series:
    return series.map(_is_bool_like).astype(bool)


def validation_schema(schema_yaml: str, columns: list[str]) -> Any:
    """The stored snapshot schema, restricted to the model's inputs, tolerant of int/float."""
    import pandera.pandas as pa

    stored = pa.DataFrameSchema.from_yaml(schema_yaml)
    cols = {}
    for name in columns:
        col = stored.columns.get(name)
        if col is None:
            continue
        dtype = str(col.dtype)
        if any(t in dtype for t in ("int", "float")):
            cols[name] = pa.Column(
                "float64",
                nullable=col.nullable,
                coerce=True,
                checks=[pa.Check(_finite, error=FINITE)],
            )
        elif "bool" in dtype:  # coercing to bool would turn any value into True/False
            checks = [pa.Check(_bool_like, error="boolean")]
            cols[name] = pa.Column(None, nullable=col.nullable, checks=checks)
        else:
            cols[name] = pa.Column(None, nullable=col.nullable, checks=col.checks)
    return pa.DataFrameSchema(cols, strict=False)


def fast_plan(schema: Any) -> list[tuple[str, str, bool, Any]]:
    """How ``fast_validate`` checks each column; kind "other" means: ask pandera."""
    plan = []
    for name, col in schema.columns.items():
        checks = list(col.checks)
        names = [c.error if c.error == FINITE else c.name for c in checks]
        allowed = None
        if col.dtype is not None and str(col.dtype) == "float64" and col.coerce:
            kind = "number" if names == [FINITE] else "other"
        elif col.dtype is None and not checks:
            kind = "any"
        elif col.dtype is None and names == ["isin"]:
            kind, allowed = "isin", list(checks[0].statistics["allowed_values"])
        else:
            kind = "other"
        plan.append((name, kind, bool(col.nullable), allowed))
    return plan


def fast_validate(chunk: pd.DataFrame, contract: Contract) -> pd.DataFrame | None:
    """The coerced chunk if every row is certainly valid, else None (then pandera decides).

    Conservative: it accepts only what the pandera schema accepts, and coerces the same way
    (numbers to float64), so the happy path skips pandera's per-call overhead.
    """
    coerced = {}
    for name, kind, nullable, allowed in contract.plan():
        series = chunk[name]
        if kind == "number":
            if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
                return None
            values = series.to_numpy(dtype="float64", na_value=np.nan)
            if np.isinf(values).any() or (not nullable and np.isnan(values).any()):
                return None
            if series.dtype != np.float64:  # already float64 (serve's frames): no copy
                coerced[name] = pd.Series(values, index=series.index, name=name)
        elif kind == "any":
            if not nullable and series.isna().any():
                return None
        elif kind == "isin":
            ok = series.isin(allowed)
            ok = ok | series.isna() if nullable else ok
            if not ok.all():
                return None
        else:
            return None
    return chunk.assign(**coerced) if coerced else chunk


def columns_certainly_valid(columns: dict[str, Any], contract: Contract) -> bool:
    """Whether ``fast_validate`` would pass a frame of these raw columns, decided without
    building pandas objects (a one-row batch of ``serve``/``stream`` spends more on Series
    than on the check).

    Stricter, never looser: numbers must already be float64 arrays, category (``isin``)
    values ``str`` or None, any other kind makes it answer False. False only means "ask
    ``fast_validate``" (and then pandera), so verdicts and reasons stay the validator's.
    """
    for name, kind, nullable, allowed in contract.plan():
        values = columns.get(name)
        if values is None:
            return False
        if kind == "number":
            if not isinstance(values, np.ndarray) or values.dtype != np.float64:
                return False
            if np.isinf(values).any() or (not nullable and np.isnan(values).any()):
                return False
        elif kind == "isin":
            if not all(isinstance(a, str) for a in allowed):
                return False
            ok = set(allowed)
            for v in values:
                if v is None and nullable:
                    continue
                if type(v) is not str or v not in ok:
                    return False
        else:
            return False
    return True


def _rule(check: Any) -> str:
    text = str(check)
    if text == "not_nullable":
        return "missing value (the training data had none)"
    if text.startswith("isin"):
        return "unseen category (not in the training data)"
    if text.startswith(("coerce_dtype", "dtype")):
        expected = text.split("(", 1)[-1].rstrip(")").strip("'")
        return "not a number" if "float" in expected else f"wrong type (expected {expected})"
    if "finite" in text:
        return "infinite value"
    if text == "boolean":
        return "not a boolean"
    return text[:60]


def invalid_rows(chunk: pd.DataFrame, contract: Contract) -> tuple[pd.DataFrame, dict[int, str]]:
    """Coerced chunk and {row position: reason}; reasons name column and rule, never values."""
    from mlrepro.predict import numeric

    chunk, refused = numeric.enforce(chunk, contract)  # the one numeric rule, first
    valid, reasons = _schema_rows(chunk, contract)
    if not refused:
        return valid, reasons
    for pos, whys in refused.items():
        columns = tuple(w.split(":", 1)[0] + ":" for w in whys)
        rest = [r for r in reasons.get(pos, "").split("; ") if r and not r.startswith(columns)]
        reasons[pos] = "; ".join([*whys, *rest][:MAX_REASONS])
    return valid.drop(index=chunk.index[sorted(refused)], errors="ignore"), reasons


def _schema_rows(chunk: pd.DataFrame, contract: Contract) -> tuple[pd.DataFrame, dict[int, str]]:
    import pandera.errors as pe

    fast = fast_validate(chunk, contract)
    if fast is not None:
        return fast, {}
    try:
        return contract.schema().validate(chunk, lazy=True), {}
    except pe.SchemaErrors as exc:
        cases = exc.failure_cases
    reasons = _reasons(cases, chunk.index)
    # re-validate the valid rows so the returned frame is coerced
    bad = sorted(reasons)
    good = chunk.drop(index=chunk.index[bad])
    with contextlib.suppress(pe.SchemaErrors):
        good = contract.schema().validate(good, lazy=True)
    return good, reasons


def _reasons(cases: pd.DataFrame, index: pd.Index) -> dict[int, str]:
    """{row position: "column 'c': rule; ..."} from pandera failure cases (vectorized)."""
    if cases["index"].isna().any():  # a failure of a whole column, not of rows
        case = cases[cases["index"].isna()].iloc[0]
        raise DataError(
            f"column '{case['column']}': {_rule(case['check'])}",
            hint="fix the input column's type",
        )
    rules = {check: _rule(check) for check in cases["check"].unique()}
    why = "column '" + cases["column"].astype(str) + "': " + cases["check"].map(rules)
    positions = index.get_indexer(pd.Index(cases["index"]))
    pairs = pd.DataFrame({"pos": positions, "why": why.to_numpy()}).drop_duplicates()
    several = pairs["pos"].duplicated(keep=False).to_numpy()
    reasons = dict(zip(pairs["pos"][~several].tolist(), pairs["why"][~several], strict=True))
    for pos, whys in pairs[several].groupby("pos", sort=False)["why"]:
        reasons[int(pos)] = "; ".join(whys.iloc[:MAX_REASONS])
    return reasons


def describe(reasons: dict[int, str], offset: int = 0) -> str:
    items = sorted(reasons.items())[:MAX_REASONS]
    text = "; ".join(f"row {offset + r}: {why}" for r, why in items)
    more = len(reasons) - len(items)
    return text + (f"; ... and {more} more" if more > 0 else "")


def ignored_columns(extra: list[str]) -> str:
    """The warning for input columns the model does not use (named, at most eight)."""
    shown = ", ".join(extra[:8]) + (" ..." if len(extra) > 8 else "")
    return f"ignoring {len(extra)} input column(s) the model does not use: {shown}"


def check_columns(columns: list[str], contract: Contract) -> list[str]:
    """Error on missing columns; return the extra ones (ignored, with a warning)."""
    missing = [c for c in contract.input_columns if c not in columns]
    if missing:
        raise missing_columns_error(missing, columns, "prediction input")
    # columns of the training data that are not inputs (target, timestamp) are expected in a
    # copy of the source table: only columns the training data never had are worth a warning
    known = set(contract.input_columns) | set(contract.id_columns) | contract.training_columns()
    return [c for c in columns if c not in known]


@dataclass
class CheckedChunk:
    """A chunk after validation: the coerced valid rows and {row position: reason}."""

    chunk: pd.DataFrame
    valid: pd.DataFrame
    reasons: dict[int, str]
    extra: list[str]
    keep: tuple[str, ...]


def check_chunk(
    chunk: pd.DataFrame, contract: Contract, keep: list[str] | tuple[str, ...] = ()
) -> CheckedChunk:
    """Validate one chunk (no prediction); missing columns raise, invalid rows are listed."""
    chunk = chunk.reset_index(drop=True)
    extra = check_columns([str(c) for c in chunk.columns], contract)
    missing_keep = [k for k in keep if k not in chunk.columns]
    if missing_keep:
        raise UsageError(
            f"--keep column(s) {missing_keep} are not in the input",
            hint="name columns that exist in the input",
        )
    valid, reasons = invalid_rows(chunk[contract.input_columns], contract)
    extra = [c for c in extra if c not in keep]
    return CheckedChunk(chunk, valid, reasons, extra, tuple(keep))


def column_specs(schema_yaml: str, columns: list[str]) -> list[dict[str, Any]]:
    """Name, dtype, nullability and known categories of the model's input columns."""
    import yaml

    stored = (yaml.safe_load(schema_yaml) or {}).get("columns") or {}
    specs = []
    for name in columns:
        col = stored.get(name) or {}
        checks = col.get("checks") or {}
        cats = col.get("isin") or (checks.get("isin") if isinstance(checks, dict) else None)
        if isinstance(cats, dict):  # {value: [...]} in some pandera versions
            cats = cats.get("value")
        dtype = str(col.get("dtype") or "any")
        specs.append(
            {
                "name": name,
                "dtype": "str" if dtype.startswith("string") else dtype,
                "nullable": bool(col.get("nullable", False)),
                "categories": list(cats) if cats else None,
            }
        )
    return specs
