"""Fingerprints of arbitrary fitted state (issue 11): deterministic, change-sensitive, or a
clear refusal that names the attribute -- never a crash, never a silently wrong digest.

``canon`` below is an independent reference for "the same value": two objects fingerprint
alike exactly when their canonical forms are equal.
"""

from __future__ import annotations

import copy
import enum
import pickle
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mlrepro.errors import EXIT_USAGE, FingerprintError
from mlrepro.fingerprint import fingerprint_model

REPO_ROOT = Path(__file__).resolve().parents[1]
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Colour(enum.Enum):
    RED = 1
    GREEN = 2


class State:
    """A stand-in for an estimator's fitted state (plain ``__dict__``)."""

    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


# ------------------------------------------------------------------ reference equality


def canon(x: Any) -> Any:
    """A hashable form that is equal for equal values (type-strict; NaN equals NaN)."""
    t = type(x)
    if x is None:
        return ("N",)
    if t in (bool, int, str, bytes):
        return (t.__name__, x)
    if t is float:
        return ("f", struct.pack("<d", x))
    if isinstance(x, enum.Enum):
        return ("e", t.__qualname__, x.name)
    if isinstance(x, np.ndarray):
        if x.dtype.hasobject or x.dtype.kind == "T":
            return ("ao", str(x.dtype), x.shape, tuple(canon(v) for v in x.reshape(-1).tolist()))
        return ("a", x.dtype.str, x.shape, np.ascontiguousarray(x).tobytes())
    if isinstance(x, np.generic):
        return ("g", x.dtype.str, x.tobytes())
    if isinstance(x, pd.DataFrame):
        return ("df", tuple(x.columns), tuple(canon(x[c]) for c in x.columns))
    if isinstance(x, pd.Series):
        values = tuple(canon(v) for v in x.to_numpy().tolist())
        return ("ps", canon(x.name), str(x.dtype), values, canon(x.index.to_numpy()))
    if t in (list, tuple):
        return (t.__name__, tuple(canon(v) for v in x))
    if t is dict:
        return ("d", frozenset((canon(k), canon(v)) for k, v in x.items()))
    if t in (set, frozenset):
        return (t.__name__, frozenset(canon(v) for v in x))
    if isinstance(x, State):
        return ("State", canon(vars(x)))
    raise AssertionError(f"no canonical form for {t}")


# ------------------------------------------------------------------ strategies

NP_SCALARS = st.one_of(
    st.integers(-128, 127).map(np.int8),
    st.integers(-(2**63), 2**63 - 1).map(np.int64),
    st.integers(0, 255).map(np.uint8),
    st.integers(0, 2**32 - 1).map(np.uint32),
    st.floats(width=32).map(np.float32),
    st.floats().map(np.float64),
    st.booleans().map(np.bool_),
    st.text(max_size=4).map(np.str_),
)
ARRAY_DTYPES = st.sampled_from(
    ["int8", "int64", "uint16", "float16", "float32", "float64", "complex128", "bool",
     "datetime64[ns]", "datetime64[D]", "timedelta64[s]", "U3", "S2"]
)  # fmt: skip
ARRAYS = st.one_of(
    ARRAY_DTYPES.flatmap(
        lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=2, max_side=3))
    ),
    st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=3)), max_size=4).map(
        lambda v: np.array(v + [None], dtype=object)[:-1] if v else np.array([], dtype=object)
    ),
)
if hasattr(np, "dtypes") and hasattr(np.dtypes, "StringDType"):
    ARRAYS = st.one_of(
        ARRAYS,
        st.lists(st.text(max_size=3), max_size=4).map(
            lambda v: np.array(v, dtype=np.dtypes.StringDType())
        ),
    )
PANDAS = st.one_of(
    st.lists(st.integers(-1000, 1000), max_size=5).map(lambda v: pd.Series(v, dtype="int64")),
    st.lists(st.floats(allow_infinity=False), max_size=5).map(
        lambda v: pd.Series(v, dtype="float64", name="x")
    ),
    st.lists(st.integers(0, 9), min_size=1, max_size=4).map(
        lambda v: pd.DataFrame({"a": v, "b": [float(i) / 3 for i in v]})
    ),
)
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN and infinities included
    st.text(max_size=6),
    st.binary(max_size=6),
    st.sampled_from(list(Colour)),
    NP_SCALARS,
    ARRAYS,
    PANDAS,
)
HASHABLE = st.one_of(
    st.integers(),
    st.text(max_size=4),
    st.sampled_from(list(Colour)),
    st.booleans(),
    st.none(),
    NP_SCALARS.filter(lambda v: not (isinstance(v, np.floating) and np.isnan(v))),
)
KEYS = st.one_of(HASHABLE, st.tuples(HASHABLE, HASHABLE))


def _containers(inner: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(KEYS, inner, max_size=3),
        st.sets(HASHABLE, max_size=3),
        st.frozensets(HASHABLE, max_size=3),
        st.dictionaries(st.from_regex(r"[a-z]{1,4}_", fullmatch=True), inner, max_size=3).map(
            lambda d: State(**d)
        ),
    )


STATE = st.recursive(LEAVES, _containers, max_leaves=8)


def _same_value(x: Any) -> Any:
    return pickle.loads(pickle.dumps(x))


# ------------------------------------------------------------------ properties


@SETTINGS
@given(STATE)
def test_same_value_same_fingerprint(state: Any) -> None:
    fp = fingerprint_model(state)
    assert fingerprint_model(copy.deepcopy(state)) == fp
    assert fingerprint_model(_same_value(state)) == fp
    assert fingerprint_model(state) == fp  # walking does not change the object


