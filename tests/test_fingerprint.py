"""Tests for mlrepro.fingerprint: canonical JSON, params, frames and models."""

from __future__ import annotations

import math
import pathlib
import re
import subprocess
import sys
from decimal import Decimal

import blake3
import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlrepro.fingerprint import (
    EXECUTION_ONLY_PARAMS,
    FrameHasher,
    canonical_json,
    fingerprint_frame,
    fingerprint_model,
    fingerprint_params,
    hash_bytes,
    hash_file,
)

FP_RE = re.compile(r"^b3:[0-9a-f]{64}$")
HYPOTHESIS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------------------ strategies

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
json_dicts = st.dictionaries(st.text(max_size=6), json_values, min_size=1, max_size=6)


def reversed_order(obj):
    """The same mapping with every dict's insertion order reversed."""
    if isinstance(obj, dict):
        return {k: reversed_order(obj[k]) for k in reversed(list(obj))}
    if isinstance(obj, list):
        return [reversed_order(x) for x in obj]
    return obj


@st.composite
def frames(draw, min_rows=0, max_rows=25):
    """Frames with int, float (NaN), string (None), bool and datetime (NaT) columns."""
    n = draw(st.integers(min_rows, max_rows))

    def column(elements):
        return draw(st.lists(elements, min_size=n, max_size=n))

    floats = column(st.none() | st.floats(-1e6, 1e6))
    seconds = column(st.none() | st.integers(0, 2**32))
    return pd.DataFrame(
        {
            "i": pd.Series(column(st.integers(-(2**62), 2**62)), dtype="int64"),
            "f": pd.Series([np.nan if x is None else x for x in floats], dtype="float64"),
            "s": pd.Series(column(st.none() | st.text(max_size=5)), dtype=object),
            "b": pd.Series(column(st.booleans()), dtype=bool),
            "t": pd.to_datetime(
                pd.Series([np.nan if x is None else x for x in seconds], dtype="float64"),
                unit="s",
            ),
        }
    )


def changed(value):
    """A value of the same column type that is certainly different."""
    if isinstance(value, (bool, np.bool_)):
        return not value
    if isinstance(value, (int, np.integer)):
        return int(value) + 1
    if isinstance(value, float):
        return 1.5 if math.isnan(value) else value + 1.0
    if value is None:
        return "x"
    if isinstance(value, str):
        return value + "x"
    if pd.isna(value):
        return pd.Timestamp(0)
    return value + pd.Timedelta(seconds=1)


def mixed_frame(n: int = 50) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "i": rng.integers(-1000, 1000, n),
            "f": np.where(rng.random(n) < 0.2, np.nan, rng.standard_normal(n)),
            "s": pd.Series(np.where(rng.random(n) < 0.2, None, rng.choice(["a", "é", "漢字"], n))),
            "b": rng.random(n) < 0.5,
            "t": pd.date_range("2024-01-01", periods=n, freq="min", tz="UTC"),
            "c": pd.Categorical(rng.choice(["x", "y", "z"], n)),
        }
    )


# ---------------------------------------------------------------------------- bytes & files


def test_hash_bytes_format_and_value():
    fp = hash_bytes(b"abc")
    assert FP_RE.match(fp)
    assert fp == "b3:" + blake3.blake3(b"abc").hexdigest()


@pytest.mark.parametrize("size", [0, 1, 3 * 2**20 + 7, 17 * 2**20])
def test_hash_file_streams_raw_bytes(tmp_path, size):
    data = np.random.default_rng(size).bytes(size)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert hash_file(path) == hash_bytes(data)
    assert hash_file(str(path)) == hash_bytes(data)


