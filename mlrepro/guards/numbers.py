"""The one rule for a value in a numeric input column: CLI, Python API, serve and stream.

A numeric column accepts a real number (not a boolean) or text that is a plain ASCII
decimal number (``12``, ``-3.5``, ``1e3``); an empty cell, ``None`` and NaN are missing
values (allowed where the training data had them). It refuses ``true``/``True`` and JSON
``true`` (booleans are not numbers), ``1_000`` (Python's digit separator), digits of other
scripts (``١٢``), ``inf``/``nan`` spelt as text, and, in a column that held integers during
training, a number with a fraction (``9.5``). Infinite numbers are refused by the finite
check of the contract.

``number`` is the rule for one value; ``parse`` applies it to a column (vectorised for
numeric arrays, value by value otherwise). Nothing here imports pandas.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

NOT_A_NUMBER = "not a number"
BOOLEAN = "not a number (a boolean)"
NOT_WHOLE = "not a whole number (the column held integers in training)"
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


class NotANumber(ValueError):
    """A value a numeric column refuses; ``rule`` says which rule (never the value)."""

    def __init__(self, rule: str) -> None:
        super().__init__(rule)
        self.rule = rule


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool) or type(value).__name__ == "bool_"


def number(value: Any, *, integer: bool = False) -> float | None:
    """The float a numeric cell holds, None for a missing value, or ``NotANumber``."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):  # pandas' missing
        return None
    if _is_bool(value):
        raise NotANumber(BOOLEAN)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if not _DECIMAL.fullmatch(text):  # [0-9]: ASCII digits only, no '_'
            raise NotANumber(BOOLEAN if text.lower() in ("true", "false") else NOT_A_NUMBER)
        result = float(text)
    elif isinstance(value, (int, float, Decimal)) or type(value).__module__ == "numpy":
        try:
            result = float(value)
        except (TypeError, ValueError, OverflowError):
            raise NotANumber(NOT_A_NUMBER) from None
        if math.isnan(result):
            return None
    else:  # lists, dicts, bytes, decimals of unknown types...
        raise NotANumber(NOT_A_NUMBER)
    if integer and math.isfinite(result) and not result.is_integer():
        raise NotANumber(NOT_WHOLE)
    return result


def parse(values: Any, *, integer: bool = False) -> tuple[Any, dict[int, str]]:
    """(float64 array with NaN for missing or refused cells, {position: rule}) of a column."""
    import numpy as np

    arr = np.asarray(values)
    if arr.dtype.kind in "iuf":  # already numbers: the checks are vectorised
        floats = arr.astype("float64")
        bad: dict[int, str] = {}
        if integer:
            finite = np.isfinite(floats)
            frac = np.zeros(len(floats), dtype=bool)
            frac[finite] = floats[finite] != np.floor(floats[finite])
            bad = dict.fromkeys(np.flatnonzero(frac).tolist(), NOT_WHOLE)
            floats[frac] = np.nan
        return floats, bad
    if arr.dtype.kind == "b":
        return np.full(len(arr), np.nan), dict.fromkeys(range(len(arr)), BOOLEAN)
    out = np.empty(len(arr), dtype="float64")
    bad = {}
    for i, value in enumerate(arr.tolist() if arr.dtype.kind != "O" else arr):
        try:
            parsed = number(value, integer=integer)
        except NotANumber as exc:
            bad[i] = exc.rule
            parsed = None
        out[i] = np.nan if parsed is None else parsed
    return out, bad
