"""A run's record while it goes and when it ends: stage timings, failures, the final status,
the rejects file and the run event. Whatever happens, the record ends final and its counts add up."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from shared.inputs.config import Destination
from shared.privacy import redact
from shared.run.ports import Edges
from shared.run.progress import ProgressSnapshot, RunProgress
from shared.run.records import RejectsWriter, RunRecord, RunStatus, iso, rejects_blob_name, utc_now
from shared.run.runtime import Tuning
from shared.run.telemetry import emit_run_event

log = logging.getLogger(__name__)


class RunBookkeeping:
    def __init__(self, record: RunRecord, edges: Edges, tuning: Tuning):
        self.edges, self.tuning = edges, tuning
        self.record = record
        self.rejects = RejectsWriter()
        self.store = edges.records
        # Taken by whatever writes the record from another thread (the settler), and by every save.
        self.lock = threading.RLock()
        self.failed = False
        self._t0 = time.monotonic()
        self._sent = False  # the sender's outcome has been taken into the record
        self.destination: Destination | None = None
        self.progress = RunProgress(
            edges.progress,
            self._save_running,
            interval=tuning.progress_every,
            save_every=tuning.record_save_every,
        )

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.record.timings[name] = self.record.timings.get(name, 0.0) + time.monotonic() - start

    def save(self) -> None:
        with self.lock:
            self.store.save(self.record)

    def _save_running(self, progress: ProgressSnapshot) -> None:
        with self.lock:
            self.record.progress = progress.as_dict()
            self.store.save(self.record)

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
        record.timings["total"] = time.monotonic() - self._t0
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
