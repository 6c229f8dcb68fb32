"""extract: the as-of snapshot streamed from the source (``core.database``), summarised for
its schema while it streams."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

MAX_CATEGORIES = 100  # string columns with at most this many values get an isin check
# SQLite's normal form of an ISO 8601 text time: UTC, milliseconds (datetime() drops them,
# which would let rows up to a second after as_of into the snapshot).
SQLITE_UTC = "%Y-%m-%d %H:%M:%f"


@dataclass
class ColumnSummary:
    arrow_type: Any = None
    nulls: int = 0
    categories: set[str] | None = field(default_factory=set)


def summarise(batch: Any, summary: dict[str, ColumnSummary]) -> None:
    """Accumulate what the stored schema needs: types, nulls, small category sets."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for name, col in zip(batch.schema.names, batch.columns, strict=True):
        s = summary.setdefault(name, ColumnSummary())
        if s.arrow_type is None or pa.types.is_null(s.arrow_type):
            s.arrow_type = col.type
        s.nulls += col.null_count
        if s.categories is not None and (
            pa.types.is_string(col.type) or pa.types.is_large_string(col.type)
        ):
            s.categories.update(v for v in pc.unique(col).to_pylist() if v is not None)
            if len(s.categories) > MAX_CATEGORIES:
                s.categories = None


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
