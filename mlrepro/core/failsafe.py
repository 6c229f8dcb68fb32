"""Last line of defence: turn an unexpected exception into an MlreproError.

A disk filling up or a permission problem can surface from any library as a bare
``OSError``; anything else is a bug in mlrepro. Either way the user gets a message and a
hint, never a traceback that could carry a password or a row of data (set
``MLREPRO_DEBUG=1`` to see the traceback, with secrets still masked).
"""

from __future__ import annotations

import os
import sys
import traceback

from mlrepro.core.atomic import disk_full_error, is_disk_full
from mlrepro.errors import ArtifactError, InternalError, MlreproError
from mlrepro.guards.safe_text import strip_values
from mlrepro.redaction import scrub


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if f"{os.sep}mlrepro{os.sep}" in f.filename] or frames
    if not ours:
        return ""
    f = ours[-1]
    return f" at {os.path.basename(f.filename)}:{f.lineno}"


def as_error(exc: BaseException) -> MlreproError:
    """The MlreproError to report for an exception mlrepro did not anticipate."""
    name = getattr(exc, "filename", None)
    if is_disk_full(exc):
        return disk_full_error(os.path.basename(str(name)) if name else "a file")
    if isinstance(exc, PermissionError):
        return ArtifactError(
            f"permission denied for {name or 'a file'}",
            hint="check that you may read and write the project folder and its .mlrepro/",
        )
    if os.environ.get("MLREPRO_DEBUG"):
        text = "".join(traceback.format_exception(exc))
        sys.stderr.write(scrub(text) or "")
    return InternalError(
        f"unexpected {type(exc).__name__}{_where(exc)}: {strip_values(exc)}",
        hint="this is a bug in mlrepro; please report it with the output of the same "
        "command run with MLREPRO_DEBUG=1 (secrets stay masked)",
    )
