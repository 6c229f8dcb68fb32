"""The ``mlrepro`` entry point: maps errors to exit codes in one place.

The typer app (``app.py``) is imported only when ``quick.fast`` cannot answer: ``--version``,
``status`` and a no-op ``run`` start without typer, pydantic, pandas or scikit-learn.
"""

from __future__ import annotations

import contextlib
import os
import sys

from mlrepro.errors import EXIT_INTERRUPTED


def main(argv: list[str] | None = None) -> None:
    """Entry point: maps errors to exit codes (see README)."""
    from mlrepro.cli.quick import fast
    from mlrepro.core.interrupt import handling, ignore_from_now, requested
    from mlrepro.redaction import forget_secrets

    args = list(sys.argv[1:] if argv is None else argv)
    forget_secrets()
    with handling():
        try:
            code = fast(args)
            if code is None:
                from mlrepro.cli.app import dispatch

                code = dispatch(args)
        except KeyboardInterrupt:
            code = EXIT_INTERRUPTED
        if code == EXIT_INTERRUPTED or requested():
            sys.stderr.write("interrupted\n")
            code = EXIT_INTERRUPTED
    if argv is None:
        ignore_from_now()  # a late Ctrl-C must not turn the exit code into a signal death
    sys.exit(code)


def entry() -> None:
    """Console-script entry point: ``main``, then exit without interpreter teardown.

    Tearing down pandas, scikit-learn and pyarrow module state takes a quarter to half a
    second at every exit, more than the work of a small pipeline. Everything mlrepro writes
    is flushed, fsynced and closed before ``main`` returns, so the process can end at once.
    """
    code = 0
    try:
        main()
    except SystemExit as exc:
        if isinstance(exc.code, str):
            sys.stderr.write(exc.code + "\n")
            code = 1
        else:
            code = exc.code or 0
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe must not turn into a traceback
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
