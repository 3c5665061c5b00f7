"""A run's life below the entry points: queueing its job, the destination's lock, abandoned runs,
a lock lost mid-run, retries. Every change to a record goes through :mod:`shared.run.ledger`.

An export never runs inside an HTTP request or a timer: both queue a job, and the queue worker
runs it, one run at a time per destination (the CLI runs it at once, under the same lock).
"""

from __future__ import annotations

import json
import logging
import re

from shared.adapters.jobs import ExportJob
from shared.adapters.locks import HeldLock, LockHeld
from shared.errors import ExportError
from shared.inputs.config import DestinationsConfig
from shared.run import ledger
from shared.run.destinations import exportable_destination
from shared.run.export import describe_unexpected, queue_run, run_export
from shared.run.lock_guard import only_while_held
from shared.run.queue_gate import RunRequest, claim, new_data_gate, on_demand_gate, queued_record
from shared.run.records import (
    FINAL_STATUSES,
    INTERRUPTED,
    CorruptRunRecord,
    ExportOptions,
    RecordNotTrue,
    RunRecord,
    RunStatus,
    iso,
    new_run_id,
    utc_now,
)
from shared.run.runtime import Runtime

log = logging.getLogger(__name__)

# host.json extensions.queues.maxDequeueCount: the attempt after which a job goes to the poison queue.
MAX_DEQUEUE_COUNT = 3
# Records of an earlier version carry no status in their metadata: how many of the newest of them
# a new run reads to find ones a dead process left "running" (marked ones are all found).
ABANDONED_SCAN = 20
ON_DEMAND = "on_demand"
WAITING_FOR_LOCK = "held the lock; queued again"
_TIMES = re.compile(r"\((\d+) times? so far\)")


# -- queueing ------------------------------------------------------------------------------------


def enqueue_export(
    runtime: Runtime, request: RunRequest, *, delay: int = 0, config: DestinationsConfig | None = None
) -> RunRecord:
    """Check the destination may run, store a ``queued`` record, and put its job on the queue
    (visible to the worker after ``delay`` seconds). ``config``: destinations.json as the caller
    loaded it (read again if None).

    An on-demand request made while a run of the destination with the same options is queued and
    has not started joins that run: its record is returned, and nothing is written (a burst of
    requests is one run, see :mod:`shared.run.queue_gate`)."""
    destination = request.destination
    exportable_destination(runtime, destination, config)
    record = queued_record(request)
    if request.trigger == ON_DEMAND and request.run_id is None:
        joined = claim(runtime, on_demand_gate(destination, request.options), record, delay)
        if joined is not None:
            log.info(
                "export of %s requested while run %s, with the same options, is queued: joined it", destination, joined
            )
            return _joined_record(runtime, record, joined)
    ledger.queue(runtime.edges.records, record)
    return _enqueue_job(runtime, record, delay)


def _joined_record(runtime: Runtime, asked: RunRecord, run_id: str) -> RunRecord:
    """The record of the queued run a request joined (as asked, if it is not saved yet)."""
    try:
        found = runtime.edges.records.load(asked.destination, run_id)
    except CorruptRunRecord:
        found = None
    return found or RunRecord(
        run_id, asked.destination, asked.trigger, options=asked.options, queued_at=asked.queued_at
    )


def _enqueue_job(runtime: Runtime, record: RunRecord, delay: int) -> RunRecord:
    """Put a queued record's job on the queue; if it cannot be, the record says so and ends."""
    job = ExportJob(record.run_id, record.destination, record.trigger, record.requested_by, record.options.as_dict())
    try:
        runtime.edges.jobs.enqueue(job, delay=delay)
    except Exception as exc:
        note = f"the job could not be queued ({type(exc).__name__}); nothing ran."
        ledger.fail(runtime.edges.records, record, note, event=False)
        raise ExportError(f"the export of '{record.destination}' could not be queued: {type(exc).__name__}") from exc
    return record


