"""SendGrid's refusals as types, made at the edge from its status and its own words, so that the
run branches on what SendGrid meant (``except TooLarge``) and never on a raw status.

Which is which comes from SendGrid's documents and what production shows: a body over the size
limit is a 413, or a 400 that says so and names no contact (both are seen); a 400 names bad
contacts by position (``contacts[3].email``) or the request as a whole (``list_ids``); SGQL
searches give up on slow queries with a 408.
"""

from __future__ import annotations

import re

from shared.errors import SendGridAuthError, SendGridError
from shared.json_input import JsonObject

# How SendGrid words a body over its size limit when it answers 400 instead of 413.
_TOO_LARGE_WORDS = re.compile(r"too large|too big|exceed|size limit|payload|entity", re.IGNORECASE)


class SendGridRefusal(SendGridError):
    """Any 4xx but 429 (and but 401/403, :class:`SendGridAuthError`): no retry changes it."""


class InvalidRequest(SendGridRefusal):
    """A 400 about what was sent."""


class TooLarge(InvalidRequest):
    """The body is over SendGrid's size limit: a 413, or a 400 that says so and names no contact."""


class NamesContacts(InvalidRequest):
    """A 400 that names contacts by their position in the batch; ``named`` maps each to its message."""

    named: dict[int, str]


class BatchRefused(InvalidRequest):
    """A 400 about the request as a whole (its lists), which no subset of contacts would fix."""


class NotFound(SendGridRefusal):
    """A 404: the list, job or contact named does not exist (or no longer does)."""


class RequestTimeout(SendGridRefusal):
    """A 408: SendGrid gave up on the request (SGQL does on slow queries); worth asking again later."""


class MalformedAnswer(SendGridError):
    """A 2xx whose body is not JSON, or not in the documented shape: nothing to retry."""


class RateLimited(SendGridError):
    """A 429 that outlasted the waits the client allows, or whose reset is past the run's deadline."""


def errors_by_position(errors: list[JsonObject]) -> dict[int, str]:
    """SendGrid names bad contacts as ``contacts[12].email``: map position -> its message."""
    found: dict[int, str] = {}
    for error in errors:
        field_name = str(error.get("field") or "")
        if field_name.startswith("contacts[") and "]" in field_name:
            digits = field_name[len("contacts[") : field_name.index("]")]
            if digits.isascii() and digits.isdigit():  # a position SendGrid cannot mean is no position
                found[int(digits)] = f"{field_name}: {error.get('message', '')}"
    return found


def refusal(message: str, *, status: int, errors: list[JsonObject] | None = None) -> SendGridError:
    """The typed error for a 4xx answer (429 included), from its status and SendGrid's words."""
    errors = errors or []
    if status in (401, 403):
        return SendGridAuthError(message, status=status, errors=errors)
    if status == 429:
        return RateLimited(message, status=status, errors=errors)
    if status == 413:
        return TooLarge(message, status=status, errors=errors)
    if status == 404:
        return NotFound(message, status=status, errors=errors)
    if status == 408:
        return RequestTimeout(message, status=status, errors=errors)
    if status != 400:
        return SendGridRefusal(message, status=status, errors=errors)
    return _bad_request(message, errors)


def _bad_request(message: str, errors: list[JsonObject]) -> InvalidRequest:
    named = errors_by_position(errors)
    words = " ".join(str(e.get("message", "")) for e in errors) or message
    if not named and _TOO_LARGE_WORDS.search(words):
        return TooLarge(message, status=400, errors=errors)
    if any(str(e.get("field") or "").startswith("list_ids") for e in errors):
        return BatchRefused(message, status=400, errors=errors)
    if named:
        error = NamesContacts(message, status=400, errors=errors)
        error.named = named
        return error
    return InvalidRequest(message, status=400, errors=errors)
