"""Quote a library's error message without quoting the user's data.

scikit-learn, pandas and database drivers put values into their messages ("could not
convert string to float: 'Jane Doe'", "Found unknown categories ['x']"). mlrepro messages
name the column, the row and the rule instead; a foreign message is kept only as a hint of
what went wrong, with quoted literals and bracketed lists removed and its length capped.
"""

from __future__ import annotations

import re

from mlrepro.redaction import scrub

LIMIT = 200
_QUOTED = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"")
_BRACKETED = re.compile(r"\[[^\[\]\n]*\]|\([^()\n]*=[^()\n]*\)")
_LONG_TOKEN = re.compile(r"\S{41,}")


def first_line(text: object, limit: int = LIMIT) -> str:
    """The first line of a database error, secrets masked, capped.

    Database drivers quote identifiers the same way as values, and the identifier is what
    the user needs to fix the query; the detail lines (e.g. PostgreSQL's "Failing row
    contains ...") are where records appear, and they are dropped.
    """
    lines = str(text).strip().splitlines()
    line = scrub(lines[0] if lines else "") or ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def strip_values(text: object, limit: int = LIMIT) -> str:
    """The first line of ``text`` with data values replaced by ``<value>``, capped."""
    lines = str(text).strip().splitlines()
    line = lines[0] if lines else ""
    line = _QUOTED.sub("<value>", line)
    line = _BRACKETED.sub("[<values>]", line)
    line = _LONG_TOKEN.sub("<value>", line)
    line = scrub(line) or ""
    return line if len(line) <= limit else line[: limit - 3] + "..."
