"""The ledger: the only code that changes a run record's status, saves a record, or emits its run
event. One verb per step of a run's life: :func:`queue`, :func:`start` (:meth:`RunLedger.start`),
:func:`skip`, :func:`requeue`, :func:`fail`, and :meth:`RunLedger.finish`; every save checks the
conservation law first (:func:`shared.run.records.require_true`), so no record that contradicts
itself is ever written. Whatever happens, the record ends final and its counts add up."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from shared.inputs.config import Destination
from shared.privacy import redact
from shared.run.ports import Edges
from shared.run.progress import ProgressSnapshot, RunProgress
from shared.run.records import (
    RejectsWriter,
    RunRecord,
    RunRecordStore,
    RunStatus,
    iso,
    rejects_blob_name,
    require_true,
    utc_now,
)
from shared.run.runtime import Tuning
from shared.run.telemetry import emit_run_event

log = logging.getLogger(__name__)


def _save(store: RunRecordStore, record: RunRecord) -> None:
    """Every record this app writes goes through here: the law first, then the blob."""
    require_true(record)
    store.save(record)


def queue(store: RunRecordStore, record: RunRecord) -> RunRecord:
    """A new run, ``queued``: its record is saved before its job is put on the queue."""
    record.status = RunStatus.QUEUED
    _save(store, record)
    return record


def skip(store: RunRecordStore, record: RunRecord, reason: str) -> RunRecord:
    """The run never started (its destination's lock was held): ``skipped``, saying why."""
    record.status = RunStatus.SKIPPED
    record.errors.append(reason)
    record.finished_at = iso(utc_now())
    _save(store, record)
    emit_run_event(record)
    return record


def requeue(store: RunRecordStore, record: RunRecord, *notes: str, waiting: bool = False) -> RunRecord:
    """The run goes back on the queue: ``queued`` again, not final, its notes appended.
    ``waiting``: it waits for a lock, and ``requeued_at`` keeps it from being taken as lost."""
    record.status = RunStatus.QUEUED
    record.errors.extend(notes)
    record.finished_at = None
    if waiting:
        record.requeued_at = iso(utc_now())
    _save(store, record)
    return record


def fail(
    store: RunRecordStore,
    record: RunRecord,
    *notes: str,
    take_back: bool = False,
    event: bool = True,
) -> RunRecord:
    """The run ends ``failed`` with ``notes`` (each once). ``take_back``: what it never handed to
    SendGrid leaves its counts. A record that ended failed already emits no second event; nor
    does one whose run never began (``event=False``)."""
    was = record.status
    record.status = RunStatus.FAILED
    record.errors.extend(note for note in notes if note not in record.errors)
    if take_back:
        record.counts.take_back_unsent()
    record.finished_at = iso(utc_now())
    _save(store, record)
    if event and was != RunStatus.FAILED:
        emit_run_event(record)
    return record


@dataclass(frozen=True)
class RunBooks:
    """What a run's stages write into as it goes, from their own threads too (the settler's): the
    record's counts and parts, the rejects file and the progress, each under ``lock``, which every
    save of the record takes. Only the ledger saves them."""

    record: RunRecord
    rejects: RejectsWriter
    progress: RunProgress
    lock: threading.RLock


class RunLedger:
    """The ledger of one run while it goes: stage timings, failures, progress saves, the final
    status, the rejects file and the run event."""

    def __init__(self, record: RunRecord, edges: Edges, tuning: Tuning):
        self.edges, self.tuning = edges, tuning
        self.record = record
        self.rejects = RejectsWriter()
        self.store = edges.records
        # Taken by whatever writes the record from another thread (the settler), and by every save.
        self.lock = threading.RLock()
        self.failed = False
        self._t0 = time.monotonic()
        self.destination: Destination | None = None  # once known: the run event tells its schedule
        self.progress = RunProgress(
            edges.progress,
            self._save_running,
            interval=tuning.progress_every,
            save_every=tuning.record_save_every,
        )
        self.books = RunBooks(record, self.rejects, self.progress, self.lock)

    def elapsed(self) -> float:
        """Seconds since the run began."""
        return time.monotonic() - self._t0

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.record.timings[name] = self.record.timings.get(name, 0.0) + time.monotonic() - start

    def start(self) -> None:
        """The run starts from nothing; only the notes of earlier attempts remain (a retried job)."""
        record = self.record
        fresh = RunRecord(record.run_id, record.destination, record.trigger)
        record.lists, record.segments, record.counts = fresh.lists, fresh.segments, fresh.counts
        record.batches, record.removals, record.timings = fresh.batches, fresh.removals, fresh.timings
        record.rejects_blob = None
        record.status = RunStatus.RUNNING
        record.started_at = iso(utc_now())
        record.resumed = None
        self.save()

    def save(self) -> None:
        with self.lock:
            _save(self.store, self.record)

    def _save_running(self, progress: ProgressSnapshot) -> None:
        with self.lock:
            self.record.progress = progress.as_dict()
            _save(self.store, self.record)

    def fail(self, message: str) -> None:
        with self.lock:
            self.failed = True
            self.record.errors.append(redact(message))
        log.error("run %s of %s failed: %s", self.record.run_id, self.record.destination, redact(message))

    def finish(self) -> None:
        record = self.record
        counts = record.counts
        # What passed the rules but never reached SendGrid (a dry run, a run stopped first).
        counts.take_back_unsent()
        self.progress.stage = "failed" if self.failed else "done"
        self.progress.reading_done = True
        self.progress.rows_read = counts.read
        self.progress.close()
        record.progress = self.progress.snapshot().as_dict()
        record.status = self._final_status()
        if self.rejects.count:
            name = rejects_blob_name(record.destination, record.run_id)
            self.rejects.upload(self.edges.exports, name)
            record.rejects_blob = name
        self.rejects.close()
        record.finished_at = iso(utc_now())
        record.timings["total"] = self.elapsed()
        self.save()
        destination = self.destination
        emit_run_event(record, schedule_enabled=destination.schedule_enabled if destination else None)
        log.info(
            "run %s of %s: %s; %s",
            record.run_id,
            record.destination,
            record.status,
            ", ".join(f"{k}={v}" for k, v in counts.as_dict().items()),
        )

    def _final_status(self) -> RunStatus:
        counts = self.record.counts
        if self.failed:
            return RunStatus.FAILED
        if counts.invalid or counts.errored or counts.fields_rejected or counts.unconfirmed:
            return RunStatus.COMPLETED_WITH_ERRORS
        return RunStatus.SUCCEEDED