@SETTINGS
@given(STATE, STATE)
def test_fingerprints_are_equal_exactly_for_equal_values(a: Any, b: Any) -> None:
    assert (fingerprint_model(a) == fingerprint_model(b)) == (canon(a) == canon(b))


def _mutations(x: Any) -> list[Any]:
    """Copies of ``x`` with one leaf changed, one element added, or one removed."""
    out: list[Any] = []
    if type(x) in (list, tuple):
        items = list(x)
        out.append(type(x)([*items, 0]))
        for i, item in enumerate(items[:2]):
            for changed in _mutations(item)[:2]:
                out.append(type(x)(items[:i] + [changed] + items[i + 1 :]))
    elif type(x) is dict:
        out.append({**x, ("new", 1): None})
        for k in list(x)[:2]:
            for changed in _mutations(x[k])[:2]:
                out.append({**x, k: changed})
    elif isinstance(x, State):
        attrs = dict(vars(x))
        out.append(State(**attrs, added_=None))
        for k in list(attrs)[:2]:
            out += [State(**{**attrs, k: changed}) for changed in _mutations(attrs[k])[:2]]
    elif type(x) in (set, frozenset):
        out.append(type(x)({*x, "added"}))
    elif isinstance(x, np.ndarray) and x.size and not x.dtype.hasobject and x.dtype.kind != "T":
        flipped = x.copy()
        flipped.reshape(-1).view(np.uint8)[0] ^= 1
        out.append(flipped)
    elif isinstance(x, np.generic):
        if x.dtype.itemsize:
            arr = np.array([x])
            arr.view(np.uint8)[0] ^= 1
            out.append(arr[0])
        out.append(x.item())  # the Python value is not the numpy scalar
    elif x is None:
        out.append(False)
    elif type(x) is bool:
        out.append(int(x))  # 1 is not True
    elif type(x) is int:
        out += [x + 1, float(x) if abs(x) < 2**53 else str(x)]
    elif type(x) is float:
        out.append(-x if x == x and x != 0 else 1.5)
    elif type(x) in (str, bytes):
        out.append(x + x[:1] if x else type(x)(b"z" if type(x) is bytes else "z"))
    return [m for m in out if canon(m) != canon(x)]


@SETTINGS
@given(STATE)
def test_any_change_changes_the_fingerprint(state: Any) -> None:
    fp = fingerprint_model(state)
    for changed in _mutations(state):
        assert fingerprint_model(changed) != fp, (state, changed)


@settings(max_examples=4, deadline=None)
@given(st.lists(STATE, min_size=5, max_size=15))
def test_fingerprints_agree_across_processes(tmp_path_factory, states: list[Any]) -> None:
    folder = tmp_path_factory.mktemp("fp")
    (folder / "states.pkl").write_bytes(pickle.dumps(states))
    code = (
        "import pickle, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from mlrepro.fingerprint import fingerprint_model\n"
        f"states = pickle.loads(open({str(folder / 'states.pkl')!r}, 'rb').read())\n"
        "print('\\n'.join(fingerprint_model(s) for s in states))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(REPO_ROOT), "PYTHONHASHSEED": "12345"},
    ).stdout.split()
    assert out == [fingerprint_model(s) for s in states]


def _unencodable() -> st.SearchStrategy:
    return st.sampled_from(
        [threading.Lock, lambda: (i for i in range(3)), lambda: open(__file__, "rb")]  # noqa: SIM115
    )


@SETTINGS
@given(STATE, _unencodable(), st.from_regex(r"[a-z]{1,6}_", fullmatch=True))
def test_unencodable_state_is_refused_naming_the_attribute(
    state: Any, make: Any, name: str
) -> None:
    bad = make()
    try:
        model = State(ok_=state, **{name: {"inner": [1, bad]}})
        with pytest.raises(FingerprintError) as info:
            fingerprint_model(model)
    finally:
        if hasattr(bad, "close"):
            bad.close()
    assert f".{name}['inner'][1]" in info.value.message
    assert info.value.exit_code == EXIT_USAGE
    assert info.value.hint and name in info.value.hint


# ------------------------------------------------------------------ regressions (item 1)


def test_numpy_scalar_dict_keys_in_fitted_state() -> None:
    """The issue's repro: a dict keyed by numpy scalars crashed (long buffers) or was
    silently wrong (a 1-byte buffer broadcast into the buffer instead of appending)."""
    from sklearn.linear_model import LogisticRegression

    m = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    m.extra_state_ = {np.int64(1): "a"}
    first = fingerprint_model(m)
    assert fingerprint_model(copy.deepcopy(m)) == first
    m.extra_state_ = {np.int64(2): "a"}
    assert fingerprint_model(m) != first
    one_byte = [fingerprint_model({np.uint8(k): "v"}) for k in range(4)]
    assert len(set(one_byte)) == 4
    assert fingerprint_model({np.uint8(1): "v"}) != fingerprint_model({1: "v"})
    assert fingerprint_model({np.int8(1): "v"}) != fingerprint_model({np.uint8(1): "v"})


def test_refusal_message_names_the_estimator_and_path() -> None:
    from sklearn.linear_model import LogisticRegression

    m = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    m.cache_ = {"x": [1, {"lock": threading.Lock()}]}
    with pytest.raises(FingerprintError) as info:
        fingerprint_model(m)
    assert "LogisticRegression.cache_['x'][1]['lock']" in info.value.message
    assert "_thread.lock" in info.value.message
    assert isinstance(info.value, TypeError)  # callers catching TypeError keep working
