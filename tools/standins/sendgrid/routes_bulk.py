"""The bulk endpoints: CSV import (``PUT /v3/marketing/contacts/imports`` and its upload link) and
contact export (``POST /v3/marketing/contacts/exports``, its status, its files). Their rules and
sources are in :mod:`.bulk`."""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlparse

from tools.standins.sendgrid import bulk
from tools.standins.sendgrid.api import Answer, ApiCall
from tools.standins.sendgrid.bulk import UPLOAD_HEADERS, Export, Upload
from tools.standins.sendgrid.faults import take_job_fault
from tools.standins.sendgrid.jobs import Job, now_iso
from tools.standins.sendgrid.state import SimState

if TYPE_CHECKING:
    from tools.standins.sendgrid.handler import Handler

UPLOAD_PREFIX = "/__sim/uploads/"
EXPORT_PREFIX = "/__sim/exports/"
NEVER = 1e8  # seconds: a job waiting for its upload is not due
DEFAULT_MAX_FILE_SIZE = 5000  # MB, ExportContact's max_file_size default


def _error(status: int, field_name: str | None, message: str) -> Answer:
    return status, {"errors": [{"field": field_name, "message": message}]}


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _json(body: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def _lists_exist(state: SimState, list_ids: Any) -> bool:
    return isinstance(list_ids, list) and all(isinstance(i, str) and i in state.lists for i in list_ids)


def start_import(call: ApiCall) -> Answer:
    state, doc = call.state, _json(call.body)
    if doc is None:
        return _error(400, None, "invalid JSON")
    refusal = _import_request_refusal(doc)
    if refusal is not None:
        return refusal
    mappings, list_ids = doc["field_mappings"], doc.get("list_ids", [])
    with state.lock:
        if not _lists_exist(state, list_ids):
            return _error(400, "list_ids", "list does not exist")
        known = bulk.field_ids(state.custom_fields)
        for i, mapping in enumerate(mappings):
            if mapping is not None and mapping not in known:
                return _error(400, f"field_mappings[{i}]", "unknown field definition id")
        upload = _open_import(state, mappings, list_ids)
    uri = f"{state.base_url}{UPLOAD_PREFIX}{upload.job_id}?X-Amz-Signature={upload.signature}&X-Amz-Expires=900"
    headers = [{"header": name, "value": value} for name, value in UPLOAD_HEADERS]
    return 200, {"job_id": upload.job_id, "upload_uri": uri, "upload_headers": headers}


def _import_request_refusal(doc: dict[str, Any]) -> Answer | None:
    """The request's own shape (ImportContact); None when it holds."""
    unknown = set(doc) - {"list_ids", "file_type", "field_mappings"}
    if unknown:
        return _error(400, sorted(unknown)[0], "unknown field")
    if doc.get("file_type") != "csv":
        return _error(400, "file_type", "file_type must be csv")
    mappings = doc.get("field_mappings")
    if not isinstance(mappings, list) or not mappings or not all(m is None or isinstance(m, str) for m in mappings):
        return _error(400, "field_mappings", "field_mappings must be a non-empty array of field ids or null")
    return None


def _open_import(state: SimState, mappings: list[str | None], list_ids: list[str]) -> Upload:
    """A job that waits for its file, and the link that takes the file."""
    job = Job(id=str(uuid.uuid4()), ready_at=time.time() + NEVER, contacts=[], list_ids=list_ids, started_at=now_iso())
    fault = take_job_fault(state.faults, (None, "PUT"))  # job_status faults apply to import jobs as to upserts
    if fault is not None:
        job.meet(fault)
    state.jobs[job.id] = job
    upload = Upload(job.id, uuid.uuid4().hex, time.time() + state.bulk.upload_ttl, mappings)
    state.bulk.uploads[job.id] = upload
    return upload


def start_export(call: ApiCall) -> Answer:
    state, doc = call.state, _json(call.body)
    if doc is None:
        return _error(400, None, "invalid JSON")
    file_type = doc.get("file_type", "csv")
    if file_type not in ("csv", "json"):
        return _error(400, "file_type", "file_type must be csv or json")
    list_ids = doc.get("list_ids") or []
    size = doc.get("max_file_size", DEFAULT_MAX_FILE_SIZE)
    if not isinstance(size, int) or size < 1:
        return _error(400, "max_file_size", "max_file_size must be a positive integer")
    with state.lock:
        if not _lists_exist(state, list_ids):
            return _error(400, "list_ids", "list does not exist")
        wanted = set(list_ids)
        members = [c for c in state.contacts.values() if wanted & c["list_ids"]]
        now = time.time()
        export = Export(str(uuid.uuid4()), now + state.job_delay, now + state.bulk.export_ttl)
        export.created_at, export.contact_count = _iso(now), len(members)
        rows = state.bulk.export_file_rows or bulk.MAX_IMPORT_ROWS
        export.files = bulk.export_files(members, file_type, size * 1_000_000, rows)
        state.bulk.exports[export.id] = export
    return 202, {
        "id": export.id,
        "_metadata": {"self": f"{state.base_url}/v3/marketing/contacts/exports/{export.id}"},
    }


def export_status(call: ApiCall) -> Answer:
    state = call.state
    with state.lock:
        export = state.bulk.exports.get(call.ids[0])
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


# -- the pre-signed links ------------------------------------------------------------------------


def handle_file(handler: Handler, method: str, path: str, body: bytes) -> bool:
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
        handler.send_json(status, None if status == 200 else {"errors": [{"message": message}]})
        return True
    if path.startswith(EXPORT_PREFIX) and method == "GET":
        _export_file(handler, path)
        return True
    return False


def _upload(handler: Handler, path: str, body: bytes) -> tuple[int, str]:
    state = handler.server.state
    job_id = path[len(UPLOAD_PREFIX) :]
    signature = parse_qs(urlparse(handler.path).query).get("X-Amz-Signature", [""])[0]
    with state.lock:
        upload = state.bulk.uploads.get(job_id)
        job = state.jobs.get(job_id)
        if upload is None or job is None or signature != upload.signature:
            return 403, "SignatureDoesNotMatch"
        refusal = _upload_refusal(handler, upload)
        if refusal is not None:
            return refusal
        upload.uploaded = True
        _take_file(state, job, upload, body, handler.headers.get("Content-Type", ""))
    return 200, ""


def _upload_refusal(handler: Handler, upload: Upload) -> tuple[int, str] | None:
    """S3's answer to an upload it refuses (see :mod:`.bulk`), or None."""
    if handler.headers.get("Authorization"):
        return 400, "only one auth mechanism allowed"
    if time.time() > upload.expires:
        return 403, "Request has expired"
    for name, value in UPLOAD_HEADERS:
        if handler.headers.get(name) != value:
            return 403, "SignatureDoesNotMatch: the headers signed are not those sent"
    if upload.uploaded:
        return 403, "this upload link was used"
    return None


def _take_file(state: SimState, job: Job, upload: Upload, body: bytes, content_type: str) -> None:
    """The uploaded file becomes the job's contacts; the job is due after its delay."""
    numbers = {fid for fid, meta in state.custom_fields.items() if meta.get("field_type") == "Number"}
    contacts, failure = bulk.parse_file(body, upload.mappings, content_type, numbers)
    job.contacts = contacts
    if failure is not None:
        job.forced_status = "failed"
        job.errors["*"] = failure
    per_contact = state.bulk.import_seconds_per_contact
    per_contact = state.job_seconds_per_contact if per_contact is None else per_contact
    job.ready_at = time.time() + state.job_delay + per_contact * len(contacts)
    state.upserted_contacts += len(contacts)
    state.wake()


def _export_file(handler: Handler, path: str) -> None:
    state = handler.server.state
    parts = path[len(EXPORT_PREFIX) :].split("/")
    with state.lock:
        export = state.bulk.exports.get(parts[0])
    if export is None or len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) >= len(export.files):
        handler.send_json(404, {"errors": [{"message": "NoSuchKey"}]})
        return
    if time.time() > export.expires:
        handler.send_json(403, {"errors": [{"message": "Request has expired"}]})
        return
    data = export.files[int(parts[1])]
    handler.send_data(200, {"Content-Type": "application/octet-stream", "Content-Length": str(len(data))}, data)
