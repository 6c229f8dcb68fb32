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


def unpaired_program(verified: Any, record: dict[str, Any] | None) -> str | None:
    """Why the bundle's program and acceleration record do not go together (None: they do):
    a program ships only with the record that accepted it, and such a record only with it."""
    from mlrepro.delivery import bundle as fmt

    has_program = fmt.PROGRAM in verified.members
    accepted = record is not None and record.get("status") == "accepted"
    if has_program == accepted:
        return None
    status = "no acceleration record" if record is None else f"status {record['status']!r}"
    return f"{'a program' if has_program else 'no program'} with {status}"


def _mismatch(
    program: Any, pipeline: Any, task: str, record: Any, input_columns: Any
) -> str | None:
    """Why ``program`` cannot be a compilation of ``pipeline`` (None: it can be).

    Cheap checks that tie a program to the rest of the bundle: the task, the model's class
    and classes, the input columns it reads, and the description its acceptance recorded.
    """
    import numpy as np

    steps = getattr(pipeline, "steps", None)
    model = steps[-1][1] if isinstance(steps, list) and steps else pipeline
    described = program.describe()
    if program.task != task:
        return f"it is a {program.task} program, the bundle's task is {task}"
    if described["model"] != type(model).__name__:
        return (
            f"it compiles a {described['model']}, the pipeline's model is a {type(model).__name__}"
        )
    classes = getattr(model, "classes_", None)
    if task == "classification" and (
        program.classes is None
        or classes is None
        or np.asarray(classes).tolist() != program.classes.tolist()
    ):
        return "its classes are not the model's"
    if input_columns is not None and not set(program.input_names) <= set(input_columns):
        extra = sorted(set(program.input_names) - set(input_columns))
        return f"it reads column(s) the bundle does not take: {extra}"
    recorded = dict((record or {}).get("runtime") or {})
    now = dict(described)
    for d in (recorded, now):
        d.pop("numba", None)  # the numba of this environment may differ, by design
    if recorded and recorded != now:
        return "it differs from the program its equivalence check accepted"
    return None


def choose(
    verified: Any,
    pipeline: Any,
    task: str,
    runtime: str,
    warm_up: bool = True,
    input_columns: Any = None,
) -> Runtime:
    """The runtime for this bundle and ``runtime`` choice (warns when auto falls back).

    ``warm_up`` compiles the program's kernels now; without it each compiles on first use
    (a one-shot batch job then compiles only the kernel it runs)."""
    from mlrepro.delivery import bundle as fmt

    check_runtime(runtime)
    record = record_of(verified)
    data = verified.members.get(fmt.PROGRAM)
    if runtime == "sklearn":
        return Runtime("sklearn", record, pipeline)
    unpaired = unpaired_program(verified, record)
    if unpaired:
        raise fmt.malformed(
            verified.path,
            fmt.PROGRAM if data is not None else fmt.ACCELERATION,
            f"does not match the bundle: {unpaired} (use --runtime sklearn to score without it)",
        )
    if data is None:
        if runtime == "accelerated":
            why = f": {record['reason']}" if record and record.get("reason") else ""
            raise ArtifactError(
                f"bundle {verified.path.name} has no accelerated program{why}",
                hint="use --runtime auto (scikit-learn scores this model)"
                if record
                else "rebuild it with 'mlrepro bundle --accelerate', or use --runtime auto",
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
        lim = verified.limits
        program = accelerate.load_program(
            data, max_total=lim.max_total, max_ratio=lim.max_ratio, ratio_floor=lim.ratio_floor
        )
    except ValueError as exc:
        why = f"is not a usable program ({exc})"
        raise fmt.malformed(verified.path, fmt.PROGRAM, why) from None
    mismatch = _mismatch(program, pipeline, task, record, input_columns)
    if mismatch:
        raise fmt.malformed(
            verified.path,
            fmt.PROGRAM,
            f"is not the bundle's model: {mismatch} (use --runtime sklearn to score without it)",
        )
    from mlrepro.predict.scoring import AcceleratedPipeline

    if warm_up:
        program.warm_up()  # compile the kernels now, not during the first request
    return Runtime("accelerated", record, AcceleratedPipeline(program, pipeline, task))