def test_import_is_light():
    code = (
        "import sys, mlrepro.fingerprint; "
        "print(sorted(m for m in ('pandas', 'pyarrow', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------------- canonical JSON/params


def test_canonical_json_form():
    obj = {"b": 0.1, "a": (1, np.int64(2), np.float32(0.5)), "s": {3, 1}, "p": pathlib.Path("x/y")}
    assert canonical_json(obj) == '{"a":[1,2,0.5],"b":0.1,"p":"x/y","s":[1,3]}'
    assert canonical_json({"k": "é", 1: True, None: np.bool_(False)}) == (
        '{"1":true,"k":"é","null":false}'
    )


def test_canonical_json_non_finite_floats():
    assert canonical_json([math.nan, math.inf, -math.inf, np.float64("nan")]) == (
        '["NaN","Infinity","-Infinity","NaN"]'
    )


@pytest.mark.parametrize("bad", [object(), b"bytes", {"k": {1j}}, [pd.Timestamp(0)]])
def test_canonical_json_rejects_unsupported_types(bad):
    with pytest.raises(TypeError, match="unsupported"):
        canonical_json(bad)


def test_canonical_json_error_names_the_type():
    class Custom:
        pass

    with pytest.raises(TypeError, match="Custom"):
        canonical_json({"a": [Custom()]})


def test_canonical_json_rejects_colliding_keys():
    with pytest.raises(ValueError, match="'1'"):
        canonical_json({1: "a", "1": "b"})


@HYPOTHESIS
@given(json_dicts)
def test_params_key_order_invariant(params):
    assert fingerprint_params(params) == fingerprint_params(reversed_order(params))
    assert FP_RE.match(fingerprint_params(params))


@HYPOTHESIS
@given(json_dicts, st.data())
def test_params_value_change_changes_fingerprint(params, data):
    key = data.draw(st.sampled_from(sorted(params)))
    edited = dict(params)
    edited[key] = {"was": params[key]}
    assert fingerprint_params(edited) != fingerprint_params(params)


def test_params_distinguish_types():
    fps = {fingerprint_params(v) for v in ({"a": 1}, {"a": 1.0}, {"a": "1"}, {"a": True})}
    assert len(fps) == 4


# ---------------------------------------------------------------------------------- frames


@HYPOTHESIS
@given(frames(), st.lists(st.integers(0, 25), max_size=5))
def test_frame_chunking_invariant(df, cuts):
    whole = fingerprint_frame(df)
    bounds = [0, *sorted(c for c in cuts if c <= len(df)), len(df)]
    hasher = FrameHasher()
    for start, stop in zip(bounds, bounds[1:], strict=False):
        hasher.update(df.iloc[start:stop])
    assert hasher.hexdigest() == whole
    assert hasher.rows == len(df)
    assert hasher.columns == list(df.columns)


@HYPOTHESIS
@given(frames(), st.integers(1, 7))
def test_frame_arrow_batches_match_pandas(df, batch_size):
    table = pa.Table.from_pandas(df, preserve_index=False)
    assert fingerprint_frame(table) == fingerprint_frame(df)
    hasher = FrameHasher()
    # An empty table has no batches; feed it whole so the schema is seen.
    for batch in table.to_batches(max_chunksize=batch_size) or [table]:
        hasher.update(batch)
    assert hasher.hexdigest() == fingerprint_frame(df)


def test_frame_chunkings_of_a_mixed_frame():
    df = mixed_frame(3000)
    whole = fingerprint_frame(df)
    for size in (1000, 1, 7):
        part = df.iloc[:700] if size == 1 else df  # single rows: keep the test fast
        hasher = FrameHasher()
        for start in range(0, len(part), size):
            hasher.update(part.iloc[start : start + size])
        expected = whole if part is df else fingerprint_frame(part)
        assert hasher.hexdigest() == expected


@HYPOTHESIS
@given(frames(min_rows=1), st.data())
def test_any_single_value_change_changes_fingerprint(df, data):
    row = data.draw(st.integers(0, len(df) - 1))
    col = data.draw(st.integers(0, df.shape[1] - 1))
    edited = df.copy()
    edited.iat[row, col] = changed(df.iat[row, col])
    assert fingerprint_frame(edited) != fingerprint_frame(df)


def test_change_deep_in_a_large_frame():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.standard_normal(200_000), "k": np.arange(200_000)})
    before = fingerprint_frame(df)
    assert fingerprint_frame(df.copy()) == before
    edited = df.copy()
    edited.loc[150_000, "x"] = np.nextafter(edited.loc[150_000, "x"], np.inf)
    assert fingerprint_frame(edited) != before


def test_parquet_codecs_do_not_matter(tmp_path):
    df = mixed_frame()
    fps, file_hashes = set(), set()
    for codec in ("snappy", "gzip", "none"):
        path = tmp_path / f"frame-{codec}.parquet"
        df.to_parquet(path, compression=None if codec == "none" else codec, index=False)
        file_hashes.add(hash_file(path))
        fps.add(fingerprint_frame(pd.read_parquet(path)))
        fps.add(fingerprint_frame(pq.read_table(path)))
    assert len(file_hashes) == 3  # the files really differ ...
    assert fps == {fingerprint_frame(df)}  # ... the content does not


