"""SendGrid's pace, learned from its answers: a budget per endpoint that a request waits for,
instead of spending a 429.

SendGrid publishes no rate limit for the Marketing endpoints: every answer says it in
``X-RateLimit-Limit`` (requests a window), ``-Remaining`` (left in this window) and ``-Reset``
(the epoch second the window ends). One :class:`PaceBudget` is shared by every thread of a run
(the senders, the job poller, removals): before a request, :meth:`PaceBudget.before` takes a
place in its endpoint's window, or waits until the window ends; every answer's headers set what
is left (:meth:`PaceBudget.after`). Requests in flight hold their place until answered, so
threads never spend the same place twice.

Before the first answer nothing is known: ``PUT /v3/marketing/contacts`` starts with one request
in flight (production callers see about 6 a minute), other endpoints with a few. A 429 is still
possible (other tools share the account's budget): the client honours it, and its headers empty
the window here. No wait goes past the run's deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from shared.adapters.sendgrid_errors import RateLimited
from shared.errors import SendGridError

UPSERT = "PUT /v3/marketing/contacts"
# Requests in flight on an endpoint before its first answer has told its limit.
FIRST_IN_FLIGHT = {UPSERT: 1}
DEFAULT_FIRST_IN_FLIGHT = 4
# Past the Reset second, a little more: the server's clock and ours differ by a little.
RESET_MARGIN = 0.05
# A Reset below this is a number of seconds, not an epoch second.
_EPOCH = 1_000_000_000


@dataclass
class _Window:
    limit: int | None = None
    remaining: int | None = None  # None: no answer yet
    reset: float = 0.0  # epoch second the window ends; 0: not known
    in_flight: int = 0


class PaceBudget:
    """The run's budget per endpoint (``METHOD /route/{id}``), thread-safe."""

    def __init__(self, *, clock: Callable[[], float] = time.time):
        self._clock = clock
        self._cond = threading.Condition()
        self._windows: dict[str, _Window] = {}
        self._refused: dict[str, str] = {}

    def refuse(self, endpoint: str, reason: str) -> None:
        """No more requests to ``endpoint`` (those waiting for budget too): each raises ``reason``."""
        with self._cond:
            self._refused[endpoint] = reason
            self._cond.notify_all()

    def before(self, endpoint: str, deadline: float | None) -> None:
        """Wait until ``endpoint`` has a place for one more request, and take it; raise if the
        wait would pass ``deadline`` (epoch seconds)."""
        with self._cond:
            window = self._windows.setdefault(endpoint, _Window())
            while True:
                if endpoint in self._refused:
                    raise SendGridError(self._refused[endpoint])
                now = self._clock()
                if window.limit is not None and window.reset and now >= window.reset + RESET_MARGIN:
                    # The window has ended: the next holds the whole limit until an answer says more.
                    window.remaining, window.reset = window.limit, 0.0
                if self._free(endpoint, window) > 0:
                    window.in_flight += 1
                    return
                until = window.reset + RESET_MARGIN if window.reset else now + 1.0
                if deadline is not None and until > deadline:
                    raise RateLimited(
                        f"{endpoint}: SendGrid's rate limit leaves no request before the run's deadline.",
                        status=429,
                    )
                # Woken early by an answer (a place freed, a window learned); else at the reset.
                self._cond.wait(timeout=max(0.01, until - now))

    def after(self, endpoint: str, status: int | None, headers: Mapping[str, str]) -> None:
        """The answer to a request :meth:`before` let go (``status`` None: no answer came)."""
        with self._cond:
            window = self._windows.setdefault(endpoint, _Window())
            window.in_flight = max(0, window.in_flight - 1)
            learned = _announced(headers, self._clock())
            if learned is not None:
                limit, remaining, reset = learned
                if window.remaining is None or reset > window.reset + 0.5:
                    window.limit, window.remaining, window.reset = limit, remaining, reset  # a newer window
                elif reset >= window.reset - 0.5:
                    window.limit, window.remaining = limit, min(window.remaining, remaining)
                # else: an answer from a window already over: it says nothing of this one
            if status == 429:
                window.remaining = 0
            self._cond.notify_all()

    @staticmethod
    def _free(endpoint: str, window: _Window) -> int:
        if window.remaining is None:
            return FIRST_IN_FLIGHT.get(endpoint, DEFAULT_FIRST_IN_FLIGHT) - window.in_flight
        return window.remaining - window.in_flight


def _announced(headers: Mapping[str, str], now: float) -> tuple[int, int, float] | None:
    """(limit, remaining, reset epoch) from an answer's headers; None if any is missing or bad."""
    try:
        limit = int(headers["X-RateLimit-Limit"])
        remaining = int(headers["X-RateLimit-Remaining"])
        reset = float(headers["X-RateLimit-Reset"])
    except (KeyError, ValueError, TypeError):
        return None
    if limit < 0 or remaining < 0 or reset < 0 or reset != reset:  # NaN
        return None
    return limit, min(remaining, limit), reset if reset > _EPOCH else now + reset
