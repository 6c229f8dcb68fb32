"""Reading the source database: the as-of query, a deterministic order, arrow batches.

The only place that connects for the extract stage. sqlalchemy and pyarrow are imported
inside the functions (the CLI starts without them). SQLite and PostgreSQL are read through
ADBC drivers when installed (``core.arrowdb``: the same batches, built without a Python
object per value); the sqlalchemy reader below is the fallback and the reference.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

from mlrepro.core.manifest import Source
from mlrepro.core.sources import connection_error, engine_for, redact, resolve_url
from mlrepro.errors import DataError, SourceError
from mlrepro.guards.safe_text import first_line

# SQLite's normal form of an ISO 8601 text time: UTC, milliseconds (datetime() drops them,
# which would let rows up to a second after as_of into the snapshot).
SQLITE_UTC = "%Y-%m-%d %H:%M:%f"


def build_query(source: Source, dialect: Any, ts_kind: str) -> tuple[str, dict[str, Any]]:
    """SQL that applies ``timestamp_column <= as_of`` and a deterministic ORDER BY."""
    q = dialect.identifier_preparer.quote
    ts = f"mlrepro_src.{q(source.timestamp_column)}"
    as_of = source.as_of_utc()
    value: Any
    text_value = as_of.strftime("%Y-%m-%d %H:%M:%S.") + f"{as_of.microsecond // 1000:03d}"
    if ts_kind == "epoch":
        cond, value = f"{ts} <= :as_of", as_of.timestamp()
    elif ts_kind == "sqlite_text":  # ISO text, normalised to UTC with milliseconds
        cond, value = f"strftime('{SQLITE_UTC}', {ts}) <= :as_of", text_value
    elif ts_kind == "sqlite_either":  # not probed yet: the cut for whichever the rows hold
        cond = (
            f"CASE WHEN typeof({ts}) = 'text' THEN strftime('{SQLITE_UTC}', {ts}) <= "
            f"'{text_value}' ELSE {ts} <= :as_of END"
        )
        value = as_of.timestamp()
    elif dialect.name == "postgresql":  # the session runs in UTC (SET TIME ZONE)
        cond, value = f"{ts} <= :as_of", as_of
    else:  # other drivers may refuse aware datetimes: naive UTC
        cond, value = f"{ts} <= :as_of", as_of.replace(tzinfo=None)
    order = ", ".join(f"mlrepro_src.{q(c)}" for c in source.order_by)
    inner = source.query.strip().rstrip(";")
    sql = f"SELECT * FROM ({inner}) AS mlrepro_src WHERE {cond} ORDER BY {order}"
    return sql, {"as_of": value}


def _probe(conn: Any, source: Source, dialect_name: str) -> tuple[list[str], str]:
    """Column names of the query, and how to compare its timestamp column."""
    import sqlalchemy as sa

    inner = source.query.strip().rstrip(";")
    q = conn.dialect.identifier_preparer.quote
    result = conn.execute(sa.text(f"SELECT * FROM ({inner}) AS mlrepro_src WHERE 1 = 0"))
    columns = list(result.keys())
    _check_columns(columns, source)
    kind = "native"
    if dialect_name == "sqlite":

        def run(sql: str) -> list[Any]:
            return [tuple(r) for r in conn.execute(sa.text(sql)).all()]

        kind = _sqlite_time_kind(run, inner, q(source.timestamp_column), source.timestamp_column)
    return columns, kind


def _check_columns(columns: list[str], source: Source) -> None:
    missing = [c for c in (source.timestamp_column, *source.order_by) if c not in columns]
    if missing:
        import difflib

        close = [
            f"'{m}' -> '{c[0]}'"
            for m in missing
            if (c := difflib.get_close_matches(m, [str(x) for x in columns], n=1))
        ]
        raise DataError(
            f"column(s) {missing} named in source (timestamp_column / order_by) are not in "
            f"the query result; it has: {', '.join(columns[:20])}"
            + (" ..." if len(columns) > 20 else ""),
            hint=("did you mean " + ", ".join(close) + "? " if close else "")
            + "fix source.timestamp_column / source.order_by, or select those columns",
        )


def _sqlite_time_kind(run: Callable[[str], list[Any]], inner: str, ts: str, name: str) -> str:
    """``epoch`` or ``sqlite_text``; refuse values the as_of cut would silently drop.

    SQLite has no time type: a text value it cannot read (``01/02/2024``, an offset without
    a colon) compares as NULL, and text never compares below a number, so such rows would
    vanish from the snapshot without a word.
    """
    rows = run(
        f"SELECT typeof({ts}), COUNT(*), SUM({unreadable_sql(ts)}) "
        f"FROM ({inner}) AS mlrepro_src WHERE {ts} IS NOT NULL GROUP BY typeof({ts})"
    )
    counts = {kind: (int(n), int(bad or 0)) for kind, n, bad in rows}
    numbers = sum(counts.get(k, (0, 0))[0] for k in ("integer", "real"))
    texts, unreadable = counts.get("text", (0, 0))
    return sqlite_time_verdict(numbers, texts, unreadable, name)


def unreadable_sql(ts: str) -> str:
    """True for a value SQLite's date functions cannot read (then ``strftime`` is NULL too:
    both parse with the same routine; ``julianday`` skips formatting the text, a third of
    the probe's time; tested on odd values)."""
    return f"julianday({ts}) IS NULL"


