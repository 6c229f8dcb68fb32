"""Golden vectors: fingerprints pinned as literal digests.

Every lock in the world holds fingerprints of this encoding. If one of these tests fails,
the encoding changed (or a library changed what it hands us, e.g. a pandas dtype default):
every existing lock would turn stale or "different" at once. Do not update a digest to make
the suite pass; bump ``FINGERPRINT_FORMAT`` and keep the old encoding readable instead
(``mlrepro.fingerprint``), unless the change is a library's, which the message explains.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlrepro.fingerprint import (
    FINGERPRINT_FORMAT,
    fingerprint_frame,
    fingerprint_model,
    fingerprint_params,
    hash_bytes,
)


def golden_frame() -> pd.DataFrame:
    """Every logical type, with NaN, nulls, -0.0, inf, timezones and categories."""
    return pd.DataFrame(
        {
            "int64": pd.array([1, -2, 3, 2**62], dtype="int64"),
            "nullable_int": pd.array([1, None, 3, -4], dtype="Int64"),
            "int32": np.array([7, 8, 9, -10], dtype="int32"),
            "uint8": np.array([0, 1, 254, 255], dtype="uint8"),
            "float64": [0.1, float("nan"), -0.0, float("inf")],
            "float32": np.array([1.5, np.nan, -2.25, 3.0], dtype="float32"),
            "bool": [True, False, True, False],
            "nullable_bool": pd.array([True, None, False, True], dtype="boolean"),
            "text": ["a", None, "ünïcode", ""],
            "category": pd.Categorical(
                ["north", "south", None, "north"], categories=["south", "north"]
            ),
            "ts_naive": pd.to_datetime(
                ["2026-01-01T00:00:00", None, "1970-01-01T00:00:00", "2026-06-30T12:34:56.789"],
                format="ISO8601",
            ),
            "ts_utc": pd.to_datetime(
                ["2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z", None, "2000-02-29T23:59:59Z"],
                format="ISO8601",
            ),
            "ts_tz": pd.to_datetime(
                ["2026-03-29T01:30:00", "2026-03-29T03:30:00", "2026-10-25T02:30:00", None]
            ).tz_localize("Europe/Paris", ambiguous=True),
            "date": [dt.date(2026, 1, 1), None, dt.date(1999, 12, 31), dt.date(2026, 6, 30)],
            "timedelta": pd.to_timedelta(["1 days", None, "-3 hours", "0 seconds"]),
            "decimal_like": pd.array(["1.10", "2.20", None, "3.30"], dtype="string"),
        }
    )


GOLDEN_FRAME = "b3:c13d2df9f53929b2aa278ee528794d913d0b322d86583f5cba1079faa283cdcc"
GOLDEN_COLUMNS = {
    "int64": "b3:4f341644d7e42ea34b04bcb11a91afbb839cc58cb9938d7b2385ee3e0187a8b7",
    "nullable_int": "b3:9bc5f5ded7ce3e6a45534dbeff07c930389dc85c438c11238036917b93182b75",
    "int32": "b3:ce348d9a7900fe45565afec82c2615940605642eeead619c6be7a92a6aab5cb8",
    "uint8": "b3:9cc30e36196608f2e2b502798792a2498c6953757099702bbdc87beda675ffef",
    "float64": "b3:0d2b9982f9ed40b873e74633747d385224300c88226de6cc45c4d79592e5e7fa",
    "float32": "b3:a67dc63c5d411f22f300fcff031f77e0979da819e33357684761bc9c2310640e",
    "bool": "b3:825033e3c45045f8c99eadeb897d3e14ab40e425fc5cd2a1a2b5c142f14339f9",
    "nullable_bool": "b3:f711af8bcd5617f0a738d02958e72bd1ef52e3857804293efaf31b9d3fc7c1d0",
    "text": "b3:3560ea14360dc9d79c81fe11985260903de14405900c80de44f5550c8f35f2b5",
    "category": "b3:ef95a9028db639f081baffe75cd59f0d82a115d71578748f8e0f47c6d7e77026",
    "ts_naive": "b3:cf817db5834f1195a0a62f85f2245d5ce2e625d7d73c1a89200712f668ccf29d",
    "ts_utc": "b3:273b48c2da5d17ebcc9a7385ab4e2a6a4f73d96e50f286310eb20fbaa00528ca",
    "ts_tz": "b3:b52c1f4860380ad90a85d77b38a18741959bdee0a1a4135672ece64e2fb23701",
    "date": "b3:d2a09c8ebc0caf9406dffc5e9bc7d66afa836db3c2b6f343421bd24909f370c9",
    "timedelta": "b3:81ce048a23f9b471ef33928e23528933baf6b0b5423388ce0a647bc1aeb391d9",
    "decimal_like": "b3:34d63cba973e93aaec4b68606c29484e8146796d1fe93cdf9f32dc4ace0c906b",
}

GOLDEN_PARAMS = "b3:1b71df34d2c184c724652132d001689ae71b97d822eb87c3de75f8762cb903c3"
GOLDEN_OBJECT = "b3:cb072fc12abb78f473878de2427bfa54059ce4825146accca15cb539f5f30bb3"
# scikit-learn's fitted state is part of a model's fingerprint, so the digest of the same
# fit is pinned per scikit-learn version it was computed with.
GOLDEN_FOREST = {
    "1.9.1": "b3:ccea7ae025d73106fcc816d74b5fe77a726198409df5881780bec69224cbf248",
    "1.8.0": "b3:50b7ed50d960d3cfa34c696f7de1c39e9c3f8fca8da196cd0639581506b79b15",
}


def test_the_format_version_is_the_one_these_vectors_pin():
    assert FINGERPRINT_FORMAT == 1, "new format: add its vectors, keep format 1's"


def test_bytes():
    assert (
        hash_bytes(b"mlrepro")
        == "b3:b451ebe11cbdf392c95b878d23d2274f5dc05c0fba3000d7f3a8daf8753f5454"
    )
    assert hash_bytes(b"") == "b3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"


@pytest.mark.parametrize("column", list(GOLDEN_COLUMNS))
def test_frame_column(column):
    got = fingerprint_frame(golden_frame()[[column]])
    assert got == GOLDEN_COLUMNS[column], (
        f"the canonical encoding of a {golden_frame()[column].dtype} column changed (pandas "
        f"{pd.__version__}, pyarrow {pa.__version__}); every lock with such a column goes stale"
    )


def test_frame_all_types():
    df = golden_frame()
    assert fingerprint_frame(df) == GOLDEN_FRAME
    # the same content as arrow, and in other chunkings, is the same vector
    assert fingerprint_frame(pa.Table.from_pandas(df, preserve_index=False)) == GOLDEN_FRAME
    table = pa.Table.from_pandas(df, preserve_index=False)
    assert fingerprint_frame(pa.concat_tables([table.slice(0, 1), table.slice(1)])) == GOLDEN_FRAME


def test_params():
    params = {
        "seed": 42,
        "model": {
            "estimator": "sklearn.ensemble.RandomForestRegressor",
            "params": {"n_estimators": 200, "max_depth": 8, "max_features": None, "ccp_alpha": 0.0},
        },
        "features": [
            {"name": "onehot", "columns": ["clinic"], "params": {"handle_unknown": "error"}}
        ],
        "ratio": 0.2,
        "nan": float("nan"),
        "inf": float("-inf"),
        "unicode": "ünïcode",
        "empty": [],
        "flag": True,
    }
    assert fingerprint_params(params) == GOLDEN_PARAMS


def test_plain_fitted_state():
    """The model walk on numpy/Python state alone: independent of scikit-learn's version."""
    obj = {
        "coef": np.arange(6, dtype="float64").reshape(2, 3) / 7,
        "classes": np.array(["a", "b"], dtype=object),
        "n": np.int64(3),
        "names": ["x", "y"],
        "nested": (1, 2.5, None, True),
        "rng": np.random.RandomState(7),
        "f32": np.array([1.5, np.nan], dtype="float32"),
    }
    assert fingerprint_model(obj) == GOLDEN_OBJECT


def test_fitted_forest_from_a_fixed_seed():
    import sklearn
    from sklearn.ensemble import RandomForestRegressor

    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 0.0]) + rng.normal(scale=0.1, size=60)
    model = RandomForestRegressor(n_estimators=5, max_depth=4, random_state=0).fit(X, y)
    got = fingerprint_model(model)
    want = GOLDEN_FOREST.get(sklearn.__version__)
    if want is None:
        pytest.skip(
            f"no golden digest for scikit-learn {sklearn.__version__} (pinned for "
            f"{', '.join(GOLDEN_FOREST)}): the fitted state of a model is library-specific. "
            f"This version gives {got}; if test_plain_fitted_state passes, the encoding is "
            "unchanged and this digest can be added for it"
        )
    assert got == want, (
        f"the fingerprint of the same forest under scikit-learn {sklearn.__version__} changed: "
        f"{want} -> {got}. test_plain_fitted_state says whether mlrepro's encoding changed; if "
        "it did not, scikit-learn changed the fitted state it stores"
    )
