"""The services CI starts work: a round trip through the PostgreSQL test server."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

UTC = timezone.utc


@pytest.mark.postgres
def test_postgres_round_trips_timestamptz(pg_clean_schema):
    engine = pg_clean_schema.engine
    meta = sa.MetaData()
    visits = sa.Table(
        "visits",
        meta,
        sa.Column("visit_id", sa.Integer, primary_key=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("bmi", sa.Float),
    )
    meta.create_all(engine)
    rows = [
        {"visit_id": 1, "recorded_at": datetime(2026, 6, 29, 23, 30, tzinfo=UTC), "bmi": 21.5},
        # 01:00 at UTC+2 is 23:00 UTC the day before: before the cut below.
        {
            "visit_id": 2,
            "recorded_at": datetime(2026, 6, 30, 1, 0, tzinfo=timezone(timedelta(hours=2))),
            "bmi": None,
        },
        {"visit_id": 3, "recorded_at": datetime(2026, 7, 1, 8, 0, tzinfo=UTC), "bmi": 30.25},
    ]
    with engine.begin() as conn:
        conn.execute(visits.insert(), rows)

    as_of = datetime(2026, 6, 30, 0, 0, tzinfo=UTC)
    query = sa.select(visits).where(visits.c.recorded_at <= as_of).order_by(visits.c.visit_id)
    with engine.connect() as conn:
        got = [row._asdict() for row in conn.execute(query)]

    assert [r["visit_id"] for r in got] == [1, 2]
    assert [r["recorded_at"] for r in got] == [rows[0]["recorded_at"], rows[1]["recorded_at"]]
    assert all(r["recorded_at"].tzinfo is not None for r in got)
    assert [r["bmi"] for r in got] == [21.5, None]

    # The table lives in the test's own schema, and the schema's URL sees it unqualified.
    assert sa.inspect(engine).get_table_names(schema=pg_clean_schema.schema) == ["visits"]
    other = sa.create_engine(pg_clean_schema.url)
    try:
        with other.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM visits")).scalar_one() == 3
    finally:
        other.dispose()
