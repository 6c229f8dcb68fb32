"""Rebuild the example databases and prediction inputs from scikit-learn's bundled data.

Run from anywhere (no network, no arguments)::

    python examples/build_examples.py

It writes, overwriting atomically (temp file in the same folder, then ``os.replace``):

* ``examples/diabetes/data/diabetes.db``            table ``visits``
* ``examples/diabetes/data/new_visits.csv``         20 rows to predict
* ``examples/breast_cancer/data/breast_cancer.db``  table ``biopsies``
* ``examples/breast_cancer/data/new_biopsies.csv``  20 rows to predict

Everything is deterministic: row order, timestamps, the categorical column and the injected
NULLs are derived from SHA-256 digests of fixed strings, never from a random generator whose
stream could change between numpy versions. The timestamps are synthetic and spread between
2025-01-01 and 2026-09-30, so a few dozen rows fall after the manifests' ``as_of``
(2026-06-30): those are the rows a later extract must not see. The prediction CSVs are built
from such "future" rows.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import sqlite3
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sklearn.datasets import load_breast_cancer, load_diabetes

HERE = Path(__file__).resolve().parent

START = datetime(2025, 1, 1, 0, 0, 0)
END = datetime(2026, 9, 30, 23, 59, 59)
AS_OF = datetime(2026, 6, 30, 0, 0, 0)  # the as_of of both manifests (UTC)
# Timestamps follow u ** SPREAD_POWER over [START, END]: visits thin out towards the end, so
# roughly 10 % of the rows (a few dozen) fall after AS_OF.
SPREAD_POWER = 1.5
NULL_FRACTION = 0.02
N_PREDICT_ROWS = 20


def digest(*parts: object) -> int:
    """A stable 64-bit integer derived from ``parts`` (same on every machine and version)."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def sanitize(name: str) -> str:
    """'mean concave points' -> 'mean_concave_points'."""
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def timestamps(dataset: str, n: int) -> list[str]:
    """``n`` strictly increasing ISO-8601 timestamps (``YYYY-MM-DDTHH:MM:SS``)."""
    span = (END - START).total_seconds()
    out = []
    for i in range(n):
        jitter = (digest(dataset, "time", i) / 2**64 - 0.5) * 0.8  # keeps the order strict
        u = (i + 0.5 + jitter) / n
        moment = START + timedelta(seconds=round(span * u**SPREAD_POWER))
        out.append(moment.strftime("%Y-%m-%dT%H:%M:%S"))
    return out


def null_ids(dataset: str, column: str, ids: Sequence[int]) -> set[int]:
    """Exactly ``round(NULL_FRACTION * len(ids))`` ids, chosen by digest, for a column's NULLs."""
    count = round(NULL_FRACTION * len(ids))
    return set(sorted(ids, key=lambda i: digest(dataset, "null", column, i))[:count])


@dataclass(frozen=True)
class Example:
    folder: str  # examples/<folder>
    db_name: str
    table: str
    id_column: str
    time_column: str
    category_column: str
    categories: tuple[str, ...]
    target: str
    target_type: str  # SQLite type of the target column
    predict_csv: str
    nullable: tuple[str, ...]  # feature columns that get ~2 % NULLs


def build_rows(
    ex: Example,
    features: list[str],
    records: list[dict[str, object]],
    target_of: Callable[[dict[str, object]], object],
) -> list[dict[str, object]]:
    """Shuffle ``records`` deterministically and add id, timestamp, category and NULLs."""
    order = sorted(range(len(records)), key=lambda r: digest(ex.folder, "order", r))
    stamps = timestamps(ex.folder, len(records))
    ids = list(range(1, len(records) + 1))
    nulls = {col: null_ids(ex.folder, col, ids) for col in ex.nullable}
    rows = []
    for position, source_row in enumerate(order):
        rec = records[source_row]
        row_id = ids[position]
        row: dict[str, object] = {
            ex.id_column: row_id,
            ex.time_column: stamps[position],
            ex.category_column: ex.categories[row_id % len(ex.categories)],
        }
        for col in features:
            value = float(rec[col])
            row[col] = None if row_id in nulls.get(col, ()) else value
        row[ex.target] = target_of(rec)
        rows.append(row)
    return rows


