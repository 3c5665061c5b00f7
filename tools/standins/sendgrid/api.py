"""What a route of the simulated API is given and answers: the call, the answer, the refusal."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tools.standins.sendgrid.state import SimState

Answer = tuple[int, Any]  # status, JSON payload (None: no body)


@dataclass(frozen=True)
class ApiCall:
    """One request to the simulated API, as its route's handler sees it."""

    query: dict[str, list[str]]
    body: bytes
    state: SimState
    scopes: list[str]
    ids: tuple[str, ...]  # the variable parts of the path, in order
    base: str  # the server's own origin, for the _metadata links of an answer


class ApiError(Exception):
    def __init__(self, status: int, errors: list[dict[str, Any]] | str):
        self.status = status
        self.errors = [{"field": None, "message": errors}] if isinstance(errors, str) else errors


def refuse_if(problems: list[dict[str, Any]], status: int = 400) -> None:
    """Raise the problems a validator found, if any."""
    if problems:
        raise ApiError(status, problems)


def marketing(pattern: str) -> re.Pattern[str]:
    # Matched as the path with its outer slashes stripped was (before the table) compared.
    return re.compile(r"/*v3/marketing/" + pattern + r"/*")


def json_object(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, [{"field": None, "message": "invalid JSON"}]) from None
    if not isinstance(doc, dict):
        raise ApiError(400, [{"field": None, "message": "the body must be a JSON object"}])
    return doc
