"""Arrow-native (ADBC) extraction: the same snapshot fingerprint as the sqlalchemy reader.

Each case reads one source twice, ``MLREPRO_EXTRACT_READER=adbc`` (fails rather than falls
back, so the ADBC path is really taken) and ``=sqlalchemy``, and compares the fingerprints
of the streamed snapshots (and, through the CLI, of the locked snapshots).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from cli_helpers import run_cli
from conftest import in_ci

from mlrepro.core import manifest as manifest_mod
from mlrepro.core.database import RESTART, iter_batches
from mlrepro.errors import DataError, SourceError
from mlrepro.fingerprint import FrameHasher

try:
    import adbc_driver_postgresql.dbapi  # noqa: F401
    import adbc_driver_sqlite.dbapi  # noqa: F401
except ImportError:
    if in_ci():
        raise  # CI installs .[dev], which has the arrow-db extra
    pytest.skip("the arrow-db extra (ADBC drivers) is not installed", allow_module_level=True)


def project(folder: Path, url: str, query: str, **source: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {
        "name": "arrow",
        "seed": 1,
        "source": {
            "url": url,
            "query": query,
            "timestamp_column": "ts",
            "as_of": "2026-03-01T00:00:00.250Z",
            "order_by": ["id"],
            **source,
        },
        "target": "y",
        "model": {"estimator": "sklearn.linear_model.Ridge"},
    }
    (folder / "mlrepro.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return folder


def fingerprint(folder: Path, reader: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, int]:
    monkeypatch.setenv("MLREPRO_EXTRACT_READER", reader)
    m = manifest_mod.load(folder)
    hasher = FrameHasher()
    for batch in iter_batches(m.source, m.root):
        if batch is RESTART:  # the ADBC reader gave up after streaming: start again
            hasher = FrameHasher()
            continue
        assert batch.num_rows <= m.source.chunk_size
        hasher.update(batch)
    return hasher.hexdigest(), hasher.rows


def locked_outputs(folder: Path, reader: str, monkeypatch: pytest.MonkeyPatch) -> dict:
    """The extract outputs (fingerprints) ``mlrepro extract --force`` locks with ``reader``."""
    monkeypatch.setenv("MLREPRO_EXTRACT_READER", reader)
    r = run_cli("extract", "--force", "-p", folder)
    assert r.code == 0, r.err
    return json.loads((folder / "mlrepro.lock").read_text())["stages"]["extract"]["outputs"]


def both(folder: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    fast, rows = fingerprint(folder, "adbc", monkeypatch)
    assert (fast, rows) == fingerprint(folder, "sqlalchemy", monkeypatch)
    return rows


# ------------------------------------------------------------------------------ SQLite
def sqlite_db(path: Path, rows: int = 40) -> str:
    con = sqlite3.connect(path)
    con.execute(
        "CREATE TABLE events (id INTEGER, part INTEGER, ts TEXT, n INTEGER, x REAL, "
        "label TEXT, flag INTEGER, empty TEXT, raw BLOB, y REAL)"
    )
    con.execute("CREATE TABLE labels (part INTEGER, region TEXT)")
    con.executemany("INSERT INTO labels VALUES (?, ?)", [(0, "north"), (1, "süd")])
    times = [
        "2026-02-28T23:00:00.250-01:00",  # 2026-03-01T00:00:00.250Z: exactly as_of, kept
        "2026-03-01T00:00:00.251Z",  # one millisecond later: cut
        "2026-03-01 01:00:00.100+01:00",  # 00:00:00.100Z: kept
    ]
    con.executemany(
        "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                rows - i,  # stored in reverse: ORDER BY must fix it
                i % 2,
                times[i % 3] if i < 6 else f"2026-01-{1 + i % 28:02d}T10:00:00Z",
                None if i % 4 == 0 else i * 1_000_003,
                None if i % 5 == 0 else i / 7,
                None if i % 6 == 0 else f"text {i} ✓",
                i % 2,
                None,
                None if i % 3 else bytes([i % 256, 0, 255]),
                float(i % 3),
            )
            for i in range(rows)
        ],
    )
    con.commit()
    con.close()
    return f"sqlite:///{path}"


JOIN = "SELECT e.*, l.region FROM events e JOIN labels l ON l.part = e.part"


@pytest.mark.parametrize("chunk_size", [7, 50_000])
def test_sqlite_join_same_fingerprint(tmp_path, monkeypatch, chunk_size) -> None:
    url = sqlite_db(tmp_path / "db.sqlite")
    folder = project(tmp_path / "p", url, JOIN, chunk_size=chunk_size)
    assert both(folder, monkeypatch) == 38  # two rows one millisecond after as_of


def test_sqlite_epoch_times_and_composite_order(tmp_path, monkeypatch) -> None:
    con = sqlite3.connect(tmp_path / "db.sqlite")
    con.execute("CREATE TABLE t (a INTEGER, b TEXT, ts REAL, y REAL)")
    con.executemany(
        "INSERT INTO t VALUES (?, ?, ?, ?)",
        [(i % 3, f"k{i}", 1772323200.25 + (i - 10) * 0.001, i * 0.5) for i in range(30)],
    )
    con.commit()
    con.close()
    folder = project(
        tmp_path / "p",
        f"sqlite:///{tmp_path / 'db.sqlite'}",
        "SELECT * FROM t",
        order_by=["a", "b"],
    )
    assert both(folder, monkeypatch) == 11


def test_sqlite_empty_result(tmp_path, monkeypatch) -> None:
    url = sqlite_db(tmp_path / "db.sqlite")
    folder = project(tmp_path / "p", url, JOIN, as_of="2020-01-01T00:00:00Z")
    assert both(folder, monkeypatch) == 0


def test_sqlite_cli_lock_fingerprint_identical(tmp_path, monkeypatch) -> None:
    url = sqlite_db(tmp_path / "db.sqlite", rows=300)
    folder = project(tmp_path / "p", url, JOIN, chunk_size=64)
    assert locked_outputs(folder, "adbc", monkeypatch) == locked_outputs(
        folder, "sqlalchemy", monkeypatch
    )


def test_sqlite_mixed_storage_classes_fall_back(tmp_path, monkeypatch) -> None:
    con = sqlite3.connect(tmp_path / "db.sqlite")
    con.execute("CREATE TABLE t (id INTEGER, ts TEXT, v NUMERIC, y REAL)")
    con.executemany(
        "INSERT INTO t VALUES (?, ?, ?, ?)",
        [(i, "2026-01-01T00:00:00Z", 2.5 if i % 2 else 3, 1.0) for i in range(10)],
    )
    con.commit()
    con.close()
    folder = project(tmp_path / "p", f"sqlite:///{tmp_path / 'db.sqlite'}", "SELECT * FROM t")
    with pytest.raises(SourceError, match="mixes SQLite storage classes"):
        fingerprint(folder, "adbc", monkeypatch)
    assert fingerprint(folder, "auto", monkeypatch) == fingerprint(
        folder, "sqlalchemy", monkeypatch
    )


def test_sqlite_null_first_chunk_falls_back_to_the_same_error(tmp_path, monkeypatch) -> None:
    con = sqlite3.connect(tmp_path / "db.sqlite")
    con.execute("CREATE TABLE t (id INTEGER, ts TEXT, late REAL, y REAL)")
    con.executemany(
        "INSERT INTO t VALUES (?, ?, ?, ?)",
        [(i, "2026-01-01T00:00:00Z", None if i < 10 else 1.5, 1.0) for i in range(20)],
    )
    con.commit()
    con.close()
    folder = project(
        tmp_path / "p", f"sqlite:///{tmp_path / 'db.sqlite'}", "SELECT * FROM t", chunk_size=5
    )
    for reader in ("auto", "sqlalchemy"):
        with pytest.raises(DataError, match="NULL in the whole first chunk"):
            fingerprint(folder, reader, monkeypatch)


def test_adbc_reader_checks_order_by_and_columns(tmp_path, monkeypatch) -> None:
    url = sqlite_db(tmp_path / "db.sqlite")
    folder = project(tmp_path / "p", url, JOIN, order_by=["part"], chunk_size=4)
    with pytest.raises(DataError, match=r"not a unique key: \d+ of 38 rows"):
        fingerprint(folder, "adbc", monkeypatch)
    folder = project(tmp_path / "q", url, JOIN, order_by=["idd"])
    with pytest.raises(DataError, match="did you mean 'idd' -> 'id'"):
        fingerprint(folder, "adbc", monkeypatch)


def late_mix_db(path: Path) -> str:
    """A REAL column whose later rows are stored as integers: the driver reads them as
    doubles without a word, only the probe (which runs beside the read) sees two classes."""
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (id INTEGER, ts TEXT, v, y REAL)")
    con.executemany(
        "INSERT INTO t VALUES (?, ?, ?, ?)",
        [(i, "2026-01-01T00:00:00Z", i + 0.5 if i < 20 else i, 1.0) for i in range(40)],
    )
    con.commit()
    con.close()
    return f"sqlite:///{path}"


def test_sqlite_class_mix_found_after_streaming_restarts(tmp_path, monkeypatch) -> None:
    folder = project(
        tmp_path / "p", late_mix_db(tmp_path / "db.sqlite"), "SELECT * FROM t", chunk_size=8
    )
    m = manifest_mod.load(folder)
    monkeypatch.setenv("MLREPRO_EXTRACT_READER", "auto")
    stream = list(iter_batches(m.source, m.root))
    assert stream.count(RESTART) == 1 and stream[0] is not RESTART  # batches went out first
    assert fingerprint(folder, "auto", monkeypatch) == fingerprint(
        folder, "sqlalchemy", monkeypatch
    )
    with pytest.raises(SourceError, match="mixes SQLite storage classes"):
        fingerprint(folder, "adbc", monkeypatch)
    # through the CLI: the snapshot written before the restart is discarded
    assert locked_outputs(folder, "auto", monkeypatch) == locked_outputs(
        folder, "sqlalchemy", monkeypatch
    )
    staging = [p for p in (folder / ".mlrepro").rglob("*") if p.is_file() and "tmp" in p.name]
    assert staging == []


@pytest.mark.parametrize(
    ("times", "message"),
    [
        (["2026-01-01T00:00:00Z"] * 9 + [1767225600], r"mixes numbers \(1 rows\) and text"),
        (["2026-01-01T00:00:00Z"] * 9 + ["01/02/2026"], "1 of 10 value.s. are not ISO 8601"),
    ],
)
def test_sqlite_time_verdict_checked_beside_the_read(tmp_path, monkeypatch, times, message) -> None:
    con = sqlite3.connect(tmp_path / "db.sqlite")
    con.execute("CREATE TABLE t (id INTEGER, ts, y REAL)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?)", [(i, t, 1.0) for i, t in enumerate(times)])
    con.commit()
    con.close()
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    folder = project(tmp_path / "p", url, "SELECT * FROM t", chunk_size=3)
    for reader in ("adbc", "auto", "sqlalchemy"):  # the reference reader's own error
        with pytest.raises(DataError, match=message):
            fingerprint(folder, reader, monkeypatch)


ODD_TIMES = [
    "2026-01-01",
    "2026-01-01T10:00:00Z",
    "2026-01-01 10:00:00.5+02:00",
    "2026-01-01T10:00+0200",
    "01/02/2024",
    "now",
    "",
    "abc",
    "2026-13-01",
    "2026-02-30",
    "2026-02-29",
    "10000-01-01",
    "0000-01-01",
    "-0001-01-01",
    "2026-01-01T10:00:00.123456789Z",
    " 2026-01-01",
    "2026-01-01 ",
    "12345",
    "2460000.5",
    "2026-01-01T25:00:00",
    "2026-01-01T10:61:00",
    "2026-1-1",
    "T10:00",
    "10:00",
    "10:00:00.5",
    "2026-01-01T10:00:00-14:00",
    "2026-01-01T10:00:00+25:00",
    "Z",
    "2026-01-01Z",
    "2026-01-01T10:00:00ZZ",
    "2026-01-01\t10:00",
    "２０２６-01-01",
    "subsec",
]


def test_julianday_reads_exactly_what_strftime_reads() -> None:
    # The probes count unreadable times with julianday (cheaper); the as-of cut uses strftime.
    from mlrepro.core.database import SQLITE_UTC, unreadable_sql

    con = sqlite3.connect(":memory:")
    for value in ODD_TIMES:
        fast, ref = con.execute(
            f"SELECT {unreadable_sql('?1')}, strftime('{SQLITE_UTC}', ?1) IS NULL", (value,)
        ).fetchone()
        assert fast == ref, value


def imports_of_the_data_path(folder: Path, scratch: Path) -> tuple[list[str], int]:
    """(which of pandas, pandera, sklearn) a fresh interpreter imports to stream, write and
    describe the snapshot of ``folder`` through ADBC, and the rows it streamed."""
    code = f"""
