"""Compiled pipelines: the fitted pipeline as an array program, accepted only if equivalent.

``compile_checked`` is the one place that decides whether a program may stand in for the
fitted pipeline: it compiles it (``mlrepro.accelerate``), runs program and pipeline side by
side on recorded input rows (the training snapshot's), and accepts the program only when
class labels are identical and every score and probability is within the documented
tolerance. The record it returns (``acceleration.json`` in a bundle, ``acceleration`` in
the train stage's details) holds the figures, or why there is no program.

Used by the train stage (``model.accelerate: true``, so ``verify`` grades the program like
any other artifact) and by ``mlrepro bundle --accelerate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlrepro.errors import UsageError

#: rows of the snapshot the equivalence check compares (the first ones, in snapshot order)
CHECK_ROWS = 100_000
PROGRAM_EXT = "mlprog"  # the store's file extension of a compiled program
EXTRA_HINT = "pip install 'mlrepro[accelerate]' (numba), or drop --accelerate / model.accelerate"


@dataclass(frozen=True)
class Compiled:
    program: bytes | None  # the program's safe bytes; None: refused (``record`` says why)
    record: dict[str, Any]

    @property
    def accepted(self) -> bool:
        return self.program is not None


def runtime_module() -> Any:
    """``mlrepro.accelerate`` with its kernels, or a UsageError naming the extra."""
    try:
        import numba  # noqa: F401

        import mlrepro.accelerate as accelerate
    except ImportError:
        raise UsageError("the accelerated runtime needs numba", hint=EXTRA_HINT) from None
    return accelerate


def compile_checked(pipeline: Any, rows: Any, task: str) -> Compiled:
    """Compile ``pipeline``; keep the program only if it is equivalent on ``rows``."""
    accelerate = runtime_module()
    rows = rows.iloc[:CHECK_ROWS].reset_index(drop=True)
    try:
        program = accelerate.compile_pipeline(pipeline, task)
    except accelerate.Refused as exc:
        return Compiled(None, _refused(f"cannot be compiled: {_reason(exc)}"))
    data = program.to_bytes()
    program = accelerate.load_program(data)  # check what production will load
    eq = accelerate.check_equivalence(program, pipeline, rows, task)
    figures = eq.to_dict()
    if not eq.ok:
        return Compiled(None, _refused(f"not equivalent: {eq.reason}", figures))
    return Compiled(
        data,
        {
            "status": "accepted",
            "runtime": program.describe(),
            "equivalence": figures,
            "tolerance": _tolerance(accelerate.TOLERANCE),
        },
    )


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "reason", None) or getattr(exc, "message", None) or exc)


def _refused(reason: str, figures: dict[str, Any] | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {"status": "refused", "reason": reason}
    if figures is not None:
        record["equivalence"] = figures
    return record


def _tolerance(value: Any) -> Any:
    if isinstance(value, dict):
        return value
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, (int, float, str)):
        return value
    return str(value)


def input_rows(snapshot: Any, input_columns: list[str]) -> Any:
    """The recorded rows the check compares: the snapshot's input columns."""
    return snapshot[[c for c in input_columns if c in snapshot.columns]]
