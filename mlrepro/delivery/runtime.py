"""Which runtime scores a loaded bundle: its compiled program, or the fitted pipeline.

``runtime="auto"`` (the default everywhere) uses the bundle's accelerated program when it
has one and numba is installed, else scikit-learn; ``"accelerated"`` insists on the program;
``"sklearn"`` ignores it. The program is read from verified bytes in a format that holds
only arrays and JSON (``mlrepro.accelerate``), so loading it runs no code from the bundle.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from mlrepro.errors import ArtifactError, UsageError

RUNTIMES = ("auto", "accelerated", "sklearn")


class AccelerationWarning(UserWarning):
    """The bundle carries an accelerated program this process does not use."""


@dataclass(frozen=True)
class Runtime:
    name: str  # "accelerated" or "sklearn"
    record: dict[str, Any] | None  # the bundle's acceleration.json (None: not accelerated)
    pipeline: Any  # what scores: the fitted pipeline, or it paired with its program


def check_runtime(runtime: str) -> str:
    if runtime not in RUNTIMES:
        raise UsageError(f"unknown runtime {runtime!r}", hint=f"use one of: {', '.join(RUNTIMES)}")
    return runtime


def record_of(verified: Any) -> dict[str, Any] | None:
    """The bundle's acceleration record, or None when it was bundled without --accelerate."""
    from mlrepro.delivery import bundle as fmt

    if fmt.ACCELERATION not in verified.members:
        return None
    record = verified.json(fmt.ACCELERATION)
    if not isinstance(record, dict) or record.get("status") not in ("accepted", "refused"):
        raise fmt.malformed(verified.path, fmt.ACCELERATION, "is not an acceleration record")
    return record


def choose(verified: Any, pipeline: Any, task: str, runtime: str, warm_up: bool = True) -> Runtime:
    """The runtime for this bundle and ``runtime`` choice (warns when auto falls back).

    ``warm_up`` compiles the program's kernels now; without it each compiles on first use
    (a one-shot batch job then compiles only the kernel it runs)."""
    from mlrepro.delivery import bundle as fmt

    check_runtime(runtime)
    record = record_of(verified)
    data = verified.members.get(fmt.PROGRAM)
    if runtime == "sklearn":
        return Runtime("sklearn", record, pipeline)
    if data is None:
        if runtime == "accelerated":
            why = f": {record['reason']}" if record and record.get("reason") else ""
            raise ArtifactError(
                f"bundle {verified.path.name} has no accelerated program{why}",
                hint="rebuild it with 'mlrepro bundle --accelerate', or use --runtime auto",
            )
        return Runtime("sklearn", record, pipeline)
    try:
        from mlrepro.pipeline.compiled import runtime_module

        accelerate = runtime_module()
    except UsageError as exc:
        if runtime == "accelerated":
            raise
        warnings.warn(
            f"the bundle has an accelerated program, but {exc.message}; scoring with "
            f"scikit-learn ({exc.hint})",
            AccelerationWarning,
            stacklevel=4,
        )
        return Runtime("sklearn", record, pipeline)
    try:
        program = accelerate.load_program(data)
    except ValueError as exc:
        why = f"is not a usable program ({exc})"
        raise fmt.malformed(verified.path, fmt.PROGRAM, why) from None
    from mlrepro.predict.scoring import AcceleratedPipeline

    if warm_up:
        program.warm_up()  # compile the kernels now, not during the first request
    return Runtime("accelerated", record, AcceleratedPipeline(program, pipeline, task))
