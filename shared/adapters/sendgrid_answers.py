"""Reading SendGrid's answers: the JSON body, its ``errors`` and the next page's token.

This is the one way SendGrid's words enter the app, so it is where they are cleaned: the
``errors`` SendGrid returns are neutralised (every registered secret, the API key among them,
redacted; escape sequences and control characters removed), and the error text that reaches logs
and records has its addresses masked as well.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import requests

from shared.adapters.sendgrid_errors import MalformedAnswer
from shared.errors import SendGridError
from shared.json_input import JsonDocumentError, JsonObject, load_json
from shared.privacy import neutralise, redact

SHOWN_ERRORS = 5  # an error text quotes this many of SendGrid's errors and counts the rest


def answer_json(response: requests.Response) -> JsonObject:
    if not response.content:
        return {}
    try:
        value = load_json(response.content, f"SendGrid's answer ({response.status_code})")
    except JsonDocumentError as exc:
        raise MalformedAnswer(str(exc), status=response.status_code) from None
    return value if isinstance(value, dict) else {"result": value}


def answer_errors(response: requests.Response) -> list[JsonObject]:
    try:
        body = load_json(response.content, "SendGrid's answer")
    except JsonDocumentError:
        return []
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, dict):
        errors = [errors]
    # Neutralised here, the one way SendGrid's words enter the app: they reach records and rejects.
    return [
        {k: neutralise(v) if isinstance(v, str) else v for k, v in e.items()}
        for e in errors or []
        if isinstance(e, dict)
    ]


def answer_error_text(response: requests.Response) -> str:
    """SendGrid's own words, with any address and any secret in them masked: this text reaches
    logs and records."""
    return redact(_raw_error_text(response))


def _raw_error_text(response: requests.Response) -> str:
    errors = answer_errors(response)
    if errors:
        parts = []
        for error in errors[:SHOWN_ERRORS]:
            where = f"{error['field']}: " if error.get("field") else ""
            parts.append(f"{where}{error.get('message', '')}".strip())
        more = f" (+{len(errors) - SHOWN_ERRORS} more)" if len(errors) > SHOWN_ERRORS else ""
        return "; ".join(parts) + more
    return (response.reason or "no error message").strip()


def next_page_token(answer: JsonObject) -> str | None:
    next_url = (answer.get("_metadata") or {}).get("next")
    if not next_url:
        return None
    tokens = parse_qs(urlparse(next_url).query).get("page_token")
    return tokens[0] if tokens else None


# SendGrid's ids (lists, import jobs) are UUIDs; the config's list ids are letters, digits and
# dashes. An id placed in a path is one of those: a list id of "x/../../contacts?delete_all_contacts=true&"
# (from an answer) made removing from a list a DELETE of every contact of the account.
_PATH_ID = re.compile(r"[0-9A-Za-z_-]{1,128}\Z")


def path_id(identifier: str) -> str:
    """An id from an answer or the config, checked before it is placed in a request's path."""
    if not isinstance(identifier, str) or not _PATH_ID.match(identifier):
        raise SendGridError("an id from SendGrid's answer (or the config) is not in the documented shape; not used.")
    return identifier
