"""A run's record while it goes and when it ends: stage timings, failures, the final status,
the rejects file and the run event. Whatever happens, the record ends final and its counts add up."""

from __future__ import annotations

import logging
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
        self.failed = False
        self._t0 = time.monotonic()
        self._sent = False  # the sender's outcome has been taken into the record
        self._delivered = False  # a batch was handed to SendGrid
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

    def _save_running(self, progress: ProgressSnapshot) -> None:
        self.record.progress = progress.as_dict()
        self.store.save(self.record)

    def fail(self, message: str) -> None:
        self.failed = True
        self.record.errors.append(redact(message))
        log.error("run %s of %s failed: %s", self.record.run_id, self.record.destination, redact(message))

    def finish(self) -> None:
        record = self.record
        counts = record.counts
        if counts.sent and not self._delivered:  # a dry run, or a run stopped before sending
            counts.take_back_unsent()
        self.progress.stage = "done"
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
        self.store.save(record)
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
        if counts.invalid or counts.errored or counts.fields_rejected:
            return RunStatus.COMPLETED_WITH_ERRORS
        return RunStatus.SUCCEEDED
