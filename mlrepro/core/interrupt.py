"""Ctrl-C (SIGINT) that always ends a command with exit code 130.

Python turns SIGINT into ``KeyboardInterrupt`` wherever the main thread happens to be, and
an exception raised inside a ``__del__`` or a weakref callback (SQLAlchemy has some) is
printed and dropped, so the run would go on. The handler here also sets a flag: the runner
checks it between stages, and the CLI exits 130 if it is set, whatever happened meanwhile.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

_requested = False


def requested() -> bool:
    """Whether SIGINT arrived since ``handling`` began."""
    return _requested


def check() -> None:
    """Raise ``KeyboardInterrupt`` if SIGINT arrived (and was swallowed somewhere)."""
    if _requested:
        raise KeyboardInterrupt


def _on_sigint(signum: int, frame: Any) -> None:
    global _requested
    _requested = True
    raise KeyboardInterrupt


@contextlib.contextmanager
def handling() -> Iterator[None]:
    """Install the SIGINT handler for the duration of a command (main thread only)."""
    global _requested
    _requested = False
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:  # e.g. started in the background by a shell: keep it
        yield
        return
    signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def ignore_from_now() -> None:
    """Ignore SIGINT while the process exits, so the exit code stays the one chosen."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
