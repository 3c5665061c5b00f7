"""The simulator's bulk endpoints: CSV import (``PUT /v3/marketing/contacts/imports`` and its
upload link) and contact export (``POST /v3/marketing/contacts/exports``, its status, its files).

Registered by :mod:`tools.sendgrid_simulator` with :func:`install`. Each rule and its source:

- Import request (official OpenAPI ``tsg_mc_contacts_v3``, ImportContact): ``file_type`` must be
  ``csv``, ``field_mappings`` a non-empty array of field-definition ids or ``null``, ``list_ids``
  existing lists; an unknown field id is a 400. The answer (200) holds ``job_id``, ``upload_uri``
  and ``upload_headers``.
- The upload link is a pre-signed S3 URL in production (us-west-2), here on loopback: it demands
  exactly the announced headers, ``x-amz-server-side-encryption: aws:kms`` as production users
  report (sendgrid/sendgrid-php issue 1084); a missing or different value is a 403, as S3 answers
  a signature mismatch. A request that also carries ``Authorization`` is a 400 (S3: "only one
  auth mechanism allowed"). The link expires (``upload_ttl``, default 15 minutes): then 403.
- The file is checked when the job runs, not when it is uploaded (sendgrid/sendgrid-java issue
  692): a multipart body, or a header whose column count differs from ``field_mappings``, fails
  the job with SendGrid's words "Failed to preprocess input csv: we were unable to upload your
  contacts because the field mapping doesn't match the CSV."; more than 1,000,000 rows or 5 GB
  (the OpenAPI's limits) fails it too. Gzip is recognised by its magic bytes.
- Rows become contacts and go through the same job processing as upserts (errored contacts in
  an errors file, ``requested_count``/``created_count``/...).
- Export (OpenAPI ExportContact, GetExportContact): ``list_ids`` must exist, ``file_type`` is
  ``csv`` or ``json``; the status is ``pending`` then ``ready`` (not ``completed``) with ``urls``
  and ``expires_at`` (required by the ContactExport schema); ``max_file_size`` (MB) splits the
  export into several gzipped files (``export_file_rows`` splits by rows, for tests). An export of
  no contact is one file that is empty and not gzip (airbytehq/airbyte issue 35501). A file past
  ``expires_at`` answers 403.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlparse

MAX_IMPORT_ROWS = 1_000_000
MAX_IMPORT_BYTES = 5_000_000_000
MAPPING_MISMATCH = (
    "Failed to preprocess input csv: we were unable to upload your contacts because the field mapping "
    "doesn't match the CSV."
)
UPLOAD_HEADERS = (("x-amz-server-side-encryption", "aws:kms"),)
UPLOAD_PREFIX = "/__sim/uploads/"
EXPORT_PREFIX = "/__sim/exports/"
NEVER = 1e8  # seconds: a job waiting for its upload is not due


@dataclass
class Upload:
    job_id: str
    signature: str
    expires: float
    mappings: list[str | None]
    uploaded: bool = False


@dataclass
class Export:
    id: str
    ready_at: float
    expires: float
    files: list[bytes] = field(default_factory=list)
    created_at: str = ""
    contact_count: int = 0


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(status: int, field_name: str | None, message: str) -> tuple[int, Any]:
    return status, {"errors": [{"field": field_name, "message": message}]}


def _json(body: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def _uploads(state: Any) -> dict[str, Upload]:
    if not hasattr(state, "uploads"):
        state.uploads = {}
        state.exports = {}
    return state.uploads


def _field_ids(state: Any, reserved: list[dict[str, Any]]) -> dict[str, str]:
    """Field-definition id -> the contact key it fills (reserved name, or custom_fields.<id>)."""
    ids = {item["id"]: item["name"] for item in reserved if "id" in item and not item.get("read_only")}
    ids.update({fid: f"custom_fields.{fid}" for fid in state.custom_fields})
    return ids


def make_routes(job_factory: Callable[..., Any], reserved: list[dict[str, Any]]) -> list[tuple[str, str, Any]]:
    """The API routes: (method, path pattern after ``v3/marketing/``, handler(handler, call))."""

    def start_import(handler: Any, call: Any) -> tuple[int, Any]:
        state, doc = call.state, _json(call.body)
        if doc is None:
            return _error(400, None, "invalid JSON")
        unknown = set(doc) - {"list_ids", "file_type", "field_mappings"}
        if unknown:
            return _error(400, sorted(unknown)[0], "unknown field")
        if doc.get("file_type") != "csv":
            return _error(400, "file_type", "file_type must be csv")
        mappings = doc.get("field_mappings")
        if not isinstance(mappings, list) or not mappings or not all(m is None or isinstance(m, str) for m in mappings):
            return _error(400, "field_mappings", "field_mappings must be a non-empty array of field ids or null")
        list_ids = doc.get("list_ids", [])
        with state.lock:
            if not isinstance(list_ids, list) or not all(isinstance(i, str) and i in state.lists for i in list_ids):
                return _error(400, "list_ids", "list does not exist")
            known = _field_ids(state, reserved)
            for i, mapping in enumerate(mappings):
                if mapping is not None and mapping not in known:
                    return _error(400, f"field_mappings[{i}]", "unknown field definition id")
            job = job_factory(
                id=str(uuid.uuid4()),
                ready_at=time.time() + NEVER,
                contacts=[],
                list_ids=list_ids,
                started_at=_iso(time.time()),
            )
            for fault in state.faults:  # job_status faults apply to import jobs as to upserts
                if fault.kind == "job_status" and fault.times > 0 and fault.method in (None, "PUT"):
                    fault.times -= 1
                    if fault.emails:
                        job.error_emails = {e.lower() for e in fault.emails}
                    else:
                        job.forced_status = fault.job_status
                    break
            state.jobs[job.id] = job
            upload = Upload(job.id, uuid.uuid4().hex, time.time() + getattr(state, "upload_ttl", 900.0), mappings)
            _uploads(state)[job.id] = upload
        uri = f"{state.base_url}{UPLOAD_PREFIX}{job.id}?X-Amz-Signature={upload.signature}&X-Amz-Expires=900"
        headers = [{"header": name, "value": value} for name, value in UPLOAD_HEADERS]
        return 200, {"job_id": job.id, "upload_uri": uri, "upload_headers": headers}

    def start_export(handler: Any, call: Any) -> tuple[int, Any]:
        state, doc = call.state, _json(call.body)
        if doc is None:
            return _error(400, None, "invalid JSON")
        file_type = doc.get("file_type", "csv")
        if file_type not in ("csv", "json"):
            return _error(400, "file_type", "file_type must be csv or json")
        list_ids = doc.get("list_ids") or []
        size = doc.get("max_file_size", 5000)
        if not isinstance(size, int) or size < 1:
            return _error(400, "max_file_size", "max_file_size must be a positive integer")
        with state.lock:
            _uploads(state)
            if not isinstance(list_ids, list) or not all(isinstance(i, str) and i in state.lists for i in list_ids):
                return _error(400, "list_ids", "list does not exist")
            wanted = set(list_ids)
            members = [c for c in state.contacts.values() if wanted & c["list_ids"]]
            now = time.time()
            export = Export(str(uuid.uuid4()), now + state.job_delay, now + getattr(state, "export_ttl", 21600.0))
            export.created_at, export.contact_count = _iso(now), len(members)
            rows = getattr(state, "export_file_rows", None) or MAX_IMPORT_ROWS
            export.files = _export_files(members, file_type, size * 1_000_000, rows)
            state.exports[export.id] = export
        return 202, {
            "id": export.id,
            "_metadata": {"self": f"{state.base_url}/v3/marketing/contacts/exports/{export.id}"},
        }

    def export_status(handler: Any, call: Any) -> tuple[int, Any]:
        state = call.state
        with state.lock:
            _uploads(state)
            export = state.exports.get(call.ids[0])
        if export is None:
            return _error(404, None, "export not found")
        ready = time.time() >= export.ready_at
        answer: dict[str, Any] = {
            "id": export.id,
            "status": "ready" if ready else "pending",
            "created_at": export.created_at,
            "updated_at": export.created_at,
            "expires_at": _iso(export.expires),
            "contact_count": export.contact_count,
        }
        if ready:
            answer["completed_at"] = _iso(export.ready_at)
            answer["urls"] = [
                f"{state.base_url}{EXPORT_PREFIX}{export.id}/{n}?X-Amz-Signature={uuid.uuid4().hex}"
                for n in range(len(export.files))
            ]
        return 200, answer

    return [
        ("PUT", "contacts/imports", start_import),
        ("POST", "contacts/exports", start_export),
        ("GET", r"contacts/exports/([^/]+)", export_status),
    ]


# The columns of an export file (uppercase, as SendGrid's CSV exports name them), then the id.
EXPORT_FIELDS = ("email", "first_name", "last_name", "city", "state_province_region", "postal_code", "country")


def _export_files(members: list[dict[str, Any]], file_type: str, max_bytes: int, max_rows: int) -> list[bytes]:
    if not members:
        return [b""]  # an empty export is not gzip (airbytehq/airbyte issue 35501)
    files: list[bytes] = []
    lines: list[str] = []
    size = 0
    header = ",".join(f.upper() for f in EXPORT_FIELDS) + ",CONTACT_ID\r\n" if file_type == "csv" else ""
    for contact in members:
        values = {f: contact.get(f) or "" for f in EXPORT_FIELDS}
        if file_type == "json":
            line = json.dumps({**values, "contact_id": contact["id"]}) + "\n"
        else:
            out = io.StringIO()
            csv.writer(out, lineterminator="\r\n").writerow([*values.values(), contact["id"]])
            line = out.getvalue()
        if lines and (len(lines) >= max_rows or size + len(line) > max_bytes):
            files.append(gzip.compress((header + "".join(lines)).encode(), 4))
            lines, size = [], 0
        lines.append(line)
        size += len(line)
    files.append(gzip.compress((header + "".join(lines)).encode(), 4))
    return files


def handle_file(handler: Any, method: str, path: str, body: bytes) -> bool:
    """The pre-signed links (upload, export files); False if ``path`` is not one."""
    if path.startswith(UPLOAD_PREFIX) and method == "PUT":
        status, message = _upload(handler, path, body)
        state = handler.server.state
        with state.lock:  # the log counts uploads beside API requests (the bench's requests by kind)
            state.requests.append(
                {
                    "method": method,
                    "path": UPLOAD_PREFIX + "{id}",
                    "bytes": len(body),
                    "status": status,
                    "at": round(time.time(), 3),
                }
            )
        handler._send(status, None if status == 200 else {"errors": [{"message": message}]})
        return True
    if path.startswith(EXPORT_PREFIX) and method == "GET":
        _export_file(handler, path)
        return True
    return False


def _upload(handler: Any, path: str, body: bytes) -> tuple[int, str]:
    state = handler.server.state
    job_id = path[len(UPLOAD_PREFIX) :]
    signature = parse_qs(urlparse(handler.path).query).get("X-Amz-Signature", [""])[0]
    with state.lock:
        upload = _uploads(state).get(job_id)
        job = state.jobs.get(job_id)
        if upload is None or job is None or signature != upload.signature:
            return 403, "SignatureDoesNotMatch"
        if handler.headers.get("Authorization"):
            return 400, "only one auth mechanism allowed"
        if time.time() > upload.expires:
            return 403, "Request has expired"
        for name, value in UPLOAD_HEADERS:
            if handler.headers.get(name) != value:
                return 403, "SignatureDoesNotMatch: the headers signed are not those sent"
        if upload.uploaded:
            return 403, "this upload link was used"
        upload.uploaded = True
        numbers = {fid for fid, meta in state.custom_fields.items() if meta.get("field_type") == "Number"}
        contacts, failure = _parse_file(body, upload.mappings, handler.headers.get("Content-Type", ""), numbers)
        job.contacts = contacts
        if failure is not None:
            job.forced_status = "failed"
            job.errors["*"] = failure
        per_contact = getattr(state, "import_seconds_per_contact", None)
        per_contact = state.job_seconds_per_contact if per_contact is None else per_contact
        job.ready_at = time.time() + state.job_delay + per_contact * len(contacts)
        state.upserted_contacts += len(contacts)
        state._due.notify()
    return 200, ""


def _parse_file(
    body: bytes, mappings: list[str | None], content_type: str, numbers: set[str]
) -> tuple[list[dict[str, Any]], str | None]:
    if len(body) > MAX_IMPORT_BYTES:
        return [], "the file is over 5GB"
    if body[:2] == b"\x1f\x8b":
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError):
            return [], "Failed to preprocess input csv: the file is not valid gzip"
    if content_type.startswith("multipart/") or re.match(rb"--[^\r\n]{1,200}\r\nContent-Disposition: form-data", body):
        return [], MAPPING_MISMATCH  # the form's parts are read as the CSV: its columns do not match
    try:
        rows = csv.reader(io.StringIO(body.decode("utf-8-sig")))
        header = next(rows, None)
    except (UnicodeDecodeError, csv.Error):
        return [], "Failed to preprocess input csv: the file is not UTF-8 CSV"
    if header is None or len(header) != len(mappings):
        return [], MAPPING_MISMATCH
    contacts: list[dict[str, Any]] = []
    for row in rows:
        if len(contacts) >= MAX_IMPORT_ROWS:
            return [], "the file holds more than 1,000,000 contacts"
        if len(row) != len(mappings):
            return [], MAPPING_MISMATCH
        contacts.append(_contact(row, mappings, numbers))
    return contacts, None


RESERVED_BY_ID: dict[str, str] = {}  # filled by install()


def _contact(row: list[str], mappings: list[str | None], numbers: set[str]) -> dict[str, Any]:
    contact: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    for value, mapping in zip(row, mappings, strict=True):
        if mapping is None or value == "":
            continue
        name = RESERVED_BY_ID.get(mapping)
        if name is None:
            custom[mapping] = _number(value) if mapping in numbers else value
        elif name == "alternate_emails":
            contact[name] = value.split(",")
        else:
            contact[name] = value
    if custom:
        contact["custom_fields"] = custom
    return contact


def _number(value: str) -> Any:
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() and "." not in value else number


def _export_file(handler: Any, path: str) -> None:
    state = handler.server.state
    parts = path[len(EXPORT_PREFIX) :].split("/")
    with state.lock:
        _uploads(state)
        export = state.exports.get(parts[0])
    if export is None or len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) >= len(export.files):
        handler._send(404, {"errors": [{"message": "NoSuchKey"}]})
        return
    if time.time() > export.expires:
        handler._send(403, {"errors": [{"message": "Request has expired"}]})
        return
    data = export.files[int(parts[1])]
    handler.send_response(200)
    handler.send_header("Content-Type", "application/octet-stream")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def configure(state: Any, doc: dict[str, Any]) -> None:
    """The bulk settings of ``POST /__sim/config``: link lifetimes, rows per export file."""
    for key in ("upload_ttl", "export_ttl", "import_seconds_per_contact"):
        if key in doc:
            setattr(state, key, float(doc[key]))
    if "export_file_rows" in doc:
        state.export_file_rows = None if doc["export_file_rows"] is None else int(doc["export_file_rows"])


def install(
    routes: list[Any],
    marketing: Callable[[str], re.Pattern[str]],
    job_factory: Callable[..., Any],
    reserved: list[dict[str, Any]],
) -> None:
    """Add the bulk routes to the simulator's table (before its catch-alls)."""
    RESERVED_BY_ID.update({item["id"]: item["name"] for item in reserved if "id" in item})
    for method, pattern, handle in make_routes(job_factory, reserved):
        routes.insert(0, (method, marketing(pattern), handle))
