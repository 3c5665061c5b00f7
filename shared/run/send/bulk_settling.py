"""Settling a CSV import job exactly as an upsert job, though it holds many of the spool's batches.

When the job is accepted, one ``sent-`` blob journals all its contacts under its id (so a run
that dies is followed by one that settles the job by its id: :mod:`shared.run.send.resume` reads the
blob as any other). When it ends, its errors file is read once, each address it names is found
in the batch that holds it, and then every batch is settled as if it had been a job of its own
(:class:`shared.run.send.settling.JobSettler`): errored contacts rejected with SendGrid's message, the
rest confirmed and journaled, the job's created and updated counts shared out. A file that names
an address the job was not sent, or fewer than the job says failed, leaves the outcome unknown:
nothing of the job is confirmed, and the next run sends it again.
"""

from __future__ import annotations

from array import array
from dataclasses import replace
from typing import Any

from shared.adapters.sendgrid_jobs import JobResult, JobStatus
from shared.errors import SendGridError
from shared.run.delta.journal import sent_blob_name, sent_bytes
from shared.run.ports import SendGridApi
from shared.run.send.batching import Batch
from shared.run.send.import_errors import ErrorsFileUnreadable, parse_errors_file, split_by_errors
from shared.run.send.sending import PendingJob
from shared.run.send.settling import JobSettler


class GroupSettler(JobSettler):
    """A :class:`JobSettler` that also settles import jobs, each holding several batches."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._groups: dict[str, tuple[int, list[PendingJob]]] = {}
        self._prepared: dict[tuple[int, int], dict[int, str] | None] = {}
        self._problems: dict[str, str] = {}

    def accepted_group(
        self,
        first: int,
        job_id: str,
        items: list[PendingJob],
        keys: array[int],
        fps: array[int],
        emails: list[str] | None,
    ) -> None:
        """SendGrid accepted an import job (on the importing thread): journal all it holds, count
        it unconfirmed, and follow it."""
        name = sent_blob_name(self.record.destination, self.record.run_id, first, 0)
        self.exports.write_bytes(name, sent_bytes(job_id, keys, fps, emails), content_type="application/octet-stream")
        with self.lock:
            self._groups[job_id] = (first, items)
            self._jobs[job_id] = items[0]  # the base class marks a job left unfinished by this one
            self.record.counts.unconfirmed += len(keys)
            # Its batches count as sent now, as each is confirmed when the job ends: never more
            # batches confirmed than sent.
            self.progress.batches_sent += len(items)
        if self._follower is not None:
            self._follower.add(job_id)

    def _ended(self, result: JobResult) -> None:
        with self.lock:
            group = self._groups.pop(result.job_id, None)
        if group is None:
            super()._ended(result)
            return
        first, items = group
        assert self._client is not None and self._spool is not None
        failures = self._failures(self._client, items, result)
        total = sum(len(item.positions) for item in items)
        with self.lock:
            given = [0, 0]  # created and updated shared out so far: the last batch takes the rest
            for number, item in enumerate(items):
                share = self._share(result, item, failures, number, total)
                if number == len(items) - 1:
                    share = replace(
                        share, created=max(0, result.created - given[0]), updated=max(0, result.updated - given[1])
                    )
                given[0] += share.created
                given[1] += share.updated
                self._prepared[(item.index, item.part)] = None if failures is None else failures[number]
                self._settle_job(self._client, self._spool, item, share, self.updates, self._journal)
                self.progress.batches_confirmed += 1
        self.exports.delete(sent_blob_name(self.record.destination, self.record.run_id, first, 0))
        self._note_cap(result)
        self.progress.tick(save=False)

    def _left(self, unfinished: list[str], *, timed_out: bool) -> None:
        with self.lock:
            for job_id in unfinished:
                for item in self._groups.get(job_id, (0, []))[1][1:]:  # the first: by the base class
                    item.entry["status"] = "timeout" if timed_out else "unsettled"
        super()._left(unfinished, timed_out=timed_out)

    @staticmethod
    def _share(
        result: JobResult,
        item: PendingJob,
        failures: list[dict[int, str]] | None,
        number: int,
        total: int,
    ) -> JobResult:
        """One batch's part of the job's result, as if the batch had been a job of its own."""
        sent = len(item.positions)
        created = result.created * sent // total if total else 0
        updated = result.updated * sent // total if total else 0
        if result.status not in ("completed", "errored"):
            return replace(result, requested=sent, created=0, updated=0, errored=sent)
        if failures is None:  # which contacts failed is unknown: the batch's outcome too
            errored = max(1, result.errored) if result.status == "errored" else 0
            return replace(result, requested=sent, created=created, updated=updated, errored=errored)
        errored = len(failures[number])
        status: JobStatus = "errored" if errored else "completed"
        return replace(result, status=status, requested=sent, created=created, updated=updated, errored=errored)

    def _failures(self, client: SendGridApi, items: list[PendingJob], result: JobResult) -> list[dict[int, str]] | None:
        """Per batch, the positions the job failed with SendGrid's message; None if unknown."""
        total = sum(len(item.positions) for item in items)
        if result.status != "errored" and result.status != "completed":
            return [{} for _ in items]
        if result.requested not in (0, total):
            self._problems[result.job_id] = f"the job reports {result.requested} requested for {total} sent"
            return None
        if result.errored == 0:
            return [{} for _ in items]
        if not result.errors_url:
            self._problems[result.job_id] = "the job named no errors file"
            return None
        try:
            named = parse_errors_file(client.download_errors_file(result.errors_url))
        except (SendGridError, ErrorsFileUnreadable) as exc:
            self._problems[result.job_id] = str(exc)
            return None
        failures: list[dict[int, str]] = []
        assert self._spool is not None
        for item in items:
            batch = self._spool.batch(item.index)
            _, failed = split_by_errors({p: batch.origin(p).email for p in item.positions}, named)
            failures.append(failed)
        found = sum(len(f) for f in failures)
        if found != len(named) or found < min(result.errored, total):
            self._problems[result.job_id] = (
                f"the errors file names {len(named)} address(es), {found} of them among the job's contacts, "
                f"for {result.errored} errored"
            )
            return None
        return failures

    def _errored_in_job(
        self, client: SendGridApi, batch: Batch, item: PendingJob, result: JobResult
    ) -> dict[int, str] | None:
        if (item.index, item.part) not in self._prepared:
            return super()._errored_in_job(client, batch, item, result)
        failed = self._prepared.pop((item.index, item.part))
        if failed is None:
            problem = self._problems.get(item.job_id, "the job's errors file could not be read")
            item.entry["errors_file"] = problem[:300]
            self._unknown_outcome(item, result, problem)
            return None
        item.entry["errors_file"] = "read"
        return failed
