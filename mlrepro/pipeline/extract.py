"""extract: the as-of snapshot streamed from the source (``core.database``), summarised for
its schema while it streams."""

from __future__ import annotations

import contextlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

MAX_CATEGORIES = 100  # string columns with at most this many values get an isin check
# SQLite's normal form of an ISO 8601 text time: UTC, milliseconds (datetime() drops them,
# which would let rows up to a second after as_of into the snapshot).
SQLITE_UTC = "%Y-%m-%d %H:%M:%f"


@dataclass
class ColumnSummary:
    arrow_type: Any = None
    nulls: int = 0
    categories: set[str] | None = field(default_factory=set)


def summarise(batch: Any, summary: dict[str, ColumnSummary]) -> None:
    """Accumulate what the stored schema needs: types, nulls, small category sets."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for name, col in zip(batch.schema.names, batch.columns, strict=True):
        s = summary.setdefault(name, ColumnSummary())
        if s.arrow_type is None or pa.types.is_null(s.arrow_type):
            s.arrow_type = col.type
        s.nulls += col.null_count
        if s.categories is not None and (
            pa.types.is_string(col.type) or pa.types.is_large_string(col.type)
        ):
            s.categories.update(v for v in pc.unique(col).to_pylist() if v is not None)
            if len(s.categories) > MAX_CATEGORIES:
                s.categories = None


def _text_or_bytes(arrow_type: Any) -> bool:
    import pyarrow as pa

    t = arrow_type
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t))


class SnapshotWriter:
    """The streamed snapshot: each batch written to parquet, hashed and summarised in order
    on one worker thread, while the reader fetches the next.

    The parquet encoder, the hash and the summary's kernels release the GIL, and so does an
    ADBC reader: on two cores writing costs little wall time. At most ``AHEAD`` batches wait
    (memory stays bounded). An error on the worker (a full disk) is raised, unchanged, by the
    next ``add`` or by ``finish``; leaving the ``with`` block on an error waits for the
    worker and closes the file, so the caller can remove it.
    """

    AHEAD = 2

    def __init__(self, path: Path) -> None:
        # The worker's modules are imported here, on the caller's thread: two threads
        # importing the same modules at once can meet half-initialised ones.
        import pyarrow.compute  # noqa: F401
        import pyarrow.parquet  # noqa: F401

        self.path = path
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="mlrepro-snapshot")
        self._pending: deque[Future[None]] = deque()
        self._writer: Any = None
        self._fresh()

    def _fresh(self) -> None:
        from mlrepro.fingerprint import FrameHasher

        self.hasher = FrameHasher()
        self.summary: dict[str, ColumnSummary] = {}

    def _write(self, batch: Any) -> None:  # on the worker, in submission order
        import pyarrow.parquet as pq

        if self._writer is None:  # dictionaries for text only: numbers rarely repeat enough
            text = [f.name for f in batch.schema if _text_or_bytes(f.type)]
            self._writer = pq.ParquetWriter(self.path, batch.schema, use_dictionary=text)
        self._writer.write_batch(batch)
        self.hasher.update(batch)
        summarise(batch, self.summary)

    def add(self, batch: Any) -> None:
        self._pending.append(self._pool.submit(self._write, batch))
        while len(self._pending) > self.AHEAD:
            self._pending[0].result()  # popped once done: _drain must see a running write
            self._pending.popleft()

    def _drain(self) -> None:
        try:
            while self._pending:
                self._pending[0].result()
                self._pending.popleft()
        finally:
            # also when the wait was interrupted (Ctrl-C, an error): the worker must be idle
            # before the writer closes, or the close races a write (a half-written row
            # group, then a crash)
            self._settle()

    def _settle(self) -> None:
        """Cancel the writes not started, wait for the running one, close the file."""
        for pending in self._pending:
            # not futures.wait(): a future cancelled before it ran never counts as done there
            if not pending.cancel():
                with contextlib.suppress(Exception):
                    pending.exception()  # waits; its error, if any, is not the one to report
        self._pending.clear()
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()

    def restart(self) -> None:
        """Forget every batch so far (the source is read again from the start)."""
        self._drain()
        self.path.unlink(missing_ok=True)
        self._fresh()

    def finish(self) -> None:
        """Wait for the last batch and close the file."""
        self._drain()
        self._pool.shutdown()

    def __enter__(self) -> SnapshotWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.finish()
            return
        with contextlib.suppress(Exception):  # the first error is the one to report
            self._settle()
        self._pool.shutdown(wait=True, cancel_futures=True)


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
