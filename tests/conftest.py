"""Fixtures shared by all tests.

PostgreSQL
    ``pg_url`` is the URL of a test server, from ``MLREPRO_TEST_PG_URL``. Start one the way CI
    does with ``eval "$(.ci/start-postgres.sh)"``. Without a reachable server the tests that
    need it are skipped locally, but fail when ``CI=true``: in CI a missing server is a broken
    build, never a silent skip.

    ``pg_clean_schema`` gives each test its own freshly created schema (dropped afterwards),
    so tests can create tables with fixed names without seeing each other's.

Redis
    ``redis_url`` is the URL of a test server, from ``MLREPRO_TEST_REDIS_URL`` (start one the
    way CI does with ``eval "$(.ci/start-redis.sh)"``); skipped locally without one, a failure
    when ``CI=true``, like ``pg_url``.

Examples
    ``copy_example("diabetes")`` copies ``examples/diabetes`` (manifest and data, without
    outputs of earlier runs) into the test's ``tmp_path`` and returns the copy's folder.
"""

from __future__ import annotations

import os
import shutil
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLES_DIR = REPO_ROOT / "examples"
PG_URL_VAR = "MLREPRO_TEST_PG_URL"
REDIS_URL_VAR = "MLREPRO_TEST_REDIS_URL"

# Left out of example copies: what a run writes (see .gitignore) and build leftovers.
EXAMPLE_IGNORE = (
    ".mlrepro",
    "mlrepro.lock",
    ".mlrepro.lock.pid",
    "predictions*",
    "__pycache__",
    ".*.tmp",
)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def _unusable(server: str, script: str, var: str, reason: str) -> None:
    """Skip locally; fail in CI (a missing server there is a broken build). Never returns."""
    hint = f'start one with: eval "$(.ci/{script})"  (sets {var})'
    if in_ci():
        pytest.fail(
            f"CI=true but the {server} test server is not usable: {reason}. "
            f".ci/run must start it and export {var}; {hint}",
            pytrace=False,
        )
    pytest.skip(f"no {server} test server: {reason}; {hint}")


def _no_server(reason: str) -> None:
    _unusable("PostgreSQL", "start-postgres.sh", PG_URL_VAR, reason)


@pytest.fixture(scope="session")
def pg_url() -> str:
    """URL of the PostgreSQL test server (``MLREPRO_TEST_PG_URL``), checked with ``SELECT 1``."""
    url = os.environ.get(PG_URL_VAR, "").strip()
    if not url:
        _no_server(f"{PG_URL_VAR} is not set")
    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 5})
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1")).scalar_one()
        finally:
            engine.dispose()
    except Exception as exc:  # bad URL, missing driver, server down, wrong password...
        safe_url = sa.make_url(url).render_as_string(hide_password=True)
        _no_server(f"cannot connect to {safe_url} ({type(exc).__name__}: {exc})")
    return url


def _no_redis(reason: str) -> None:
    _unusable("Redis", "start-redis.sh", REDIS_URL_VAR, reason)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the Redis test server (``MLREPRO_TEST_REDIS_URL``), checked with ``PING``."""
    url = os.environ.get(REDIS_URL_VAR, "").strip()
    if not url:
        _no_redis(f"{REDIS_URL_VAR} is not set")
    try:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # missing package, bad URL, server down...
        _no_redis(f"cannot connect to {url} ({type(exc).__name__}: {exc})")
    return url


@dataclass(frozen=True)
class PgSchema:
    """A schema of its own for one test.

    ``engine`` and ``url`` both have ``search_path`` set to ``schema``, so unqualified table
    names land there: pass ``url`` to code that takes a database URL (e.g. a manifest's
    ``source.url``), use ``engine`` directly in the test.
    """

    schema: str
    url: str
    engine: sa.Engine


@pytest.fixture
def pg_clean_schema(pg_url: str) -> Iterator[PgSchema]:
    """A freshly created, uniquely named schema; dropped (with its tables) after the test."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_url, connect_args={"connect_timeout": 5})
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = (
        sa.make_url(pg_url)
        .update_query_dict({"options": f"-csearch_path={schema}"})
        .render_as_string(hide_password=False)
    )
    engine = sa.create_engine(url, connect_args={"connect_timeout": 5})
    try:
        yield PgSchema(schema=schema, url=url, engine=engine)
    finally:
        engine.dispose()
        try:
            with admin.begin() as conn:
                # A connection the test leaked could hold locks: don't hang on it.
                conn.execute(sa.text("SET LOCAL lock_timeout = '10s'"))
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        except sa.exc.DBAPIError as exc:
            warnings.warn(f"could not drop test schema {schema}: {exc}", stacklevel=1)
        finally:
            admin.dispose()


@pytest.fixture
def copy_example(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``copy_example(name, dest=None)`` copies ``examples/<name>`` and returns it.

    The copy goes to ``dest`` or ``tmp_path / name``; it holds the manifest and ``data/``
    but no outputs of earlier runs (``.mlrepro/``, ``mlrepro.lock``, ``predictions*``).
    """

    def copy(name: str, dest: Path | None = None) -> Path:
        src = EXAMPLES_DIR / name
        if not (src / "mlrepro.yaml").is_file():
            known = sorted(p.parent.name for p in EXAMPLES_DIR.glob("*/mlrepro.yaml"))
            raise ValueError(f"no example {name!r} in {EXAMPLES_DIR}; known: {known}")
        target = Path(dest) if dest is not None else tmp_path / name
        shutil.copytree(src, target, ignore=shutil.ignore_patterns(*EXAMPLE_IGNORE))
        return target

    return copy


@pytest.fixture(autouse=True)
def _fresh_secret_registry() -> Iterator[None]:
    """Each test starts with no registered secrets, like each CLI invocation does."""
    from mlrepro.redaction import forget_secrets

    forget_secrets()
    yield
    forget_secrets()