def atomic_target(path: Path) -> tuple[Path, Callable[[], None], Callable[[], None]]:
    """A temp path beside ``path`` plus commit (os.replace) and abort (remove) callbacks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)

    def commit() -> None:
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)

    def abort() -> None:
        for leftover in (tmp, tmp.with_name(tmp.name + "-journal")):
            leftover.unlink(missing_ok=True)

    return tmp, commit, abort


def write_sqlite(path: Path, ex: Example, features: list[str], rows: list[dict]) -> None:
    columns = [ex.id_column, ex.time_column, ex.category_column, *features, ex.target]
    types = {
        ex.id_column: "INTEGER PRIMARY KEY",
        ex.time_column: "TEXT NOT NULL",
        ex.category_column: "TEXT NOT NULL",
        ex.target: f"{ex.target_type} NOT NULL",
    }
    ddl = ",\n  ".join(f"{c} {types.get(c, 'REAL')}" for c in columns)
    tmp, commit, abort = atomic_target(path)
    try:
        tmp.unlink()  # sqlite3 wants to create the file itself
        con = sqlite3.connect(tmp)
        try:
            with con:
                con.execute(f"CREATE TABLE {ex.table} (\n  {ddl}\n)")
                con.execute(
                    f"CREATE INDEX {ex.table}_{ex.time_column} ON {ex.table} ({ex.time_column})"
                )
                placeholders = ", ".join("?" for _ in columns)
                con.executemany(
                    f"INSERT INTO {ex.table} ({', '.join(columns)}) VALUES ({placeholders})",
                    [tuple(row[c] for c in columns) for row in rows],
                )
        finally:
            con.close()
        commit()
    except BaseException:
        abort()
        raise


def write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    def cell(value: object) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            return repr(value)  # shortest text that reads back as the same float
        return str(value)

    tmp, commit, abort = atomic_target(path)
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(columns)
            for row in rows:
                writer.writerow([cell(row[c]) for c in columns])
        commit()
    except BaseException:
        abort()
        raise


def build(ex: Example, features: list[str], rows: list[dict]) -> None:
    data_dir = HERE / ex.folder / "data"
    db_path = data_dir / ex.db_name
    write_sqlite(db_path, ex, features, rows)

    as_of = AS_OF.strftime("%Y-%m-%dT%H:%M:%S")
    future = [r for r in rows if r[ex.time_column] > as_of]
    predict_columns = [ex.id_column, ex.category_column, *features]
    csv_path = data_dir / ex.predict_csv
    write_csv(csv_path, predict_columns, future[:N_PREDICT_ROWS])

    nulls = {c: sum(r[c] is None for r in rows) for c in ex.nullable}
    null_text = ", ".join(f"{n} NULLs in {c}" for c, n in nulls.items()) or "no NULLs"
    print(
        f"wrote {db_path.relative_to(HERE.parent)}: table {ex.table}, {len(rows)} rows "
        f"({len(rows) - len(future)} up to {as_of}, {len(future)} after), "
        f"{len(features)} features, {null_text}"
    )
    print(
        f"wrote {csv_path.relative_to(HERE.parent)}: {min(len(future), N_PREDICT_ROWS)} rows, "
        f"columns {ex.id_column}, {ex.category_column} + features (no target, no timestamp)"
    )


def build_diabetes() -> None:
    ex = Example(
        folder="diabetes",
        db_name="diabetes.db",
        table="visits",
        id_column="visit_id",
        time_column="recorded_at",
        category_column="clinic",
        categories=("north", "south", "east", "west"),
        target="progression",
        target_type="REAL",
        predict_csv="new_visits.csv",
        nullable=("bmi", "bp"),
    )
    frame = load_diabetes(as_frame=True, scaled=False).frame
    frame.columns = [sanitize(c) for c in frame.columns]
    features = [c for c in frame.columns if c != "target"]
    rows = build_rows(ex, features, frame.to_dict("records"), lambda r: float(r["target"]))
    build(ex, features, rows)


def build_breast_cancer() -> None:
    ex = Example(
        folder="breast_cancer",
        db_name="breast_cancer.db",
        table="biopsies",
        id_column="biopsy_id",
        time_column="taken_at",
        category_column="lab",
        categories=("central", "harbor", "valley"),
        target="diagnosis",  # scikit-learn's coding: 0 = malignant, 1 = benign
        target_type="INTEGER",
        predict_csv="new_biopsies.csv",
        nullable=(),
    )
    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [sanitize(c) for c in frame.columns]
    features = [c for c in frame.columns if c != "target"]
    rows = build_rows(ex, features, frame.to_dict("records"), lambda r: int(r["target"]))
    build(ex, features, rows)


def main() -> None:
    build_diabetes()
    build_breast_cancer()


if __name__ == "__main__":
    main()
