"""The file of a CSV import: spooled contacts written as one gzipped CSV on disk, and the
``field_mappings`` that name its columns.

``PUT /v3/marketing/contacts/imports`` (official OpenAPI ``tsg_mc_contacts_v3``) takes a CSV of
up to 1,000,000 contacts or 5 GB, gzip allowed, whose columns ``field_mappings`` maps by position
to field-definition ids (reserved fields' ids such as ``_rf2_T`` for ``email``, custom fields'
own ids). A mapping that does not match the file fails the job later, not the request
(sendgrid/sendgrid-java issue 692): the header is built from the very list the mapping is.

The contacts in the spool passed the row rules (:mod:`shared.inputs.rows`): every one has a valid
email, fields within SendGrid's lengths, custom values of their field's type, so SendGrid's
import refuses none of them for what they hold. The file is written piece by piece from the
spool (one batch in memory at a time), never held whole.
"""

from __future__ import annotations

import csv
import gzip
import io
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from shared.errors import SendGridError
from shared.run.send.batching import BatchSpool

MAX_IMPORT_ROWS = 1_000_000  # "up to one million contacts or 5GB of data, whichever is smaller"
MAX_IMPORT_BYTES = 5_000_000_000
# The JSON of a group's contacts at most: their CSV is smaller (no keys), so under 5 GB.
MAX_GROUP_JSON_BYTES = 4_500_000_000
COMPRESS_LEVEL = 4  # gzip's default 9 takes three times as long for a few percent less
# The read-only reserved fields (SendGrid sets them): never a column of an import.
READ_ONLY = frozenset({"created_at", "updated_at"})


class ImportNotPossible(SendGridError):
    """The contacts cannot be imported by file (a field SendGrid names no id for)."""


@dataclass(frozen=True)
class ImportColumns:
    """The file's columns: each a contact key (a reserved field's name, or ``custom_fields.<id>``)
    and the field-definition id ``field_mappings`` names for it, position by position."""

    keys: tuple[str, ...]
    mappings: tuple[str, ...]


def reserved_ids(definitions: Mapping[str, Any]) -> dict[str, str]:
    """Reserved field name -> its id, from ``GET /v3/marketing/field_definitions``."""
    found: dict[str, str] = {}
    for item in definitions.get("reserved_fields") or []:
        if isinstance(item, dict) and isinstance(item.get("name"), str) and isinstance(item.get("id"), str):
            found[item["name"]] = item["id"]
    return found


def columns_for(keys: Iterable[str], custom_ids: Iterable[str], reserved: Mapping[str, str]) -> ImportColumns:
    """The columns for contacts holding these reserved ``keys`` and custom field ids: email first."""
    names = sorted(set(keys) - {"custom_fields"} - READ_ONLY, key=lambda k: (k != "email", k))
    missing = [name for name in names if name not in reserved]
    if missing:
        raise ImportNotPossible(
            f"SendGrid's field definitions give no id for reserved field(s) {', '.join(missing)}: the contacts "
            "cannot be mapped to an import file (SENDGRID_BULK_IMPORT=never sends them by upsert)."
        )
    custom = sorted(set(custom_ids))
    return ImportColumns(
        tuple(names) + tuple(f"custom_fields.{c}" for c in custom),
        tuple(reserved[n] for n in names) + tuple(custom),
    )


def keys_in(spool: BatchSpool, indices: Iterable[int]) -> tuple[set[str], set[str]]:
    """The reserved keys and custom field ids the contacts of these batches hold (a first pass)."""
    keys: set[str] = set()
    custom: set[str] = set()
    for index in indices:
        batch = spool.batch(index)
        for position in range(batch.count):
            contact = orjson.loads(batch.encoded(position))
            keys.update(contact)
            held = contact.get("custom_fields")
            if held:
                custom.update(held)
    return keys, custom


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):  # alternate_emails: one cell, comma-separated
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def write_import_file(spool: BatchSpool, indices: Iterable[int], columns: ImportColumns, directory: str | None) -> str:
    """Write the contacts of these batches as one gzipped CSV under ``directory``; its path."""
    reserved = [k for k in columns.keys if not k.startswith("custom_fields.")]
    custom = [k[len("custom_fields.") :] for k in columns.keys if k.startswith("custom_fields.")]
    handle = tempfile.NamedTemporaryFile(prefix="sendgrid-import-", suffix=".csv.gz", dir=directory, delete=False)  # noqa: SIM115
    with handle, gzip.GzipFile(fileobj=handle, mode="wb", compresslevel=COMPRESS_LEVEL, mtime=0) as packed:
        text = io.TextIOWrapper(packed, encoding="utf-8", newline="", write_through=False)
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow(columns.keys)
        for index in indices:
            batch = spool.batch(index)
            rows = []
            for position in range(batch.count):
                contact = orjson.loads(batch.encoded(position))
                held = contact.get("custom_fields") or {}
                rows.append([_cell(contact.get(k)) for k in reserved] + [_cell(held.get(c)) for c in custom])
            writer.writerows(rows)
            del batch, rows
        text.flush()
        text.detach()
    return handle.name