def sqlite_time_counts(ts: str) -> list[str]:
    """SQL aggregates (numbers, texts, unreadable texts) of a timestamp column, for one pass."""
    return [
        f"SUM(typeof({ts}) IN ('integer', 'real'))",
        f"SUM(typeof({ts}) = 'text')",
        f"SUM(typeof({ts}) = 'text' AND {unreadable_sql(ts)})",
    ]


def sqlite_time_verdict(numbers: int, texts: int, unreadable: int, name: str) -> str:
    """``epoch`` or ``sqlite_text`` from the counts; DataError for what the cut would drop."""
    if numbers and texts:
        raise DataError(
            f"timestamp column '{name}' mixes numbers ({numbers} rows) and text ({texts} rows)",
            hint=f"store '{name}' one way (ISO 8601 text or epoch seconds), or convert it in "
            "source.query",
        )
    if unreadable:
        raise DataError(
            f"timestamp column '{name}': {unreadable} of {texts} value(s) are not ISO 8601 "
            "times SQLite can read, so the as_of cut would silently drop those rows",
            hint="write times like '2024-01-31T10:00:00+02:00' (offset with a colon) or as "
            "epoch seconds, or convert them in source.query",
        )
    return "epoch" if numbers else "sqlite_text"


def _to_batch(rows: list[Any], columns: list[str], schema: Any) -> Any:
    import pyarrow as pa

    cols = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
    arrays = []
    for i, name in enumerate(columns):
        try:
            arr = pa.array(cols[i])
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            raise DataError(
                f"column '{name}' mixes incompatible types (e.g. numbers and text)",
                hint=f"CAST column '{name}' to one type in source.query",
            ) from None
        if pa.types.is_decimal(arr.type):  # NUMERIC/DECIMAL: models need floats
            arr = arr.cast(pa.float64(), safe=False)
        if schema is not None:
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
        arrays.append(arr)
    return pa.RecordBatch.from_arrays(arrays, names=columns)


