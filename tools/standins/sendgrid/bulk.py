"""The files of the bulk endpoints: a CSV import read into contacts, a contact export written.

Each rule and its source (the endpoints themselves are in :mod:`.routes_bulk`):

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
from dataclasses import dataclass, field
from typing import Any

from tools.standins.sendgrid.rules import RESERVED_FIELDS

MAX_IMPORT_ROWS = 1_000_000
MAX_IMPORT_BYTES = 5_000_000_000
MAPPING_MISMATCH = (
    "Failed to preprocess input csv: we were unable to upload your contacts because the field mapping "
    "doesn't match the CSV."
)
UPLOAD_HEADERS = (("x-amz-server-side-encryption", "aws:kms"),)
# The contact key a reserved field id fills ("_rf2_T" -> "email").
RESERVED_BY_ID: dict[str, str] = {item["id"]: item["name"] for item in RESERVED_FIELDS if "id" in item}
# The columns of an export file (uppercase, as SendGrid's CSV exports name them), then the id.
EXPORT_FIELDS = ("email", "first_name", "last_name", "city", "state_province_region", "postal_code", "country")


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


@dataclass
class BulkStore:
    """The bulk endpoints' part of the simulator's state, and their settings (``/__sim/config``)."""

    uploads: dict[str, Upload] = field(default_factory=dict)
    exports: dict[str, Export] = field(default_factory=dict)
    upload_ttl: float = 900.0  # seconds an upload link lives (S3's X-Amz-Expires)
    export_ttl: float = 21600.0  # seconds an export's files live
    export_file_rows: int | None = None  # rows per export file (tests); None: by size only
    import_seconds_per_contact: float | None = None  # None: as upserts (job_seconds_per_contact)

    def configure(self, doc: dict[str, Any]) -> None:
        """The bulk settings of ``POST /__sim/config``: link lifetimes, rows per export file."""
        if "upload_ttl" in doc:
            self.upload_ttl = float(doc["upload_ttl"])
        if "export_ttl" in doc:
            self.export_ttl = float(doc["export_ttl"])
        if "import_seconds_per_contact" in doc:
            self.import_seconds_per_contact = float(doc["import_seconds_per_contact"])
        if "export_file_rows" in doc:
            self.export_file_rows = None if doc["export_file_rows"] is None else int(doc["export_file_rows"])


def field_ids(custom_fields: dict[str, Any]) -> dict[str, str]:
    """Field-definition id -> the contact key it fills (reserved name, or custom_fields.<id>)."""
    ids = {item["id"]: item["name"] for item in RESERVED_FIELDS if "id" in item and not item.get("read_only")}
    ids.update({fid: f"custom_fields.{fid}" for fid in custom_fields})
    return ids


def parse_file(
    body: bytes, mappings: list[str | None], content_type: str, numbers: set[str]
) -> tuple[list[dict[str, Any]], str | None]:
    """The contacts of an uploaded file, or none and why the job fails."""
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


def export_files(members: list[dict[str, Any]], file_type: str, max_bytes: int, max_rows: int) -> list[bytes]:
    """The export's files: gzipped, each at most ``max_bytes`` before compression and ``max_rows``."""
    if not members:
        return [b""]  # an empty export is not gzip (airbytehq/airbyte issue 35501)
    files: list[bytes] = []
    lines: list[str] = []
    size = 0
    header = ",".join(f.upper() for f in EXPORT_FIELDS) + ",CONTACT_ID\r\n" if file_type == "csv" else ""
    for contact in members:
        line = _export_line(contact, file_type)
        if lines and (len(lines) >= max_rows or size + len(line) > max_bytes):
            files.append(gzip.compress((header + "".join(lines)).encode(), 4))
            lines, size = [], 0
        lines.append(line)
        size += len(line)
    files.append(gzip.compress((header + "".join(lines)).encode(), 4))
    return files


def _export_line(contact: dict[str, Any], file_type: str) -> str:
    values = {f: contact.get(f) or "" for f in EXPORT_FIELDS}
    if file_type == "json":
        return json.dumps({**values, "contact_id": contact["id"]}) + "\n"
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow([*values.values(), contact["id"]])
    return out.getvalue()
