"""Content fingerprints for parameters, tables and fitted models.

A fingerprint is ``"b3:"`` + the blake3 hex digest of a *canonical* encoding of the content,
so it changes when the content changes and only then: not with file bytes, compression,
chunking, dict order, memory layout or pickling round-trips.

pandas, pyarrow and scikit-learn are never imported at module level (the CLI must start
fast); numpy and pyarrow are imported inside the functions that need them.
"""

from __future__ import annotations

import enum
import json
import math
import os
import struct
import sys
import types
from operator import itemgetter
from typing import Any

import blake3

__all__ = [
    "EXECUTION_ONLY_PARAMS",
    "FrameHasher",
    "canonical_json",
    "fingerprint_frame",
    "fingerprint_model",
    "fingerprint_params",
    "hash_bytes",
    "hash_file",
]

PREFIX = "b3:"

#: Estimator attributes that change how a model is computed, never what it computes.
EXECUTION_ONLY_PARAMS: frozenset[str] = frozenset(
    {"n_jobs", "verbose", "pre_dispatch", "memory", "_n_threads"}
)

_BLOCK = 1 << 20  # 1 MiB
# Reading 1 MiB blocks from a file, blake3's thread pool only pays off from about 16 MiB
# (measured ~10% faster above, up to 25% slower below, on 2 cores).
_THREADED_FILE_MIN = 16 * _BLOCK
_FRAME_FORMAT = 1
_LITTLE_ENDIAN = sys.byteorder == "little"
_U64 = struct.Struct("<Q")
_F64 = struct.Struct("<d")


def _hasher(threaded: bool = True) -> blake3.blake3:
    if threaded:
        return blake3.blake3(max_threads=blake3.blake3.AUTO)
    return blake3.blake3()


def _finish(hasher: blake3.blake3) -> str:
    return PREFIX + hasher.hexdigest()


def _qualname(obj: Any) -> str:
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    return f"{getattr(obj, '__module__', None)}.{name}"


def hash_bytes(data: bytes) -> str:
    """Fingerprint of a byte string."""
    return _finish(blake3.blake3(data, max_threads=blake3.blake3.AUTO))


def hash_file(path: str | os.PathLike[str]) -> str:
    """Fingerprint of a file's raw bytes, read in 1 MiB blocks (integrity checks)."""
    with open(path, "rb", buffering=0) as f:
        hasher = _hasher(threaded=os.fstat(f.fileno()).st_size >= _THREADED_FILE_MIN)
        buf = bytearray(_BLOCK)
        view = memoryview(buf)
        while n := f.readinto(buf):
            hasher.update(view[:n])
    return _finish(hasher)


# --------------------------------------------------------------------------- canonical JSON


def _json_float(x: float) -> float | str:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return float(x)  # drops float subclasses such as numpy.float64


def _json_key(key: Any) -> str:
    # JSON object keys must be strings; spell other scalars the way json.dumps would.
    if isinstance(key, str):
        return str(key)
    np = sys.modules.get("numpy")
    if np is not None and isinstance(key, np.generic):
        key = key.item()
    if key is None or isinstance(key, (bool, int, float)):
        value = _json_float(key) if isinstance(key, float) else key
        return value if isinstance(value, str) else json.dumps(value)
    if isinstance(key, os.PathLike):
        return str(key)
    raise TypeError(f"canonical_json: unsupported dict key type {_qualname(type(key))}")


_UNSUPPORTED = object()


def _lenient(obj: Any) -> Any:
    """Extra conversions for values read back from nested arrow columns."""
    import datetime
    import decimal

    if isinstance(obj, (datetime.date, datetime.time)):
        return obj.isoformat()
    if isinstance(obj, (datetime.timedelta, decimal.Decimal)):
        return str(obj)
    if isinstance(obj, (bytes, bytearray)):
        return bytes(obj).hex()
    return _UNSUPPORTED


def _jsonable(obj: Any, lenient: bool = False) -> Any:
    if obj is None or isinstance(obj, bool):
        return obj
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return _json_float(obj)
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            name = _json_key(key)
            if name in out:
                raise ValueError(f"canonical_json: two dict keys both encode as {name!r}")
            out[name] = _jsonable(value, lenient)
        return out
    if isinstance(obj, (list, tuple)):
        return [_jsonable(x, lenient) for x in obj]
    if isinstance(obj, (set, frozenset)):
        items = [_jsonable(x, lenient) for x in obj]
        return sorted(items, key=_dumps)  # mixed types have no natural order
    if isinstance(obj, os.PathLike):
        return str(obj)
    np = sys.modules.get("numpy")  # never import numpy just to find out it is not used
    if np is not None:
        if isinstance(obj, np.generic):
            return _jsonable(obj.item(), lenient)
        if isinstance(obj, np.ndarray):
            return _jsonable(obj.tolist(), lenient)
    if lenient and (converted := _lenient(obj)) is not _UNSUPPORTED:
        return converted
    raise TypeError(f"canonical_json: unsupported type {_qualname(type(obj))}")


