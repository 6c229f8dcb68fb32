"""Keep secrets out of locks, logs and error messages.

``redact`` hides passwords in anything that looks like a database URL or a ``password=``
setting. ``register_secret`` remembers values that came from the environment or a URL (a
password expanded from ``${ENV}``), and ``scrub`` removes them wherever they appear, so a
driver message that quotes them in an unknown format still cannot leak them.
"""

from __future__ import annotations

import re

MASK = "***"
MIN_SECRET_LEN = 4  # shorter values would mask ordinary words in messages

# scheme://user:password@host -- greedy up to the last '@' of the token, so a password
# holding an unescaped '@' is hidden whole.
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][\w+.-]*://[^:/@\s]*:)[^\s]*(@)")
# password=secret in URL query strings and libpq/ODBC connection strings
_KEY_PASSWORD = re.compile(r"(?i)(\b(?:password|passwd|pwd)\s*=\s*)('[^']*'|\"[^\"]*\"|[^\s&;,]+)")

_secrets: set[str] = set()


def redact(text: str) -> str:
    """Hide passwords in URLs (``user:secret@host`` -> ``user:***@host``) and settings."""
    text = _URL_PASSWORD.sub(rf"\g<1>{MASK}\g<2>", text)
    return _KEY_PASSWORD.sub(rf"\g<1>{MASK}", text)


def register_secret(value: str | None) -> None:
    """Remember a secret value so that ``scrub`` removes it from any text."""
    if value and len(value) >= MIN_SECRET_LEN:
        _secrets.add(value)


def forget_secrets() -> None:
    """Forget registered secrets (each CLI invocation starts afresh)."""
    _secrets.clear()


def scrub(text: str | None) -> str | None:
    """``redact`` plus removal of every registered secret value."""
    if not text:
        return text
    text = redact(text)
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