class KeyCheck:
    """Counts rows whose ``order_by`` key equals the row before them.

    The rows arrive sorted by the key, so equal keys are adjacent: one streaming pass, also
    across chunk boundaries. NULL keys count as equal to each other (their order is just as
    undefined).
    """

    def __init__(self, columns: tuple[str, ...]) -> None:
        self.columns = columns
        self.rows = 0
        self.repeats = 0
        self.first: int | None = None  # snapshot row of the first repeat
        self._last: list[Any] | None = None  # the previous chunk's last key (1-row arrays)

    def update(self, batch: Any) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        n = batch.num_rows
        if n == 0:
            return
        same = None
        for i, name in enumerate(self.columns):
            col = batch.column(name)
            if self._last:
                last = self._last[i]
                if last.type != col.type:  # an all-NULL first chunk: its type is null
                    last = last.cast(col.type) if pa.types.is_null(last.type) else last
                    col = col.cast(last.type) if last.type != col.type else col
                prev, cur = pa.concat_arrays([last, col[:-1]]), col
            else:
                prev, cur = col[:-1], col[1:]
            if len(cur) == 0:
                same = pa.nulls(0, pa.bool_())
                break
            # Kleene logic throughout, no Python scalars: pyarrow imports pandas (a fifth
            # of a second) to convert one. A NULL ``eq`` (one side NULL) counts as unequal.
            both_null = pc.and_(pc.is_null(prev), pc.is_null(cur))
            if pa.types.is_null(cur.type):
                eq = both_null
            else:
                eq = pc.or_kleene(pc.equal(prev, cur), both_null)
            same = eq if same is None else pc.and_kleene(same, eq)
        if same is not None and len(same):
            count = pc.sum(same).as_py() or 0
            if count and self.first is None:
                offset = 0 if self._last else 1
                self.first = self.rows + offset + pc.indices_nonzero(same)[0].as_py()
            self.repeats += count
        self._last = [batch.column(name)[-1:] for name in self.columns]
        self.rows += n

    def check(self) -> None:
        if not self.repeats:
            return
        keys = ", ".join(self.columns)
        first = self.first or 0
        raise DataError(
            f"source.order_by [{keys}] is not a unique key: {self.repeats} of {self.rows} rows "
            f"have the same key as the row before them (first: snapshot rows {first - 1} and "
            f"{first}), so the database may return them in any order and the snapshot is not "
            "reproducible",
            hint="add columns to source.order_by until it is unique (e.g. the table's primary key)",
        )


def _stream(
    conn: Any, source: Source, dialect: Any, on_progress: Callable[[int], None] | None
) -> Iterator[Any]:
    import sqlalchemy as sa

    if dialect.name == "postgresql":
        conn.execute(sa.text("SET TIME ZONE 'UTC'"))
    columns, kind = _probe(conn, source, dialect.name)
    sql, params = build_query(source, dialect, kind)
    result = conn.execution_options(stream_results=True, yield_per=source.chunk_size)
    result = result.execute(sa.text(sql), params)
    schema = None
    keys = KeyCheck(source.order_by)
    for part in result.partitions(source.chunk_size):
        batch = _to_batch(part, columns, schema)
        if schema is None:
            schema = batch.schema
        keys.update(batch)
        if on_progress:
            on_progress(batch.num_rows)
        yield batch
    if schema is None:
        yield _to_batch([], columns, None)
    keys.check()


class Restart:
    """Yielded by ``iter_batches``: discard every batch before it, the snapshot starts over.

    The ADBC reader learns only once its rows have streamed that a column mixes SQLite
    storage classes (its probe runs beside the read); the reference reader then reads the
    source again from the start. Rare: the price of a probe that costs no wall time.
    """

    def __repr__(self) -> str:
        return "RESTART"


RESTART = Restart()