import sys
from pathlib import Path
from mlrepro.core import manifest
from mlrepro.core.database import iter_batches
from mlrepro.pipeline.extract import SnapshotWriter
from mlrepro.pipeline.schema import infer_yaml
m = manifest.load(Path({str(folder)!r}))
with SnapshotWriter(Path({str(scratch)!r})) as sink:
    for batch in iter_batches(m.source, m.root):
        sink.add(batch)
infer_yaml(sink.summary, m.name)
import json
seen = sorted(n for n in ("pandas", "pandera", "sklearn") if n in sys.modules)
print(json.dumps([seen, sink.hasher.rows]))
"""
    env = {**os.environ, "MLREPRO_EXTRACT_READER": "adbc"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    names, rows = json.loads(done.stdout)
    return names, rows


def test_extract_data_path_imports_no_pandas(tmp_path) -> None:
    # pyarrow imports pandas whenever a Python value becomes an Arrow value (pa.array,
    # pa.scalar, pc.fill_null(arr, ""), Array.to_numpy): a fifth of a second that the ADBC
    # path does not pay. Nulls, all-NULL columns, bytes, text and booleans all go through.
    url = sqlite_db(tmp_path / "db.sqlite", rows=300)
    folder = project(tmp_path / "p", url, JOIN, chunk_size=64)
    assert imports_of_the_data_path(folder, tmp_path / "s.parquet") == ([], 298)


def test_unknown_reader_is_a_usage_error(tmp_path, monkeypatch) -> None:
    url = sqlite_db(tmp_path / "db.sqlite")
    folder = project(tmp_path / "p", url, JOIN)
    monkeypatch.setenv("MLREPRO_EXTRACT_READER", "turbo")
    r = run_cli("extract", "-p", folder)
    assert r.code == 2 and "MLREPRO_EXTRACT_READER" in r.err and "sqlalchemy" in r.err


# -------------------------------------------------------------------------- PostgreSQL
PG_TABLE = """
CREATE TABLE events (
    id integer, part smallint, ts timestamptz, naive timestamp, day date, amount numeric,
    price numeric(12, 3), big numeric, n integer, k bigint, x double precision, flag boolean,
    label text, code varchar(8), raw bytea, empty text, y double precision
)"""
PG_ROWS = """
INSERT INTO events SELECT
    i, (i % 2)::smallint,
    timestamptz '2026-03-01 00:00:00.250+00' + (i - 5) * interval '1 millisecond'
        - (i % 7) * interval '1 day',
    timestamp '2026-01-01 10:00:00.5' + i * interval '1 hour',
    date '2026-01-01' + i,
    CASE WHEN i % 4 = 0 THEN NULL ELSE round((i * 1.37)::numeric, (i % 5)) END,
    CASE WHEN i % 3 = 0 THEN NULL ELSE i * 0.125 END,
    CASE WHEN i % 9 = 0 THEN NULL
         ELSE (i * 123456789.123456789012345)::numeric - 0.000000000000001 END,
    CASE WHEN i % 5 = 0 THEN NULL ELSE i * 1000 END,
    i::bigint * 10000000000,
    CASE WHEN i % 6 = 0 THEN NULL ELSE i / 7.0 END,
    CASE WHEN i % 8 = 0 THEN NULL ELSE i % 2 = 0 END,
    CASE WHEN i % 10 = 0 THEN NULL ELSE 'text ' || i || ' ✓' END,
    'c' || (i % 13),
    CASE WHEN i % 3 = 0 THEN NULL ELSE decode(lpad(to_hex(i), 4, '0'), 'hex') END,
    NULL,
    (i % 3)::double precision
