"""Settling a run's import jobs while it reads and sends: each job SendGrid accepts is journaled
at once with what it holds (so that a run that dies settles it later by its id instead of sending
it again), followed from the moment it exists (:mod:`shared.run.send.following`), and, as it ends,
what it accepted is confirmed (journaled at once, so a run that dies keeps it) and what it failed
is rejected, by its errors file.

The settler writes the record's counts, batches and rejects from its own thread: it does so under
the run's lock, which every save of the record also takes.
"""

from __future__ import annotations

import json
import logging
import time
from array import array
from collections.abc import Callable, Sequence

from shared.adapters.sendgrid_jobs import JobResult
from shared.adapters.storage import BlobStore
from shared.errors import SendGridError
from shared.privacy import redact
from shared.run.delta.journal import StateUpdates, journal_prefix, sent_blob_name, sent_bytes
from shared.run.ledger import RunBooks
from shared.run.ports import SendGridApi
from shared.run.record_parts import BatchEntry, JobCounts
from shared.run.runtime import Tuning
from shared.run.send.batching import Batch, BatchSpool
from shared.run.send.following import JobFollower
from shared.run.send.import_errors import ErrorsFileUnreadable, parse_errors_file, split_by_errors
from shared.run.send.sending import PendingJob

log = logging.getLogger(__name__)


