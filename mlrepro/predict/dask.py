"""``--engine dask``: score input partitions in parallel on a Dask cluster.

The client reads the input in chunks (the same readers as the local engine: CSV, parquet,
SQL), scatters each chunk to a worker, where ``score_chunk`` validates and predicts it, and
collects the results *in input order* into the same ``PredictionSink`` as the local engine.
So both engines write identical outputs (same fingerprint), the output still appears
atomically, and memory stays bounded: at most ``2 x worker threads`` chunks are in flight.

Workers need mlrepro and the model's libraries installed; they never touch the input or
output files, so a remote cluster needs no shared filesystem.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from mlrepro.errors import EXIT_SOURCE, MlreproError, UsageError
from mlrepro.predict.contract import Contract
from mlrepro.predict.prefetch import prefetch
from mlrepro.predict.scoring import ChunkResult, score_chunk
from mlrepro.predict.sink import Engine, with_columns

CONNECT_TIMEOUT = "10s"


class ClusterError(MlreproError):
    """The Dask scheduler could not be reached, or the cluster failed."""

    exit_code = EXIT_SOURCE
    kind = "cluster"


def _score_remote(
    pipeline: Any, chunk: Any, contract: Contract, keep: tuple[str, ...], isolate: bool
) -> ChunkResult | tuple[str, type, str, str | None]:
    # An MlreproError pickled by Dask would lose its hint: send its parts instead.
    try:
        return score_chunk(pipeline, chunk, contract, keep=keep, isolate=isolate)
    except MlreproError as exc:
        return ("error", type(exc), exc.message, exc.hint)


def _result(future: Any) -> ChunkResult:
    """A finished chunk; cluster failures become ``ClusterError``, MlreproErrors are rebuilt."""
    from distributed.comm.core import CommClosedError
    from distributed.scheduler import KilledWorker

    try:
        value = future.result()
    except (KilledWorker, CommClosedError) as exc:
        raise ClusterError(
            f"the Dask cluster failed while predicting ({type(exc).__name__})",
            hint="check the workers' logs, e.g. for memory limits; or lower --chunk-rows",
        ) from None
    except ImportError as exc:
        raise ClusterError(
            f"a Dask worker cannot import what the model needs ({exc})",
            hint="install mlrepro and the model's packages on every worker",
        ) from None
    if isinstance(value, tuple) and value and value[0] == "error":
        _, cls, message, hint = value
        raise cls(message, hint)
    return value


@contextlib.contextmanager
def connect(scheduler: str | None, workers: int | None) -> Iterator[Any]:
    """A Dask client: to ``scheduler``, or to a new local cluster of ``workers`` processes."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise UsageError(
            "--engine dask needs the 'dask' extra", hint="pip install 'mlrepro[dask]'"
        ) from None
    cluster = None
    try:
        if scheduler is None:  # worker processes re-import the main module (spawn)
            cluster = LocalCluster(
                n_workers=workers or os.cpu_count() or 1,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
        client = Client(cluster if cluster is not None else scheduler, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        if cluster is not None:
            cluster.close()
        raise ClusterError(
            f"cannot connect to the Dask scheduler at {scheduler} ({type(exc).__name__})",
            hint="check the --scheduler address (e.g. tcp://host:8786) and that it is running",
        ) from None
    except RuntimeError as exc:  # e.g. "Nanny failed to start"
        raise ClusterError(
            f"could not start a local Dask cluster ({str(exc).splitlines()[0][:120]})",
            hint="from Python, call it under 'if __name__ == \"__main__\":' (workers are "
            "spawned processes), or pass a scheduler address",
        ) from None
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def dask_engine(scheduler: str | None = None, workers: int | None = None) -> Engine:
    """An engine for ``run_prediction`` scoring the chunks on a Dask cluster."""

    @contextmanager
    def engine(
        pipeline: Any,
        contract: Contract,
        chunks: Iterable[Any],
        keep: tuple[str, ...],
        isolate: bool,
    ) -> Iterator[Iterable[ChunkResult]]:
        with connect(scheduler, workers) as client:
            results = _scored(client, pipeline, contract, chunks, keep, isolate)
            try:
                yield results
            finally:
                results.close()  # cancel what is still running while the client is open

    return engine


def _scored(
    client: Any,
    pipeline: Any,
    contract: Contract,
    chunks: Iterable[Any],
    keep: tuple[str, ...],
    isolate: bool,
) -> Generator[ChunkResult, None, None]:
    """Scored chunks in input order, with a bounded number in flight."""
    window = max(2, 2 * sum(client.nthreads().values()))
    model = client.scatter(pipeline, broadcast=True, hash=False)
    terms = client.scatter(contract, broadcast=True, hash=False)
    pending: deque[Any] = deque()
    try:
        for chunk in prefetch(with_columns(chunks), name="mlrepro-read"):
            data = client.scatter(chunk, hash=False)
            pending.append(
                client.submit(_score_remote, model, data, terms, keep, isolate, pure=False)
            )
            if len(pending) >= window:
                yield _result(pending.popleft())
        while pending:
            yield _result(pending.popleft())
    finally:
        for future in pending:
            future.cancel()
