"""What in the environment can explain a verdict, and library warnings summarised once.

For each stage, ``explain`` names the environment differences that can change its result:
the versions of the packages its classes come from and of their dependencies, and for the
stages that compute, the BLAS/OpenMP libraries and their thread counts, the CPU's
instruction sets, the numerics variables and Python. ``LibraryWarnings`` collects what
libraries warn during a verification (scikit-learn's ``InconsistentVersionWarning`` when a
model pickled by another version is loaded) so the report can say it once.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mlrepro.core.manifest import Manifest
from mlrepro.environment import record as env

FEATURE_STEPS = "mlrepro.transformers.FeatureSteps"


def class_paths(m: Manifest, stage: str) -> list[str]:
    """The classes a stage fits or runs (its own and the upstream ones it composes)."""
    steps = [FEATURE_STEPS] + [s.transformer for s in m.features]
    select = [m.selection.method] if m.selection else []
    if stage == "features":
        return steps
    if stage == "select":
        return select + [m.model.estimator]  # a model-based selector may fit the estimator
    if stage in ("train", "predict"):
        return steps + select + [m.model.estimator]
    return []


def all_class_paths(m: Manifest) -> list[str]:
    return class_paths(m, "train")


def explain(report: Any, rec: dict[str, Any], current: dict[str, Any], m: Manifest) -> None:
    """Fill ``report.environment`` (every difference) and ``report.causes`` (the relevant)."""
    recorded = rec.get("environment") or {}
    if not isinstance(recorded, dict):
        recorded = {}
    report.environment = env.diff(recorded, current) if recorded else []
    report.causes = env.causes(report.stage, recorded, current, class_paths(m, report.stage))


# ---------------------------------------------------------------------------- warnings
_UNPICKLE = re.compile(
    r"Trying to unpickle estimator (\w+) from version (\S+) when using version (\S+?)\.(?:\s|$)"
)


class LibraryWarnings:
    """Warnings raised while verifying, grouped: one line per kind in the report."""

    def __init__(self) -> None:
        self.caught: list[warnings.WarningMessage] = []

    def summary(self) -> list[str]:
        versions: dict[tuple[str, str], list[str]] = {}
        other: dict[tuple[str, str], int] = {}
        for w in self.caught:
            text = str(w.message)
            match = _UNPICKLE.search(text)
            if match:
                est, old, new = match.groups()
                names = versions.setdefault((old, new), [])
                if est not in names:
                    names.append(est)
                continue
            first = text.strip().splitlines()[0][:200] if text.strip() else ""
            key = (w.category.__name__, first)
            other[key] = other.get(key, 0) + 1
        out = [
            f"InconsistentVersionWarning: models pickled with scikit-learn {old} were loaded "
            f"with scikit-learn {new} ({', '.join(names[:6])}"
            + (", ..." if len(names) > 6 else "")
            + "); their behaviour is compared below, not assumed"
            for (old, new), names in versions.items()
        ]
        out += [
            f"{cat}{f' ({n} times)' if n > 1 else ''}: {msg}" for (cat, msg), n in other.items()
        ]
        return out


@contextmanager
def library_warnings() -> Iterator[LibraryWarnings]:
    """Collect (not print) the warnings libraries raise inside the block."""
    collected = LibraryWarnings()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield collected
        finally:
            collected.caught = [
                w for w in caught if not issubclass(w.category, (DeprecationWarning,))
            ]
