"""Ad-hoc ``mlrepro predict --input ... --output ...`` (not recorded in the lock)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import UsageError
from .manifest import Manifest


def adhoc_predict(
    m: Manifest,
    ui: Any,
    *,
    input: Path | None,
    query: str | None,
    url: str | None,
    output: Path | None,
    table: str | None,
    on_invalid: str,
    rejects: Path | None,
    keep: tuple[str, ...],
    encoding: str,
    chunk_rows: int,
) -> dict[str, Any]:
    from .batch import FileWriter, TableWriter, read_chunks, read_query_chunks
    from .prediction import run_prediction
    from .runner import Runner

    if input is not None and query is not None:
        raise UsageError("use just one of --input or --query", hint="pick one input")
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
    runner = Runner(m)
    contract = runner.contract()
    pipeline = runner.load_pipeline()
    if input is not None:
        chunks = read_chunks(input, chunk_rows, encoding)
    else:
        chunks = read_query_chunks(url or m.source.url, query or "", m.root, chunk_rows)
    if table is not None:
        writer: Any = TableWriter(url or m.source.url, table, m.root)
        target = f"table {table}"
    else:
        assert output is not None
        writer = FileWriter(output, {"mlrepro_model_fingerprint": contract.model_fingerprint})
        target = str(output)
    rejects_writer = FileWriter(rejects) if rejects is not None else None
    summary = run_prediction(
        pipeline,
        contract,
        chunks,
        writer,
        on_invalid=on_invalid,
        keep=keep,
        rejects_writer=rejects_writer,
        on_progress=ui.progress("predict"),
        warn=lambda msg: ui.report("warn", "predict", msg),
    )
    summary["output"] = target
    if rejects is not None:
        summary["rejects"] = str(rejects)
    return summary
