"""Ctrl-C and SIGTERM: both stop a command the same way, so that a run releases its lock and
records itself interrupted on the way out."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Terminated(KeyboardInterrupt):
    """SIGTERM, taken as Ctrl-C is: the run releases its lock and records itself interrupted."""


@contextmanager
def stopped_by_sigterm() -> Iterator[None]:
    """Without this, SIGTERM ends the process where it stands: the run stays "running" in its
    record and its lock held until the lease runs out."""
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return

    def stop(signum: int, frame: object) -> None:
        # Once: a second SIGTERM (a supervisor insisting) must not cut short the release of the
        # lock and the save of the record that the first one set going. SIGKILL still can.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
