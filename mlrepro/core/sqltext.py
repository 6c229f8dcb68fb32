"""A small SQL scanner: the words of a query outside strings, comments and parentheses.

Enough to find clauses that sit at the top level of ``source.query`` (no SQL parser: the
query is sent to the database as written). Quoted strings ('...'), quoted identifiers
("...", `...`, [...]), PostgreSQL dollar quotes ($tag$...$tag$) and comments (-- and
/* */) are skipped, so a column called "limit" or a string 'LIMIT 5' is not a clause.
"""

from __future__ import annotations

import re

from mlrepro.errors import ManifestError

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_DOLLAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_CLOSING = {"'": "'", '"': '"', "`": "`", "[": "]"}


def top_level_words(sql: str) -> list[tuple[str, int]]:
    """Upper-cased words at parenthesis depth 0, with their offsets."""
    words: list[tuple[str, int]] = []
    depth, i, n = 0, 0, len(sql)
    while i < n:
        c = sql[i]
        if c in _CLOSING:
            close = _CLOSING[c]
            j = i + 1
            while j < n:
                if sql[j] == close:
                    if close != "]" and j + 1 < n and sql[j + 1] == close:  # '' or "" escape
                        j += 2
                        continue
                    break
                j += 1
            i = j + 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif c == "$" and (m := _DOLLAR.match(sql, i)):
            j = sql.find(m.group(0), m.end())
            i = n if j < 0 else j + len(m.group(0))
        elif c == "(":
            depth += 1
            i += 1
        elif c == ")":
            depth = max(depth - 1, 0)
            i += 1
        elif m := _WORD.match(sql, i):
            if depth == 0:
                words.append((m.group(0).upper(), i))
            i = m.end()
        else:
            i += 1
    return words


def row_window_clause(sql: str) -> str | None:
    """A top-level LIMIT / OFFSET / FETCH FIRST|NEXT / TOP clause, or None."""
    found = top_level_words(sql)
    words = [w for w, _ in found]
    for k, word in enumerate(words):
        nxt = words[k + 1] if k + 1 < len(words) else ""
        if word in ("LIMIT", "OFFSET"):
            return word
        if word == "FETCH" and nxt in ("FIRST", "NEXT"):
            return f"FETCH {nxt}"
        after = sql[found[k][1] + 3 :].lstrip()[:1]
        if (
            word == "TOP"
            and k
            and words[k - 1] in ("SELECT", "DISTINCT", "ALL")
            and (after.isdigit() or after == "(")  # TOP 10 / TOP (10); not a column 'top'
        ):
            return "TOP"
    return None


def check_source_query(sql: str, where: str = "source.query") -> str:
    """Refuse a query whose result is cut to a row window before the as_of cut."""
    clause = row_window_clause(sql)
    if clause is not None:
        raise ManifestError(
            f"manifest field '{where}': a top-level {clause} is not allowed: mlrepro applies "
            "the as_of cut (and the order) to the query's result, so a row added after as_of "
            f"would shift the {clause} window, change the snapshot and make verify report a "
            "back-fill that never happened",
            hint=f"remove {clause} from {where}; to train on part of the data, filter on a "
            "stable column instead (e.g. WHERE id % 10 = 0, or a date range at or before "
            "as_of)",
        )
    return sql