def test_csv_text_encodings_do_not_matter(tmp_path):
    df = pd.DataFrame(
        {
            "n": [1, 2, 3, 4],
            "x": [0.1, -2.5e-300, np.nan, 123456.789],
            "s": ["plain", "é", None, "漢字 ✓"],
        }
    )
    fps = set()
    for encoding in ("utf-8", "utf-16"):
        path = tmp_path / f"frame-{encoding}.csv"
        df.to_csv(path, index=False, encoding=encoding)
        back = pd.read_csv(path, encoding=encoding)
        fps.add(fingerprint_frame(back))
    assert fps == {fingerprint_frame(df)}


def test_string_layouts_are_equivalent():
    values = ["a", None, "bcd", ""]
    fps = {
        fingerprint_frame(pa.table({"s": pa.array(values, type=t)}))
        for t in (pa.string(), pa.large_string(), pa.string_view())
    }
    assert len(fps) == 1
    binary = {
        fingerprint_frame(pa.table({"s": pa.array([b"a", None], type=t)}))
        for t in (pa.binary(), pa.large_binary())
    }
    assert len(binary) == 1


def test_category_chunks_with_different_dictionaries():
    df = pd.DataFrame({"c": pd.Categorical(["b", "a", "b", "c"])})
    hasher = FrameHasher()
    hasher.update(df.iloc[:2].astype({"c": pd.CategoricalDtype(["a", "b"])}))
    hasher.update(df.iloc[2:].astype({"c": pd.CategoricalDtype(["c", "b"])}))
    assert hasher.hexdigest() == fingerprint_frame(df)


def test_null_slot_contents_are_ignored():
    # A null slot may own bytes in arrow; they are not content.
    offsets = pa.py_buffer(np.array([0, 1, 3], dtype=np.int32).tobytes())
    validity = pa.py_buffer(bytes([0b01]))
    dirty = pa.Array.from_buffers(pa.string(), 2, [validity, offsets, pa.py_buffer(b"abc")])
    clean = pa.array(["a", None])
    assert fingerprint_frame(pa.table({"s": dirty})) == fingerprint_frame(pa.table({"s": clean}))


@pytest.mark.parametrize(
    ("arrow_type", "values"),
    [
        (pa.float64(), [1.5, 7.0, -2.0]),
        (pa.int16(), [1, 7, -2]),
        (pa.decimal128(10, 2), [Decimal("1.50"), Decimal("7"), Decimal("-2.25")]),
        (pa.binary(3), [b"abc", b"zzz", b"xyz"]),
    ],
)
def test_fixed_width_null_slots_are_zeroed(arrow_type, values):
    full = pa.array(values, type=arrow_type)
    validity = pa.py_buffer(bytes([0b101]))  # row 1 is null but its slot keeps a value
    dirty = pa.Array.from_buffers(arrow_type, 3, [validity, full.buffers()[1]])
    clean = pa.array([values[0], None, values[2]], type=arrow_type)
    assert fingerprint_frame(pa.table({"x": dirty})) == fingerprint_frame(pa.table({"x": clean}))
    sliced = pa.concat_arrays([clean, clean]).slice(1, 4)
    hasher = FrameHasher()
    hasher.update(pa.table({"x": sliced.slice(0, 1)}))
    hasher.update(pa.table({"x": sliced.slice(1)}))
    assert hasher.hexdigest() == fingerprint_frame(pa.table({"x": sliced}))
    assert fingerprint_frame(pa.table({"x": full})) != fingerprint_frame(pa.table({"x": clean}))


def test_schema_changes_change_fingerprint():
    df = pd.DataFrame({"a": [1, 2, 3], "b": [4, 5, 6]})
    base = fingerprint_frame(df)
    variants = [
        df.rename(columns={"a": "z"}),
        df[["b", "a"]],
        df.astype({"a": "float64"}),
        df.astype({"a": "int32"}),
        df.iloc[:2],
        df.iloc[::-1].reset_index(drop=True),
    ]
    fps = {fingerprint_frame(v) for v in variants}
    assert base not in fps
    assert len(fps) == len(variants)


