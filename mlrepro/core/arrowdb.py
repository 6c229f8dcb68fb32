"""Arrow-native extraction: SQLite and PostgreSQL read through ADBC drivers.

The drivers (``pip install 'mlrepro[arrow-db]'``) hand over Arrow record batches built in C,
with no Python object per value. Each batch is converted to exactly the schema and values
the sqlalchemy path (``core.database``) produces, chunk by chunk, so the snapshot and its
fingerprint are the same. Where that cannot be guaranteed the plan says why and the caller
uses the sqlalchemy path:

* SQLite has no column types: a probe over the query result records each column's
  storage classes; a column mixing them (ints and reals, text and numbers) falls back.
* PostgreSQL types outside a reviewed list (``real``, json, uuid, interval, arrays, ...)
  fall back. NUMERIC arrives as text; it is parsed into the same decimal type that
  pyarrow infers for the chunk's Python ``Decimal`` values, then cast to float64 the same way.
* SQLite: a column that is NULL in the whole first chunk, with values later, falls back
  (the driver infers types per first batch; the sqlalchemy path decides what happens).

``MLREPRO_EXTRACT_READER``: ``auto`` (default), ``sqlalchemy`` (never ADBC) or ``adbc``
(fail instead of falling back: for tests and benchmarks).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from mlrepro.errors import DataError, SourceError, UsageError
from mlrepro.guards.safe_text import first_line
from mlrepro.redaction import redact

READER_VAR = "MLREPRO_EXTRACT_READER"
READERS = ("auto", "sqlalchemy", "adbc")

# PostgreSQL type names (ADBC's field metadata) whose Arrow form maps onto what psycopg +
# pyarrow.array produce, and the Arrow type the sqlalchemy path has for them.
_PG_TYPES = {
    "int2": "int64",
    "int4": "int64",
    "int8": "int64",
    "float8": "double",
    "bool": "bool",
    "text": "string",
    "varchar": "string",
    "bpchar": "string",
    "name": "string",
    "bytea": "binary",
    "date": "date32[day]",
    "timestamp": "timestamp[us]",
    "timestamptz": "timestamp[us, tz=UTC]",
    "numeric": "double",
}
_SQLITE_CLASSES = {"integer": "int64", "real": "double", "text": "string", "blob": "binary"}


class Fallback(Exception):
    """The ADBC reader cannot guarantee the sqlalchemy path's snapshot; the reason says why."""


class QueryFailed(Fallback):
    """A query failed before the first batch: the sqlalchemy path reports it its usual way."""

    def error(self) -> SourceError:
        return SourceError(
            f"the source query failed: {self}",
            hint="check source.query (run it in your SQL client) and the table names",
        )


# "INVALID_ARGUMENT: [SQLite] Failed to prepare query: " / "IO: [libpq] ...: ERROR:  "
_DRIVER_PREFIX = re.compile(r"^[A-Z_]+: \[\w+\] (Failed to \w+ (query|statement): )?(ERROR: +)?")


def reader_choice() -> str:
    value = os.environ.get(READER_VAR, "auto").strip().lower() or "auto"
    if value not in READERS:
        raise UsageError(
            f"{READER_VAR}={value!r} is not a reader",
            hint=f"set {READER_VAR} to one of: {', '.join(READERS)} (or unset it)",
        )
    return value


def _driver(dialect: str) -> Any:
    """The driver's low-level module (``adbc_driver_sqlite``, ``adbc_driver_postgresql``).

    Not the DB-API layer: ``adbc_driver_manager.dbapi`` imports ``pyarrow.dataset`` and with
    it pandas (a quarter of a second), and its cursors add nothing the extract needs.
    """
    name = "adbc_driver_sqlite" if dialect == "sqlite" else "adbc_driver_postgresql"
    try:
        importlib.import_module("adbc_driver_manager._reader")
        mod = importlib.import_module(name)
    except ImportError:
        raise Fallback(
            f"the ADBC driver for {dialect} is not installed (pip install 'mlrepro[arrow-db]')"
        ) from None
    return mod


def _blocking(func: Callable[[], Any], cancel: Callable[[], Any]) -> Any:
    """``func()`` with Ctrl-C cancelling the statement (as the driver's DB-API layer does)."""
    from adbc_driver_manager import _lib

    call = getattr(_lib, "_blocking_call", None)
    return call(func, (), {}, cancel) if call is not None else func()


