"""The snapshot schema YAML is written without pandera, yet is the schema pandera builds.

``pipeline.schema.infer_yaml`` writes the file itself (same text in every environment);
pandera reads it back (``DataFrameSchema.from_yaml``, as ``predict.contract`` does). The
reference here is the schema object pandera builds from the same columns.
"""

from __future__ import annotations

import pandera.pandas as pa_schema
import pyarrow as pa
import pytest
import yaml

from mlrepro.pipeline.extract import ColumnSummary
from mlrepro.pipeline.schema import _pandas_dtype, infer_yaml

SUMMARY = {
    "n": ColumnSummary(pa.int64(), 0, None),
    "n_nulls": ColumnSummary(pa.int32(), 4, None),
    "x": ColumnSummary(pa.float64(), 0, None),
    "dec": ColumnSummary(pa.decimal128(10, 3), 1, None),
    "flag": ColumnSummary(pa.bool_(), 0, None),
    "flag_nulls": ColumnSummary(pa.bool_(), 2, None),
    "label": ColumnSummary(pa.string(), 0, {"b", "a", "x: y", "- dash", "", "it's", "ü", "1"}),
    "free": ColumnSummary(pa.large_string(), 3, None),
    "empty_cats": ColumnSummary(pa.string(), 0, set()),
    "ts": ColumnSummary(pa.timestamp("us", tz="UTC"), 0, None),
    "naive": ColumnSummary(pa.timestamp("us"), 1, None),
    "raw": ColumnSummary(pa.binary(), 0, None),
    "day": ColumnSummary(pa.date32(), 0, None),
    "nothing": ColumnSummary(pa.null(), 7, None),
    "true": ColumnSummary(pa.int64(), 0, None),  # a YAML keyword as a column name
    "with space": ColumnSummary(pa.float64(), 0, None),
}


def reference(summary: dict[str, ColumnSummary], name: str) -> pa_schema.DataFrameSchema:
    columns = {}
    for col, s in summary.items():
        dtype = _pandas_dtype(s.arrow_type, s.nulls > 0)
        checks = (
            [pa_schema.Check.isin(sorted(s.categories))]
            if dtype == "str" and s.categories
            else None
        )
        columns[col] = pa_schema.Column(dtype, nullable=s.nulls > 0, checks=checks)
    return pa_schema.DataFrameSchema(columns, name=name, strict=False, ordered=False)


def describe(schema: pa_schema.DataFrameSchema) -> dict:
    return {
        name: (
            None if col.dtype is None else str(col.dtype),
            col.nullable,
            [(c.name, sorted(c.statistics.get("allowed_values", []))) for c in col.checks],
        )
        for name, col in schema.columns.items()
    }


@pytest.mark.parametrize("name", ["diabetes", "n: ame", "true"])
def test_pandera_reads_back_the_schema_it_would_build(name) -> None:
    text = infer_yaml(SUMMARY, name)
    loaded = pa_schema.DataFrameSchema.from_yaml(text)
    expected = reference(SUMMARY, name)
    assert describe(loaded) == describe(expected)
    assert list(loaded.columns) == list(SUMMARY)
    assert (loaded.name, loaded.strict, loaded.ordered) == (name, False, False)


def test_text_is_pandera_layout_with_our_dtype_names() -> None:
    # pandera's to_yaml renders dtypes through the installed pandas ("str" -> e.g.
    # "string[pyarrow]"); everything else is the same text, key for key.
    ours = yaml.safe_load(infer_yaml(SUMMARY, "p"))
    theirs = yaml.safe_load(reference(SUMMARY, "p").to_yaml())
    assert list(ours) == list(theirs)
    for col in SUMMARY:
        a, b = dict(ours["columns"][col]), dict(theirs["columns"][col])
        assert list(a) == list(b), col
        a.pop("dtype", None), b.pop("dtype", None)
        assert a == b, col
    assert ours["columns"]["label"]["dtype"] == "str"
    assert ours["columns"]["naive"]["dtype"] == "datetime64[us]"


def test_validates_like_the_reference() -> None:
    import pandas as pd

    frame = pd.DataFrame({"label": ["a", "b", "zzz"], "n": [1, 2, 3]})
    summary = {k: SUMMARY[k] for k in ("label", "n")}
    loaded = pa_schema.DataFrameSchema.from_yaml(infer_yaml(summary, "p"))
    expected = reference(summary, "p")
    for schema in (loaded, expected):
        with pytest.raises(pa_schema.errors.SchemaError, match="isin"):
            schema.validate(frame)
        schema.validate(frame.iloc[:2])
