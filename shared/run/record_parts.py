"""The parts of a run record, typed: what each list, segment, batch, removals and progress entry
holds. They are TypedDicts, so a record's JSON is what it always was (stored records and the HTTP
API are a contract, held by tests/unit/test_record_snapshot.py); keys that only some runs have
are marked ``NotRequired``."""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

from shared.adapters.sendgrid_jobs import JobStatus

ListAction = Literal["found", "created", "would_create"]

# A batch's status in the record: SendGrid's job statuses (and ours: timeout, unknown), or what
# became of a batch no job took (refused, undelivered, not_sent, dry_run, unsettled).
BatchStatus = JobStatus | Literal["refused", "undelivered", "not_sent", "dry_run", "unsettled"]


class ListEntry(TypedDict):
    id: str | None  # None: a list a dry run would create
    name: str | None
    action: ListAction


class FileEntry(TypedDict):
    """One file of a segment; the counts it changed follow (see ``counts.FILE_COUNTS``)."""

    name: str
    rows: int
    invalid: NotRequired[int]
    duplicate: NotRequired[int]
    unchanged: NotRequired[int]
    sent: NotRequired[int]
    truncated: NotRequired[int]
    fields_rejected: NotRequired[int]
    control_chars_stripped: NotRequired[int]


class SegmentEntry(TypedDict):
    path: str
    files: int
    rows: int
    by_file: list[FileEntry]


class JobCounts(TypedDict):
    requested: int
    created: int
    updated: int
    errored: int


class JobPart(TypedDict):
    """One job of a batch sent in parts."""

    job_id: str
    contacts: int
    status: NotRequired[BatchStatus]
    requested: NotRequired[int]
    created: NotRequired[int]
    updated: NotRequired[int]
    errored: NotRequired[int]


class BatchEntry(TypedDict):
    index: int
    contacts: int
    bytes: int
    attempts: int
    job_id: str | None
    status: BatchStatus | None  # None: not sent yet
    rate_limited: NotRequired[int]
    job: NotRequired[JobCounts]
    jobs: NotRequired[list[JobPart]]
    split: NotRequired[int]
    isolated: NotRequired[int]
    bisected: NotRequired[int]
    last_pass: NotRequired[int]
    error: NotRequired[str]
    errors_file: NotRequired[str]
    via: NotRequired[str]  # "import": sent in a CSV import's file (shared.run.send.bulk_import)


class RemovalsEntry(TypedDict):
    planned: int
    done: int
    refused: bool
    reason: str | None
    unfindable: NotRequired[int]
    gone: NotRequired[int]
    unconfirmed: NotRequired[int]
    unknown: NotRequired[int]
    mismatched: NotRequired[int]
    pending: NotRequired[int]
    not_found: NotRequired[int]
    found_by: NotRequired[str]  # "export" or "search": how the departed contacts' ids were found
    export_failed: NotRequired[str]  # why the export could not be used (then: search)
    export_requests: NotRequired[int]


class ProgressEntry(TypedDict):
    stage: str
    rows_read: int
    rows_total: int | None
    batches_sent: int
    batches_confirmed: int
    batches_expected: int | None
    elapsed_seconds: float
    eta_seconds: float | None


def no_removals() -> RemovalsEntry:
    return {"planned": 0, "done": 0, "refused": False, "reason": None}
