"""Accelerated runtime: a fitted pipeline compiled to array programs, proven equivalent.

Sits between ``predict`` (which uses it) and ``transformers`` (whose fitted steps it reads).
``compile_pipeline`` turns the whole fitted ``Pipeline([features, select, model])`` into a
``Program`` (plain arrays plus a JSON header, evaluated by numba kernels); ``to_bytes`` /
``load_program`` store it without pickle; ``check_equivalence`` runs program and pipeline
side by side and records the figures. numba is the optional extra ``accelerate``.
"""

from __future__ import annotations

from typing import Any

from mlrepro.accelerate.compiler import Refused, compile_pipeline
from mlrepro.accelerate.equivalence import TOLERANCE, Equivalence, check_equivalence
from mlrepro.accelerate.program import Program


def load_program(data: bytes, **limits: Any) -> Program:
    """A ``Program`` from ``Program.to_bytes()`` output; malformed data -> ``ValueError``.

    ``limits``: ``max_total`` (bytes all arrays may take), ``max_ratio`` and ``ratio_floor``
    (how compressible the archive may be), checked before anything is inflated."""
    from mlrepro.accelerate.fileformat import load

    header, arrays = load(data, **limits)
    return Program(header, arrays)


__all__ = [
    "TOLERANCE",
    "Equivalence",
    "Program",
    "Refused",
    "check_equivalence",
    "compile_pipeline",
    "load_program",
]
