"""Streaming batch I/O for predict: read inputs in chunks, write outputs incrementally.

Outputs appear atomically: files are written to a temp file and renamed when complete;
database tables are written inside one transaction.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from mlrepro.core import atomic
from mlrepro.core.sources import connection_error, engine_for, redact, resolve_url
from mlrepro.errors import DataError, UsageError

FILE_FORMATS = (".csv", ".parquet", ".pq")


def _format(path: Path, what: str) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise UsageError(
        f"{what} {path.name}: unsupported file type '{suffix or '(none)'}'",
        hint="use a .csv or .parquet file",
    )


# pandas' default missing-value markers ("NA", "null", "n/a", ...), for non-text CSV columns
_DEFAULT_NA = sorted(
    {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN"}
    | {"<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}
)


def read_chunks(
    path: Path, chunk_rows: int, encoding: str = "utf-8", text_columns: Collection[str] = ()
) -> Iterator[pd.DataFrame]:
    """Chunks of a CSV or parquet file.

    CSV cells of ``text_columns`` (columns the training data held as text) are read as
    written: never parsed as numbers (``02134``), and only an empty cell is missing (``NA``
    and ``None`` are values). Other columns get pandas' usual parsing.
    """
    path = Path(path)
    fmt = _format(path, "input")
    if not path.is_file():
        raise UsageError(f"input file {path} does not exist", hint="check the --input path")
    if fmt == "csv":
        import codecs

        try:
            codecs.lookup(encoding)
        except LookupError:
            raise UsageError(
                f"unknown text encoding '{encoding}'", hint="pass e.g. --encoding latin-1"
            ) from None
    if path.stat().st_size == 0:
        raise DataError(f"input file {path.name} is empty", hint="provide a file with a header row")
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            # Buffered page reads: memory follows the chunk, not the (maybe huge) row group.
            pf = pq.ParquetFile(path, buffer_size=1 << 20, pre_buffer=False)
        except Exception as exc:
            raise DataError(
                f"input file {path.name} is not a readable parquet file ({type(exc).__name__})",
                hint="check that the file is complete and really parquet",
            ) from None
        for batch in pf.iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()
        if pf.metadata.num_rows == 0:
            yield pf.schema_arrow.empty_table().to_pandas()
        return
    try:
        header = _check_header(path, encoding)
        text = set(text_columns) & set(header)
        reader = pd.read_csv(
            path,
            chunksize=chunk_rows,
            encoding=encoding,
            dtype={c: str for c in text},
            keep_default_na=False,
            na_values={c: [""] if c in text else _DEFAULT_NA for c in header},
        )
        first = True
        for chunk in reader:
            first = False
            yield chunk
        if first:
            yield pd.DataFrame()
    except UnicodeDecodeError:
        raise DataError(
            f"input file {path.name} is not valid {encoding} text",
            hint="re-save the file as UTF-8, or pass --encoding (e.g. latin-1)",
        ) from None
    except pd.errors.EmptyDataError:
        raise DataError(
            f"input file {path.name} has no columns", hint="provide a CSV with a header row"
        ) from None
    except pd.errors.ParserError as exc:
        raise DataError(
            f"input file {path.name} is not valid CSV: {str(exc).splitlines()[0][:200]}",
            hint="check quoting and the number of fields per line",
        ) from None


def _check_header(path: Path, encoding: str) -> list[str]:
    """The header; refuses one that repeats a name (pandas would silently rename the copy)."""
    import csv

    with open(path, encoding=encoding, newline="") as fh:
        try:
            header = next(csv.reader(fh), [])
        except csv.Error as exc:
            raise DataError(
                f"input file {path.name} is not valid CSV: {exc}",
                hint="check the header row (quoting, NUL bytes)",
            ) from None
    counts = collections.Counter(header)
    dupes = sorted(name for name, n in counts.items() if n > 1)
    if dupes:
        raise DataError(
            f"input file {path.name}: the header names column(s) {dupes[:5]} more than once",
            hint="give every column a unique name in the header row",
        )
    return header


def read_query_chunks(url: str, query: str, root: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    import sqlalchemy as sa

    secret_free = redact(url)
    engine = engine_for(resolve_url(url, root, "predict.input_url"), secret_free, "--url")
    try:
        try:
            conn = engine.connect()
        except sa.exc.DBAPIError as exc:
            raise connection_error(exc, secret_free) from None
        with conn:
            try:
                result = conn.execution_options(stream_results=True, yield_per=chunk_rows).execute(
                    sa.text(query)
                )
                cols = list(result.keys())
                empty = True
                for part in result.partitions(chunk_rows):
                    empty = False
                    yield pd.DataFrame.from_records(part, columns=cols)
                if empty:
                    yield pd.DataFrame(columns=cols)
            except sa.exc.DBAPIError as exc:
                first = redact(str(getattr(exc, "orig", exc))).strip().splitlines()
                raise DataError(
                    f"the prediction query failed: {first[0] if first else type(exc).__name__}",
                    hint="check the query and table names",
                ) from None
    finally:
        engine.dispose()


PARTIAL = ".partial"


class FileWriter:
    """Incremental CSV/parquet writer that publishes the file only on ``close``."""

    def __init__(self, path: Path, metadata: dict[str, str] | None = None) -> None:
        self.path = Path(path)
        self.format = _format(self.path, "output")
        self.metadata = metadata or {}
        self._stack = contextlib.ExitStack()
        # a killed predict leaves its .tmp-<pid>-*.partial here: remove those of dead pids
        atomic.clean_stale(self.path.parent, suffix=PARTIAL)
        self._tmp = self._stack.enter_context(atomic.temp_path(self.path.parent, PARTIAL))
        self._writer: Any = None
        self._schema: Any = None
        self.rows = 0

    def write(self, df: pd.DataFrame) -> None:
        if self.format == "csv":
            df.to_csv(
                self._tmp, mode="a", header=self.rows == 0 and self._writer is None, index=False
            )
            self._writer = True
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(df, preserve_index=False)
            if self._writer is None:
                meta = {
                    **(table.schema.metadata or {}),
                    **{k.encode(): v.encode() for k, v in self.metadata.items()},
                }
                self._schema = table.schema.with_metadata(meta)
                self._writer = pq.ParquetWriter(self._tmp, self._schema)
            self._writer.write_table(table.cast(self._schema))
        self.rows += len(df)

    def close(self) -> None:
        if self.format == "parquet" and self._writer is not None:
            self._writer.close()
        atomic.commit(self._tmp, self.path)
        self._stack.close()

    def abort(self) -> None:
        if self.format == "parquet" and self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        self._stack.close()


class TableWriter:
    """Writes predictions to a database table inside one transaction (all or nothing)."""

    def __init__(self, url: str, table: str, root: Path) -> None:
        self.secret_free = redact(url)
        self.engine = engine_for(
            resolve_url(url, root, "predict.output_url"),
            self.secret_free,
            "--url",
            must_exist=False,
        )
        self.table = table
        try:
            self.conn = self.engine.connect()
        except Exception as exc:  # unreachable server, bad credentials
            raise connection_error(exc, self.secret_free) from None
        self.tx = self.conn.begin()
        self.rows = 0

    def write(self, df: pd.DataFrame) -> None:
        df.to_sql(
            self.table, self.conn, if_exists="replace" if self.rows == 0 else "append", index=False
        )
        self.rows += len(df)

    def close(self) -> None:
        self.tx.commit()
        self.conn.close()
        self.engine.dispose()

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.tx.rollback()
            self.conn.close()
        self.engine.dispose()


class BeforePublish:
    """Wrap a writer so that ``hook`` runs right before its output replaces the old one."""

    def __init__(self, writer: Any, hook: Any) -> None:
        self.writer, self.hook = writer, hook

    def write(self, df: pd.DataFrame) -> None:
        self.writer.write(df)

    def close(self) -> None:
        self.hook()
        self.writer.close()

    def abort(self) -> None:
        self.writer.abort()


def predictions_writer(
    *, output: Path | None, table: str | None, url: str, root: Path, model_fingerprint: str
) -> Any:
    """The writer of a predictions file (tagged with the model's fingerprint) or table."""
    if table is not None:
        return TableWriter(url, table, root)
    assert output is not None
    return FileWriter(output, {"mlrepro_model_fingerprint": model_fingerprint})


class TextRejects:
    """A rejects writer that puts back each rejected cell's text as the CSV file holds it.

    The rows handed to ``write`` were parsed for the model: an integer cell of a column that
    also holds ``inf`` comes back as ``7.0``. This reads the same file again, every cell as
    text (only as far as the last rejected row, in order), and replaces the input columns of
    the rejected rows with it. An empty cell stays missing.
    """

    def __init__(self, writer: Any, path: Path, chunk_rows: int, encoding: str = "utf-8") -> None:
        self.writer = writer
        self.path, self.chunk_rows, self.encoding = Path(path), chunk_rows, encoding
        self._reader: Any = None
        self._chunk: pd.DataFrame | None = None
        self._start = 0  # input row number of the first row of ``_chunk``

    def _text_rows(self, rows: list[int]) -> pd.DataFrame:
        if self._reader is None:
            self._reader = iter(
                pd.read_csv(
                    self.path,
                    chunksize=self.chunk_rows,
                    encoding=self.encoding,
                    dtype=str,
                    keep_default_na=False,
                    na_values=[""],
                )
            )
        parts = []
        for row in rows:
            while self._chunk is None or row >= self._start + len(self._chunk):
                if self._chunk is not None:
                    self._start += len(self._chunk)
                self._chunk = next(self._reader)
            parts.append(self._chunk.iloc[row - self._start])
        return pd.DataFrame(parts).reset_index(drop=True)

    def write(self, df: pd.DataFrame) -> None:
        if len(df):
            text = self._text_rows([int(r) for r in df["row"]])
            df = df.reset_index(drop=True).copy()
            for col in df.columns:
                if col in text.columns and col not in ("row", "reason"):
                    df[col] = text[col].astype("string").to_numpy()
        self.writer.write(df)

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        self.writer.abort()
