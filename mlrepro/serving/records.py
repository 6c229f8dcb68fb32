"""Request models generated from a bundle's input schema, and validated records as frames.

Every input column becomes a required field named like the column, with the type the
training data had: numbers are finite floats (JSON numbers; numeric text is coerced like the
CLI coerces CSV cells), text columns with known categories an enum of them, others text.
Nullable columns also accept null, but must still be present (a misspelt name is an error,
never a silently imputed value). Id columns are optional and copied to the output.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Strict,
    Tag,
    create_model,
    model_validator,
)
from pydantic_core import PydanticCustomError

from mlrepro.guards import numbers

if TYPE_CHECKING:
    import pandas as pd

    from mlrepro.delivery.api import Bundle

TOO_LARGE = "batch_too_large"  # error type that the server turns into 413
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


def _numeric(integer: bool) -> Any:
    """A JSON value for a numeric column, by the same rule as the CLI (core/numbers.py)."""

    def check(value: Any) -> Any:
        try:
            parsed = numbers.number(value, integer=integer)
        except numbers.NotANumber as exc:
            raise PydanticCustomError(
                "not_a_number", "Input should be a valid number: {rule}", {"rule": exc.rule}
            ) from None
        if parsed is None and value is not None:  # NaN or an empty string: a missing value
            raise PydanticCustomError(
                "not_a_number", "Input should be a valid number: send null for a missing value"
            )
        return parsed

    return Annotated[float, Field(allow_inf_nan=False), BeforeValidator(check)]


Number, WholeNumber = _numeric(False), _numeric(True)
JsonScalar = bool | int | float | str  # a column whose type the schema does not pin


def _bool(value: Any) -> Any:
    # The CLI accepts True/False and their spellings "True"/"true"/"False"/"false".
    return (
        {"true": True, "false": False}.get(value.lower(), value)
        if isinstance(value, str)
        else value
    )


StrictBool = Annotated[bool, Strict(), BeforeValidator(_bool)]


@dataclass(frozen=True)
class Column:
    """One request field: the column, its JSON kind and whether null is allowed."""

    name: str
    kind: str  # number | category | text | bool | integer (ids only) | scalar
    nullable: bool
    categories: tuple[Any, ...] | None = None
    is_id: bool = False
    integer: bool = False  # a number column that held integers in training

    @property
    def type(self) -> Any:
        base: Any
        if self.kind == "number":
            base = WholeNumber if self.integer else Number
        elif self.kind == "category":
            base = Literal[self.categories]
        elif self.kind == "text":
            base = str
        elif self.kind == "bool":
            base = StrictBool
        elif self.kind == "integer":
            base = int
        else:
            base = JsonScalar
        return base | None if self.nullable or self.is_id else base

    def describe(self) -> str:
        if self.is_id:
            return "id column: optional, copied to the output"
        allowed = "null allowed" if self.nullable else "required, not null"
        return f"{self.kind} ({allowed})"


def _kind(dtype: str, categories: Any) -> str:
    if categories:
        return "category"
    if dtype.startswith(("float", "int")):
        return "number"
    if dtype == "str":
        return "text"
    if dtype == "bool":
        return "bool"
    return "scalar"


def columns_of(bundle: Bundle) -> list[Column]:
    """The request fields of a bundle: its input columns, then id columns not among them."""
    from mlrepro.delivery.card import column_specs

    cols = [
        Column(
            c.name,
            _kind(c.dtype, c.categories),
            c.nullable,
            c.categories,
            integer=c.dtype.startswith(("int", "uint")) and not c.categories,
        )
        for c in bundle.columns
    ]
    inputs = {c.name for c in cols}
    ids = [c for c in bundle.metadata.id_columns if c not in inputs]
    for spec in column_specs(bundle.contract.schema_yaml, ids):
        kind = "integer" if spec["dtype"].startswith("int") else _kind(spec["dtype"], None)
        cols.append(Column(spec["name"], kind, True, None, is_id=True))
    return cols


def _title(project: str) -> str:
    words = re.findall(r"[A-Za-z0-9]+", project) or ["Model"]
    name = "".join(w[:1].upper() + w[1:] for w in words)
    return name if name[0].isalpha() else f"M{name}"


class RequestModels:
    """Pydantic models for one bundle: a record, the columnar form, and the batch of either.

    ``max_batch`` is checked before any record is validated (error type ``TOO_LARGE``).
    """

    def __init__(self, bundle: Bundle, *, max_batch: int) -> None:
        self.columns = columns_of(bundle)
        self.max_batch = max_batch
        self.inputs = [c for c in self.columns if not c.is_id]
        self.ids = [c for c in self.columns if c.is_id]
        title = _title(bundle.metadata.project)
        config = ConfigDict(extra="ignore", populate_by_name=False)
        self.record = create_model(  # type: ignore[call-overload]
            f"{title}Record",
            __config__=config,
            __doc__=f"One input record of {bundle.metadata.project}: the model's input columns.",
            **{f"c{i}": self._field(c, c.type) for i, c in enumerate(self.columns)},
        )
        limit = BeforeValidator(self._check_size)
        self.columnar = create_model(  # type: ignore[call-overload]
            f"{title}Columns",
            __config__=config,
            __doc__="Columnar form: one list of values per input column, all the same length.",
            __validators__={"same_length": model_validator(mode="after")(_same_length)},
            **{
                f"c{i}": self._field(
                    c,
                    Annotated[list[c.type], limit, Field(max_length=max_batch)],  # type: ignore[name-defined]
                    listed=True,
                )
                for i, c in enumerate(self.columns)
            },
        )
        records = Annotated[list[self.record], limit, Field(max_length=max_batch)]  # type: ignore[name-defined]
        self.batch = Annotated[
            Annotated[records, Tag("records")] | Annotated[self.columnar, Tag("columns")],
            Discriminator(_shape),
        ]

    @staticmethod
    def _field(col: Column, typ: Any, listed: bool = False) -> tuple[Any, Any]:
        if col.is_id:
            typ = typ | None
        field = Field(
            None if col.is_id else ...,
            alias=col.name,
            description=("list: " if listed else "") + col.describe(),
        )
        return (typ, field)

    def _check_size(self, value: Any) -> Any:
        if isinstance(value, list) and len(value) > self.max_batch:
            raise PydanticCustomError(
                TOO_LARGE,
                "{actual} records, more than the limit of {limit} per request",
                {"actual": len(value), "limit": self.max_batch},
            )
        return value

    def single(
        self, batch: Any
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, list[Any]]] | None:
        """Of a one-record list: (input values, the same as one-row columns with numbers
        as float64 like ``frame_and_columns``, id columns present); else None."""
        import numpy as np

        if not isinstance(batch, list) or len(batch) != 1:
            return None
        row = batch[0].__dict__
        values = {c.name: row[f"c{i}"] for i, c in enumerate(self.columns)}
        ids = {c.name: [values[c.name]] for c in self.ids if values[c.name] is not None}
        inputs = {c.name: values[c.name] for c in self.inputs}
        columns = {
            c.name: np.array([inputs[c.name]], dtype="float64")
            if c.kind == "number"
            else [inputs[c.name]]
            for c in self.inputs
        }
        return inputs, columns, ids

    def frame(self, batch: Any) -> tuple[pd.DataFrame, dict[str, list[Any]]]:
        """(input columns in model order, id columns present) from a validated batch."""
        frame, ids, _ = self.frame_and_columns(batch)
        return frame, ids

    def frame_and_columns(
        self, batch: Any
    ) -> tuple[pd.DataFrame, dict[str, list[Any]], dict[str, Any]]:
        """``frame`` and the raw input columns it was built from (numbers as float64)."""
        import numpy as np
        import pandas as pd

        if isinstance(batch, list):
            rows = [r.__dict__ for r in batch]
            values = {c.name: [r[f"c{i}"] for r in rows] for i, c in enumerate(self.columns)}
        else:
            values = {c.name: getattr(batch, f"c{i}") for i, c in enumerate(self.columns)}
        data = {}
        for c in self.inputs:
            vals = values[c.name]
            data[c.name] = np.array(vals, dtype="float64") if c.kind == "number" else vals
        n = len(next(iter(values.values()))) if values else 0
        frame = pd.DataFrame(data, index=pd.RangeIndex(n))
        ids = {
            c.name: values[c.name]
            for c in self.ids
            if values[c.name] is not None and any(v is not None for v in values[c.name])
        }
        return frame, ids, data


def _shape(value: Any) -> str:
    return "records" if isinstance(value, list) else "columns"


def _same_length(model: BaseModel) -> BaseModel:
    lengths = {k: len(v) for k, v in model.__dict__.items() if v is not None}
    if len(set(lengths.values())) > 1:
        names = {f"c{i}": f.alias for i, f in enumerate(type(model).model_fields.values())}
        shown = ", ".join(f"{names.get(k, k)}: {n}" for k, n in list(lengths.items())[:6])
        raise ValueError(f"columns must have the same number of values ({shown})")
    return model


@dataclass(frozen=True)
class Issue:
    """Why one record (or the whole request, ``record=None``) was refused."""

    record: int | None
    field: str | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"record": self.record, "field": self.field, "reason": self.reason}


def issues_from_errors(
    errors: Sequence[Mapping[str, Any]], record: int | None = None
) -> list[Issue]:
    """Pydantic errors as per-record, per-field issues.

    Locations as FastAPI reports a batch (``body, records, 3, bmi`` or ``body, columns, bmi,
    3``), or as one record's model reports them (``bmi``, with ``record`` given).
    """
    out = []
    for err in errors:
        if err.get("type") == "json_invalid":  # loc is (body, byte offset): not a field
            where = err.get("loc", ())[-1]
            at = f" at character {where}" if isinstance(where, int) else ""
            out.append(Issue(None, None, f"the body is not valid JSON{at}"))
            continue
        loc = [p for p in err.get("loc", ()) if p != "body"]
        if not loc and err.get("type") == "missing" and record is None:  # no body at all
            reason = "the body is empty: send a JSON list of records or an object of columns"
            out.append(Issue(None, None, reason))
            continue
        rec, field = record, None
        if loc[:1] == ["records"]:
            rec = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
            field = str(loc[2]) if len(loc) > 2 else None
        elif loc[:1] == ["columns"]:
            field = str(loc[1]) if len(loc) > 1 else None
            rec = loc[2] if len(loc) > 2 and isinstance(loc[2], int) else None
        elif loc:
            field = str(loc[0])
        out.append(Issue(rec, field, _message(err)))
    return out


def _message(err: Mapping[str, Any]) -> str:
    msg = str(err.get("msg", "invalid"))
    if err.get("type") == "missing":
        return "missing field (send null for a missing value where nulls are allowed)"
    if err.get("type") == "model_attributes_type":
        return "the body must be a JSON list of records or an object of columns"
    return msg.removeprefix("Value error, ")


_REASON = re.compile(r"^column '(?P<field>.*?)': (?P<reason>.*)$")


def issues_from_reasons(reasons: dict[int, str]) -> list[Issue]:
    """The CLI validator's reasons ("column 'bmi': not a number; ...") as issues."""
    out = []
    for record, text in sorted(reasons.items()):
        for part in text.split("; "):
            m = _REASON.match(part)
            if m:
                out.append(Issue(record, m["field"], m["reason"]))
            else:
                out.append(Issue(record, None, part))
    return out