def test_index_is_ignored():
    df = mixed_frame(20)
    assert fingerprint_frame(df.set_axis(range(100, 120))) == fingerprint_frame(df)
    assert fingerprint_frame(df.set_index("i")) != fingerprint_frame(df)  # a column less


def test_later_chunks_are_cast_or_rejected():
    df = pd.DataFrame({"x": [1, 2, 3], "s": ["a", "b", "c"]})
    hasher = FrameHasher()
    hasher.update(df.iloc[:1])
    hasher.update(df.iloc[1:].astype({"x": "float64"}))  # 2.0, 3.0 cast back safely
    assert hasher.hexdigest() == fingerprint_frame(df)

    hasher = FrameHasher()
    hasher.update(df.iloc[:1])
    with pytest.raises(ValueError, match="'x'"):
        hasher.update(pd.DataFrame({"x": [1.5], "s": ["b"]}))
    with pytest.raises(ValueError, match="'s'"):
        hasher.update(pd.DataFrame({"x": [2], "s": [7]}))
    with pytest.raises(ValueError, match="columns"):
        hasher.update(pd.DataFrame({"s": ["b"], "x": [2]}))
    # Rejected chunks leave no trace.
    hasher.update(df.iloc[1:])
    assert hasher.hexdigest() == fingerprint_frame(df)


def test_all_null_first_chunk_adopts_later_type():
    df = pd.DataFrame({"s": [None, None, "a", None, "b"], "v": [None, None, 1.5, 2.0, None]})
    hasher = FrameHasher()
    hasher.update(df.iloc[:2].astype(object))
    hasher.update(df.iloc[2:])
    assert hasher.hexdigest() == fingerprint_frame(df)


def test_nested_columns_use_the_slow_path():
    df = pd.DataFrame({"l": [[1, 2], None, [], [3]], "d": [{"a": 1}, {"a": None}, None, {"a": 2}]})
    hasher = FrameHasher()
    for i in range(len(df)):
        hasher.update(df.iloc[i : i + 1])
    assert hasher.hexdigest() == fingerprint_frame(df)
    edited = df.copy()
    edited.at[3, "l"] = [4]
    assert fingerprint_frame(edited) != fingerprint_frame(df)


def test_frame_rejects_other_inputs():
    with pytest.raises(TypeError, match="DataFrame"):
        fingerprint_frame({"a": [1]})


# ---------------------------------------------------------------------------------- models


@pytest.fixture(scope="module")
def regression_data():
    from sklearn.datasets import make_regression

    return make_regression(n_samples=300, n_features=6, noise=1.0, random_state=0)


def _forest(seed=0, **params):
    from sklearn.ensemble import RandomForestRegressor

    params = {"n_estimators": 8, "max_depth": 6, **params}
    return RandomForestRegressor(random_state=seed, **params)


def test_execution_only_params():
    sklearn_ones = {"n_jobs", "verbose", "pre_dispatch", "memory", "_n_threads"}
    boosting_ones = {"verbosity", "nthread", "num_threads", "thread_count"}
    assert sklearn_ones | boosting_ones == EXECUTION_ONLY_PARAMS


def test_forest_refit_and_execution_params(regression_data):
    X, y = regression_data
    fp = fingerprint_model(_forest().fit(X, y))
    assert FP_RE.match(fp)
    assert fingerprint_model(_forest().fit(X, y)) == fp
    assert fingerprint_model(_forest(n_jobs=2, verbose=0).fit(X, y)) == fp
    fitted = _forest().fit(X, y)
    fitted.set_params(n_jobs=-1, verbose=3)  # after fitting too
    assert fingerprint_model(fitted) == fp
    assert fingerprint_model(_forest(seed=1).fit(X, y)) != fp
    assert fingerprint_model(_forest(max_depth=None).fit(X, y)) != fp
    assert fingerprint_model(_forest()) != fingerprint_model(_forest(seed=1))  # unfitted


def test_fitted_value_change_changes_fingerprint(regression_data):
    X, y = regression_data
    model = _forest().fit(X, y)
    fp = fingerprint_model(model)
    model.estimators_[3].tree_.value[2, 0, 0] += 1e-9
    assert fingerprint_model(model) != fp


