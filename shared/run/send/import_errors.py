"""Reading an import job's errors file: which contacts SendGrid failed inside a job, and why.

SendGrid documents only that ``errors_url`` is "the download URL of the file which provides
information about any errors"; its format is not documented. So this reads it defensively: CSV
with a header row that names an email column and an error column, or JSON (an array of objects,
or an object holding one), optionally gzipped. Whatever it cannot read with certainty raises
:class:`ErrorsFileUnreadable`, and the caller falls back to confirming nothing of the batch.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from shared.bounded_gzip import inflated
from shared.errors import ExportError
from shared.json_input import JsonDocumentError, JsonObject, load_json
from shared.privacy import neutralise

# Bounds, so that what parsing a file holds never grows with the file (a gzip of 64 KB can
# inflate to gigabytes): the CSV is read as a stream, a record at a time; only JSON is read whole.
MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024  # read past, as a stream: this bounds time only
MAX_JSON_CHARS = 16 * 1024 * 1024  # read whole: 30,000 entries of an address and a message fit
MAX_JSON_ITEMS = 500_000  # values (counted by their separators) before any is built
MAX_RECORD_CHARS = 64 * 1024  # one CSV record: an address (254) and a message, with room to spare
# One entry per contact of the job, and a job holds at most 30,000 contacts (PUT
# /v3/marketing/contacts: "up to 30,000 contacts, or 6MB of data, whichever is lower").
MAX_ENTRIES = 30_000
# Rows, repeats of a contact included (one a field in error): past this the file is no job's, and
# parsing the rest would only cost time (64 MiB of one short row repeated took 25 s).
MAX_ROWS = 1_000_000
MAX_MESSAGE_CHARS = 500
MAX_EMAIL_CHARS = 320
_PIECE_BYTES = 1 << 20
_EMAIL_HEADERS = ("email", "email_address", "emailaddress", "primary_email", "e-mail")
_MESSAGE_HINTS = ("error", "message", "reason")
# Preferred over a column that merely contains a hint (``error_code`` is not the message).
_MESSAGE_HEADERS = ("error_message", "message", "error", "errors", "reason", "error_reason")


class ErrorsFileUnreadable(ExportError):
    """The errors file could not be read with certainty; the message says why (no contents)."""


def parse_errors_file(data: bytes) -> dict[str, str]:
    """Email (lower-case) -> SendGrid's message, neutralised (the API key, should SendGrid echo
    it, redacted; escape sequences removed), for every contact the file names."""
    pieces = _text_pieces(
        inflated(data, what="the errors file", limit=MAX_DECOMPRESSED_BYTES, members="one", fault=ErrorsFileUnreadable)
    )
    head = ""
    for piece in pieces:  # up to the first character that is not white space
        head += piece
        if head.strip():
            break
    stripped = head.lstrip()
    if not stripped:
        raise ErrorsFileUnreadable("the errors file is empty")
    if stripped[0] in "[{":
        return _from_json(_whole(stripped, pieces))
    return _from_csv(_bounded_lines(_prepend(head, pieces)))


def _text_pieces(blobs: Iterable[bytes]) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    first = True
    for blob in blobs:
        for at in range(0, len(blob), _PIECE_BYTES):
            piece = blob[at : at + _PIECE_BYTES]
            if first and b"\x00" in piece[:4096]:
                raise ErrorsFileUnreadable("the errors file is binary, not text")
            first = False
            try:
                yield decoder.decode(piece)
            except UnicodeDecodeError:
                raise ErrorsFileUnreadable("the errors file is not UTF-8 text") from None
    try:
        yield decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise ErrorsFileUnreadable("the errors file is not UTF-8 text") from None


def _prepend(head: str, pieces: Iterator[str]) -> Iterator[str]:
    yield head
    yield from pieces


def _whole(head: str, pieces: Iterator[str]) -> str:
    parts, size = [head], len(head)
    for piece in pieces:
        size += len(piece)
        if size > MAX_JSON_CHARS:
            raise ErrorsFileUnreadable(f"the errors file's JSON is over {MAX_JSON_CHARS} characters")
        parts.append(piece)
    return "".join(parts)


def _bounded_lines(pieces: Iterable[str]) -> Iterator[str]:
    """Lines (with their ends) for the csv module, none longer than MAX_RECORD_CHARS: the bound
    holds before csv sees a line, whatever the process-wide ``csv.field_size_limit`` is."""
    carry = ""
    for piece in pieces:
        carry += piece
        start = 0
        while (end := carry.find("\n", start)) >= 0:
            yield carry[start : end + 1]
            start = end + 1
        carry = carry[start:]
        if len(carry) > MAX_RECORD_CHARS:
            raise _over_long()
    if carry:
        yield carry


class _RecordBound:
    """Counts the characters csv is fed for the record it is reading (a quoted record may span
    lines): past MAX_RECORD_CHARS, the file is refused before csv holds any more of it."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines
        self.fed = 0

    def __iter__(self) -> Iterator[str]:
        for line in self._lines:
            self.fed += len(line)
            if self.fed > MAX_RECORD_CHARS:
                raise _over_long()
            yield line


