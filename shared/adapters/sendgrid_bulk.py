"""SendGrid's CSV import, the client's side: the answer of ``PUT /v3/marketing/contacts/imports``
and the upload of its file.

The answer (official OpenAPI ``tsg_mc_contacts_v3``, ImportContact) holds ``job_id``,
``upload_uri`` and ``upload_headers`` (a list of ``{"header", "value"}``). The file is then PUT to
``upload_uri``: raw bytes (not multipart), with exactly those headers. In production the link is a
pre-signed S3 URL in us-west-2 whose headers include ``x-amz-server-side-encryption: aws:kms``;
sending them wrongly is refused (sendgrid/sendgrid-php issue 1084). The link is outside text: it
must name a host SendGrid serves files from (or the API's own origin), it never receives the API
key, and it is never quoted in a message (its query string is a signature).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

from urllib3.exceptions import HTTPError

from shared.adapters.downloads import DownloadError, HostPolicy, Limits, checked_connection, fetch
from shared.errors import SendGridError
from shared.json_input import JsonObject
from shared.privacy import neutralise

# A file of a contact export: gzipped, a few tens of bytes a member (a million members in ~40 MB).
EXPORT_FILE_MAX_BYTES = 512 * 1024 * 1024
EXPORT_FILE_SECONDS = 600.0
EXPORT_FILE_READ_TIMEOUT = 30.0  # connecting, and each read
UPLOAD_READ_TIMEOUT = 120.0  # connecting, and waiting for the answer once the file is sent
UPLOAD_SECONDS_PER_MB = 2.0  # the whole upload may take this long per MB, at least a minute
MAX_UPLOAD_HEADERS = 20
MAX_HEADER_CHARS = 2000


@dataclass(frozen=True)
class ImportUpload:
    job_id: str
    upload_uri: str
    headers: tuple[tuple[str, str], ...]


def parse_import_answer(answer: Mapping[str, Any]) -> ImportUpload:
    """The import job and its upload link; a clear error for an answer that lacks them."""
    job_id, uri, headers = answer.get("job_id"), answer.get("upload_uri"), answer.get("upload_headers")
    if not isinstance(job_id, str) or not job_id or len(job_id) > 200:
        raise SendGridError("SendGrid's import answer holds no job_id; nothing was uploaded.")
    if not isinstance(uri, str) or not uri or len(uri) > 8000:
        raise SendGridError("SendGrid's import answer holds no upload_uri; nothing was uploaded.")
    pairs: list[tuple[str, str]] = []
    if not isinstance(headers, list) or len(headers) > MAX_UPLOAD_HEADERS:
        raise SendGridError("SendGrid's import answer holds no list of upload_headers; nothing was uploaded.")
    for item in headers:
        name = item.get("header") if isinstance(item, dict) else None
        value = item.get("value") if isinstance(item, dict) else None
        if not isinstance(name, str) or not isinstance(value, str) or len(name) + len(value) > MAX_HEADER_CHARS:
            raise SendGridError("SendGrid's import answer holds an upload header without a name and a value.")
        if any(c in name + value for c in "\r\n\0"):
            raise SendGridError(f"SendGrid's upload header {neutralise(name[:60])!r} holds a line break.")
        pairs.append((name, value))
    return ImportUpload(job_id, uri, tuple(pairs))


def upload_file(upload: ImportUpload, path: str, policy: HostPolicy, *, deadline: float | None) -> None:
    """PUT the file at ``path`` to the upload link, streamed from disk, with exactly the announced
    headers (and Content-Length); raises :class:`SendGridError` unless the answer is a 2xx."""
    size = os.path.getsize(path)
    seconds = max(60.0, UPLOAD_SECONDS_PER_MB * size / 1_000_000)
    if deadline is not None:
        seconds = min(seconds, deadline - time.time())
    if seconds <= 0:
        raise SendGridError("the import file was not uploaded: the run's deadline has passed.")
    try:
        target, connection = checked_connection(
            upload.upload_uri, policy, min(UPLOAD_READ_TIMEOUT, seconds), what="the import's upload"
        )
    except DownloadError as exc:
        raise SendGridError(str(exc).replace("fetched", "used")) from None
    headers = {name: value for name, value in upload.headers}
    headers["Content-Length"] = str(size)
    headers.setdefault("Host", target.netloc)
    started = time.monotonic()
    try:
        with open(path, "rb") as body:  # streamed: urllib3 sends a file object piece by piece
            connection.request(
                "PUT", (target.path or "/") + (f"?{target.query}" if target.query else ""), body=body, headers=headers
            )
        response = connection.getresponse()
        status = response.status
        response.read(64 * 1024)  # the answer of an object store is small; more is not read
    except (OSError, HTTPError, ValueError) as exc:
        raise SendGridError(
            f"the import file could not be uploaded ({type(exc).__name__} after {time.monotonic() - started:.0f}s)."
        ) from None
    finally:
        connection.close()
    if not 200 <= status < 300:
        raise SendGridError(
            f"the import's upload answered {status}: the file was refused (an expired link, or headers not "
            "as SendGrid announced them)."
        )


class BulkCalls:
    """The client's bulk calls (:class:`shared.adapters.sendgrid.SendGridClient` has them): a CSV
    import and its upload, a contact export, its status and its files."""

    deadline: float | None
    user_agent: str
    _file_hosts: HostPolicy
    _clock: Callable[[], float]

    def _call(self, method: str, path: str, *, json_body: Any = None, expect: tuple[int, ...]) -> JsonObject:
        raise NotImplementedError  # the client's own

    def start_import(self, list_ids: list[str], field_mappings: list[str | None]) -> ImportUpload:
        """``PUT /v3/marketing/contacts/imports``: a CSV import job, and where to upload its file."""
        body = {"list_ids": list_ids, "file_type": "csv", "field_mappings": field_mappings}
        answer = self._call("PUT", "/v3/marketing/contacts/imports", json_body=body, expect=(200, 201, 202))
        return parse_import_answer(answer)

    def upload_import_file(self, upload: ImportUpload, path: str) -> None:
        """The import's file, PUT raw (not multipart) to ``upload_uri`` with exactly the headers
        SendGrid announced, streamed from disk, WITHOUT the API key (see shared.adapters.sendgrid_bulk)."""
        upload_file(upload, path, self._file_hosts, deadline=self.deadline)

    def start_export(self, list_ids: list[str], file_type: str = "csv") -> str:
        """``POST /v3/marketing/contacts/exports`` of these lists' members: the export's id."""
        body = {"list_ids": list_ids, "file_type": file_type}
        answer = self._call("POST", "/v3/marketing/contacts/exports", json_body=body, expect=(200, 201, 202))
        export_id = answer.get("id")
        if not isinstance(export_id, str) or not export_id or len(export_id) > 200:
            raise SendGridError("SendGrid's export answer holds no id.")
        return export_id

    def export_status(self, export_id: str) -> JsonObject:
        """``GET /v3/marketing/contacts/exports/{id}``: ``status`` pending, ready or failure."""
        return self._call("GET", f"/v3/marketing/contacts/exports/{quote(export_id, safe='')}", expect=(200,))

    def download_export_file(self, url: str) -> bytes:
        """One file of a ready export: a pre-signed link, fetched like an errors file (allowed
        hosts, no API key, a wall-clock deadline), with room for a large list."""
        limits = Limits(EXPORT_FILE_MAX_BYTES, EXPORT_FILE_SECONDS, EXPORT_FILE_READ_TIMEOUT)
        return self._fetch_signed(url, limits, what="the export file")

    def _fetch_signed(self, url: str, limits: Limits, *, what: str) -> bytes:
        """A pre-signed link SendGrid handed us, fetched WITHOUT the API key (a bare connection,
        not the session, which carries the Authorization header), only from the hosts SendGrid
        serves files from, within ``limits`` and never past the run's deadline."""
        seconds = limits.seconds
        if self.deadline is not None:
            seconds = min(seconds, self.deadline - self._clock())
        if seconds <= 0:
            raise SendGridError(f"{what} was not fetched: the run's deadline has passed.")
        try:
            within = replace(limits, seconds=seconds)
            return fetch(url, self._file_hosts, within, what=what, headers={"User-Agent": self.user_agent})
        except DownloadError as exc:
            raise SendGridError(str(exc)) from None
