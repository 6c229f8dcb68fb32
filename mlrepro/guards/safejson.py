"""JSON from untrusted files with a nesting limit checked before parsing.

``json.loads`` recurses once per nesting level: 200,000 ``[`` in a lock or a bundle member
make it raise ``RecursionError`` (an internal error) or exhaust the stack. ``depth`` counts
brackets outside strings in one linear pass, so a hostile document is refused before the
parser sees it.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64  # mlrepro's own files nest at most ~6 levels
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')
_OPEN = frozenset(b"[{")


class TooDeep(ValueError):
    """The document nests deeper than allowed."""


def depth(data: bytes | str, limit: int = MAX_DEPTH) -> int:
    """Maximum nesting depth of a JSON text (stops counting past ``limit`` + 1)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    level = deepest = 0
    for match in _TOKENS.finditer(raw):
        tok = match.group()
        if len(tok) != 1:  # a string
            continue
        if tok[0] in _OPEN:
            level += 1
            if level > deepest:
                deepest = level
                if deepest > limit:
                    return deepest
        else:
            level -= 1
    return deepest


def loads(data: bytes | str, limit: int = MAX_DEPTH) -> Any:
    """``json.loads`` that raises ``TooDeep`` (a ValueError) beyond ``limit`` levels."""
    if depth(data, limit) > limit:
        raise TooDeep(f"nested more than {limit} levels deep")
    return json.loads(data)
