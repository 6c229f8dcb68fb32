"""Property tests of the fingerprints the lock's integrity rests on.

Parameters: key order never matters, any value change does. Frames: any chunking and a
parquet round trip give the same fingerprint; changing one cell changes it.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mlrepro.fingerprint import FrameHasher, fingerprint_frame, fingerprint_params

SETTINGS = settings(max_examples=80, deadline=None)
keys = st.text(min_size=1, max_size=8)
json_values = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10)
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=10,
)


@SETTINGS
@given(st.dictionaries(keys, json_values, min_size=1, max_size=6), st.randoms())
def test_params_ignore_key_order(params: dict, rnd) -> None:
    items = list(params.items())
    rnd.shuffle(items)
    assert fingerprint_params(dict(items)) == fingerprint_params(params)


@SETTINGS
@given(st.dictionaries(keys, json_values, min_size=1, max_size=6), st.data())
def test_params_change_with_any_value(params: dict, data) -> None:
    key = data.draw(st.sampled_from(sorted(params)))
    new = data.draw(json_values)
    assume(new != params[key])
    assert fingerprint_params({**params, key: new}) != fingerprint_params(params)


frames = (
    st.integers(min_value=1, max_value=60)
    .flatmap(
        lambda n: st.fixed_dictionaries(
            {
                "i": st.lists(st.integers(-(2**40), 2**40), min_size=n, max_size=n),
                "f": st.lists(
                    st.floats(allow_nan=True, allow_infinity=False), min_size=n, max_size=n
                ),
                "s": st.lists(st.one_of(st.none(), st.text(max_size=6)), min_size=n, max_size=n),
            }
        )
    )
    .map(pd.DataFrame)
)


@SETTINGS
@given(frames, st.lists(st.integers(1, 20), min_size=1, max_size=5))
def test_frame_fingerprint_ignores_chunking_and_file_format(df: pd.DataFrame, cuts) -> None:
    whole = fingerprint_frame(df)
    hasher, start = FrameHasher(), 0
    for size in cuts:
        if start < len(df):
            hasher.update(df.iloc[start : start + size])
            start += size
    if start < len(df):
        hasher.update(df.iloc[start:])
    assert hasher.hexdigest() == whole
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), buf)
    assert fingerprint_frame(pq.read_table(io.BytesIO(buf.getvalue()))) == whole


@SETTINGS
@given(frames, st.data())
def test_frame_fingerprint_changes_with_one_cell(df: pd.DataFrame, data) -> None:
    row = data.draw(st.integers(0, len(df) - 1))
    changed = df.copy()
    changed.loc[row, "i"] = int(df.loc[row, "i"]) + 1
    assert fingerprint_frame(changed) != fingerprint_frame(df)
    assert not np.array_equal(changed["i"].to_numpy(), df["i"].to_numpy())
