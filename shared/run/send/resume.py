"""Resuming instead of resending: a run first settles, by their ids, the import jobs a stopped
run left (a crash, kill -9, a stop signal, a deadline, an instance recycled).

Each job SendGrid accepts is journaled at once as a ``sent-`` blob with the keys and
fingerprints of what it holds (:mod:`shared.run.send.settling`); its run deletes it when the job is
settled. A blob still there when a run starts belongs to a run that stopped first: its job is
polled now, and what it accepted is journaled as confirmed, under the name the stopped run would
have used, before the sync state loads. So nothing SendGrid accepted is sent again, and a first
export longer than one run goes on where the last stopped.

What is sent again: contacts the job failed (named in its errors file), those of a job that
failed whole, or that SendGrid no longer knows (404), or whose errors file cannot be read. A job
still running at the deadline keeps its blob for the run after (its contacts are sent again by
this one: upserts are idempotent).
"""

from __future__ import annotations

import logging
import time
from array import array
from collections.abc import Callable
from dataclasses import asdict, dataclass

from shared.adapters.sendgrid_jobs import JobResult
from shared.adapters.storage import BlobStore
from shared.errors import SendGridError
from shared.run.delta.identity import email_key
from shared.run.delta.journal import StateUpdates, SyncStateError, journal_for_sent, parse_sent, sent_prefix
from shared.run.ports import SendGridApi
from shared.run.runtime import JobWaits
from shared.run.send.following import JobFollower
from shared.run.send.import_errors import ErrorsFileUnreadable, parse_errors_file

log = logging.getLogger(__name__)


@dataclass
class Resumed:
    """What settling a stopped run's jobs came to (the record's ``resumed``)."""

    jobs: int = 0
    confirmed: int = 0  # contacts journaled as confirmed: not sent again
    errored: int = 0  # named in a job's errors file: sent again
    again: int = 0  # of jobs that failed, that SendGrid forgot, or whose outcome is unknown: sent again
    unsettled_jobs: int = 0  # still running at the deadline: left for the next run
    damaged: int = 0  # sent blobs that could not be read: deleted, their contacts sent again


def settle_left_jobs(
    client: SendGridApi,
    exports: BlobStore,
    destination: str,
    waits: JobWaits,
    tick: Callable[[], None] | None = None,
) -> Resumed | None:
    """Settle the jobs stopped runs of ``destination`` left, waiting for them as ``waits`` says
    (within the client's deadline); None if there were none."""
    deadline = _deadline(client, waits.seconds)
    names = sorted(b.name for b in exports.list_blobs(sent_prefix(destination)))
    if not names:
        return None
    summary = Resumed()
    held: dict[str, tuple[str, StateUpdates]] = {}
    for name in names:
        try:
            job_id, contacts = parse_sent(exports.read_bytes(name), name)
        except SyncStateError as exc:
            log.warning("%s; its contacts are sent again", exc)
            summary.damaged += 1
            exports.delete(name)
            continue
        held[job_id] = (name, contacts)
    summary.jobs = len(held)

    def ended(result: JobResult) -> None:
        name, contacts = held.pop(result.job_id)
        _settle_left(client, exports, name, contacts, result, summary)

    follower = JobFollower(client, ended, first=waits.interval, most=waits.max_interval, at_once=True)
    for job_id in list(held):
        follower.add(job_id)
    follower.close(deadline)
    summary.unsettled_jobs = len(follower.join(tick))
    log.info("settled the jobs a stopped run left: %s", asdict(summary))
    return summary


def _settle_left(
    client: SendGridApi, exports: BlobStore, name: str, contacts: StateUpdates, result: JobResult, summary: Resumed
) -> None:
    count = len(contacts)
    if result.status == "unknown" and result.error_status != 404:
        summary.again += count  # its status could not be read now: the blob stays for the run after
        return
    kept = _accepted_of(client, contacts, result) if result.status in ("completed", "errored") else None
    if kept is None:
        summary.again += count
    else:
        summary.confirmed += len(kept)
        summary.errored += count - len(kept)
        if len(kept):
            exports.write_bytes(journal_for_sent(name), kept.journal_bytes(), content_type="application/octet-stream")
    exports.delete(name)


def _accepted_of(client: SendGridApi, contacts: StateUpdates, result: JobResult) -> StateUpdates | None:
    """What of ``contacts`` the ended job accepted; None when that cannot be told for certain."""
    count = len(contacts)
    if result.requested not in (0, count) or (result.status == "errored" and result.errored == 0):
        return None
    if result.errored == 0:
        return contacts
    if not result.errors_url:
        return None
    try:
        named = parse_errors_file(client.download_errors_file(result.errors_url))
    except (SendGridError, ErrorsFileUnreadable):
        return None
    failed = {email_key(email) for email in named}
    keep = [i for i, key in enumerate(contacts.keys) if key not in failed]
    if count - len(keep) < min(result.errored, count):
        return None  # the file names fewer of these contacts than the job says failed
    kept = StateUpdates()
    emails = contacts.emails
    kept.extend(
        array("Q", (contacts.keys[i] for i in keep)),
        array("Q", (contacts.fingerprints[i] for i in keep)),
        [emails[i] for i in keep] if emails is not None else None,
    )
    return kept


def _deadline(client: SendGridApi, job_wait_seconds: float) -> float:
    deadline = time.time() + job_wait_seconds
    return min(deadline, client.deadline) if client.deadline is not None else deadline
