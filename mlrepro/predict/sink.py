"""The invalid-row policy and the sink; ``run_prediction`` over an engine (local or Dask).

Scoring a chunk (``predict.scoring``) is separate from applying the ``--on-invalid`` policy
and writing (``PredictionSink``), so every engine (``local_engine`` here, ``dask_engine``)
shares the writing side and produces identical outputs. pandas is imported only when
predicting, so the CLI can check options with ``check_policy`` cheaply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

from mlrepro.errors import DataError, UsageError
from mlrepro.fingerprint import FrameHasher
from mlrepro.predict.contract import ignored_columns
from mlrepro.predict.prefetch import prefetch

if TYPE_CHECKING:
    from mlrepro.predict.contract import Contract
    from mlrepro.predict.scoring import ChunkResult

ON_INVALID = ("fail", "skip", "quarantine")


def check_policy(on_invalid: str, has_rejects: bool) -> None:
    """Refuse an unknown ``--on-invalid`` policy, or quarantine without a rejects file."""
    if on_invalid not in ON_INVALID:
        raise UsageError(
            f"--on-invalid {on_invalid!r} is not valid", hint=f"use one of {', '.join(ON_INVALID)}"
        )
    if on_invalid == "quarantine" and not has_rejects:
        raise UsageError("--on-invalid quarantine needs a rejects file", hint="pass --rejects PATH")


class PredictionSink:
    """Applies the invalid-row policy to scored chunks, in input order, and writes them.

    Row numbers in reasons and in the rejects file count from 0 over the whole input.
    """

    def __init__(
        self,
        writer: Any,
        contract: Contract,
        *,
        on_invalid: str = "fail",
        rejects_writer: Any = None,
        on_progress: Callable[[int], None] | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        check_policy(on_invalid, rejects_writer is not None)
        self.writer, self.rejects_writer = writer, rejects_writer
        self.contract, self.on_invalid = contract, on_invalid
        self.on_progress, self.warn = on_progress, warn
        self.hasher = FrameHasher()
        self.rows = self.predicted = self.rejected = 0
        self._warned = False
        self._empty: Any = None  # column layout for an output with no predicted rows
        self._empty_rejects: Any = None

    def add(self, result: ChunkResult) -> None:
        if result.extra and not self._warned and self.warn:
            self.warn(ignored_columns(result.extra))
            self._warned = True
        bad = result.rejects
        if len(bad) and self.on_invalid == "fail":
            from mlrepro.predict.scoring import rejected_error

            reasons = dict(zip(bad["row"].tolist(), bad["reason"].tolist(), strict=True))
            raise rejected_error(reasons, self.rows)
        out = result.predictions
        if len(out):
            self.writer.write(out)
            self.hasher.update(out)
        elif self._empty is None:
            self._empty = out
        if self.rejects_writer is not None:
            if len(bad):
                self.rejects_writer.write(bad.assign(row=bad["row"] + self.rows))
            elif self._empty_rejects is None:
                self._empty_rejects = bad
        self.rows += result.rows
        self.predicted += len(out)
        self.rejected += len(bad)
        if self.on_progress:
            self.on_progress(result.rows)

    def close(self) -> dict[str, Any]:
        """Publish the outputs; returns counts and the fingerprint of what was written."""
        if self.rows == 0:
            raise DataError("prediction input has no rows", hint="provide at least one row")
        if self.predicted == 0 and self._empty is not None:
            self.writer.write(self._empty)
            self.hasher.update(self._empty)
        self.writer.close()
        if self.rejects_writer is not None:
            if self.rejected == 0 and self._empty_rejects is not None:
                self.rejects_writer.write(self._empty_rejects)  # no stale rejects file
            self.rejects_writer.close()
        return {
            "rows": self.rows,
            "predicted": self.predicted,
            "rejected": self.rejected,
            "fingerprint": self.hasher.hexdigest(),
            "model_fingerprint": self.contract.model_fingerprint,
        }

    def abort(self) -> None:
        self.writer.abort()
        if self.rejects_writer is not None:
            self.rejects_writer.abort()


def consume(sink: PredictionSink, results: Iterable[ChunkResult]) -> dict[str, Any]:
    """Feed scored chunks to ``sink``; on any error nothing is published."""
    try:
        for result in results:
            sink.add(result)
        return sink.close()
    except BaseException:
        sink.abort()
        raise


def open_sink(
    writer: Any,
    contract: Contract,
    on_invalid: str,
    rejects_writer: Any,
    on_progress: Callable[[int], None] | None,
    warn: Callable[[str], None] | None,
) -> PredictionSink:
    """A PredictionSink; if the options are refused, the writers are aborted (no temp file)."""
    try:
        return PredictionSink(
            writer,
            contract,
            on_invalid=on_invalid,
            rejects_writer=rejects_writer,
            on_progress=on_progress,
            warn=warn,
        )
    except BaseException:
        writer.abort()
        if rejects_writer is not None:
            rejects_writer.abort()
        raise


#: An engine scores chunks: (pipeline, contract, chunks, keep, isolate) -> a context
#: manager yielding ChunkResults in input order.
Engine = Callable[..., AbstractContextManager[Iterable["ChunkResult"]]]


@contextmanager
def local_engine(
    pipeline: Any, contract: Contract, chunks: Iterable[Any], keep: tuple[str, ...], isolate: bool
) -> Iterator[Iterable[ChunkResult]]:
    """Score in this process: three threads a chunk apart (read + validate | predict | write).

    The model releases the GIL in its numeric kernels, so the other two overlap with it.
    """
    from mlrepro.predict.contract import check_chunk
    from mlrepro.predict.scoring import predict_checked

    checked = prefetch(
        (check_chunk(c, contract, keep) for c in with_columns(chunks)), name="mlrepro-read"
    )
    scored = (predict_checked(pipeline, c, contract, isolate=isolate) for c in checked)
    yield prefetch(scored, name="mlrepro-predict")


def run_prediction(
    pipeline: Any,
    contract: Contract,
    chunks: Iterable[Any],
    writer: Any,
    *,
    on_invalid: str = "fail",
    keep: tuple[str, ...] = (),
    rejects_writer: Any = None,
    on_progress: Callable[[int], None] | None = None,
    warn: Callable[[str], None] | None = None,
    engine: Engine = local_engine,
) -> dict[str, Any]:
    """Score every chunk with ``engine``; return counts and the output fingerprint.

    Every engine feeds the same sink, so their outputs have the same fingerprint.
    """
    sink = open_sink(writer, contract, on_invalid, rejects_writer, on_progress, warn)
    try:
        with engine(pipeline, contract, chunks, keep, on_invalid != "fail") as results:
            return consume(sink, results)
    except BaseException:
        sink.abort()  # e.g. a cluster that could not be reached: publish nothing
        raise


def with_columns(chunks: Iterable[Any]) -> Iterable[Any]:
    """The chunks, refusing an input without columns (a headerless or empty file)."""
    for i, chunk in enumerate(chunks):
        if i == 0 and not len(chunk.columns):
            raise DataError("prediction input has no columns", hint="provide a header row")
        yield chunk
