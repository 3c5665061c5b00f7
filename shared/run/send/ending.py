"""Waiting for a worker thread's end, by an event that thread sets last, never by ``Thread.join``.

On Python 3.11, a ``join`` cut short by KeyboardInterrupt (Ctrl-C, or SIGTERM taken as one) marks
the thread stopped while it still runs (the bpo-45274 fix releases its state lock), so every later
``join`` returns at once. A run that joined its sender after an interrupt would write its final
record while requests were still in flight: batches accepted after the record, a record that
breaks the conservation law.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


def wait_for_end(
    ended: threading.Event, tick: Callable[[], None] | None = None, *, through_interrupts: bool = False
) -> None:
    """Wait until ``ended`` is set, calling ``tick`` now and then. ``through_interrupts``: a
    further Ctrl-C does not cut the wait short (the run is stopping already, and what is in
    flight is bounded by each request's own timeout)."""
    while True:
        try:
            if ended.wait(timeout=0.5):
                return
            if tick is not None:
                tick()
        except KeyboardInterrupt:
            if not through_interrupts:
                raise
