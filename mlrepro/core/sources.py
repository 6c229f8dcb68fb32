"""Database access: URL expansion, secret redaction and friendly connection errors."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from mlrepro.errors import ManifestError, SourceError
from mlrepro.redaction import redact, register_secret

__all__ = ["connection_error", "engine_for", "expand_env", "redact", "resolve_url"]

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(url: str, where: str = "source.url") -> str:
    """Replace ``${VAR}`` (or ``${VAR:-default}``) with environment values.

    A value from the environment may be a password, so it is masked in every message,
    unless it lies in the public part of the URL (user, host, port, database or folder):
    masking a folder named "data" would garble every message that says "data". A default
    is written in the manifest in clear, so it is no secret.
    """
    from_env: list[str] = []

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        value = os.environ.get(name)
        if value is None:
            value = default
            if value is None:
                raise ManifestError(
                    f"manifest field '{where}': environment variable {name} is not set",
                    hint=f"export {name}=... before running mlrepro",
                )
        else:
            from_env.append(value)
        return value

    expanded = _ENV.sub(sub, url)
    shown = _public_part(expanded)
    for value in from_env:
        if value not in shown:
            register_secret(value)
    return expanded


def _public_part(url: str) -> str:
    """driver://user@host:port/database: the URL without password and query parameters."""
    import sqlalchemy as sa

    try:
        u = sa.make_url(url)
    except Exception:  # not a parsable URL: treat all of it as possibly secret
        return ""
    return f"{u.drivername}://{u.username or ''}@{u.host or ''}:{u.port or ''}/{u.database or ''}"


def resolve_url(url: str, root: Path, where: str = "source.url") -> str:
    """Expand env vars and make relative SQLite paths relative to the project folder."""
    url = expand_env(url, where)
    _register_url_password(url)
    m = re.match(r"^(sqlite(?:\+\w+)?:///)(?!/)(.+)$", url)
    if m and not m.group(2).startswith(":memory:"):
        url = m.group(1) + str((root / m.group(2)).resolve())
    return url


def _register_url_password(url: str) -> None:
    import sqlalchemy as sa

    try:
        register_secret(sa.make_url(url).password)
    except Exception:  # not a parsable URL: engine_for reports it
        return


def engine_for(
    url: str, secret_free: str, where: str = "source.url", must_exist: bool = True
) -> Any:
    """A SQLAlchemy engine; errors name the redacted URL only."""
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url)
    except Exception as exc:  # bad URL syntax or missing driver
        msg = redact(str(exc)).splitlines()[0]
        raise SourceError(
            f"cannot use database URL {secret_free}: {msg}",
            hint="check the URL (dialect+driver://user:password@host/db) and that the driver "
            "is installed (PostgreSQL: pip install 'mlrepro[postgres]')",
        ) from None
    if engine.dialect.name == "sqlite":
        db = engine.url.database
        if must_exist and db and db != ":memory:" and not Path(db).exists():
            raise SourceError(
                f"SQLite database {secret_free} does not exist",
                hint=f"check {where}; relative sqlite paths are relative to the project folder",
            )
    return engine


def connection_error(exc: Exception, secret_free: str) -> SourceError:
    text = redact(str(getattr(exc, "orig", exc) or exc)).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return SourceError(
        f"cannot connect to {secret_free}: {first}",
        hint="check that the database server is running and reachable, and the credentials",
    )
