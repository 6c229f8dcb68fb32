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
    name = "adbc_driver_sqlite.dbapi" if dialect == "sqlite" else "adbc_driver_postgresql.dbapi"
    try:
        mod = importlib.import_module(name)
    except ImportError:
        raise Fallback(
            f"the ADBC driver for {dialect} is not installed (pip install 'mlrepro[arrow-db]')"
        ) from None
    return mod


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


@dataclass
class Plan:
    """How each column of an ADBC batch becomes the sqlalchemy path's column."""

    columns: list[str]
    kinds: list[str]  # int64 | double | bool | string | binary | ... | numeric | null
    inferred: bool = False  # the driver infers types from the data (SQLite)


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


def sqlite_probe_sql(
    columns: list[str], inner: str, quote: Callable[[str], str], first: list[str]
) -> str:
    """One pass: the ``first`` aggregates, then each column's SQLite storage classes."""
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
def _decimal_type(text: Any) -> Any:
    """The decimal type ``pyarrow.array`` infers for these values as Python Decimals.

    Per value: digits without leading zeros (at least one), scale = digits after the point,
    precision = max(digits, scale) when there is a fraction; the chunk's type has the most
    integer digits plus the largest scale.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    body = pc.utf8_ltrim(text, "-")
    point = pc.find_substring(body, ".")
    length = pc.utf8_length(body)
    scale = pc.if_else(pc.less(point, 0), 0, pc.subtract(pc.subtract(length, point), 1))
    digits = pc.utf8_length(pc.utf8_ltrim(pc.replace_substring(body, ".", ""), "0"))
    digits = pc.max_element_wise(digits, 1)
    precision = pc.if_else(pc.greater(scale, 0), pc.max_element_wise(digits, scale), digits)
    whole = pc.max(pc.subtract(precision, scale)).as_py() or 0
    frac = pc.max(scale).as_py() or 0
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
            if str(arr.type) != kind:
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
    """An ADBC connection with its cursor, the dialect and how to report errors."""

    conn: Any
    dialect: str
    target: str
    secret_free: str

    def fail(self, exc: Exception) -> QueryFailed:
        text = first_line(_scrub(str(exc), self.target, self.secret_free))
        return QueryFailed(_DRIVER_PREFIX.sub("", text))

    cursors: list[Any] = field(default_factory=list)

    def cursor(self) -> Any:
        cur = self.conn.cursor()
        self.cursors.append(cur)
        return cur

    def close(self) -> None:
        for obj in (*self.cursors, self.conn):
            # closing a broken connection must not hide the first error
            with contextlib.suppress(Exception):
                obj.close()


def open_adbc(url: Any, secret_free: str) -> Opened:
    dialect, target = adbc_target(url)
    mod = _driver(dialect)
    try:
        conn = mod.connect(target)
    except Exception as exc:  # the sqlalchemy path reports connection problems its way
        raise Fallback(
            f"ADBC could not connect: {first_line(_scrub(str(exc), target, secret_free))}"
        ) from None
    return Opened(conn, dialect, target, secret_free)


def query_arrow(db: Opened, sql: str, params: tuple[Any, ...], chunk_size: int) -> Any:
    """A RecordBatchReader over ``sql`` (errors: SourceError without secrets)."""
    cur = db.cursor()
    try:
        if db.dialect == "sqlite":
            cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(chunk_size)})
        cur.execute(sql, params or None)
        return cur.fetch_record_batch()
    except Exception as exc:
        raise db.fail(exc) from None


def fetch_all(db: Opened, sql: str) -> list[Any]:
    cur = db.cursor()
    try:
        cur.execute(sql)
        return [tuple(r) for r in cur.fetchall()]
    except Exception as exc:
        raise db.fail(exc) from None


def query_schema(db: Opened, sql: str) -> Any:
    return query_arrow(db, sql, (), 1).schema


def plan_for(db: Opened, columns: list[str], schema: Any, classes: list[Any] | None) -> Plan:
    if db.dialect == "postgresql":
        return Plan(columns, _column_kinds_pg(schema))
    kinds = _column_kinds_sqlite(columns, classes or [None] * len(columns))
    return Plan(columns, kinds, inferred=True)


def stream_converted(reader: Any, plan: Plan, chunk_size: int, name: str) -> Iterator[Any]:
    """Chunks as the sqlalchemy path's ``_to_batch`` builds them (schema from the first).

    Raises Fallback before yielding anything when the first chunk has a column that is
    NULL throughout while more rows follow.
    """
    import pyarrow as pa

    chunks = _rechunk(iter(reader), chunk_size)
    schema = None
    try:
        first = next(chunks, None)
        if first is None:
            return
        arrays = _convert(first, plan)
        # SQLite's driver infers a column's type from its first batch: one that was all NULL
        # there (but has values, says the probe) may arrive in any type later.
        nulls = [
            n
            for n, k, a in zip(plan.columns, plan.kinds, arrays, strict=True)
            if pa.types.is_null(a.type) and k != "null" and plan.inferred
        ]
        if nulls and first.num_rows >= chunk_size:  # more rows may follow
            raise Fallback(f"column(s) {nulls} are NULL in the whole first chunk")
        batch = pa.RecordBatch.from_arrays(arrays, names=plan.columns)
        schema = batch.schema
        yield batch
        for raw in chunks:
            yield _conform(_convert(raw, plan), plan.columns, schema)
    except (Fallback, DataError, SourceError):
        raise
    except Exception as exc:  # a driver error while streaming
        raise SourceError(
            f"the source query failed while streaming: {first_line(redact(str(exc)))}",
            hint=f"run the query of {name} in your SQL client; or set {READER_VAR}=sqlalchemy",
        ) from None


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