def adbc_target(url: Any) -> tuple[str, str]:
    """(dialect, what the ADBC driver connects to) for a sqlalchemy URL, or Fallback."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        db = url.database
        if not db or db == ":memory:" or url.query:
            raise Fallback("SQLite URL without a plain database file")
        return "sqlite", str(db)
    if backend == "postgresql":
        return "postgresql", url.set(drivername="postgresql").render_as_string(hide_password=False)
    raise Fallback(f"no ADBC reader for {backend}")


def _scrub(text: str, target: str, secret_free: str) -> str:
    return redact(text.replace(target, secret_free))


def _column_kinds_pg(schema: Any) -> list[str]:
    kinds = []
    for col in schema:
        meta = col.metadata or {}
        typ = (meta.get(b"POSTGRESQL:type") or b"").decode()
        kind = _PG_TYPES.get(typ)
        if kind is None:
            raise Fallback(f"column '{col.name}' has PostgreSQL type {typ or col.type}")
        kinds.append("numeric" if typ == "numeric" else kind)
    return kinds


def sqlite_classes_sql(
    columns: list[str], inner: str, quote: Callable[[str], str], first: list[str]
) -> str:
    """One pass over the query result: the ``first`` aggregates, then each column's SQLite
    storage classes."""
    parts = [*first, *(f"group_concat(DISTINCT typeof(mlrepro_src.{quote(c)}))" for c in columns)]
    return f"SELECT {', '.join(parts)} FROM ({inner}) AS mlrepro_src"


def _column_kinds_sqlite(columns: list[str], classes: list[str | None]) -> list[str]:
    kinds = []
    for name, found in zip(columns, classes, strict=True):
        seen = {c for c in (found or "").split(",") if c and c != "null"}
        if not seen:
            kinds.append("null")
        elif len(seen) == 1:
            kinds.append(_SQLITE_CLASSES[seen.pop()])
        else:
            raise Fallback(f"column '{name}' mixes SQLite storage classes {sorted(seen)}")
    return kinds


# ----------------------------------------------------------------------------- NUMERIC
def _ints(arr: Any) -> Any:
    """An int32/int64 Arrow array without nulls as int64 numpy, read from its buffer
    (``Array.to_numpy`` imports pandas)."""
    import numpy as np

    assert arr.null_count == 0
    width = arr.type.bit_width // 8
    data = arr.buffers()[1]
    out = np.frombuffer(data, dtype=f"<i{width}", count=len(arr), offset=arr.offset * width)
    return out.astype(np.int64)


def _decimal_type(text: Any) -> Any:
    """The decimal type ``pyarrow.array`` infers for these values as Python Decimals.

    Per value: digits without leading zeros (at least one), scale = digits after the point,
    precision = max(digits, scale) when there is a fraction; the chunk's type has the most
    integer digits plus the largest scale.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    # numpy for the arithmetic: a Python number in a compute call makes pyarrow import pandas
    body = pc.utf8_ltrim(text, "-")
    point = _ints(pc.find_substring(body, "."))
    length = _ints(pc.utf8_length(body))
    scale = np.where(point < 0, 0, length - point - 1)
    digits = pc.utf8_length(pc.utf8_ltrim(pc.replace_substring(body, ".", ""), "0"))
    ndigits = np.maximum(_ints(digits), 1)
    precision = np.where(scale > 0, np.maximum(ndigits, scale), ndigits)
    whole = int((precision - scale).max()) if len(scale) else 0
    frac = int(scale.max()) if len(scale) else 0
    total = max(whole + frac, 1)
    if total > 76:
        raise DataError("a NUMERIC value has more than 76 digits", hint="CAST it in source.query")
    return (pa.decimal128 if total <= 38 else pa.decimal256)(total, frac)


