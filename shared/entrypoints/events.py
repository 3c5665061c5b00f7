"""Exports that follow their data: a segment blob landing (Event Grid ``BlobCreated``) queues the
export of every destination that opted in with ``"on_new_data": true``.

Which blob counts: for a plain file segment, the file itself; for a folder (a prefix), a data
file in it, unless the folder is a CDM folder, where only ``model.json`` counts (Customer
Insights writes it after the partitions, so it says the data is complete). Bursts coalesce: the
job waits ``EXPORT_SETTLE_SECONDS`` on the queue before it runs, and a destination with a queued
run that has not started gets no second one, nor a record (see :mod:`shared.run.queue_gate`).
The run reads the newest complete data, as any run.

Nothing here is the Functions framework: ``function_app.py`` hands the event over as a mapping.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.errors import ExportError
from shared.inputs.config import Destination
from shared.inputs.segments import CSV_SUFFIXES, JSONL_SUFFIXES

BLOB_CREATED = "Microsoft.Storage.BlobCreated"
MAX_SUBJECT_CHARS = 2048  # container (63) and blob name (1,024) with room for the path around them
_SUBJECT = re.compile(r"/blobServices/default/containers/([a-z0-9][a-z0-9-]{1,61}[a-z0-9])/blobs/(.+)", re.S)
CDM_MANIFEST = "model.json"


class MalformedEvent(ExportError):
    """The event is not a well-formed Event Grid event; it is logged and dropped."""


@dataclass(frozen=True)
class LandedBlob:
    container: str
    name: str


def landed_blob(event: Mapping[str, Any]) -> LandedBlob | None:
    """The blob a ``BlobCreated`` event names; None for any other event type."""
    if not isinstance(event, Mapping):
        raise MalformedEvent("the event is not a JSON object")
    event_type = event.get("eventType", event.get("type"))  # Event Grid schema, or CloudEvents
    if not isinstance(event_type, str) or not event_type:
        raise MalformedEvent("the event has no eventType")
    if event_type != BLOB_CREATED:
        return None
    subject = event.get("subject")
    if not isinstance(subject, str) or len(subject) > MAX_SUBJECT_CHARS:
        raise MalformedEvent("a BlobCreated event without a usable subject")
    match = _SUBJECT.fullmatch(subject)
    if match is None or "\x00" in subject:
        raise MalformedEvent("a BlobCreated event whose subject names no blob")
    return LandedBlob(match.group(1), match.group(2))


def watches(destination: Destination, blob_name: str, is_cdm_folder: Callable[[str], bool]) -> bool:
    """Whether this blob landing is new data for the destination (see the module doc)."""
    for segment in destination.segments:
        if not segment.is_prefix:
            if blob_name == segment.path:
                return True
            continue
        if not blob_name.startswith(segment.path):
            continue
        rest = blob_name[len(segment.path) :]
        if rest == CDM_MANIFEST:
            return True
        if rest.lower().endswith(CSV_SUFFIXES + JSONL_SUFFIXES) and not is_cdm_folder(segment.path):
            return True
    return False