FROM generate_series(1, 80) AS i"""


@pytest.mark.postgres
@pytest.mark.parametrize("chunk_size", [9, 50_000])
def test_postgres_same_fingerprint(tmp_path, monkeypatch, pg_clean_schema, chunk_size) -> None:
    with pg_clean_schema.engine.begin() as conn:
        conn.execute(sa.text(PG_TABLE))
        conn.execute(sa.text(PG_ROWS))
        conn.execute(sa.text("CREATE TABLE parts (part smallint, region text)"))
        conn.execute(sa.text("INSERT INTO parts VALUES (0, 'north'), (1, 'süd')"))
    query = "SELECT e.*, p.region FROM events e JOIN parts p ON p.part = e.part"
    folder = project(tmp_path / "p", pg_clean_schema.url, query, chunk_size=chunk_size)
    rows = both(folder, monkeypatch)
    assert 0 < rows < 80  # the as_of cut (millisecond steps around it) took some rows out
    empty = project(tmp_path / "e", pg_clean_schema.url, query, as_of="2020-01-01T00:00:00Z")
    assert both(empty, monkeypatch) == 0
    if chunk_size == 9:  # NUMERIC, bytea, booleans, times: no pandas import either
        assert imports_of_the_data_path(folder, tmp_path / "s.parquet") == ([], rows)


@pytest.mark.postgres
def test_postgres_unmapped_type_falls_back(tmp_path, monkeypatch, pg_clean_schema) -> None:
    with pg_clean_schema.engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE events (id int, ts timestamptz, f real, y float8)"))
        conn.execute(sa.text("INSERT INTO events VALUES (1, '2026-01-01', 0.1, 1)"))
    folder = project(tmp_path / "p", pg_clean_schema.url, "SELECT * FROM events")
    with pytest.raises(SourceError, match="PostgreSQL type float4"):
        fingerprint(folder, "adbc", monkeypatch)
    assert fingerprint(folder, "auto", monkeypatch) == fingerprint(
        folder, "sqlalchemy", monkeypatch
    )


@pytest.mark.postgres
def test_postgres_wrong_password_never_shown(tmp_path, monkeypatch, pg_clean_schema) -> None:
    url = sa.make_url(pg_clean_schema.url)
    secret = "wr0ng-Pa55/word"
    bad = url.set(password=secret).render_as_string(hide_password=False)
    folder = project(tmp_path / "p", bad, "SELECT 1 AS id, now() AS ts, 1.0 AS y")
    for reader in ("adbc", "auto"):
        monkeypatch.setenv("MLREPRO_EXTRACT_READER", reader)
        r = run_cli("extract", "-p", folder)
        assert r.code == 5, r.err
        assert secret not in r.err and "wr0ng" not in r.err


@pytest.mark.postgres
def test_postgres_infinite_time_is_an_error_not_a_number(
    tmp_path, monkeypatch, pg_clean_schema
) -> None:
    with pg_clean_schema.engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE events (id int, ts timestamptz, t timestamp, y float8)"))
        conn.execute(sa.text("INSERT INTO events VALUES (1, '2026-01-01', 'infinity', 1)"))
    folder = project(tmp_path / "p", pg_clean_schema.url, "SELECT * FROM events")
    for reader in ("adbc", "sqlalchemy"):
        with pytest.raises(SourceError):
            fingerprint(folder, reader, monkeypatch)


def test_an_error_with_writes_queued_leaves_the_writer_closed(tmp_path) -> None:
    # Writes queued behind a running one are cancelled before they start; waiting on such a
    # future with concurrent.futures.wait never returns (CI hung here for 300 s).
    import threading

    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlrepro.pipeline.extract import SnapshotWriter

    batch = pa.RecordBatch.from_pydict({"x": list(range(200_000)), "s": ["a"] * 200_000})
    target = tmp_path / "s.parquet"
    outcome: list[str] = []

    def body() -> None:
        for _ in range(20):  # many tries: the race needs a write still queued at the error
            try:
                with SnapshotWriter(target) as sink:
                    for _ in range(3):
                        sink.add(batch)
                    raise RuntimeError("reader failed")
            except RuntimeError as e:
                outcome.append(str(e))

    worker = threading.Thread(target=body, daemon=True)
    worker.start()
    worker.join(120)  # a hang detector, not a timing target
    assert not worker.is_alive(), "leaving the writer on an error hung"
    assert outcome == ["reader failed"] * 20
    pq.read_metadata(target)  # closed cleanly: a valid footer