class JobSettler:
    """Follows a run's import jobs to their end and settles each into the record and the state."""

    def __init__(
        self,
        books: RunBooks,
        exports: BlobStore,
        tuning: Tuning,
        *,
        mirror: bool,
        on_cap: Callable[[str], None] | None = None,
    ):
        self.record, self.rejects, self.progress, self.lock = books.record, books.rejects, books.progress, books.lock
        self.exports, self.tuning, self.mirror = exports, tuning, mirror
        self.updates = StateUpdates()
        self.cap_reached: str | None = None  # SendGrid's contact-cap message, once a job fails for it
        self._on_cap = on_cap
        self._client: SendGridApi | None = None
        self._spool: BatchSpool | None = None
        self._follower: JobFollower | None = None
        self._jobs: dict[str, PendingJob] = {}
        self._journal = journal_prefix(self.record.destination) + self.record.run_id

    def start(self, client: SendGridApi, spool: BatchSpool, updates: StateUpdates) -> None:
        """Start following jobs (before the first batch is sent)."""
        self._client, self._spool, self.updates = client, spool, updates
        self._follower = JobFollower(
            client,
            self._ended,
            first=self.tuning.job_poll_interval,
            most=self.tuning.job_poll_max_interval,
        )

    def accepted(self, batch: Batch, item: PendingJob) -> None:
        """SendGrid accepted ``item`` (on a sending thread): journal it with what it holds, count
        its contacts unconfirmed, and follow its job."""
        keys, fps, emails = self._columns(batch, item.positions)
        name = sent_blob_name(self.record.destination, self.record.run_id, item.index, item.part)
        self.exports.write_bytes(
            name, sent_bytes(item.job_id, keys, fps, emails), content_type="application/octet-stream"
        )
        with self.lock:
            self._jobs[item.job_id] = item
            self.record.counts.unconfirmed += len(item.positions)
            # Counted as SendGrid accepts it, a job at a time as confirmations are: never more
            # confirmed than sent, whatever the order the threads run in.
            self.progress.batches_sent += 1
        if self._follower is not None:  # else the run is stopping: the next run settles the job
            self._follower.add(item.job_id)

    def finish(self) -> None:
        """Every batch is sent: wait for the jobs, against one deadline counted from now."""
        assert self._follower is not None and self._client is not None
        deadline = time.time() + self.tuning.job_wait_seconds
        if self._client.deadline is not None:
            deadline = min(deadline, self._client.deadline)
        self._follower.close(deadline)
        unfinished = self._follower.join(tick=self.progress.tick)
        self._follower = None
        self._left(unfinished, timed_out=True)

    def stop(self) -> None:
        """The run is stopping: no more polls. Jobs not ended stay journaled for the next run."""
        if self._follower is not None:
            follower, self._follower = self._follower, None
            self._left(follower.stop(), timed_out=False)

    def _left(self, unfinished: list[str], *, timed_out: bool) -> None:
        if not unfinished:
            return
        with self.lock:
            for job_id in unfinished:
                self._jobs[job_id].entry["status"] = "timeout" if timed_out else "unsettled"
        if timed_out:
            self.record.errors.append(
                f"{len(unfinished)} import job(s) did not finish before the run's deadline for jobs "
                f"(SENDGRID_JOB_WAIT_SECONDS={self.tuning.job_wait_seconds:.0f}); their contacts are counted "
                "unconfirmed, and the next run settles the jobs by their ids before it sends anything."
            )

    def _ended(self, result: JobResult) -> None:
        """On the follower's thread: one job has ended."""
        assert self._client is not None and self._spool is not None
        with self.lock:
            item = self._jobs[result.job_id]
            self._settle_job(self._client, self._spool, item, result, self.updates, self._journal)
            self.progress.batches_confirmed += 1
        self.exports.delete(sent_blob_name(self.record.destination, self.record.run_id, item.index, item.part))
        self._note_cap(result)
        self.progress.tick(save=False)

    def _note_cap(self, result: JobResult) -> None:
        """A job that failed for the plan's contact cap: the run is told, once."""
        if result.failed_for != "contact_cap" or self.cap_reached is not None:
            return
        self.cap_reached = redact(result.failure or "")[:300]
        if self._on_cap is not None:
            self._on_cap(self.cap_reached)

    def _columns(self, batch: Batch, positions: Sequence[int]) -> tuple[array[int], array[int], list[str] | None]:
        keys, fps = batch.columns["keys"], batch.columns["fps"]
        if positions != range(batch.count):  # a part of the batch: only these contacts
            keys, fps = array("Q", map(keys.__getitem__, positions)), array("Q", map(fps.__getitem__, positions))
        emails = [json.loads(batch.encoded(p))["email"] for p in positions] if self.mirror else None
        return keys, fps, emails

    def _settle_job(
        self,
        client: SendGridApi,
        spool: BatchSpool,
        item: PendingJob,
        result: JobResult,
        updates: StateUpdates,
        journal: str,
    ) -> str:
        """Count, confirm and reject what one ended job says; returns its status. Its contacts
        were counted unconfirmed when it was accepted; they leave that count here, unless what
        the job took stays unknown."""
        counts = self.record.counts
        batch = spool.batch(item.index)
        self._note_job(item.entry, item, result)
        sent = len(item.positions)
        counts.unconfirmed -= sent
        journal_name = f"{journal}-{item.index:05d}-{item.part:02d}.bin"
        if result.status == "failed":
            counts.errored += sent
            self._reject(batch, dict.fromkeys(item.positions, _failure_words(result)))
            return result.status
        if result.status not in ("completed", "errored"):  # its status could not be read
            counts.unconfirmed += sent
            self._unknown_outcome(item, result, result.error or f"status {result.status}")
            return result.status
        counts.created += result.created
        counts.updated += result.updated
        if result.requested not in (0, sent) or (result.status == "errored" and result.errored == 0):
            # The job does not describe this part: which of its contacts it took is unknown.
            counts.unconfirmed += sent
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
        self._settle_some_errored(client, batch, item, result, updates, journal_name)
        return result.status

    def _settle_some_errored(
        self,
        client: SendGridApi,
        batch: Batch,
        item: PendingJob,
        result: JobResult,
        updates: StateUpdates,
        journal_name: str,
    ) -> None:
        """A job that took some of its contacts: its errors file says which it refused."""
        counts, sent = self.record.counts, len(item.positions)
        failed = self._errored_in_job(client, batch, item, result)
        if failed is None:
            # Which contacts failed is unknown: none is confirmed, the next run sends them again.
            counts.unconfirmed += sent
            return
        counts.accepted += sent - len(failed)
        counts.errored += len(failed)
        self._reject(batch, failed)
        self._confirm(batch, item, [p for p in item.positions if p not in failed], updates, journal_name)

    def _reject(self, batch: Batch, failed: dict[int, str]) -> None:
        """Each contact SendGrid failed, with its reason, into the rejects file."""
        for position, message in failed.items():
            origin = batch.origin(position)
            self.rejects.add(origin.source, origin.line, origin.email, "errored", message)

    @staticmethod
    def _note_job(entry: BatchEntry, item: PendingJob, result: JobResult) -> None:
        job: JobCounts = {
            "requested": result.requested,
            "created": result.created,
            "updated": result.updated,
            "errored": result.errored,
        }
        if result.error:
            entry["error"] = redact(result.error)[:1000]
        parts = entry.get("jobs")
        if parts and len(parts) > 1:  # a batch sent in parts: each part's job, and the batch's worst status
            part = parts[item.part]
            part["status"] = result.status
            part["requested"], part["created"] = job["requested"], job["created"]
            part["updated"], part["errored"] = job["updated"], job["errored"]
            ends = [p.get("status") for p in parts]
            entry["status"] = next((s for s in ends if s not in ("completed", None)), "completed")
            total = entry.setdefault("job", {"requested": 0, "created": 0, "updated": 0, "errored": 0})
            for key in ("requested", "created", "updated", "errored"):
                total[key] += job[key]
        else:
            entry["status"] = result.status
            entry["job"] = job

    def _errored_in_job(
        self, client: SendGridApi, batch: Batch, item: PendingJob, result: JobResult
    ) -> dict[int, str] | None:
        """The positions an import job failed, with SendGrid's message, from its errors file;
        None (and the record says why) when the file cannot tell them with certainty."""
        entry = item.entry
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
            f"batch {item.index}: the import job's outcome per contact is unknown ({redact(problem)[:300]}); "
            "none of its contacts is confirmed (counted unconfirmed), and the next run sends them again."
        )

    def _confirm(
        self, batch: Batch, item: PendingJob, positions: Sequence[int], updates: StateUpdates, journal_name: str
    ) -> None:
        if not positions:
            return
        start = len(updates)
        keys, fps, emails = self._columns(batch, positions)
        # Batches end in any order: where this one stands in the input keeps the state in input order.
        updates.extend(keys, fps, emails, order=(item.index, item.part))
        # Written before the next job is looked at: if the run dies now, this part stays confirmed.
        self.exports.write_bytes(journal_name, updates.journal_bytes(start), content_type="application/octet-stream")


def _failure_words(result: JobResult) -> str:
    """Why a failed job failed, for each of its contacts' rows in the rejects file."""
    words = redact(result.failure or "")[:300]
    if result.failed_for == "contact_cap":
        return f"SendGrid's contact limit: {words}"
    return f"the import job failed: {words}" if words else "the import job failed"


def contact_cap_message(client: SendGridApi, words: str) -> str:
    """The run's failure when SendGrid's contact limit is reached, naming the plan's cap."""
    try:
        held = f"the account holds {client.contact_count():,} contacts and its plan's cap takes no more"
    except SendGridError:
        held = "the account holds as many contacts as its plan's cap allows"
    return (
        f"SendGrid's contact limit was reached ({words}): {held}. Marketing Campaigns plans store "
        "2,000 (Free), 100,000 (Basic) or 200,000 (Advanced) contacts, more by agreement. Raise the "
        "plan or delete contacts in SendGrid, then run again; no batch was sent after this one, and "
        "none is retried."
    )
