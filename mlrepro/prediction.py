"""Run a fitted pipeline over chunks of input and write outputs incrementally."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .errors import DataError, UsageError
from .fingerprint import FrameHasher
from .stages.predict import ON_INVALID, Contract, check_columns, predict_chunk


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
) -> dict[str, Any]:
    """Predict every chunk; return counts and the fingerprint of what was written."""
    hasher = FrameHasher()
    rows = predicted = rejected = 0
    warned = False
    try:  # from here on, any failure aborts the writers: no partial output, no temp file
        if on_invalid not in ON_INVALID:
            raise UsageError(
                f"--on-invalid {on_invalid!r} is not valid",
                hint=f"use one of {', '.join(ON_INVALID)}",
            )
        if on_invalid == "quarantine" and rejects_writer is None:
            raise UsageError(
                "--on-invalid quarantine needs a rejects file", hint="pass --rejects PATH"
            )
        for chunk in chunks:
            if rows == 0 and not len(chunk.columns):
                raise DataError("prediction input has no columns", hint="provide a header row")
            extra = check_columns([str(c) for c in chunk.columns], contract)
            missing_keep = [k for k in keep if k not in chunk.columns]
            if missing_keep:
                raise UsageError(
                    f"--keep column(s) {missing_keep} are not in the input",
                    hint="name columns that exist in the input",
                )
            extra = [c for c in extra if c not in keep]
            if extra and not warned and warn:
                shown = ", ".join(extra[:8]) + (" ..." if len(extra) > 8 else "")
                warn(f"ignoring {len(extra)} input column(s) the model does not use: {shown}")
                warned = True
            out, bad = predict_chunk(
                pipeline, chunk, contract, on_invalid=on_invalid, keep=keep, offset=rows
            )
            rows += len(chunk)
            predicted += len(out)
            if len(out) or predicted == 0:
                writer.write(out)
                hasher.update(out)
            if bad is not None and len(bad):
                rejected += len(bad)
                rejects_writer.write(bad)
            elif on_invalid == "skip":
                rejected += len(chunk) - len(out)
            if on_progress:
                on_progress(len(chunk))
        if rows == 0:
            raise DataError("prediction input has no rows", hint="provide at least one row")
        writer.close()
        if rejects_writer is not None and rejected:
            rejects_writer.close()
        elif rejects_writer is not None:
            rejects_writer.abort()
    except BaseException:
        writer.abort()
        if rejects_writer is not None:
            rejects_writer.abort()
        raise
    return {
        "rows": rows,
        "predicted": predicted,
        "rejected": rejected,
        "fingerprint": hasher.hexdigest(),
        "model_fingerprint": contract.model_fingerprint,
    }
