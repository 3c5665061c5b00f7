"""Waiting for a run's import jobs: as each ends, what it accepted is confirmed (journaled at
once, so a run that dies keeps it) and what it failed is rejected, by its errors file."""

from __future__ import annotations

import json
import time
from array import array
from collections.abc import Sequence
from typing import Any

from shared.adapters.sendgrid import JobResult
from shared.adapters.storage import BlobStore
from shared.errors import SendGridError
from shared.privacy import redact
from shared.run.batching import Batch, BatchSpool
from shared.run.import_errors import ErrorsFileUnreadable, parse_errors_file, split_by_errors
from shared.run.journal import StateUpdates, journal_prefix
from shared.run.ports import SendGridApi
from shared.run.progress import RunProgress
from shared.run.records import RejectsWriter, RunRecord
from shared.run.runtime import Tuning
from shared.run.sending import PendingJob


class JobSettler:
    """Follows a run's import jobs to their end and settles each into the record and the state."""

    def __init__(
        self,
        record: RunRecord,
        rejects: RejectsWriter,
        progress: RunProgress,
        exports: BlobStore,
        tuning: Tuning,
        *,
        mirror: bool,
    ):
        self.record, self.rejects, self.progress = record, rejects, progress
        self.exports, self.tuning, self.mirror = exports, tuning, mirror

    def wait_for_jobs(
        self, client: SendGridApi, spool: BatchSpool, pending: list[PendingJob], updates: StateUpdates
    ) -> None:
        """Follow every import job of the run at once, against one deadline; as each ends, confirm
        what it accepted (journaled at once) and reject what it failed, by its errors file."""
        if not pending:
            return
        journal = journal_prefix(self.record.destination) + self.record.run_id
        deadline = time.time() + self.tuning.job_wait_seconds
        if client.deadline is not None:
            deadline = min(deadline, client.deadline)
        by_job = {item.job_id: item for item in pending}
        unfinished = 0

        def on_end(result: JobResult) -> None:
            nonlocal unfinished
            item = by_job[result.job_id]
            unfinished += self._settle_job(client, spool, item, result, updates, journal) == "timeout"
            self.progress.batches_confirmed += 1
            self.progress.tick()

        client.wait_for_jobs(
            list(by_job),
            deadline=deadline,
            interval=self.tuning.job_poll_interval,
            max_interval=self.tuning.job_poll_max_interval,
            on_end=on_end,
            tick=self.progress.tick,
        )
        if unfinished:
            self.record.errors.append(
                f"{unfinished} import job(s) did not finish before the run's deadline for jobs "
                f"(SENDGRID_JOB_WAIT_SECONDS={self.tuning.job_wait_seconds:.0f}); their contacts are counted "
                "errored and will be sent again by the next run."
            )

    def _settle_job(
        self,
        client: SendGridApi,
        spool: BatchSpool,
        item: PendingJob,
        result: JobResult,
        updates: StateUpdates,
        journal: str,
    ) -> str:
        """Count, confirm and reject what one ended job says; returns its status."""
        counts = self.record.counts
        batch = spool.batch(item.index)
        self._note_job(self.record.batches[item.index], item, result)
        sent = len(item.positions)
        journal_name = f"{journal}-{item.index:05d}-{item.part:02d}.bin"
        if result.status not in ("completed", "errored"):
            # failed, unknown, or not finished in time: nothing of this part is confirmed.
            counts.errored += sent
            return result.status
        counts.created += result.created
        counts.updated += result.updated
        if result.requested not in (0, sent) or (result.status == "errored" and result.errored == 0):
            # The job does not describe this part: which of its contacts it took is unknown.
            counts.errored += sent
            self._unknown_outcome(
                item,
                result,
                f"the job reports {result.requested} requested, "
                f"{result.errored} errored, status {result.status}, for {sent} sent",
            )
            return result.status
        if result.errored == 0:
            counts.accepted += sent
            self._confirm(batch, item, item.positions, updates, journal_name)
            return result.status
        failed = self._errored_in_job(client, batch, item, result)
        if failed is None:
            # Which contacts failed is unknown: none is confirmed, the next run sends them again.
            errored = min(result.errored, sent)
            counts.accepted += sent - errored
            counts.errored += errored
            return result.status
        counts.accepted += sent - len(failed)
        counts.errored += len(failed)
        for position, message in failed.items():
            origin = batch.origin(position)
            self.rejects.add(origin.source, origin.line, origin.email, "errored", message)
        self._confirm(batch, item, [p for p in item.positions if p not in failed], updates, journal_name)
        return result.status

    @staticmethod
    def _note_job(entry: dict[str, Any], item: PendingJob, result: JobResult) -> None:
        job = {"requested": result.requested, "created": result.created, "updated": result.updated}
        job["errored"] = result.errored
        if result.error:
            entry["error"] = redact(result.error)[:1000]
        parts = entry.get("jobs")
        if parts:  # a batch sent in parts: each part's job, and the batch's worst status
            parts[item.part].update(status=result.status, **job)
            ends = [p.get("status") for p in parts]
            entry["status"] = next((s for s in ends if s not in ("completed", None)), "completed")
            total = entry.setdefault("job", dict.fromkeys(job, 0))
            for key, value in job.items():
                total[key] += value
        else:
            entry["status"] = result.status
            entry["job"] = job

    def _errored_in_job(
        self, client: SendGridApi, batch: Batch, item: PendingJob, result: JobResult
    ) -> dict[int, str] | None:
        """The positions an import job failed, with SendGrid's message, from its errors file;
        None (and the record says why) when the file cannot tell them with certainty."""
        entry = self.record.batches[item.index]
        problem: str
        if not result.errors_url:
            problem = "the job named no errors file"
        else:
            try:
                named = parse_errors_file(client.download_errors_file(result.errors_url))
            except (SendGridError, ErrorsFileUnreadable) as exc:
                problem = str(exc)
            else:
                emails = {p: batch.origin(p).email for p in item.positions}
                _, failed = split_by_errors(emails, named)
                if len(failed) != len(named):
                    problem = f"the errors file names {len(named) - len(failed)} address(es) this job was not sent"
                elif len(failed) < min(result.errored, len(item.positions)):
                    problem = f"the errors file names {len(failed)} of the {result.errored} errored contacts"
                else:
                    entry["errors_file"] = "read"
                    return failed
        entry["errors_file"] = problem[:300]
        self._unknown_outcome(item, result, problem)
        return None

    def _unknown_outcome(self, item: PendingJob, result: JobResult, problem: str) -> None:
        self.record.errors.append(
            f"batch {item.index}: the import job's outcome per contact is unknown ({problem[:300]}); none of "
            "its contacts is confirmed, and the next run sends them again."
        )

    def _confirm(
        self, batch: Batch, item: PendingJob, positions: Sequence[int], updates: StateUpdates, journal_name: str
    ) -> None:
        if not positions:
            return
        start = len(updates)
        keys, fps = batch.columns["keys"], batch.columns["fps"]
        if positions != range(batch.count):  # a part of the batch: only these contacts
            keys, fps = array("Q", map(keys.__getitem__, positions)), array("Q", map(fps.__getitem__, positions))
        emails = [json.loads(batch.encoded(p))["email"] for p in positions] if self.mirror else None
        # Batches end in any order: where this one stands in the input keeps the state in input order.
        updates.extend(keys, fps, emails, order=(item.index, item.part))
        # Written before the next job is looked at: if the run dies now, this part stays confirmed.
        self.exports.write_bytes(journal_name, updates.journal_bytes(start), content_type="application/octet-stream")