def test_joblib_round_trip(tmp_path, regression_data):
    X, y = regression_data
    model = _forest().fit(X, y)
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    assert fingerprint_model(joblib.load(path)) == fingerprint_model(model)
    assert fingerprint_model(joblib.load(path, mmap_mode="r")) == fingerprint_model(model)


def test_pipeline():
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = make_classification(n_samples=200, n_features=5, random_state=0)

    def pipe(C=1.0):
        return Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(C=C))])

    fp = fingerprint_model(pipe().fit(X, y))
    assert fingerprint_model(pipe().fit(X, y)) == fp
    assert fingerprint_model(pipe().set_params(memory=None, verbose=True).fit(X, y)) == fp
    assert fingerprint_model(pipe(C=0.5).fit(X, y)) != fp
    assert fingerprint_model(pipe().fit(X[:150], y[:150])) != fp


def test_tree_node_padding_is_not_hashed(regression_data):
    from sklearn.tree import DecisionTreeRegressor

    X, y = regression_data
    fps = {fingerprint_model(DecisionTreeRegressor(random_state=0).fit(X, y)) for _ in range(3)}
    assert len(fps) == 1

    # Same fields, different garbage in the 7 padding bytes of each record.
    dtype = np.dtype(
        {"names": ["a", "b"], "formats": ["<i8", "u1"], "offsets": [0, 8], "itemsize": 16}
    )
    raw = np.random.default_rng(0).integers(0, 256, (2, 4 * 16), dtype=np.uint8)
    arrays = [r.view(dtype) for r in raw]
    for arr in arrays:
        arr["a"], arr["b"] = [1, 2, 3, 4], [5, 6, 7, 8]
    assert arrays[0].tobytes() != arrays[1].tobytes()
    assert fingerprint_model(arrays[0]) == fingerprint_model(arrays[1])


def test_model_walk_of_plain_objects():
    class Box:
        def __init__(self, **kw):
            self.__dict__.update(kw)

    a = Box(x=np.arange(3), y={"k": [1, 2.0]}, s={3, "a"}, rng=np.random.RandomState(0))
    b = Box(s={"a", 3}, rng=np.random.RandomState(0), y={"k": [1, 2.0]}, x=np.arange(3))
    assert fingerprint_model(a) == fingerprint_model(b)
    b.y["k"][1] = 2  # int instead of float
    assert fingerprint_model(a) != fingerprint_model(b)
    assert fingerprint_model(np.arange(3, dtype="int32")) != fingerprint_model(np.arange(3))
    assert fingerprint_model(np.asfortranarray(np.eye(3))) == fingerprint_model(np.eye(3))
    assert fingerprint_model([1, 2]) != fingerprint_model((1, 2))


def test_model_walk_handles_cycles_and_rejects_unpicklable():
    import threading

    loop: list = [1]
    loop.append(loop)
    assert fingerprint_model(loop) == fingerprint_model(loop)
    other: list = [1, [1]]
    assert fingerprint_model(loop) != fingerprint_model(other)
    with pytest.raises(TypeError, match="lock"):
        fingerprint_model({"lock": threading.Lock()})


def test_model_with_pandas_attributes():
    df = mixed_frame(10)
    assert fingerprint_model({"df": df}) == fingerprint_model({"df": df.copy()})
    assert fingerprint_model(df["i"]) != fingerprint_model(df["i"].rename("j"))
    assert fingerprint_model(df.columns) == fingerprint_model(pd.Index(list(df.columns)))


def test_timestamp_unit_does_not_change_the_fingerprint() -> None:
    import pandas as pd

    stamps = pd.to_datetime(["2026-01-01 10:00:00.000000", "2026-02-03 04:05:06.123456"])
    ns = pd.DataFrame({"t": stamps.as_unit("ns")})
    us = pd.DataFrame({"t": stamps.as_unit("us")})
    assert fingerprint_frame(ns) == fingerprint_frame(us)
    finer = pd.DataFrame({"t": (stamps + pd.Timedelta(1, "ns")).as_unit("ns")})
    assert fingerprint_frame(finer) != fingerprint_frame(ns)
    far = pd.DataFrame({"t": pd.to_datetime(["9999-12-31"]).as_unit("s")})
    assert fingerprint_frame(far).startswith("b3:")
