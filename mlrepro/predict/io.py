"""Ad-hoc ``mlrepro predict --input ... --output ...`` (not recorded in the lock).

``predict_io`` is shared by project mode, bundle mode (``--bundle``) and the Python API
(``Bundle.predict_file``): one place opens the input, the writers and the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlrepro.errors import UsageError
from mlrepro.predict.sink import check_policy

ENGINES = ("local", "dask")
CHECKED = (
    "input",
    "query",
    "output",
    "table",
    "on_invalid",
    "rejects",
    "chunk_rows",
    "engine",
    "scheduler",
    "workers",
    "url",
)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve() or Path(a).samefile(b)
    except OSError:  # one of them does not exist (yet)
        return False


def _check_distinct(*, input: Path | None, output: Path | None, rejects: Path | None) -> None:
    """Refuse an output that would replace the input or the other output (silent data loss)."""
    named = [("--input", input), ("--output", output), ("--rejects", rejects)]
    for i, (first, a) in enumerate(named):
        for second, b in named[i + 1 :]:
            if a is not None and b is not None and _same_file(a, b):
                raise UsageError(
                    f"{first} and {second} are the same file ({Path(b).name}): it would be "
                    "overwritten",
                    hint=f"write {second} to another file",
                )


def check_io(
    *,
    input: Path | None = None,
    query: str | None = None,
    output: Path | None = None,
    table: str | None = None,
    on_invalid: str = "fail",
    rejects: Path | None = None,
    chunk_rows: int = 100_000,
    engine: str = "local",
    scheduler: str | None = None,
    workers: int | None = None,
    url: str | None = None,
    default_url: str | None = "",
) -> None:
    """Refuse conflicting or incomplete options before any work is done (no heavy imports).

    ``default_url`` is the project's database URL; None when there is no project (bundle).
    """
    if input is not None and query is not None:
        raise UsageError("use just one of --input or --query", hint="pick one input")
    if input is None and query is None:
        raise UsageError("no input given", hint="pass --input FILE.csv|parquet or --query SQL")
    if output is not None and table is not None:
        raise UsageError("use just one of --output or --table", hint="pick one output")
    if output is None and table is None:
        raise UsageError("no output given", hint="pass --output FILE.parquet|csv or --table NAME")
    if chunk_rows < 1:
        raise UsageError("--chunk-rows must be at least 1", hint="e.g. --chunk-rows 100000")
    if rejects is not None and on_invalid != "quarantine":
        raise UsageError(
            "--rejects needs --on-invalid quarantine", hint="add it, or drop --rejects"
        )
    check_policy(on_invalid, rejects is not None)
    _check_distinct(input=input, output=output, rejects=rejects)
    if engine not in ENGINES:
        raise UsageError(f"--engine {engine!r} is not valid", hint="use local or dask")
    if engine != "dask" and (scheduler is not None or workers is not None):
        raise UsageError("--scheduler and --workers need --engine dask", hint="add --engine dask")
    if scheduler is not None and workers is not None:
        raise UsageError(
            "--workers sizes a local cluster; it cannot be used with --scheduler",
            hint="size the remote cluster where it runs, and drop --workers",
        )
    if workers is not None and workers < 1:
        raise UsageError("--workers must be at least 1", hint="e.g. --workers 2")
    if url is None and default_url is None and (query is not None or table is not None):
        raise UsageError(
            "--query and --table need --url when predicting with a bundle",
            hint="pass --url DATABASE_URL (a bundle carries no database connection)",
        )


def predict_io(
    pipeline: Any,
    contract: Any,
    *,
    root: Path,
    default_url: str | None,
    input: Path | None = None,
    query: str | None = None,
    url: str | None = None,
    output: Path | None = None,
    table: str | None = None,
    on_invalid: str = "fail",
    rejects: Path | None = None,
    keep: tuple[str, ...] = (),
    encoding: str = "utf-8",
    chunk_rows: int = 100_000,
    engine: str = "local",
    scheduler: str | None = None,
    workers: int | None = None,
    on_progress: Callable[[int], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Predict from a file or query into a file or table; returns the summary."""
    from mlrepro.predict.batchio import (
        FileWriter,
        TextRejects,
        predictions_writer,
        read_chunks,
        read_query_chunks,
    )

    check_io(
        input=input,
        query=query,
        output=output,
        table=table,
        on_invalid=on_invalid,
        rejects=rejects,
        chunk_rows=chunk_rows,
        engine=engine,
        scheduler=scheduler,
        workers=workers,
        url=url,
        default_url=default_url,
    )
    db_url = url or default_url
    if input is not None:
        chunks = read_chunks(input, chunk_rows, encoding, contract.text_columns())
    else:
        chunks = read_query_chunks(db_url or "", query or "", root, chunk_rows)
    writer = predictions_writer(
        output=output,
        table=table,
        url=db_url or "",
        root=root,
        model_fingerprint=contract.model_fingerprint,
    )
    target = f"table {table}" if table is not None else str(output)
    rejects_writer: Any = FileWriter(rejects) if rejects is not None else None
    if rejects_writer is not None and input is not None and Path(input).suffix.lower() == ".csv":
        rejects_writer = TextRejects(rejects_writer, input, chunk_rows, encoding)
    options: dict[str, Any] = {
        "on_invalid": on_invalid,
        "keep": keep,
        "rejects_writer": rejects_writer,
        "on_progress": on_progress,
        "warn": warn,
    }
    from mlrepro.predict.sink import local_engine, run_prediction

    if engine == "dask":
        from mlrepro.predict.dask import dask_engine

        options["engine"] = dask_engine(scheduler, workers)
    else:
        options["engine"] = local_engine
    summary = run_prediction(pipeline, contract, chunks, writer, **options)
    summary["output"] = target
    summary["engine"] = engine
    if rejects is not None:
        summary["rejects"] = str(rejects)
    return summary


def known_rows(input: Path | None) -> int | None:
    """Row count of a parquet input (from its footer) for the progress bar; else None."""
    if input is None or Path(input).suffix.lower() not in (".parquet", ".pq"):
        return None
    try:
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(input).metadata.num_rows)
    except Exception:  # unreadable: read_chunks reports it properly
        return None
