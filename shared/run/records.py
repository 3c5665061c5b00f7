"""Run records and rejects: what every run writes back to the exports container.

``runs/{destination}/{run_id}.json`` is the record, written when the run is queued, updated as
stages pass, and final at the end. ``runs/{destination}/{run_id}.rejects.csv`` holds every
rejected or errored row (source file and line, email, reason): the only place a row's email is
ever written.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import secrets
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from shared.adapters.storage import BlobNotFound, BlobStore, BlobTooLarge
from shared.errors import ExportError
from shared.json_input import JsonDocumentError, JsonObject, load_json
from shared.privacy import csv_cell
from shared.run.counts import RunCounts, conservation_faults
from shared.run.record_parts import BatchEntry, ListEntry, ProgressEntry, RemovalsEntry, SegmentEntry, no_removals

log = logging.getLogger(__name__)


class RunStatus(StrEnum):
    """A run's status; its value is what the record stores."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    FAILED = "failed"
    SKIPPED = "skipped"


FINAL_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.COMPLETED_WITH_ERRORS, RunStatus.FAILED, RunStatus.SKIPPED})


@dataclass(frozen=True)
class ExportOptions:
    dry_run: bool = False
    full: bool = False
    force_removals: bool = False

    def as_dict(self) -> dict[str, bool]:
        return {"dry_run": self.dry_run, "full": self.full, "force_removals": self.force_removals}

    @classmethod
    def from_dict(cls, data: JsonObject) -> ExportOptions:
        return cls(**{name: data[name] for name in ("dry_run", "full", "force_removals") if name in data})


INTERRUPTED = (
    "the run was interrupted (Ctrl-C or a stop signal) and its lock released; contacts SendGrid had "
    "confirmed are kept in the sync state, jobs it had accepted are settled by the next run, and "
    "running the export again sends the rest."
)

REJECT_COLUMNS = ("source", "line", "email", "category", "field", "reason")


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z") if moment else None


