"""When to retry a SendGrid call, and how long to wait first. Pure: no clock, no I/O."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    # Attempts for 5xx, timeouts and dropped connections (the first try included).
    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    # 429s do not spend the attempts above: SendGrid says when to come back. They have their own
    # bound so that a storm that never ends still ends the run.
    max_rate_limited: int = 30
    max_rate_limit_wait: float = 120.0

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Exponential backoff with full jitter after failed ``attempt`` (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return (rng or random).uniform(ceiling / 2, ceiling)

    def rate_limit_wait(self, headers: Mapping[str, str], now: float, rng: random.Random | None = None) -> float:
        """Seconds to wait after a 429: until ``X-RateLimit-Reset``, else ``Retry-After``."""
        wait: float | None = None
        reset = _number(headers.get("X-RateLimit-Reset"))
        if reset is not None:
            # SendGrid sends the epoch second the window resets; a small value is a delta.
            wait = reset - now if reset > 1_000_000_000 else reset
        if wait is None:
            wait = _number(headers.get("Retry-After"))
        if wait is None:
            wait = self.base_delay
        # A little jitter so that parallel workers do not return in the same instant.
        wait = max(0.0, wait) + (rng or random).uniform(0.05, 0.25)
        return min(wait, self.max_rate_limit_wait)


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None
