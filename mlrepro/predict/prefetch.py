"""Run an iterator a few items ahead in a background thread (a bounded pipeline stage).

Batch predict chains stages (read | validate + predict | write) so that reading and
writing overlap with the model, which releases the GIL in its numeric kernels. Queues are
bounded, so memory stays at a few chunks whatever the input size.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()
_POLL_S = 0.1


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetch(items: Iterable[T], depth: int = 1, name: str = "mlrepro-prefetch") -> Iterator[T]:
    """Yield ``items`` in order, producing up to ``depth`` of them ahead in a thread.

    An exception in the producer is re-raised here, at the position it happened. Closing
    the returned generator (or an error in the consumer) stops the producer after the item
    it is working on.
    """
    q: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            put(_Failure(exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:  # e.g. stop an upstream prefetch stage
                close()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        # A generator can be finalised by the garbage collector in any thread, including
        # its own producer: that thread cannot wait for itself, and stop is already set.
        while thread.is_alive() and thread is not threading.current_thread():
            with contextlib.suppress(queue.Empty):
                q.get(timeout=_POLL_S)
            thread.join(timeout=_POLL_S)