def _dumps(obj: Any) -> str:
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def canonical_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, NaN/inf as strings.

    Tuples become lists, sets sorted lists, numpy scalars/arrays Python values and paths
    strings. Any other type raises ``TypeError`` naming it.
    """
    return _dumps(_jsonable(obj))


def fingerprint_params(obj: Any) -> str:
    """Fingerprint of a JSON-like structure; dict key order never changes it."""
    return hash_bytes(canonical_json(obj).encode("utf-8", "surrogatepass"))


# --------------------------------------------------------------------------------- frames

_STRING_TYPES = {"string", "large_string", "string_view"}
_BINARY_TYPES = {"binary", "large_binary", "binary_view"}


def _canonical_type(t: Any) -> str:
    """A type name that does not depend on arrow's physical layout choices."""
    import pyarrow as pa

    name = str(t)
    if pa.types.is_dictionary(t):
        return f"dictionary<{_canonical_type(t.value_type)}>"
    if name in _STRING_TYPES:
        return "string"
    if name in _BINARY_TYPES:
        return "binary"
    if pa.types.is_map(t):
        return f"map<{_canonical_type(t.key_type)}, {_canonical_type(t.item_type)}>"
    if pa.types.is_fixed_size_list(t):
        return f"list<{_canonical_type(t.value_type)}>[{t.list_size}]"
    if (
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or name.startswith(("list_view<", "large_list_view<"))
    ):
        return f"list<{_canonical_type(t.value_type)}>"
    if pa.types.is_struct(t):
        fields = ", ".join(
            f"{json.dumps(f.name, ensure_ascii=False)}: {_canonical_type(f.type)}" for f in t
        )
        return f"struct<{fields}>"
    return name


def _kind(t: Any) -> tuple[str, int]:
    """(kind, bytes per row in the values stream) for a decoded arrow type."""
    import pyarrow as pa

    if pa.types.is_null(t):
        return "null", 0
    if pa.types.is_boolean(t):
        return "bool", 1
    if str(t) in _STRING_TYPES or str(t) in _BINARY_TYPES:
        return "var", 8
    if not pa.types.is_nested(t):
        try:
            return "fixed", t.bit_width // 8
        except ValueError:  # not fixed-width (run-end encoded, extension, ...)
            pass
    return "nested", 8


def _castable(src: Any, dst: Any) -> bool:
    """Whether a later chunk of type ``src`` may be (safely) cast to the column's ``dst``.

    Only within a family (numbers, timestamps with the same tz, dates, ...), never across
    (a string "1" is not the number 1); nested types field by field.
    """
    import pyarrow as pa

    t = pa.types
    if t.is_null(src) or _canonical_type(src) == _canonical_type(dst):
        return True
    if t.is_struct(src) and t.is_struct(dst):
        return [f.name for f in src] == [f.name for f in dst] and all(
            _castable(a.type, b.type) for a, b in zip(src, dst, strict=True)
        )
    lists = (t.is_list, t.is_large_list)
    if any(f(src) for f in lists) and any(f(dst) for f in lists):
        return _castable(src.value_type, dst.value_type)
    numeric = (t.is_integer, t.is_floating, t.is_decimal)
    if any(f(src) for f in numeric) and any(f(dst) for f in numeric):
        return True
    if t.is_timestamp(src) and t.is_timestamp(dst):
        return src.tz == dst.tz
    return any(f(src) and f(dst) for f in (t.is_date, t.is_duration, t.is_time))


def _null_mask(arr: Any) -> Any:
    """Boolean numpy array, True where ``arr`` is null."""
    import numpy as np

    bitmap = arr.buffers()[0]
    if bitmap is None:  # e.g. the null type: no bitmap to read
        return arr.is_null().to_numpy(zero_copy_only=False)
    # Unpacking the validity bitmap directly is ~5x faster than is_null().to_numpy().
    bits = np.unpackbits(
        np.frombuffer(bitmap, dtype=np.uint8), count=arr.offset + len(arr), bitorder="little"
    )
    return bits[arr.offset :] == 0


