"""Extract: `mlrepro extract --force` (ADBC reader) vs the sqlalchemy reader vs plain pandas.

Generates a JOIN of two tables (orders x customers, 20 columns: ints with NULLs, reals,
text, booleans, ISO times) with --rows rows in SQLite, and in PostgreSQL when
MLREPRO_TEST_PG_URL is set. Each contender runs as a fresh process, alternating, --repeat
times; prints the medians and the ratios to the plain script (`pandas.read_sql(query)` +
`to_parquet`), all measured now on this machine. Target: ADBC <= 0.67x plain.
Usage: python benchmarks/bench_extract.py [--rows 160000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = (
    "o.order_id, o.ts, o.amount, o.qty, o.discount, o.channel, o.returned, o.weight, "
    "o.rating, o.y, c.region, c.segment, c.score, c.since, c.vip, c.credit, c.age, c.notes, "
    "c.customer_id AS cust, o.customer_id"
)
QUERY = f"SELECT {COLUMNS} FROM orders o JOIN customers c ON c.customer_id = o.customer_id"
PLAIN = """
import sys
import pandas as pd
import sqlalchemy as sa
engine = sa.create_engine(sys.argv[1])
with engine.connect() as conn:
    frame = pd.read_sql(sa.text(sys.argv[2]), conn)
frame.to_parquet(sys.argv[3])
"""


def rows_of(n: int) -> tuple[list[tuple], list[tuple]]:
    r = random.Random(0)
    base = datetime(2025, 1, 1, tzinfo=timezone.utc)
    customers = [
        (
            i,
            r.choice("NESW"),
            r.choice(["a", "b", "c"]),
            r.random(),
            (base - timedelta(days=r.randint(0, 900))).isoformat(),
            r.randint(0, 1),
            round(r.random() * 1000, 2) + 0.001,
            r.randint(18, 90) if r.random() > 0.1 else None,
            None if r.random() < 0.5 else f"note {i}",
        )
        for i in range(1, 5001)
    ]
    orders = [
        (
            i,
            r.randint(1, 5000),
            (base + timedelta(seconds=i * 60 + r.random())).isoformat(timespec="milliseconds"),
            r.random() * 100,
            r.randint(1, 9),
            None if r.random() < 0.2 else r.random(),
            r.choice(["web", "shop", "phone"]),
            r.randint(0, 1),
            r.random() * 5,
            r.randint(1, 5) if r.random() > 0.1 else None,
            r.random(),
        )
        for i in range(1, n + 1)
    ]
    return customers, orders


CUSTOMERS = (
    "customer_id INTEGER PRIMARY KEY, region TEXT, segment TEXT, score {real}, since TEXT, "
    "vip {bool}, credit {num}, age INTEGER, notes TEXT"
)
ORDERS = (
    "order_id INTEGER PRIMARY KEY, customer_id INTEGER, ts {ts}, amount {real}, qty INTEGER, "
    "discount {real}, channel TEXT, returned {bool}, weight {real}, rating INTEGER, y {real}"
)


def make_sqlite(path: Path, n: int) -> str:
    customers, orders = rows_of(n)
    con = sqlite3.connect(path)
    kinds = {"real": "REAL", "bool": "INTEGER", "num": "REAL", "ts": "TEXT"}
    con.execute(f"CREATE TABLE customers ({CUSTOMERS.format(**kinds)})")
    con.execute(f"CREATE TABLE orders ({ORDERS.format(**kinds)})")
    con.executemany("INSERT INTO customers VALUES (?,?,?,?,?,?,?,?,?)", customers)
    con.executemany("INSERT INTO orders VALUES (?,?,?,?,?,?,?,?,?,?,?)", orders)
    con.commit()
    con.close()
    return f"sqlite:///{path}"


def make_postgres(url: str, n: int) -> str:
    import sqlalchemy as sa

    customers, orders = rows_of(n)
    customers = [(*c[:5], bool(c[5]), *c[6:]) for c in customers]
    orders = [(*o[:7], bool(o[7]), *o[8:]) for o in orders]
    kinds = {"real": "float8", "bool": "boolean", "num": "numeric(10, 3)", "ts": "timestamptz"}
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS bench_extract CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA bench_extract"))
        conn.execute(sa.text("SET search_path = bench_extract"))
        conn.execute(sa.text(f"CREATE TABLE customers ({CUSTOMERS.format(**kinds)})"))
        conn.execute(sa.text(f"CREATE TABLE orders ({ORDERS.format(**kinds)})"))
        raw = conn.connection.dbapi_connection
        with raw.cursor() as cur:
            cur.executemany("INSERT INTO customers VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)", customers)
            cur.executemany("INSERT INTO orders VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)", orders)
    engine.dispose()
    return (
        sa.make_url(url)
        .update_query_dict({"options": "-csearch_path=bench_extract"})
        .render_as_string(hide_password=False)
    )


def project(folder: Path, url: str) -> Path:
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    manifest = {
        "name": "bench-extract",
        "seed": 1,
        "source": {
            "url": url,
            "query": QUERY,
            "timestamp_column": "ts",
            "as_of": "2026-06-30T00:00:00Z",
            "order_by": ["order_id"],
        },
        "target": "y",
        "model": {"estimator": "sklearn.linear_model.Ridge"},
    }
    (folder / "mlrepro.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return folder


def timed(cmd: list[str], cwd: Path, extra: dict[str, str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **extra}
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{cmd[:5]} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - t0


def compare(label: str, url: str, work: Path, repeat: int) -> None:
    folder = project(work / label, url)
    script = work / "plain.py"
    script.write_text(PLAIN)
    extract = [sys.executable, "-m", "mlrepro.cli.main", "extract", "--force", "-q"]
    contenders = {
        "mlrepro extract (adbc)": (extract, {"MLREPRO_EXTRACT_READER": "adbc"}),
        "mlrepro extract (sqlalchemy)": (extract, {"MLREPRO_EXTRACT_READER": "sqlalchemy"}),
        "plain read_sql + to_parquet": (
            [sys.executable, str(script), url, QUERY, str(work / "plain.parquet")],
            {},
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for cmd, extra in contenders.values():  # warm the page cache and imports once
        timed(cmd, folder, extra)
    for _ in range(repeat):  # alternating
        for name, (cmd, extra) in contenders.items():
            times[name].append(timed(cmd, folder, extra))
    plain = statistics.median(times["plain read_sql + to_parquet"])
    print(f"{label}:")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"  {name:32s} median {med:6.2f}s  ratio to plain {med / plain:5.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=160_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        compare("SQLite", make_sqlite(work / "bench.db", args.rows), work, args.repeat)
        pg = os.environ.get("MLREPRO_TEST_PG_URL")
        if pg:
            compare("PostgreSQL", make_postgres(pg, args.rows), work, args.repeat)
        else:
            print("PostgreSQL: skipped (MLREPRO_TEST_PG_URL is not set)")


if __name__ == "__main__":
    main()