def new_run_id(now: datetime | None = None) -> str:
    """Sorts by time to the millisecond: ``20261123T031500Z-1a2b3c4d``.

    The first three hex digits after the dash are the millisecond (000-3e7), the last five are
    random, so two runs started in the same second still sort in the order they started.
    """
    moment = (now or utc_now()).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{moment.microsecond // 1000:03x}{secrets.token_hex(3)[:5]}"


def record_blob_name(destination: str, run_id: str) -> str:
    return f"runs/{destination}/{run_id}.json"


def rejects_blob_name(destination: str, run_id: str) -> str:
    return f"runs/{destination}/{run_id}.rejects.csv"


@dataclass
class RunRecord:
    run_id: str
    destination: str
    trigger: str
    requested_by: str | None = None
    options: ExportOptions = field(default_factory=ExportOptions)
    status: RunStatus = RunStatus.QUEUED
    queued_at: str | None = None
    # When a run of new data that found the lock held was last queued again (it is still coming).
    requeued_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    lists: list[ListEntry] = field(default_factory=list)
    segments: list[SegmentEntry] = field(default_factory=list)
    counts: RunCounts = field(default_factory=RunCounts)
    batches: list[BatchEntry] = field(default_factory=list)
    removals: RemovalsEntry = field(default_factory=no_removals)
    errors: list[str] = field(default_factory=list)
    rejects_blob: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    # While a run goes: how far it has got (see shared.run.progress), saved every few seconds.
    progress: ProgressEntry | None = None
    # Import jobs an earlier run had sent and not settled, settled by this one (by their ids).
    resumed: JsonObject | None = None

    def to_dict(self) -> JsonObject:
        return {
            "run_id": self.run_id,
            "destination": self.destination,
            "trigger": self.trigger,
            "requested_by": self.requested_by,
            "options": self.options.as_dict(),
            "status": str(self.status),
            "queued_at": self.queued_at,
            "requeued_at": self.requeued_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "lists": self.lists,
            "segments": self.segments,
            "counts": self.counts.as_dict(),
            "batches": self.batches,
            "removals": dict(self.removals),
            "errors": list(self.errors),
            "rejects_blob": self.rejects_blob,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "progress": self.progress,
            "resumed": self.resumed,
        }

    @classmethod
    def from_dict(cls, data: JsonObject) -> RunRecord:
        """The record as stored; a part of the wrong type is left as it is, for the caller to refuse."""
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        if isinstance(known.get("counts"), dict):
            known["counts"] = RunCounts.from_dict(known["counts"])
        if isinstance(known.get("options"), dict):
            known["options"] = ExportOptions.from_dict(known["options"])
        if known.get("status") in _STATUS_VALUES:
            known["status"] = RunStatus(known["status"])
        return cls(**known)


_STATUS_VALUES = frozenset(status.value for status in RunStatus)


class CorruptRunRecord(ExportError):
    def __init__(self, blob: str, why: str):
        self.blob = blob
        super().__init__(f"run record {blob} is corrupt ({why}); delete it, or leave it: later runs skip it.")


# A record holds counts, one entry a batch and a few lines: far below this even for 10M rows.
# One larger is not ours, and is not read into memory.
MAX_RECORD_BYTES = 32 * 1024 * 1024

# The record blob's metadata key that repeats its status, so a listing tells which runs are running.
STATUS_METADATA = "status"


class RecordNotTrue(ExportError):
    """A record about to be saved breaks the conservation law: a fault of this app, never saved."""


def require_true(record: RunRecord) -> None:
    """The one check of a record's counts, on every save (see :func:`conservation_faults`); a
    record of a run that has ended must account for every contact it sent."""
    if not isinstance(record.counts, RunCounts):
        return
    final = record.status in FINAL_STATUSES and record.status != RunStatus.SKIPPED
    faults = conservation_faults(record.counts, final=final)
    if faults:
        raise RecordNotTrue(
            f"run {record.run_id} of {record.destination}: its record breaks the conservation law "
            f"({'; '.join(faults)}); it was not saved."
        )


class RunRecordStore:
    def __init__(self, exports: BlobStore):
        self._exports = exports

    def save(self, record: RunRecord) -> None:
        require_true(record)
        body = json.dumps(record.to_dict(), indent=2).encode("utf-8")
        self._exports.write_bytes(
            record_blob_name(record.destination, record.run_id),
            body,
            content_type="application/json",
            metadata={STATUS_METADATA: str(record.status)},
        )

    def running(self, destination: str, *, unmarked: int = 20) -> list[RunRecord]:
        """Every record of the destination still ``running``, found by the status each record's
        blob carries in its metadata (one listing), however many records came after it. A record
        saved by an earlier version carries none: the newest ``unmarked`` of those are read."""
        listed = self._exports.list_blobs(f"runs/{destination}/", with_metadata=True)
        records = [b for b in listed if b.name.endswith(".json")]
        marked = [b.name for b in records if (b.metadata or {}).get(STATUS_METADATA) == RunStatus.RUNNING]
        legacy = sorted((b.name for b in records if STATUS_METADATA not in (b.metadata or {})), reverse=True)
        found = []
        for name in marked + legacy[:unmarked]:
            try:
                record = self._read(name)
            except BlobNotFound:  # deleted between list and read
                continue
            except CorruptRunRecord as exc:
                log.warning("%s", exc)
                continue
            if record.status == RunStatus.RUNNING:
                found.append(record)
        return found

    def load(self, destination: str, run_id: str) -> RunRecord | None:
        """The record, None if there is none, or :class:`CorruptRunRecord`."""
        name = record_blob_name(destination, run_id)
        try:
            return self._read(name)
        except BlobNotFound:
            return None

    def recent(self, destination: str, limit: int = 20) -> list[RunRecord]:
        """Newest first; run ids sort by time, so names do the ordering. A corrupt record is
        skipped with a warning: one bad blob must not fail every later run and every listing."""
        names = sorted(
            (b.name for b in self._exports.list_blobs(f"runs/{destination}/") if b.name.endswith(".json")),
            reverse=True,
        )
        records: list[RunRecord] = []
        for name in names:
            if len(records) >= limit:
                break
            try:
                records.append(self._read(name))
            except BlobNotFound:  # deleted between list and read
                continue
            except CorruptRunRecord as exc:
                log.warning("%s", exc)
        return records

    def _read(self, name: str) -> RunRecord:
        try:
            raw = self._exports.read_bytes(name, max_bytes=MAX_RECORD_BYTES)
        except BlobTooLarge:
            raise CorruptRunRecord(name, f"over {MAX_RECORD_BYTES:,} bytes") from None
        return self._parse(name, raw)

    @staticmethod
    def _parse(name: str, raw: bytes) -> RunRecord:
        try:
            data = load_json(raw, "the record")
        except JsonDocumentError as exc:
            raise CorruptRunRecord(name, str(exc)) from None
        if not isinstance(data, dict):
            raise CorruptRunRecord(name, "not a JSON object")
        try:
            record = RunRecord.from_dict(data)
        except TypeError:  # a required field is missing
            raise CorruptRunRecord(name, "fields are missing") from None
        problems = [
            key
            for key, kind in _FIELD_TYPES.items()
            if not isinstance(getattr(record, key), kind) and getattr(record, key) is not None
        ]
        if isinstance(record.counts, RunCounts) and not record.counts.well_formed():
            problems.append("counts")
        if problems or not isinstance(record.run_id, str) or not isinstance(record.destination, str):
            raise CorruptRunRecord(name, f"wrong type of {', '.join(problems) or 'run_id or destination'}")
        return record


# What a record read back must hold for the code that reads it (the listings, the abandoned-run
# scan, the worker) to work; None is allowed where the dataclass allows it.
_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "trigger": str,
    "requested_by": str,
    "options": ExportOptions,
    "status": str,  # a RunStatus, or a status this version does not know: listed as it is
    "queued_at": str,
    "requeued_at": str,
    "started_at": str,
    "finished_at": str,
    "lists": list,
    "segments": list,
    "counts": RunCounts,
    "batches": list,
    "removals": dict,
    "errors": list,
    "rejects_blob": str,
    "timings": dict,
    "progress": dict,
    "resumed": dict,
}


class RejectsWriter:
    """Rejected rows, spooled (memory first, then disk) and uploaded once at the end of the run."""

    def __init__(self) -> None:
        self._file = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024, mode="w+b")  # noqa: SIM115 - lives until close()
        self._text = io.TextIOWrapper(self._file, encoding="utf-8", newline="", write_through=True)
        self._csv = csv.writer(self._text)
        self._csv.writerow(REJECT_COLUMNS)
        self.count = 0
        # The reading thread and the job settler's both add rows: one row at a time.
        self._lock = threading.Lock()

    def add(self, source: str, line: int, email: str, category: str, reason: str, field_name: str = "") -> None:
        row = (csv_cell(source), line, csv_cell(email), csv_cell(category), csv_cell(field_name), csv_cell(reason))
        with self._lock:
            self._csv.writerow(row)
            self.count += 1

    def upload(self, exports: BlobStore, blob_name: str) -> None:
        self._text.flush()
        self._file.seek(0)
        exports.write_stream(blob_name, self._file, content_type="text/csv; charset=utf-8")

    def close(self) -> None:
        self._text.close()