def _update_zeroing_nulls(hasher: blake3.blake3, values: Any, width: int, mask: Any) -> None:
    """Hash fixed-width values (uint8 bytes) with every null slot zeroed.

    Null slots may hold anything (pandas leaves NaN there). Multiplying by the validity
    into a small reused buffer is one pass over the data and several times faster than
    copying the column and assigning through the mask.
    """
    import numpy as np

    unit = next(u for u in (8, 4, 2, 1) if width % u == 0)
    rows = values.view(f"u{unit}").reshape(-1, width // unit)
    valid = ~mask[:, None]
    step = max(1, _BLOCK // width)
    scratch = np.empty_like(rows[:step])
    for i in range(0, len(rows), step):
        block = scratch[: len(rows[i : i + step])]
        np.multiply(rows[i : i + step], valid[i : i + step], out=block)
        hasher.update(block.reshape(-1).view(np.uint8))


class _Column:
    """The three per-column streams: null positions, fixed-width values, variable bytes."""

    def __init__(self, name: str, arrow_type: Any) -> None:
        self.name = name
        self.validity = _hasher(threaded=False)
        self.values = _hasher()
        self.data = _hasher()
        self._set_type(arrow_type)

    def _set_type(self, arrow_type: Any) -> None:
        import pyarrow as pa

        self.canonical = _canonical_type(arrow_type)
        # Dictionary columns are hashed by their decoded values.
        is_dict = pa.types.is_dictionary(arrow_type)
        self.type = arrow_type.value_type if is_dict else arrow_type
        self.kind, self.width = _kind(self.type)

    def conform(self, arr: Any) -> tuple[Any, Any]:
        """Return (array in the column's type, new column type if it must be promoted)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        original = arr.type
        if pa.types.is_dictionary(original):
            arr = arr.dictionary_decode()  # the dictionary layout of a chunk is irrelevant
        src = arr.type
        if src == self.type or _canonical_type(src) == _canonical_type(self.type):
            return arr, None
        if pa.types.is_null(self.type):
            return arr, original  # all rows so far were null: adopt the real type
        if _castable(src, self.type):
            try:
                return pc.cast(arr, self.type, safe=True), None
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise ValueError(
                    f"column {self.name!r}: cannot safely cast {src} to {self.canonical}: {exc}"
                ) from exc
        raise ValueError(
            f"column {self.name!r}: chunk has type {_canonical_type(original)}, "
            f"first chunk had {self.canonical}"
        )

    def promote(self, arrow_type: Any, rows_so_far: int) -> None:
        """Switch from the null type to ``arrow_type`` as if all earlier rows had it."""
        self._set_type(arrow_type)
        # Earlier rows were all null; nulls hash as zero-filled values of the real type.
        remaining = rows_so_far * self.width
        while remaining:
            step = min(remaining, _BLOCK)
            self.values.update(bytes(step))
            remaining -= step

    def update(self, arr: Any, start: int) -> None:
        import numpy as np
        import pyarrow.compute as pc

        n = len(arr)
        if n == 0:
            return
        mask = None
        if arr.null_count:
            mask = _null_mask(arr)
            # Global row numbers of the nulls: independent of how the table was chunked.
            self.validity.update((np.flatnonzero(mask) + start).astype("<i8").view(np.uint8))
        if self.kind == "fixed":
            w = self.width
            buf = arr.buffers()[1]
            values = np.frombuffer(buf, dtype=np.uint8, count=n * w, offset=arr.offset * w)
            if not _LITTLE_ENDIAN:  # arrow buffers are native-endian
                values = values.reshape(n, w)[:, ::-1].reshape(-1)
            if mask is None:
                self.values.update(values)
            else:
                _update_zeroing_nulls(self.values, values, w, mask)
        elif self.kind == "bool":
            if mask is not None:
                arr = pc.fill_null(arr, False)
            self.values.update(arr.to_numpy(zero_copy_only=False).view(np.uint8))
        elif self.kind == "var":
            self._update_var(arr, mask)
        elif self.kind == "nested":
            self._update_nested(arr)

    def _update_var(self, arr: Any, mask: Any) -> None:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        is_text = str(arr.type) in _STRING_TYPES
        if str(arr.type).endswith("_view"):
            arr = arr.cast(pa.large_string() if is_text else pa.large_binary())
        if mask is not None:
            # Arrow lets null slots own bytes; rebuild so they are empty.
            arr = pc.fill_null(arr, "" if is_text else b"")
        offset_type = np.int64 if str(arr.type).startswith("large_") else np.int32
        _, offsets_buf, data_buf = arr.buffers()
        offsets = np.frombuffer(
            offsets_buf,
            dtype=offset_type,
            count=len(arr) + 1,
            offset=arr.offset * np.dtype(offset_type).itemsize,
        )
        self.values.update(np.diff(offsets).astype("<i8").view(np.uint8))
        first, last = int(offsets[0]), int(offsets[-1])
        if last > first:
            self.data.update(memoryview(data_buf)[first:last])

    def _update_nested(self, arr: Any) -> None:
        import numpy as np

        # Slow path: one canonical JSON document per row, framed by its length.
        encoded = [
            b""
            if v is None
            else _dumps(_jsonable(v, lenient=True)).encode("utf-8", "surrogatepass")
            for v in arr.to_pylist()
        ]
        self.values.update(np.array([len(e) for e in encoded], dtype="<i8").view(np.uint8))
        self.data.update(b"".join(encoded))


def _chunk_columns(chunk: Any) -> tuple[list[str], list[Any], list[list[Any]], int]:
    """(names, column types, per-column list of arrays, rows) of a supported chunk."""
    import pyarrow as pa

    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(chunk, pd.DataFrame):
        rows = len(chunk)  # a frame without columns still has rows
        chunk = pa.Table.from_pandas(chunk, preserve_index=False)
    elif isinstance(chunk, (pa.Table, pa.RecordBatch)):
        rows = chunk.num_rows
    else:
        raise TypeError(
            "FrameHasher.update expects a pandas DataFrame, pyarrow Table or RecordBatch, "
            f"got {_qualname(type(chunk))}"
        )
    if isinstance(chunk, pa.RecordBatch):
        chunk = pa.Table.from_batches([chunk])
    chunk = _normalise_time_units(chunk)
    pieces = [list(col.chunks) for col in chunk.columns]
    return list(chunk.column_names), list(chunk.schema.types), pieces, rows


def _normalise_time_units(table: Any) -> Any:
    """Timestamps in microseconds when that loses nothing.

    pandas 2 defaults to nanoseconds and pandas 3 to microseconds, and parquet writers
    differ too: the same instants must have one fingerprint. Values that need nanosecond
    precision (or a range only another unit holds) keep their unit.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    for i, field in enumerate(table.schema):
        t = field.type
        if pa.types.is_timestamp(t) and t.unit != "us":
            try:
                col = pc.cast(table.column(i), pa.timestamp("us", t.tz), safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue
            table = table.set_column(i, field.name, col)
    return table


class FrameHasher:
    """Streaming, chunking-invariant fingerprint of a table.

    Feed pandas DataFrames, pyarrow Tables or RecordBatches with ``update``; any split of the
    same rows gives the same ``hexdigest``. The index of a DataFrame is ignored. The first
    chunk fixes column names and types; later chunks must have the same names and types
    that cast safely to them.
    """

    def __init__(self) -> None:
        self.rows: int = 0
        self.columns: list[str] = []
        self._cols: list[_Column] | None = None

    def update(self, chunk: Any) -> None:
        names, arrow_types, pieces, rows = _chunk_columns(chunk)
        if self._cols is None:
            self.columns = names
            self._cols = [_Column(n, t) for n, t in zip(names, arrow_types, strict=True)]
        elif names != self.columns:
            raise ValueError(f"chunk columns {names} differ from the first chunk's {self.columns}")
        # Check every column before hashing any, so a rejected chunk leaves no trace.
        conformed = []
        for col, arrays in zip(self._cols, pieces, strict=True):
            fixed, promote_to = [], None
            for arr in arrays:
                arr, new_type = col.conform(arr)
                promote_to = promote_to or new_type
                fixed.append(arr)
            conformed.append((fixed, promote_to))
        for col, (arrays, promote_to) in zip(self._cols, conformed, strict=True):
            if promote_to is not None:
                col.promote(promote_to, self.rows)
            start = self.rows
            for arr in arrays:
                col.update(arr, start)
                start += len(arr)
        self.rows += rows

    def hexdigest(self) -> str:
        cols = self._cols or []
        header = {
            "format": _FRAME_FORMAT,
            "rows": self.rows,
            "columns": [[c.name, c.canonical] for c in cols],
        }
        hasher = blake3.blake3(canonical_json(header).encode("utf-8", "surrogatepass"))
        for c in cols:
            hasher.update(c.validity.digest())
            hasher.update(c.values.digest())
            hasher.update(c.data.digest())
        return _finish(hasher)


def fingerprint_frame(df_or_table: Any) -> str:
    """Fingerprint of a whole pandas DataFrame / pyarrow Table / RecordBatch."""
    hasher = FrameHasher()
    hasher.update(df_or_table)
    return hasher.hexdigest()


# --------------------------------------------------------------------------------- models

_CALLABLES = (
    type,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.BuiltinMethodType,
    types.MethodWrapperType,
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
)
_CONTAINER_TAGS = {list: b"l", tuple: b"t", dict: b"d", set: b"S", frozenset: b"Z"}


def _custom_pickling(cls: type) -> bool:
    return any(
        getattr(cls, name, None) is not getattr(object, name, None)
        for name in ("__reduce_ex__", "__reduce__", "__getstate__")
    )


class _Encoder:
    """Writes a tagged, self-delimiting byte encoding of an object graph.

    With a hasher the bytes go to it; without one they collect in ``buf`` (used to get the
    encoding of dict keys and set items, which are emitted in sorted encoded order).
    """

    def __init__(self, hasher: blake3.blake3 | None, ancestors: dict[int, int]) -> None:
        self.hasher = hasher
        self.buf = bytearray()
        # Objects on the current path only: shared (non-cyclic) references are walked
        # each time so aliasing, which pickling may not keep, never changes the result.
        self.ancestors = ancestors
        self.np = sys.modules.get("numpy")
        self.pd = sys.modules.get("pandas")

    def flush(self) -> None:
        if self.hasher is not None:
            self.hasher.update(self.buf)
            self.buf.clear()

    def _raw(self, data: Any) -> None:
        """Large payloads go straight to the hasher instead of through ``buf``."""
        if self.hasher is None:
            self.buf += data
        else:
            self.flush()
            self.hasher.update(data)

    def _text(self, tag: bytes, s: str) -> None:
        data = s.encode("utf-8", "surrogatepass")
        self.buf += tag + _U64.pack(len(data)) + data

    def _enter(self, obj: Any) -> bool:
        depth = self.ancestors.get(id(obj))
        if depth is not None:  # a cycle: point back at the ancestor
            self.buf += b"@" + _U64.pack(len(self.ancestors) - depth)
            return False
        self.ancestors[id(obj)] = len(self.ancestors)
        return True

    def _leave(self, obj: Any) -> None:
        del self.ancestors[id(obj)]

    def encoding(self, obj: Any) -> bytes:
        sub = _Encoder(None, self.ancestors)
        sub.walk(obj)
        return bytes(sub.buf)

    def walk(self, obj: Any) -> None:
        if len(self.buf) >= _BLOCK:
            self.flush()
        t = type(obj)
        if obj is None:
            self.buf += b"N"
        elif t is bool:
            self.buf += b"T" if obj else b"F"
        elif t is int:
            self._text(b"i", str(obj))
        elif t is float:
            self.buf += b"f" + _F64.pack(obj)
        elif t is str:
            self._text(b"s", obj)
        elif t is bytes or t is bytearray:
            self.buf += (b"b" if t is bytes else b"B") + _U64.pack(len(obj))
            self._raw(obj)
        elif t is complex:
            self.buf += b"c" + _F64.pack(obj.real) + _F64.pack(obj.imag)
        elif t in _CONTAINER_TAGS:
            self._container(obj, t)
        else:
            self._other(obj)

    def _container(self, obj: Any, base: type) -> None:
        if not self._enter(obj):
            return
        self.buf += _CONTAINER_TAGS[base] + _U64.pack(len(obj))
        if base is dict:
            items = sorted(((self.encoding(k), v) for k, v in obj.items()), key=itemgetter(0))
            for key, value in items:
                self.buf += key
                self.walk(value)
        elif base is set or base is frozenset:
            for item in sorted(self.encoding(x) for x in obj):
                self.buf += item
        else:
            for item in obj:
                self.walk(item)
        self._leave(obj)

    def _array(self, arr: Any) -> None:
        np = self.np
        shape = _U64.pack(arr.ndim) + b"".join(_U64.pack(d) for d in arr.shape)
        if arr.dtype.names is not None:
            # Field by field: the padding between fields may hold arbitrary bytes.
            self.buf += b"r" + shape + _U64.pack(len(arr.dtype.names))
            for name in arr.dtype.names:
                self._text(b"s", name)
                self._array(arr[name])
        elif arr.dtype.hasobject or arr.dtype.kind == "T":
            # Object and StringDType buffers hold pointers: walk the elements instead.
            self.buf += b"o" + shape
            for item in arr.reshape(-1):
                self.walk(item)
        else:
            if arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and not _LITTLE_ENDIAN):
                arr = arr.astype(arr.dtype.newbyteorder("<"))
            if not arr.flags.c_contiguous:
                arr = arr.copy(order="C")
            self._text(b"a", arr.dtype.str)
            self.buf += shape
            self._raw(arr.reshape(-1).view(np.uint8))

    def _object_items(self, tag: bytes, obj: Any, items: Any) -> None:
        if not self._enter(obj):
            return
        items = sorted(items, key=itemgetter(0))
        self._text(tag, _qualname(type(obj)))
        self.buf += _U64.pack(len(items))
        for name, value in items:
            self._text(b"s", name)
            self.walk(value)
        self._leave(obj)

    def _other(self, obj: Any) -> None:
        np, pd = self.np, self.pd
        if np is not None and isinstance(obj, np.ndarray):  # includes np.memmap
            self._array(obj)
        elif np is not None and isinstance(obj, np.generic):
            self.buf += b"g"
            self._array(np.asarray(obj))
        elif pd is not None and isinstance(obj, (pd.DataFrame, pd.Series)):
            frame = obj if isinstance(obj, pd.DataFrame) else obj.to_frame(name="values")
            self.buf += b"P" if frame is obj else b"Q"
            if frame is not obj:
                self.walk(obj.name)
            self.buf += fingerprint_frame(frame).encode()
            self.walk(obj.index)
        elif pd is not None and isinstance(obj, pd.Index):
            self.buf += b"I"
            self.walk(list(obj.names))
            self.walk(obj.to_numpy())
        elif isinstance(obj, _CALLABLES):
            self._text(b"q", _qualname(obj))
        elif isinstance(obj, enum.Enum):
            self._text(b"e", _qualname(type(obj)))
            self.walk(obj.name)
        elif np is not None and isinstance(obj, np.random.RandomState):
            self.buf += b"R"
            self.walk(obj.get_state())
        elif np is not None and isinstance(obj, np.random.Generator):
            self.buf += b"G"
            self.walk(obj.bit_generator.state)
        elif (base := next((b for b in _CONTAINER_TAGS if isinstance(obj, b)), None)) is not None:
            self._text(b"C", _qualname(type(obj)))  # namedtuple, OrderedDict, Bunch, ...
            self._container(obj, base)
        elif base := next((b for b in (str, int, float, bytes) if isinstance(obj, b)), None):
            self._text(b"C", _qualname(type(obj)))
            self.walk(base(obj))
        elif callable(getattr(obj, "get_params", None)) and hasattr(obj, "__dict__"):
            # A scikit-learn style estimator: hyper-parameters, fitted and private state.
            attrs = vars(obj).items()
            self._object_items(
                b"E", obj, [kv for kv in attrs if kv[0] not in EXECUTION_ONLY_PARAMS]
            )
        elif hasattr(obj, "__dict__") and not _custom_pickling(type(obj)):
            self._object_items(b"V", obj, vars(obj).items())
        else:
            self._reduced(obj)

    def _reduced(self, obj: Any) -> None:
        # Whatever pickle would store (e.g. a Cython Tree: class, shape args, node arrays),
        # so a pickling round-trip keeps the fingerprint by construction.
        try:
            reduced = obj.__reduce_ex__(4)
        except Exception as exc:
            raise TypeError(f"fingerprint_model: cannot encode {_qualname(type(obj))}") from exc
        if isinstance(reduced, str):  # a module-level singleton
            self._text(b"q", f"{getattr(obj, '__module__', None)}.{reduced}")
            return
        if not self._enter(obj):
            return
        self._text(b"O", _qualname(type(obj)))
        parts = list(reduced)
        for i in (3, 4):  # list and dict items come as iterators
            if i < len(parts) and parts[i] is not None:
                parts[i] = list(parts[i])
        self.walk(tuple(parts))
        self._leave(obj)


def fingerprint_model(obj: Any) -> str:
    """Fingerprint of a fitted estimator, pipeline or any picklable object.

    Execution-only settings (``EXECUTION_ONLY_PARAMS``) are left out, so changing ``n_jobs``
    keeps the fingerprint; every hyper-parameter and fitted value is in it.
    """
    hasher = _hasher()
    encoder = _Encoder(hasher, {})
    encoder.walk(obj)
    encoder.flush()
    return _finish(hasher)