def _numeric(arr: Any, name: str) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    text = arr.storage if isinstance(arr, pa.ExtensionArray) else arr
    text = text.cast(pa.string())
    if text.null_count == len(text):
        return pa.nulls(len(text))
    valid = text.drop_null()
    ok = pc.match_substring_regex(valid, r"^-?[0-9]+(\.[0-9]+)?$")
    if not pc.all(ok).as_py():
        raise DataError(  # NaN / Infinity: the sqlalchemy path cannot build these either
            f"column '{name}' mixes incompatible types (e.g. numbers and text)",
            hint=f"CAST column '{name}' to one type in source.query",
        )
    return pc.cast(pc.cast(text, _decimal_type(valid)), pa.float64(), safe=False)


# ------------------------------------------------------------------------------ chunks
def _convert(batch: Any, plan: Plan) -> list[Any]:
    import pyarrow as pa

    out = []
    for name, kind, arr in zip(plan.columns, plan.kinds, batch.columns, strict=True):
        if len(arr) == 0 or arr.null_count == len(arr):
            out.append(pa.nulls(len(arr)))  # pyarrow.array of Nones: the null type
            continue
        if kind == "numeric":
            arr = _numeric(arr, name)
        elif kind in _PY_RANGE:
            _check_range(arr, name, kind)
        else:
            if isinstance(arr, pa.ExtensionArray):
                arr = arr.storage
            if kind != "native" and str(arr.type) != kind:
                arr = arr.cast(kind)
        out.append(arr)
    return out


# Python datetimes hold years 1-9999: psycopg refuses anything else (infinity, year 10000),
# and ADBC would hand over overflowed numbers for them.
_PY_RANGE = {
    "timestamp[us]": ("int64", -62135596800000000, 253402300799999999),
    "timestamp[us, tz=UTC]": ("int64", -62135596800000000, 253402300799999999),
    "date32[day]": ("int32", -719162, 2932896),
}


def _check_range(arr: Any, name: str, kind: str) -> None:
    import pyarrow.compute as pc

    storage, low, high = _PY_RANGE[kind]
    if str(arr.type) != kind:
        raise Fallback(f"column '{name}' arrived as {arr.type}, not {kind}")
    bounds = pc.min_max(arr.view(storage))
    lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
    if lo is not None and (lo < low or hi > high):
        raise SourceError(
            f"the source query failed: column '{name}' holds a time outside the years "
            "1-9999 (infinity?), which the snapshot cannot represent",
            hint=f"filter or CAST column '{name}' in source.query",
        )


def _rechunk(batches: Iterator[Any], size: int) -> Iterator[Any]:
    """Batches of exactly ``size`` rows (the last may be shorter), like partitions()."""
    import pyarrow as pa

    buf: list[Any] = []
    held = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        if not buf and batch.num_rows == size:  # SQLite: the driver's batches fit already
            yield batch
            continue
        buf.append(batch)
        held += batch.num_rows
        while held >= size:
            table = pa.Table.from_batches(buf)
            yield table.slice(0, size).combine_chunks().to_batches(max_chunksize=size)[0]
            rest = table.slice(size)
            buf = rest.combine_chunks().to_batches() if rest.num_rows else []
            held = rest.num_rows
    if held:
        yield pa.Table.from_batches(buf).combine_chunks().to_batches()[0]


@dataclass
class Opened:
    """An ADBC database and connection, the dialect and how to report errors."""

    database: Any
    conn: Any
    dialect: str
    target: str
    secret_free: str
    handles: list[Any] = field(default_factory=list)  # statements and readers to close

    def fail(self, exc: Exception) -> QueryFailed:
        text = first_line(_scrub(str(exc), self.target, self.secret_free))
        return QueryFailed(_DRIVER_PREFIX.sub("", text))

    def close(self) -> None:
        for obj in (*reversed(self.handles), self.conn, self.database):
            # closing a broken connection must not hide the first error
            with contextlib.suppress(Exception):
                obj.close()


def open_adbc(url: Any, secret_free: str) -> Opened:
    dialect, target = adbc_target(url)
    return open_target(dialect, target, secret_free)


def open_target(dialect: str, target: str, secret_free: str) -> Opened:
    mod = _driver(dialect)  # first: Fallback when the arrow-db extra is not installed
    import adbc_driver_manager as dm

    database = conn = None
    try:
        database = mod.connect(target)
        conn = dm.AdbcConnection(database)
    except Exception as exc:  # the sqlalchemy path reports connection problems its way
        for obj in (conn, database):
            if obj is not None:
                with contextlib.suppress(Exception):
                    obj.close()
        raise Fallback(
            f"ADBC could not connect: {first_line(_scrub(str(exc), target, secret_free))}"
        ) from None
    return Opened(database, conn, dialect, target, secret_free)