def _over_long() -> ErrorsFileUnreadable:
    return ErrorsFileUnreadable(f"a record of the errors file is longer than {MAX_RECORD_CHARS} characters")


def _from_csv(lines: Iterator[str]) -> dict[str, str]:
    bound = _RecordBound(lines)
    try:
        rows = csv.reader(bound)
        header = next(rows, None)
        if not header:
            raise ErrorsFileUnreadable("the errors file has no header row")
        email_at, message_at = _columns([h.strip().lower().replace(" ", "_") for h in header])
        found: dict[str, str] = {}
        bound.fed = 0
        for number, row in enumerate(rows, 1):
            bound.fed = 0
            if number > MAX_ROWS:
                raise ErrorsFileUnreadable(f"the errors file has over {MAX_ROWS:,} rows, more than any job's")
            if not row:
                continue
            if len(row) <= max(email_at, message_at):
                raise ErrorsFileUnreadable("a row of the errors file is shorter than its header")
            _add(found, row[email_at], row[message_at])
        return found
    except csv.Error:
        raise ErrorsFileUnreadable("the errors file is not well-formed CSV") from None


def _columns(names: list[str]) -> tuple[int, int]:
    email_at = _column(names, lambda n: n in _EMAIL_HEADERS)
    message_at = _column(names, lambda n: n in _MESSAGE_HEADERS)
    if message_at is None:
        message_at = _column(names, lambda n: any(hint in n for hint in _MESSAGE_HINTS))
    if email_at is None or message_at is None:
        raise ErrorsFileUnreadable(
            f"the errors file's header ({len(names)} columns) names no email column and error column"
        )
    return email_at, message_at


def _from_json(text: str) -> dict[str, str]:
    try:
        doc: Any = load_json(text, "the errors file", max_items=MAX_JSON_ITEMS)
    except JsonDocumentError as exc:
        raise ErrorsFileUnreadable(str(exc)) from None
    if isinstance(doc, dict):
        inner = [v for v in doc.values() if isinstance(v, list)]
        if len(inner) != 1:
            raise ErrorsFileUnreadable("the errors file's JSON object holds no single array of errors")
        doc = inner[0]
    if not isinstance(doc, list) or not all(isinstance(item, dict) for item in doc):
        raise ErrorsFileUnreadable("the errors file's JSON is not an array of objects")
    found: dict[str, str] = {}
    for item in doc:
        email_key, message_key = _entry_keys(item)
        _add(found, item[email_key], item[message_key])
    return found


def _entry_keys(item: JsonObject) -> tuple[Any, Any]:
    """The keys of an errors-file entry that hold its email and its error message."""
    keys = {str(k).lower().replace(" ", "_"): k for k in item}
    email_key = next((keys[k] for k in keys if k in _EMAIL_HEADERS), None)
    message_key = next((keys[k] for k in keys if k in _MESSAGE_HEADERS), None) or next(
        (keys[k] for k in keys if any(hint in k for hint in _MESSAGE_HINTS)), None
    )
    if email_key is None or message_key is None:
        raise ErrorsFileUnreadable("an entry of the errors file names no email and error")
    return email_key, message_key


def _column(names: list[str], wanted: Any) -> int | None:
    return next((i for i, name in enumerate(names) if wanted(name)), None)


def _add(found: dict[str, str], email: Any, message: Any) -> None:
    if not isinstance(email, str) or "@" not in email or len(email) > MAX_EMAIL_CHARS:
        raise ErrorsFileUnreadable("an entry of the errors file holds no email address")
    email = email.strip().lower()
    if email not in found and len(found) >= MAX_ENTRIES:
        raise ErrorsFileUnreadable(f"the errors file names over {MAX_ENTRIES} contacts, more than any job holds")
    # Cut before it is split: a message of megabytes would otherwise be split into a million words.
    words = _text(message)[: MAX_MESSAGE_CHARS * 4].split()
    found[email] = neutralise(" ".join(words))[:MAX_MESSAGE_CHARS] or "errored in the import job"


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