def queue_once(runtime: Runtime, config: DestinationsConfig, destination: str, settle: int) -> RunRecord | None:
    """Queue a run of new data unless one queued by new data earlier has not started yet: then the
    event joins it, and nothing is written (see :mod:`shared.run.queue_gate`)."""
    try:
        exportable_destination(runtime, destination, config)
    except ExportError as exc:
        log.error("new data for %s, but no run may be queued: %s", destination, exc)
        return None
    record = queued_record(RunRequest(destination, "on_new_data", "event grid"))
    try:
        joined = claim(runtime, new_data_gate(destination), record, settle)
    except ExportError as exc:
        log.error("new data for %s, but no run was queued: %s", destination, exc)
        return None
    if joined is not None:
        log.info("new data for %s: run %s is queued and has not started; no second run", destination, joined)
        return None
    ledger.queue(runtime.edges.records, record)
    try:
        _enqueue_job(runtime, record, settle)
    except ExportError as exc:
        log.error("new data for %s, but its run could not be queued: %s", destination, exc)
        return None
    log.info("new data for %s: run %s queued to start in %d s", destination, record.run_id, settle)
    return record


# -- running -------------------------------------------------------------------------------------


def run_job(runtime: Runtime, job: ExportJob, *, attempt: int = 1) -> RunRecord:
    """Run one queued job: its stored record (or a new one, for a job queued by something else),
    unless that record is final already (a repeated delivery)."""
    try:
        record = runtime.edges.records.load(job.destination, job.run_id)
    except CorruptRunRecord as exc:
        log.warning("%s; the job starts it afresh", exc)
        record = None
    if record is None:  # enqueued by something other than this app: give it a record now
        record = RunRecord(
            run_id=job.run_id,
            destination=job.destination,
            trigger=job.trigger,
            requested_by=job.requested_by,
            options=ExportOptions.from_dict(job.options),
            queued_at=iso(utc_now()),
        )
    elif record.status in FINAL_STATUSES:
        log.info(
            "job %s of %s is already %s; a repeated delivery is ignored", job.run_id, job.destination, record.status
        )
        return record
    return run_locked(runtime, record, attempt=attempt)


def run_now(runtime: Runtime, destination: str, *, options: ExportOptions, requested_by: str | None) -> RunRecord:
    """The CLI's export: no queue, but the same records and the same lock as the worker."""
    exportable_destination(runtime, destination)
    record = queue_run(runtime, destination, trigger="cli", requested_by=requested_by, options=options)
    return run_locked(runtime, record, attempt=MAX_DEQUEUE_COUNT)


def run_locked(runtime: Runtime, record: RunRecord, *, attempt: int = 1) -> RunRecord:
    """Run under the destination's lock; a held lock ends the run ``skipped``, naming the holder.

    A lock lost mid-run (see :mod:`shared.adapters.locks`) stops the sending and ends the run ``failed``;
    an interrupt (Ctrl-C) releases the lock and ends it ``failed`` at once, then goes on up.
    """
    held: HeldLock | None = None
    ended = False
    try:
        with runtime.edges.lock.hold(record.destination, record.run_id) as held:
            _close_abandoned_runs(runtime, record)
            record = run_export(only_while_held(runtime, held), record)
            ended = True  # the record is final and saved: an interrupt from here on leaves it so
        if held.lost.is_set():
            return _end_lost(runtime, record, held)
        return record
    except LockHeld as exc:
        return _lock_held(runtime, record, exc)
    except KeyboardInterrupt:
        # The lock is released already (the with block ended); the record must not stay "running".
        # The run itself ends its record as interrupted (run_export); this is for an interrupt before.
        if not ended and INTERRUPTED not in record.errors:
            ledger.fail(runtime.edges.records, record, INTERRUPTED, take_back=True)
        raise
    except Exception as exc:
        if held is not None and held.lost.is_set():  # what failed is what the lost lock stopped
            return _end_lost(runtime, record, held)
        _note_failed_attempt(runtime, record, exc, attempt)
        raise


def _lock_held(runtime: Runtime, record: RunRecord, exc: LockHeld) -> RunRecord:
    if exc.holder == record.run_id or _taken_by_another_delivery(runtime, record):
        # The same job delivered twice (a queue delivers at least once): the delivery that holds
        # the lock runs it, and owns its record; this one leaves both alone.
        log.info(
            "run %s of %s is under way in another delivery; this one is dropped", record.run_id, record.destination
        )
        return record
    if record.trigger == "on_new_data":
        return _queue_again(runtime, record, exc)
    ledger.skip(runtime.edges.records, record, str(exc))
    log.warning("run %s of %s skipped: lock held by %s", record.run_id, record.destination, exc.holder)
    return record