def iter_batches(
    source: Source, root: Path, on_progress: Callable[[int], None] | None = None
) -> Generator[Any, None, None]:
    """Yield arrow RecordBatches of the as-of snapshot, ``chunk_size`` rows at a time.

    May yield ``RESTART`` once: every batch yielded before it must be discarded.
    """
    import sqlalchemy as sa

    from mlrepro.core import arrowdb

    secret_free = redact(source.url)
    engine = engine_for(resolve_url(source.url, root), secret_free)
    try:
        choice = arrowdb.reader_choice()
        if choice != "sqlalchemy":
            sent, rows = 0, 0
            try:
                arrow = _arrow_stream(engine, source, secret_free, on_progress)
                with contextlib.closing(arrow):  # closed when this generator is
                    for batch in arrow:
                        sent, rows = sent + 1, rows + batch.num_rows
                        yield batch
                return
            except arrowdb.Fallback as why:
                if choice == "adbc" and isinstance(why, arrowdb.QueryFailed):
                    raise why.error() from None
                if choice == "adbc":
                    raise SourceError(
                        f"{arrowdb.READER_VAR}=adbc, but the ADBC reader cannot read this "
                        f"source exactly like the sqlalchemy reader: {why}",
                        hint=f"unset {arrowdb.READER_VAR} to fall back automatically",
                    ) from None
            if sent:  # batches went out: the consumer discards them, the count starts over
                if on_progress and rows:
                    on_progress(-rows)
                yield RESTART
        try:
            conn = engine.connect()
        except sa.exc.DBAPIError as exc:  # server down, wrong password, unknown database...
            raise connection_error(exc, secret_free) from None
        with conn:
            try:
                yield from _stream(conn, source, engine.dialect, on_progress)
            except sa.exc.SQLAlchemyError as exc:  # connected, but the query failed
                raise SourceError(
                    f"the source query failed: {first_line(getattr(exc, 'orig', None) or exc)}",
                    hint="check source.query (run it in your SQL client) and the table names",
                ) from None
    finally:
        engine.dispose()


def _arrow_stream(
    engine: Any, source: Source, secret_free: str, on_progress: Callable[[int], None] | None
) -> Generator[Any, None, None]:
    """The as-of snapshot through an ADBC driver, batch for batch what ``_stream`` yields.

    SQLite: the as-of cut is written for numbers and ISO text alike; the timestamp column's
    counts (``sqlite_time_verdict``) and every column's storage classes are probed on a second
    connection while the rows stream, and checked at the end (a DataError is the reference
    reader's own; a Fallback means the caller restarts through sqlalchemy).
    """
    from mlrepro.core import arrowdb

    db = arrowdb.open_adbc(engine.url, secret_free)
    probe, probed = None, None
    try:
        inner = source.query.strip().rstrip(";")
        q = engine.dialect.identifier_preparer.quote
        if db.dialect == "postgresql":
            arrowdb.fetch_all(db, "SET TIME ZONE 'UTC'")
        schema = arrowdb.query_schema(db, f"SELECT * FROM ({inner}) AS mlrepro_src WHERE 1 = 0")
        columns = list(schema.names)
        _check_columns(columns, source)
        kind = "native"
        if db.dialect == "sqlite":  # one pass beside the read: the time cut's counts, classes
            ts = source.timestamp_column
            kind = "sqlite_either"
            times = sqlite_time_counts(f"mlrepro_src.{q(ts)}")
            sql = arrowdb.sqlite_classes_sql(columns, inner, q, times)

            def time_verdict(counts: tuple[Any, ...]) -> None:
                numbers, texts, unreadable = (int(v or 0) for v in counts)
                sqlite_time_verdict(numbers, texts, unreadable, ts)

            probe = arrowdb.Probe(db.dialect, db.target, secret_free, sql)
            probed = (probe, len(times), time_verdict)
        plan = arrowdb.plan_for(db, columns, schema, probed)
        sql, params = build_query(source, engine.dialect, kind)
        head, _, tail = sql.rpartition(":as_of")
        value = params["as_of"]
        if db.dialect == "postgresql":  # a typed parameter, as psycopg sends a datetime
            sql, value = head + "CAST($1 AS TIMESTAMPTZ)" + tail, value.isoformat()
        else:
            sql = head + "?" + tail
        reader = arrowdb.query_arrow(db, sql, (value,), source.chunk_size)
        keys = KeyCheck(source.order_by)
        empty = True
        for batch in arrowdb.stream_converted(reader, plan, source.chunk_size, "source.query"):
            empty = False
            keys.update(batch)
            if on_progress:
                on_progress(batch.num_rows)
            yield batch
        if empty:
            yield _to_batch([], columns, None)
        keys.check()
    finally:
        if probe is not None:
            probe.cancel()
        db.close()
