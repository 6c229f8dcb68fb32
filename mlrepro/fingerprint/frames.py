"""Frames: a canonical columnar encoding (names, logical types, values), chunk-invariant."""

from __future__ import annotations

import json
import sys
from typing import Any

import blake3

from mlrepro.fingerprint.canonical import _dumps, _jsonable, canonical_json
from mlrepro.fingerprint.digest import (
    _BLOCK,
    _FRAME_FORMAT,
    _LITTLE_ENDIAN,
    _finish,
    _hasher,
    _qualname,
)

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
        return bool(src.tz == dst.tz)
    return any(f(src) and f(dst) for f in (t.is_date, t.is_duration, t.is_time))


def _null_mask(arr: Any) -> Any:
    """Boolean numpy array, True where ``arr`` is null."""
    import numpy as np
    import pyarrow as pa

    if pa.types.is_null(arr.type):  # every value is null (and to_numpy would import pandas)
        return np.ones(len(arr), dtype=bool)
    bitmap = arr.buffers()[0]
    if bitmap is None:  # no bitmap to read
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
            self.validity.update((np.flatnonzero(mask) + start).astype("<i8").view(np.uint8))  # type: ignore[arg-type]
        if self.kind == "fixed":
            w = self.width
            buf = arr.buffers()[1]
            values = np.frombuffer(buf, dtype=np.uint8, count=n * w, offset=arr.offset * w)
            if not _LITTLE_ENDIAN:  # arrow buffers are native-endian
                values = values.reshape(n, w)[:, ::-1].reshape(-1)
            if mask is None:
                self.values.update(values)  # type: ignore[arg-type]
            else:
                _update_zeroing_nulls(self.values, values, w, mask)
        elif self.kind == "bool":
            if mask is not None:
                arr = pc.fill_null(arr, _empty_scalar(arr.type))
            self.values.update(_bool_bytes(arr))
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
            arr = pc.fill_null(arr, _empty_scalar(arr.type))
        offset_type = np.int64 if str(arr.type).startswith("large_") else np.int32
        _, offsets_buf, data_buf = arr.buffers()
        offsets = np.frombuffer(
            offsets_buf,
            dtype=offset_type,
            count=len(arr) + 1,
            offset=arr.offset * np.dtype(offset_type).itemsize,
        )
        self.values.update(np.diff(offsets).astype("<i8").view(np.uint8))  # type: ignore[arg-type]
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
        self.values.update(np.array([len(e) for e in encoded], dtype="<i8").view(np.uint8))  # type: ignore[arg-type]
        self.data.update(b"".join(encoded))


def _bool_bytes(arr: Any) -> Any:
    """One byte (0/1) per value of a boolean array without nulls, unpacked from its bitmap:
    what ``to_numpy().view(uint8)`` gives, without the pandas import it costs."""
    import numpy as np

    if len(arr) == 0:
        return np.zeros(0, dtype=np.uint8)
    bits = np.frombuffer(arr.buffers()[1], dtype=np.uint8)
    return np.unpackbits(bits, count=arr.offset + len(arr), bitorder="little")[arr.offset :]


def _empty_scalar(arrow_type: Any) -> Any:
    """False, or the empty string/bytes, of ``arrow_type``, built from buffers: converting a
    Python value (``pc.fill_null(arr, "")``) makes pyarrow import pandas, a fifth of a second
    that an extract otherwise never pays."""
    import pyarrow as pa

    if pa.types.is_boolean(arrow_type):
        return pa.Array.from_buffers(arrow_type, 1, [None, pa.py_buffer(b"\x00")])[0]
    width = 8 if pa.types.is_large_string(arrow_type) or pa.types.is_large_binary(arrow_type) else 4
    offsets = pa.py_buffer(bytes(2 * width))
    return pa.Array.from_buffers(arrow_type, 1, [None, offsets, pa.py_buffer(b"")])[0]


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
