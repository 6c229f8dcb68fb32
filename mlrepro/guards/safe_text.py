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
# numpy quotes dtype names like values (``dtype('float64')``, ``dtype('<M8[ns]')``); they
# are the useful part of the message, not data, so they are unquoted before values go.
_DTYPE = re.compile(r"dtype\((['\"])([<>|=]?[A-Za-z]{1,12}\d{0,3}(?:\[[a-z]{1,2}\])?)\1\)")


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
    line = _DTYPE.sub(lambda m: "dtype(" + m[2].replace("[", " ").rstrip("]") + ")", line)
    line = _QUOTED.sub("<value>", line)
    line = _BRACKETED.sub("[<values>]", line)
    line = _LONG_TOKEN.sub("<value>", line)
    line = scrub(line) or ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


# Terminal control: whole escape sequences first (OSC ... BEL/ST, CSI ... final byte, other
# ESC x), then any remaining C0/C1 control character (but newline and tab), DEL, and the
# Unicode bidirectional overrides that make text display in another order than it reads.
_ESCAPES = re.compile(
    r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: window title, hyperlinks, clipboard
    r"|\x1b[P^_X][^\x1b]*(?:\x1b\\)?"  # DCS / PM / APC / SOS strings
    r"|\x1b\[[0-?]*[ -/]*[@-~]?"  # CSI: colours, cursor moves, screen clears
    r"|\x1b[ -/]*[0-~]?"  # any other ESC sequence
    r"|\x9b[0-?]*[ -/]*[@-~]?"  # 8-bit CSI
    r"|\x9d[^\x07\x9c]*(?:\x07|\x9c)?"  # 8-bit OSC
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: object) -> str:
    """``text`` with terminal control sequences and control characters removed.

    The one sanitiser for anything printed from an artifact, a lock, a bundle or a
    request (model cards, column and class names, reasons, paths): an OSC sequence in a
    model card must not retitle the terminal or write to the clipboard, a CSI sequence
    must not clear the screen or hide the real message. Newlines and tabs are kept.
    """
    s = text if isinstance(text, str) else str(text)
    if not _CONTROLS.search(s):
        return s
    return _CONTROLS.sub("", _ESCAPES.sub("", s))