def query_arrow(db: Opened, sql: str, params: tuple[Any, ...], chunk_size: int) -> Any:
    """A RecordBatchReader over ``sql`` (errors: SourceError without secrets)."""
    import adbc_driver_manager as dm
    import pyarrow as pa
    from adbc_driver_manager import _reader

    try:
        stmt = dm.AdbcStatement(db.conn)
        db.handles.append(stmt)
        if db.dialect == "sqlite":
            stmt.set_options(**{"adbc.sqlite.query.batch_rows": str(chunk_size)})
        stmt.set_sql_query(sql)  # no prepare(): with it, SQLite's driver reads 1.5x slower
        if params:
            names = [str(i) for i in range(len(params))]
            stmt.bind(pa.RecordBatch.from_arrays([_one_value(p) for p in params], names=names))
        handle, _rows = _blocking(stmt.execute_query, stmt.cancel)
        reader = _reader.AdbcRecordBatchReader._import_from_c(handle.address)
        db.handles.append(reader)
        return reader
    except Exception as exc:
        raise db.fail(exc) from None


def _one_value(value: float | str) -> Any:
    """A one-element Arrow array built from buffers: ``pyarrow.array`` of Python objects
    imports pandas (a fifth of a second) to look for pandas objects in the list."""
    import struct

    import pyarrow as pa

    if isinstance(value, float):
        data = pa.py_buffer(struct.pack("<d", value))
        return pa.Array.from_buffers(pa.float64(), 1, [None, data])
    data = value.encode()
    offsets = pa.py_buffer(struct.pack("<ii", 0, len(data)))
    return pa.Array.from_buffers(pa.string(), 1, [None, offsets, pa.py_buffer(data)])


def fetch_all(db: Opened, sql: str) -> list[Any]:
    reader = query_arrow(db, sql, (), 1024)
    try:
        table = reader.read_all()
    except Exception as exc:
        raise db.fail(exc) from None
    columns = [c.to_pylist() for c in table.columns]
    return list(zip(*columns, strict=True))


def query_schema(db: Opened, sql: str) -> Any:
    return query_arrow(db, sql, (), 1).schema


class Probe:
    """A query run on a connection of its own, in a thread, while the main read streams.

    Both release the GIL inside the driver, so on two cores the probe costs no wall time.
    ``result`` waits for it; ``cancel`` keeps it from starting, or waits for it.
    """

    def __init__(self, dialect: str, target: str, secret_free: str, sql: str) -> None:
        self._args = (dialect, target, secret_free, sql)
        self._rows: list[Any] | None = None
        self._error: BaseException | None = None
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlrepro-probe", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        dialect, target, secret_free, sql = self._args
        try:
            db = open_target(dialect, target, secret_free)
            try:
                if not self._cancelled.is_set():
                    self._rows = fetch_all(db, sql)
            finally:
                db.close()
        except BaseException as exc:  # handed to the caller by result()
            self._error = exc

    def result(self) -> list[Any]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._rows is not None
        return self._rows

    def cancel(self) -> None:
        """Do not start the probe if it has not started; wait for it if it has.

        A running statement is not cancelled from this thread: ADBC statements are not
        thread-safe, and cancelling one from another thread crashed the process once (a
        SIGINT test, exit -11). The wait is bounded by the probe's one pass.
        """
        self._cancelled.set()
        self._thread.join()


@dataclass
class Plan:
    """How each column of an ADBC batch becomes the sqlalchemy path's column."""

    columns: list[str]
    kinds: list[str]  # int64 | double | bool | string | binary | ... | numeric | native
    classes: Probe | None = None  # SQLite: the probe (``sqlite_classes_sql``), still running
    leading: int = 0  # aggregates in the probe's row before the classes ...
    check: Callable[[tuple[Any, ...]], None] | None = None  # ... handed to this (may raise)

    @property
    def inferred(self) -> bool:
        """The driver infers types from the data (SQLite)."""
        return self.classes is not None

    def sqlite_kinds(self) -> list[str]:
        """Each column's one storage class as an Arrow type (waits for the probe)."""
        assert self.classes is not None
        row = tuple(self.classes.result()[0])
        if self.check is not None:
            self.check(row[: self.leading])
        return _column_kinds_sqlite(self.columns, list(row[self.leading :]))

    def verify(self, schema: Any) -> None:
        """Fallback unless every column held one storage class, the one that streamed."""
        if self.classes is None:
            return
        for name, kind in zip(self.columns, self.sqlite_kinds(), strict=True):
            got = schema.field(name).type if schema is not None else None
            if kind != "null" and got is not None and str(got) not in (kind, "null"):
                raise Fallback(f"column '{name}' holds SQLite {kind} values but read as {got}")