def _taken_by_another_delivery(runtime: Runtime, record: RunRecord) -> bool:
    """Whether the stored record moved on from the one this delivery loaded (another delivery of
    the job took the lock in between, and may not have named itself on it yet)."""
    try:
        stored = runtime.edges.records.load(record.destination, record.run_id)
    except CorruptRunRecord:
        return False
    return stored is not None and (stored.status != record.status or stored.started_at != record.started_at)


def _queue_again(runtime: Runtime, record: RunRecord, exc: LockHeld) -> RunRecord:
    """New data must not wait for the next timer because a run of older data held the lock: try
    again after the settle delay (events meanwhile join this run). One line in the record says
    so, however often it is queued again, and ``requeued_at`` keeps the run from being taken as
    lost while it waits."""
    delay = max(runtime.settings.export_settle_seconds, 30)
    holder = f"run {exc.holder}" if exc.holder else "another run"
    earlier = [line for line in record.errors if WAITING_FOR_LOCK in line]
    times = 1 + (int(match.group(1)) if earlier and (match := _TIMES.search(earlier[-1])) else len(earlier))
    note = f"{holder} {WAITING_FOR_LOCK} to start in {delay} s ({times} time{'s' if times > 1 else ''} so far)."
    record.errors = [line for line in record.errors if WAITING_FOR_LOCK not in line]
    ledger.requeue(runtime.edges.records, record, note, waiting=True)
    try:
        _enqueue_job(runtime, record, delay)
    except ExportError as queue_error:
        log.error("run %s of %s could not be queued again: %s", record.run_id, record.destination, queue_error)
        return record
    log.info("run %s of %s: lock held by %s; queued again", record.run_id, record.destination, exc.holder)
    return record


def _note_failed_attempt(runtime: Runtime, record: RunRecord, exc: Exception, attempt: int) -> None:
    """An attempt that raised: queued again for the host's retry, or, at the last attempt, failed."""
    reason = describe_unexpected(exc)
    if not record.errors or record.errors[-1] != reason:  # the run may have recorded it already
        record.errors.append(reason)
    if attempt < MAX_DEQUEUE_COUNT:
        note = f"attempt {attempt} of {MAX_DEQUEUE_COUNT} failed; the job will be retried."
        ledger.requeue(runtime.edges.records, record, note)
    else:
        record.errors.append(f"attempt {attempt} failed; gave up after {attempt} attempts.")
        ledger.fail(runtime.edges.records, record)


def _end_lost(runtime: Runtime, record: RunRecord, held: HeldLock) -> RunRecord:
    ledger.fail(runtime.edges.records, record, held.lost_reason or "the lock was lost")
    log.error("run %s of %s failed: its lock was lost", record.run_id, record.destination)
    return record


def _close_abandoned_runs(runtime: Runtime, current: RunRecord) -> None:
    """Only the lock holder runs: another record still ``running`` now belongs to a dead process."""
    for other in runtime.edges.records.running(current.destination, unmarked=ABANDONED_SCAN):
        if other.run_id == current.run_id or other.status != RunStatus.RUNNING:
            continue
        if other.progress is not None:
            other.progress = {**other.progress, "stage": "stopped", "eta_seconds": None}
        note = (
            f"the run stopped without finishing (its process died or was stopped); found by run {current.run_id}. "
            "Contacts SendGrid had confirmed were kept in the sync state, jobs it had accepted are settled "
            "by their ids, and the rest were sent again."
        )
        try:
            ledger.fail(runtime.edges.records, other, note, take_back=True)
        except RecordNotTrue as exc:  # a record of an older version, whose counts did not add up
            log.warning("run %s of %s was abandoned and is left as it was: %s", other.run_id, other.destination, exc)
            continue
        log.warning("run %s of %s was abandoned; marked failed", other.run_id, other.destination)


def record_malformed(runtime: Runtime, body: str | bytes, reason: str) -> None:
    """A job that is not one: kept beside the records, for an operator, and dropped."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    name = f"runs/_malformed/{new_run_id()}.json"
    document = {"reason": reason, "received_at": iso(utc_now()), "message": text[:2000]}
    runtime.edges.exports.write_bytes(name, json.dumps(document, indent=2).encode(), content_type="application/json")
    log.error("dropped a malformed export job (%s); recorded as %s", reason, name)
