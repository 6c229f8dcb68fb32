"""Fuzzing the manifest loader: whatever the file holds, the result is a Manifest or a
ManifestError (an MlreproError with a hint), never another exception."""

from __future__ import annotations

import copy
import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlrepro.core import manifest
from mlrepro.errors import MlreproError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "diabetes" / "mlrepro.yaml"
VALID: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)),
    st.dates(),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def _load_text(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "mlrepro.yaml").write_bytes(data)
        try:
            m = manifest.load(tmp)
        except MlreproError as exc:
            assert exc.message and exc.hint
        else:
            assert isinstance(m, manifest.Manifest)


@FUZZ
@given(st.text(max_size=300))
def test_arbitrary_text(text: str) -> None:
    _load_text(text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes(data: bytes) -> None:
    _load_text(data)


@FUZZ
@given(values)
def test_arbitrary_yaml_documents(doc: Any) -> None:
    _load_text(yaml.safe_dump(doc).encode())


PATHS = [
    ("name",), ("seed",), ("source",), ("source", "url"), ("source", "query"),
    ("source", "as_of"), ("source", "order_by"), ("source", "timestamp_column"), ("target",),
    ("features",), ("features", 0), ("features", 0, "columns"), ("features", 1, "params"),
    ("selection",), ("selection", "params"), ("model",), ("model", "params"),
    ("model", "test_size"), ("model", "metrics"), ("model", "format"), ("predict",),
    ("predict", "input"), ("plugins",),
]  # fmt: skip


@FUZZ
@given(st.sampled_from(PATHS), values, st.booleans())
def test_mutated_valid_manifest(path: tuple, value: Any, delete: bool) -> None:
    """One field of the example replaced by anything (or deleted): validated, never a crash."""
    doc = copy.deepcopy(VALID)
    node = doc
    for key in path[:-1]:
        node = node[key]
    if delete:
        if isinstance(node, dict):
            node.pop(path[-1], None)
        else:
            del node[path[-1]]
    else:
        node[path[-1]] = value
    try:
        manifest.from_dict(doc, root=EXAMPLE.parent)
    except MlreproError as exc:
        assert exc.message and exc.hint


def test_deeply_nested_document() -> None:
    _load_text(("a: " + "[" * 5000 + "]" * 5000).encode())
    doc = copy.deepcopy(VALID)
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    doc["model"]["metrics"] = deep
    try:
        manifest.from_dict(doc)
    except MlreproError as exc:
        assert "model.metrics" in exc.message
