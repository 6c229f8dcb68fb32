"""A database password never appears in the lock, the output, or an error message.

Passwords come in a URL literal or through ``${ENV}``; failures come from an unreachable
port, a real PostgreSQL refusing a wrong password, and an unexpected exception.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from cli_helpers import run_cli

from mlrepro import redaction
from mlrepro.errors import EXIT_INTERNAL, EXIT_SOURCE, MlreproError

SECRET = "S3cret-Pa55-xq7"


def _set_url(project: Path, url: str, extra: str = "") -> None:
    manifest = project / "mlrepro.yaml"
    text = manifest.read_text().replace("sqlite:///data/diabetes.db", url)
    manifest.write_text(text + extra)


def _outputs(project: Path, capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lock = project / "mlrepro.lock"
    return captured.out + captured.err + (lock.read_text() if lock.exists() else "")


@pytest.mark.parametrize("via_env", [False, True], ids=["literal", "env"])
def test_unreachable_server_error_hides_password(small_project, capsys, monkeypatch, via_env):
    monkeypatch.setenv("MLREPRO_TEST_SECRET", SECRET)
    password = "${MLREPRO_TEST_SECRET}" if via_env else SECRET
    _set_url(small_project, f"postgresql+psycopg://alice:{password}@127.0.0.1:1/db")
    for args in (["run", "--json"], ["extract"], ["status", "--json"]):
        code = run_cli(*args, "-p", str(small_project)).code
        text = _outputs(small_project, capsys)
        assert SECRET not in text
        if args[0] != "status":
            assert code == EXIT_SOURCE
            assert "cannot connect to postgresql+psycopg://alice:***@127.0.0.1:1/db" in text


@pytest.mark.postgres
def test_wrong_password_on_real_postgres_is_not_echoed(pg_url, small_project, capsys):
    url = sa.make_url(pg_url).set(password=SECRET).render_as_string(hide_password=False)
    _set_url(small_project, url)
    code = run_cli("run", "--json", "-p", str(small_project)).code
    text = _outputs(small_project, capsys)
    assert code == EXIT_SOURCE
    assert "password authentication failed" in text
    assert SECRET not in text
    assert not (small_project / "mlrepro.lock").exists()


@pytest.mark.postgres
@pytest.mark.slow
def test_successful_postgres_run_records_no_password(pg_clean_schema, small_project, capsys):
    """Extract from PostgreSQL and predict into a PostgreSQL table, password in both URLs."""
    src = sa.create_engine(f"sqlite:///{small_project / 'data' / 'diabetes.db'}")
    with src.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM visits")).mappings().all()
    import pandas as pd

    frame = pd.DataFrame(rows)
    frame["recorded_at"] = pd.to_datetime(frame["recorded_at"], utc=True)
    frame.to_sql("visits", pg_clean_schema.engine, index=False)
    url = pg_clean_schema.url
    password = sa.make_url(url).password
    assert password
    manifest = small_project / "mlrepro.yaml"
    text = manifest.read_text().replace("sqlite:///data/diabetes.db", url)
    text = text.replace("  output: predictions.parquet", f"  table: scored\n  output_url: {url}")
    manifest.write_text(text)

    assert run_cli("run", "-p", str(small_project)).code == 0, capsys.readouterr().err
    out = _outputs(small_project, capsys)
    userinfo = f":{password}@"
    assert userinfo not in out
    lock = json.loads((small_project / "mlrepro.lock").read_text())
    assert lock["stages"]["extract"]["details"]["url"].count(":***@") == 1
    assert ":***@" in lock["stages"]["predict"]["params"]["output_url"]
    with pg_clean_schema.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM scored")).scalar_one() == 20


def test_unexpected_exception_is_reported_without_secrets(small_project, capsys, monkeypatch):
    import dataclasses

    from mlrepro.pipeline import registry

    monkeypatch.setenv("MLREPRO_TEST_SECRET", SECRET)
    _set_url(small_project, "sqlite:///data/diabetes.db?x=${MLREPRO_TEST_SECRET}")

    def broken(ctx):  # type: ignore[no-untyped-def]
        from mlrepro.core.sources import resolve_url

        resolve_url(ctx.m.source.url, ctx.root)  # registers the expanded value
        raise RuntimeError(f"driver said: postgresql://bob:{SECRET}@db/x; token {SECRET}")

    extract = dataclasses.replace(registry.STAGES["extract"], execute=broken)
    monkeypatch.setitem(registry.STAGES, "extract", extract)
    monkeypatch.setenv("MLREPRO_DEBUG", "1")  # the traceback is printed too
    code = run_cli("run", "--json", "-p", str(small_project)).code
    text = _outputs(small_project, capsys)
    assert code == EXIT_INTERNAL
    assert "unexpected RuntimeError" in text and "Traceback" in text
    assert SECRET not in text


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("postgresql://u:p@ss@host/db failed", "p@ss"),
        ("mysql+pymysql://u:pw%40x@h:3306/db", "pw%40x"),
        ("connect: host=h password=hunter22 dbname=x", "hunter22"),
        ("pg://h/db?sslmode=require&password=qwerty9&x=1", "qwerty9"),
        ("dsn 'user=u password=\"a b c\" host=h'", "a b c"),
    ],
)
def test_redact_hides_password_forms(text: str, hidden: str) -> None:
    assert hidden not in redaction.redact(text)


def test_errors_scrub_registered_secrets() -> None:
    redaction.forget_secrets()
    redaction.register_secret(SECRET)
    try:
        err = MlreproError(f"bad value {SECRET}", hint=f"try {SECRET}")
        assert SECRET not in str(err) and SECRET not in json.dumps(err.to_dict())
    finally:
        redaction.forget_secrets()
