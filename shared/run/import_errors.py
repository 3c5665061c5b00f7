"""Reading an import job's errors file: which contacts SendGrid failed inside a job, and why.

SendGrid documents only that ``errors_url`` is "the download URL of the file which provides
information about any errors"; its format is not documented. So this reads it defensively: CSV
with a header row that names an email column and an error column, or JSON (an array of objects,
or an object holding one), optionally gzipped. Whatever it cannot read with certainty raises
:class:`ErrorsFileUnreadable`, and the caller falls back to confirming nothing of the batch.
"""

from __future__ import annotations

import csv
import io
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from shared.errors import ExportError

MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024
MAX_MESSAGE_CHARS = 500
_EMAIL_HEADERS = ("email", "email_address", "emailaddress", "primary_email", "e-mail")
_MESSAGE_HINTS = ("error", "message", "reason")
# Preferred over a column that merely contains a hint (``error_code`` is not the message).
_MESSAGE_HEADERS = ("error_message", "message", "error", "errors", "reason", "error_reason")


class ErrorsFileUnreadable(ExportError):
    """The errors file could not be read with certainty; the message says why (no contents)."""


def parse_errors_file(data: bytes) -> dict[str, str]:
    """Email (lower-case) -> SendGrid's message, for every contact the file names."""
    data = _inflate(data)
    text = _decode(data)
    stripped = text.lstrip()
    if not stripped:
        raise ErrorsFileUnreadable("the errors file is empty")
    if stripped[0] in "[{":
        return _from_json(stripped)
    return _from_csv(text)


def _inflate(data: bytes) -> bytes:
    if not data.startswith(b"\x1f\x8b"):
        return data
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, MAX_DECOMPRESSED_BYTES + 1)
    except zlib.error:
        raise ErrorsFileUnreadable("the errors file is a corrupt gzip") from None
    if len(out) > MAX_DECOMPRESSED_BYTES or inflater.unconsumed_tail:
        raise ErrorsFileUnreadable(f"the errors file inflates past {MAX_DECOMPRESSED_BYTES} bytes")
    if not inflater.eof or inflater.unused_data:
        # A file cut short can still parse, and name a different address than the job failed.
        raise ErrorsFileUnreadable("the errors file is a truncated (or multi-part) gzip")
    return out


def _decode(data: bytes) -> str:
    if b"\x00" in data[:4096]:
        raise ErrorsFileUnreadable("the errors file is binary, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ErrorsFileUnreadable("the errors file is not UTF-8 text") from None


def _from_csv(text: str) -> dict[str, str]:
    try:
        rows = csv.reader(io.StringIO(text, newline=""))
        header = next(rows, None)
        if not header:
            raise ErrorsFileUnreadable("the errors file has no header row")
        names = [h.strip().lower().replace(" ", "_") for h in header]
        email_at = _column(names, lambda n: n in _EMAIL_HEADERS)
        message_at = _column(names, lambda n: n in _MESSAGE_HEADERS)
        if message_at is None:
            message_at = _column(names, lambda n: any(hint in n for hint in _MESSAGE_HINTS))
        if email_at is None or message_at is None:
            raise ErrorsFileUnreadable(
                f"the errors file's header ({len(names)} columns) names no email column and error column"
            )
        pairs = []
        for row in rows:
            if not row:
                continue
            if len(row) <= max(email_at, message_at):
                raise ErrorsFileUnreadable("a row of the errors file is shorter than its header")
            pairs.append((row[email_at], row[message_at]))
        return _collect(pairs)
    except csv.Error:
        raise ErrorsFileUnreadable("the errors file is not well-formed CSV") from None


def _from_json(text: str) -> dict[str, str]:
    try:
        doc: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ErrorsFileUnreadable("the errors file is not well-formed JSON") from None
    if isinstance(doc, dict):
        inner = [v for v in doc.values() if isinstance(v, list)]
        if len(inner) != 1:
            raise ErrorsFileUnreadable("the errors file's JSON object holds no single array of errors")
        doc = inner[0]
    if not isinstance(doc, list) or not all(isinstance(item, dict) for item in doc):
        raise ErrorsFileUnreadable("the errors file's JSON is not an array of objects")
    pairs = []
    for item in doc:
        keys = {str(k).lower().replace(" ", "_"): k for k in item}
        email_key = next((keys[k] for k in keys if k in _EMAIL_HEADERS), None)
        message_key = next((keys[k] for k in keys if k in _MESSAGE_HEADERS), None) or next(
            (keys[k] for k in keys if any(hint in k for hint in _MESSAGE_HINTS)), None
        )
        if email_key is None or message_key is None:
            raise ErrorsFileUnreadable("an entry of the errors file names no email and error")
        pairs.append((item[email_key], item[message_key]))
    return _collect(pairs)


def _column(names: list[str], wanted: Any) -> int | None:
    return next((i for i, name in enumerate(names) if wanted(name)), None)


def _collect(pairs: Iterable[tuple[Any, Any]]) -> dict[str, str]:
    found: dict[str, str] = {}
    for email, message in pairs:
        if not isinstance(email, str) or "@" not in email:
            raise ErrorsFileUnreadable("an entry of the errors file holds no email address")
        found[email.strip().lower()] = (
            " ".join(_text(message).split())[:MAX_MESSAGE_CHARS] or "errored in the import job"
        )
    return found


def _text(message: Any) -> str:
    """A message as text; a list of strings joined. Anything else (a number, a nested document,
    which could be deeper than any encoder takes) is not SendGrid's words: say so instead."""
    if isinstance(message, str):
        return message
    if isinstance(message, list) and all(isinstance(part, str) for part in message):
        return "; ".join(message)
    return ""


def split_by_errors(emails: Mapping[int, str], named: Mapping[str, str]) -> tuple[list[int], dict[int, str]]:
    """Positions the file does not name (confirmed) and those it names, with their message.
    The caller checks that every address the file names is one of ``emails``."""
    confirmed: list[int] = []
    failed: dict[int, str] = {}
    for position, email in emails.items():
        message = named.get(email)
        if message is None:
            confirmed.append(position)
        else:
            failed[position] = message
    return confirmed, failed
