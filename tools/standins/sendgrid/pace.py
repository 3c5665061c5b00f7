"""SendGrid's pace: ``X-RateLimit-*`` headers on every answer, and 429s past the limit.

SendGrid's "Rate limits" page: limits are per endpoint and announced only in these headers; no
number is published for the Marketing endpoints. Every answer carries ``X-RateLimit-Limit``,
``-Remaining`` and ``-Reset`` (the epoch second the window ends), per endpoint (method and route,
ids folded), in fixed windows; a request past the limit is a 429 with the same headers.
"""

from __future__ import annotations

import math
import time

# SendGrid's pace as production callers see it: endpoint -> (limit, window s). The PUT's is what a
# production sync settled at (Stand-With-Crypto/swc-web, ``sendgridContactsCronJob/config.ts``:
# about 6 a minute); no number is published for the others, which are assumed (a poll, search or
# removal a second).
PRODUCTION_PACE = {
    "PUT /v3/marketing/contacts": (6, 60.0),
    "GET /v3/marketing/contacts/imports/{id}": (60, 60.0),
    "POST /v3/marketing/contacts/search/emails": (60, 60.0),
    "DELETE /v3/marketing/lists/{id}/contacts": (60, 60.0),
}
# Announced when no limit is set, so that a client always sees the headers.
_UNLIMITED = {"X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": "999"}


def route_key(method: str, path: str) -> str:
    # One rate-limit bucket per endpoint, ids folded: SendGrid limits per endpoint.
    parts = ["{id}" if len(p) >= 20 or p.isdigit() else p for p in path.strip("/").split("/")]
    return method + " /" + "/".join(parts)


class Pace:
    """The limits in force and each endpoint's current window."""

    def __init__(self) -> None:
        self.limit: int | None = None  # requests per window, per route; None: no limit
        self.window = 1.0
        # Per endpoint ("PUT /v3/marketing/contacts"): (limit, window seconds); others use the above.
        self.endpoints: dict[str, tuple[int, float]] = {}
        self.refused = 0  # 429s answered for the pace, over the life of the state
        self._windows: dict[str, tuple[float, int]] = {}

    def restart_windows(self) -> None:
        self._windows.clear()

    def take(self, route: str) -> tuple[bool, dict[str, str]]:
        """One request's place in its endpoint's window. Windows are fixed (aligned on multiples of
        their length), so ``X-RateLimit-Reset`` names the second the window really ends."""
        now = time.time()
        limit, window = self.endpoints.get(route) or (self.limit, self.window)
        if limit is None:
            return True, {**_UNLIMITED, "X-RateLimit-Reset": str(math.ceil(now + 1))}
        start = math.floor(now / window) * window
        known_start, used = self._windows.get(route, (start, 0))
        if known_start != start:
            used = 0
        reset = math.ceil(start + window)
        allowed = used < limit
        if allowed:
            used += 1
        else:
            self.refused += 1
        self._windows[route] = (start, used)
        return allowed, {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(0, limit - used)),
            "X-RateLimit-Reset": str(reset),
        }
