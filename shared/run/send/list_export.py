"""Who is on a list, by one contact export instead of a search per 100 addresses.

``POST /v3/marketing/contacts/exports`` with ``list_ids`` starts one job (official OpenAPI
``tsg_mc_contacts_v3``, ExportContact); ``GET .../exports/{id}`` says ``pending`` until it is
``ready`` (not ``completed``) or ``failure``, then lists ``urls``: one or several files, each
gzipped CSV or NDJSON, each a pre-signed link valid until ``expires_at``. An export of no contact
is an empty file that is not gzip (airbytehq/airbyte issue 35501): the gzip magic bytes decide,
never the name. Each file is fetched through :mod:`shared.adapters.downloads` (allowed hosts, no
API key, a wall-clock deadline, a size cap) and read as hostile text: inflated piece by piece, each
line bounded, an address or an id that cannot be one skipped and counted.
"""

from __future__ import annotations

import codecs
import csv
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from shared.bounded_gzip import inflated
from shared.errors import SendGridError
from shared.privacy import redact
from shared.run.ports import SendGridApi
from shared.run.record_parts import RemovalsEntry

MAX_INFLATED_BYTES = 8 * 1024 * 1024 * 1024  # a file inflated: bounds time only (read as a stream)
MAX_LINE_CHARS = 256 * 1024  # one member's record, every field of it
MAX_ID_CHARS = 100
MAX_EMAIL_CHARS = 320
EXPORT_POLL_FIRST = 1.0
EXPORT_POLL_MOST = 15.0
EXPORT_WAIT_SECONDS = 1800.0  # an export of a large list takes minutes; past this, search instead


class ExportUnreadable(SendGridError):
    """The export failed, or one of its files could not be read with certainty."""


@dataclass
class Members:
    """A list's members from an export: email (lower-case) -> contact id, with what was skipped."""

    ids: dict[str, str] = field(default_factory=dict)
    seen: int = 0  # rows read, kept or not
    skipped: int = 0  # rows without a usable address or id
    files: int = 0
    requests: int = 0  # the export's requests: its start, its polls, its files
    other: dict[str, dict[str, Any]] = field(default_factory=dict)  # email -> the row's other fields, if asked


@dataclass(frozen=True)
class MemberSelection:
    """Which members a reading of an export keeps (those ``wanted`` accepts; every one if None),
    and whether with their other fields."""

    wanted: Callable[[str], bool] | None = None
    keep_fields: bool = False


EVERY_MEMBER = MemberSelection()


def export_members(
    client: SendGridApi,
    list_ids: list[str],
    *,
    deadline: float,
    selection: MemberSelection = EVERY_MEMBER,
    sleep: Callable[[float], None] = time.sleep,
    first_poll: float = EXPORT_POLL_FIRST,
) -> Members:
    """The members of ``list_ids`` that ``selection`` keeps; :class:`ExportUnreadable` when the
    export fails or a file cannot be read (the caller falls back to search)."""
    members = Members()
    export_id = client.start_export(list_ids, "csv")
    members.requests += 1
    gap = first_poll
    while True:
        if time.time() + gap > deadline:
            raise ExportUnreadable("the contact export was not ready before the run's deadline")
        sleep(gap)
        status = client.export_status(export_id)
        members.requests += 1
        state = status.get("status")
        if state == "ready":
            break
        if state not in ("pending", None):
            message = str(status.get("message") or state)[:200]
            raise ExportUnreadable(f"the contact export ended '{message}'")
        gap = min(EXPORT_POLL_MOST, gap * 1.5)
    urls = status.get("urls")
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls) or len(urls) > 1000:
        raise ExportUnreadable("the ready contact export lists no file urls")
    for url in urls:
        members.requests += 1
        read_file(client.download_export_file(url), members, selection)
        members.files += 1
    return members


def read_file(data: bytes, members: Members, selection: MemberSelection = EVERY_MEMBER) -> None:
    """One export file's rows into ``members``: gzip or not by its magic bytes, CSV or NDJSON."""
    lines = _lines(
        _text(inflated(data, what="the export file", limit=MAX_INFLATED_BYTES, members="many", fault=ExportUnreadable))
    )
    first = next(lines, None)
    if first is None or not first.strip():
        return  # an empty export: no member
    if first.lstrip().startswith("{"):
        rows: Iterator[dict[str, Any]] = _json_rows(first, lines)
    else:
        rows = _csv_rows(first, lines)
    for row in rows:
        members.seen += 1
        email, contact_id = row.get("email"), row.get("contact_id") or row.get("id")
        if not (isinstance(email, str) and isinstance(contact_id, str)) or not _usable(email, contact_id):
            members.skipped += 1
            continue
        email = email.strip().lower()
        if selection.wanted is None or selection.wanted(email):
            members.ids[email] = contact_id
            if selection.keep_fields:
                members.other[email] = {k: v for k, v in row.items() if k not in ("email", "contact_id", "id")}


def _usable(email: str, contact_id: str) -> bool:
    return 0 < len(email) <= MAX_EMAIL_CHARS and "@" in email and 0 < len(contact_id) <= MAX_ID_CHARS


def _csv_rows(header: str, lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    names = [name.strip().lower() for name in next(csv.reader([header]))]
    if "email" not in names or not ({"contact_id", "id"} & set(names)):
        raise ExportUnreadable("the export file's header names no email and contact id column")
    try:
        for values in csv.reader(lines):
            if values:
                yield dict(zip(names, values, strict=False))
    except csv.Error:
        raise ExportUnreadable("the export file is not valid CSV") from None


def _json_rows(first: str, lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    for line in _chain(first, lines):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            raise ExportUnreadable("the export file is not valid NDJSON") from None
        if isinstance(doc, dict):
            yield {str(k).lower(): v for k, v in doc.items()}


def _chain(first: str, lines: Iterator[str]) -> Iterator[str]:
    yield first
    yield from lines


def _text(blobs: Iterator[bytes]) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        for blob in blobs:
            yield decoder.decode(blob)
        yield decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise ExportUnreadable("the export file is not UTF-8 text") from None


def _lines(pieces: Iterator[str]) -> Iterator[str]:
    carry = ""
    for piece in pieces:
        carry += piece
        start = 0
        while (end := carry.find("\n", start)) >= 0:
            if end - start > MAX_LINE_CHARS:  # bounded here, whatever csv.field_size_limit is
                raise ExportUnreadable(f"a line of the export file is over {MAX_LINE_CHARS} characters")
            yield carry[start : end + 1]
            start = end + 1
        carry = carry[start:]
        if len(carry) > MAX_LINE_CHARS:
            raise ExportUnreadable(f"a line of the export file is over {MAX_LINE_CHARS} characters")
    if carry:
        yield carry


def ids_by_export(
    client: SendGridApi, list_ids: list[str], emails: list[str], removals: RemovalsEntry
) -> dict[str, str] | None:
    """The contact ids of these departed ``emails`` that are on the lists, from one export; None
    (and the record says why) when the export fails: the caller searches instead."""
    wanted = {email.lower(): email for email in emails}
    deadline = time.time() + EXPORT_WAIT_SECONDS
    if client.deadline is not None:
        deadline = min(deadline, client.deadline)
    try:
        members = export_members(client, list_ids, deadline=deadline, selection=MemberSelection(wanted.__contains__))
    except SendGridError as exc:
        removals["found_by"] = "search"
        removals["export_failed"] = redact(str(exc))[:300]
        return None
    removals["found_by"] = "export"
    removals["export_requests"] = members.requests
    return {wanted[email]: contact_id for email, contact_id in members.ids.items()}