def plan_for(
    db: Opened,
    columns: list[str],
    schema: Any,
    probe: tuple[Probe, int, Callable[[tuple[Any, ...]], None]] | None = None,
) -> Plan:
    """PostgreSQL: kinds from the driver's type names. SQLite: as the driver reads them,
    checked against ``probe`` = (the running probe, its leading aggregates, their check)."""
    if db.dialect == "postgresql":
        return Plan(columns, _column_kinds_pg(schema))
    assert probe is not None
    classes, leading, check = probe
    return Plan(columns, ["native"] * len(columns), classes, leading, check)


def stream_converted(reader: Any, plan: Plan, chunk_size: int, name: str) -> Iterator[Any]:
    """Chunks as the sqlalchemy path's ``_to_batch`` builds them (schema from the first).

    Raises Fallback before yielding anything when the first chunk has a column that is
    NULL throughout while more rows follow; and, SQLite, after the last chunk (or a driver
    error) when the storage-class probe finds a column the reference reader reads otherwise.
    """
    import pyarrow as pa

    chunks = _rechunk(iter(reader), chunk_size)
    schema = None
    try:
        first = next(chunks, None)
        if first is None:
            plan.verify(None)
            return
        arrays = _convert(first, plan)
        # SQLite's driver infers a column's type from its first batch: one that was all NULL
        # there (but has values, says the probe) may arrive in any type later.
        if plan.inferred and first.num_rows >= chunk_size:  # more rows may follow
            names = zip(plan.columns, arrays, strict=True)
            empty = {n for n, a in names if pa.types.is_null(a.type)}
            if empty:
                kinds = dict(zip(plan.columns, plan.sqlite_kinds(), strict=True))
                nulls = [n for n in plan.columns if n in empty and kinds[n] != "null"]
                if nulls:
                    raise Fallback(f"column(s) {nulls} are NULL in the whole first chunk")
        batch = pa.RecordBatch.from_arrays(arrays, names=plan.columns)
        schema = batch.schema
        yield batch
        for raw in chunks:
            yield _conform(_convert(raw, plan), plan.columns, schema)
    except (Fallback, DataError, SourceError):
        raise
    except Exception as exc:  # a driver error while streaming
        if plan.inferred:  # e.g. "Type mismatch": a column mixing storage classes
            plan.verify(schema)
        raise SourceError(
            f"the source query failed while streaming: {first_line(redact(str(exc)))}",
            hint=f"run the query of {name} in your SQL client; or set {READER_VAR}=sqlalchemy",
        ) from None
    plan.verify(schema)


def _conform(arrays: list[Any], columns: list[str], schema: Any) -> Any:
    """Later chunks take the first chunk's types, with the sqlalchemy path's errors."""
    import pyarrow as pa

    out = []
    for name, arr in zip(columns, arrays, strict=True):
        want = schema.field(name).type
        if arr.type != want:
            if pa.types.is_null(arr.type):
                arr = pa.nulls(len(arr), want)
            elif pa.types.is_null(want):
                raise DataError(
                    f"column '{name}' is NULL in the whole first chunk and has values "
                    "later, so its type is unknown when the snapshot starts",
                    hint=f"CAST column '{name}' to its type in source.query, or raise "
                    "source.chunk_size",
                )
            else:
                try:
                    arr = arr.cast(want)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    raise DataError(
                        f"column '{name}' changes type from {want} to {arr.type} part-way "
                        "through the query result",
                        hint=f"CAST column '{name}' to one type in source.query",
                    ) from None
        out.append(arr)
    return pa.RecordBatch.from_arrays(out, names=columns)
