"""Sending a spool's batches to SendGrid, on a thread of its own, while the spool still fills.

Batches are released to the sender only once the run knows it may send (see ``open``): until
then they wait in the spool, on disk. A few requests are in flight at once (the next body travels
while SendGrid parses the last); outcomes are settled in batch order. A body SendGrid finds too
large (413, or a 400 that says so) is split in halves and sent again: no contact is ever refused
for the size of its batch. A 400 that names contacts (``contacts[3].email``) sends the batch again
without them; since that form is documented nowhere, a 400 that names none is isolated by
halving the batch until the contacts at fault stand alone, within a budget of requests. An
unreachable or refusing SendGrid stops the sending: the batches after it are recorded ``not_sent``.

Everything the sender learns (batch entries, errored contacts, run-level failures) is kept on
the sender and handed to the run once the thread has ended, so the reading thread and the
sending thread never write the same record.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import cast

from shared.adapters.sendgrid import CallStats
from shared.adapters.sendgrid_errors import (
    BatchRefused,
    InvalidRequest,
    NamesContacts,
    SendGridRefusal,
    TooLarge,
    errors_by_position,
)
from shared.context import propagate
from shared.errors import SendGridAuthError, SendGridError
from shared.json_input import JsonObject
from shared.privacy import redact
from shared.run.ports import SendGridApi
from shared.run.record_parts import BatchEntry, BatchStatus
from shared.run.send.batching import Batch, BatchSpool
from shared.run.send.ending import wait_for_end

log = logging.getLogger(__name__)

# Requests one batch may spend beyond its first on halving (too large) and isolating (400s):
# 64, or 2 for every 100 contacts if more; finding one bad contact among 30,000 costs about
# 2 x log2(30,000) = 30. Past the budget, what is left is sent once more in parts of
# LAST_PASS_CONTACTS, and a part refused then is refused whole: the requests a batch can cost
# stay bounded (about 900 for 30,000 contacts) however many of its contacts SendGrid refuses.
MIN_EXTRA_REQUESTS = 64
LAST_PASS_CONTACTS = 100


class _Halted(Exception):
    """A batch's first request was not made: sending was halted or stopped meanwhile."""


@dataclass
class PendingJob:
    """A batch SendGrid accepted: its import job, and which of its contacts it holds."""

    index: int
    job_id: str
    positions: Sequence[int]  # a range unless contacts were taken out or the batch was split
    part: int = 0  # a batch split in parts has a job per part
    # The batch's entry in the record: its job's outcome is noted there when the job ends.
    entry: BatchEntry = field(default_factory=lambda: cast(BatchEntry, {}))  # empty: a job no batch entry follows


@dataclass
class SendOutcome:
    entries: list[BatchEntry] = field(default_factory=list)  # one per batch, in order
    pending: list[PendingJob] = field(default_factory=list)
    errored: int = 0
    rejects: list[tuple[str, int, str, str, str]] = field(default_factory=list)  # source, line, email, kind, why
    failures: list[str] = field(default_factory=list)  # run-level: the run fails


def batch_entry(batch: Batch) -> BatchEntry:
    return {
        "index": batch.index,
        "contacts": batch.count,
        "bytes": len(batch.body),
        "attempts": 0,
        "job_id": None,
        "status": None,
    }


def release_when_ready(start: Callable[[], None], sender: BatchSender) -> Callable[[int], None]:
    """The spool's ``on_ready``: each closed batch goes to the sender, and the first one calls
    ``start`` (the scan, if none ran yet, that may open sending while reading goes on). A run
    whose contacts fit in one batch (a small delta) never scans: nothing could go early."""

    def on_ready(index: int) -> None:
        start()
        sender.ready(index)

    return on_ready


# A batch's parts still to send: the positions each holds, and its request if already made.
_Parts = deque[tuple[Sequence[int], Callable[[], tuple[str, CallStats]] | None]]


def _into_last_pass(positions: Sequence[int], parts: _Parts, entry: BatchEntry) -> None:
    """Out of budget: one more try of what is left, in small parts, and no halving."""
    left = [positions, *(p for p, _ in parts)]
    parts.clear()
    parts.extend(
        (part[i : i + LAST_PASS_CONTACTS], None) for part in left for i in range(0, len(part), LAST_PASS_CONTACTS)
    )
    entry["last_pass"] = len(parts)


class BatchSender:
    """Sends the batches the spool reports ready, once :meth:`open` has been called."""

    def __init__(
        self,
        client: SendGridApi,
        spool: BatchSpool,
        *,
        concurrency: int,
        on_accepted: Callable[[Batch, PendingJob], None] | None = None,
    ):
        self._client = client
        # Told each job SendGrid accepts, on the sending thread, before the next request: the
        # run journals it (so that a run that dies settles it later instead of sending again)
        # and starts following it.
        self._on_accepted = on_accepted
        self._spool = spool
        self._concurrency = max(1, concurrency)
        self._queue: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._open = False
        self._held: list[int] = []
        self._abort: str | None = None
        self._crash: BaseException | None = None
        self.outcome = SendOutcome()
        self.released = 0  # batches handed to the sending thread
        self._ended = threading.Event()  # set last by the sending thread: see shared.run.send.ending
        # propagate: the thread's log lines belong to the invocation that started the run.
        self._thread = threading.Thread(target=propagate(self._run), name="sendgrid-sender", daemon=True)
        self._thread.start()

    # -- called from the run's thread -----------------------------------------------------------

    def ready(self, index: int) -> None:
        """The spool closed batch ``index``: send it now if sending is open, else hold it."""
        with self._lock:
            if self._open:
                self._release(index)
            else:
                self._held.append(index)

    def open(self) -> None:
        """Sending may start: release what was held, and every batch that closes from now on."""
        with self._lock:
            if not self._open:
                self._open = True
                for index in self._held:
                    self._release(index)
                self._held.clear()

    def halt(self, reason: str) -> None:
        """Send no batch from now on (from any thread): those in flight are settled, the rest
        recorded not sent."""
        if self._abort is None:
            self._abort = reason

    def finish(self, tick: Callable[[], None] | None = None) -> SendOutcome:
        """Wait until every released batch is settled (calling ``tick`` now and then while it
        waits); re-raise a fault of the sending thread."""
        self._queue.put(None)
        wait_for_end(self._ended, tick)
        if self._crash is not None:
            raise self._crash
        return self.outcome

    def stop(self, reason: str) -> SendOutcome:
        """The run cannot go on: batches not yet sent stay unsent; those in flight are settled
        (their jobs journaled) before this returns, even if the run was interrupted again."""
        if self._abort is None:
            self._abort = reason
        self._queue.put(None)
        wait_for_end(self._ended, through_interrupts=True)
        return self.outcome

    def _release(self, index: int) -> None:
        self.released += 1
        self._queue.put(index)

    # -- the sending thread ---------------------------------------------------------------------

    def _run(self) -> None:
        try:
            with ThreadPoolExecutor(max_workers=self._concurrency, thread_name_prefix="send") as pool:
                in_flight: deque[tuple[Batch, BatchEntry, Future[tuple[str, CallStats]]]] = deque()
                while (index := self._queue.get()) is not None:
                    batch = self._spool.batch(index)
                    entry = batch_entry(batch)
                    self.outcome.entries.append(entry)
                    if self._abort is not None:
                        self._errored(batch, range(batch.count), entry, "not_sent", self._abort)
                        continue
                    in_flight.append((batch, entry, pool.submit(propagate(self._first_try), batch, entry)))
                    if len(in_flight) >= self._concurrency:
                        self._settle(*in_flight.popleft())
                while in_flight:
                    self._settle(*in_flight.popleft())
        except BaseException as exc:  # handed to the run's thread by finish()
            self._crash = exc
        finally:
            self._ended.set()

    def _first_try(self, batch: Batch, entry: BatchEntry) -> tuple[str, CallStats]:
        """A batch's first request, on a worker: a job SendGrid accepts is told at once (batches
        may be answered out of order, and each is journaled before anything else happens)."""
        if self._abort is not None:  # halted or stopping while this waited for a worker
            raise _Halted(self._abort)
        job_id, stats = self._client.upsert_contacts(batch.body)
        entry["job_id"], entry["status"] = job_id, "pending"
        if self._on_accepted is not None:
            self._on_accepted(batch, PendingJob(batch.index, job_id, range(batch.count), 0, entry))
        return job_id, stats

    def _fail(self, message: str) -> None:
        self.outcome.failures.append(message)

    def _settle(self, batch: Batch, entry: BatchEntry, first_try: Future[tuple[str, CallStats]]) -> None:
        """The outcome of one batch: sent whole, or in parts (see the module doc)."""
        told = first_try.result  # its job, if accepted, was told in _first_try
        parts: _Parts = deque([(range(batch.count), told)])
        budget = max(MIN_EXTRA_REQUESTS, batch.count // 50)
        last_pass = False
        while parts:
            positions, attempt = parts.popleft()
            if attempt is None:
                if self._abort is not None:  # halted or stopping: no new request for what is left
                    self._errored_all(batch, [positions, *(p for p, _ in parts)], entry, "not_sent", self._abort)
                    break
                if budget <= 0 and not last_pass:
                    last_pass = True
                    _into_last_pass(positions, parts, entry)
                    continue
                budget -= 1
                attempt = functools.partial(self._client.upsert_contacts, batch.body_for(list(positions)))
            try:
                job_id, stats = attempt()
            except _Halted as exc:
                self._errored(batch, positions, entry, "not_sent", str(exc))
                continue
            except SendGridAuthError as exc:
                self._abort = str(exc)
                self._errored_all(batch, [positions, *(p for p, _ in parts)], entry, "refused", str(exc))
                self._fail(str(exc))
                return
            except SendGridError as exc:
                entry["attempts"] += 1
                if isinstance(exc, SendGridRefusal):
                    if last_pass:
                        self._errored(batch, positions, entry, "refused", str(exc), exc.errors)
                    else:
                        parts.extend(self._after_refusal(batch, entry, positions, exc))
                    continue
                # SendGrid is unreachable or failing: the parts and batches after this would fail too.
                self._errored_all(batch, [positions, *(p for p, _ in parts)], entry, "undelivered", str(exc))
                if self._abort is None:
                    self._abort = f"batch {batch.index} could not be delivered: {exc}"
                    self._fail(self._abort)
                return
            self._accepted(batch, entry, positions, job_id, stats, tell=attempt is not told)
        if len(entry.get("jobs", ())) <= 1:
            entry.pop("jobs", None)
        if entry["status"] is None:  # every contact refused one by one: nothing of it was sent
            entry["status"] = "refused"

    def _accepted(
        self, batch: Batch, entry: BatchEntry, positions: Sequence[int], job_id: str, stats: CallStats, *, tell: bool
    ) -> None:
        """A part (or the whole) of a batch SendGrid took: its job noted, pending, and told."""
        entry["attempts"] += stats.attempts
        entry["rate_limited"] = entry.get("rate_limited", 0) + stats.rate_limited
        part = len(entry.setdefault("jobs", []))
        entry["jobs"].append({"job_id": job_id, "contacts": len(positions)})
        if entry.get("job_id") is None:
            entry["job_id"] = job_id
        if entry["status"] is None:  # else its job has ended already (told in _first_try)
            entry["status"] = "pending"
        accepted = PendingJob(batch.index, job_id, positions, part, entry)
        self.outcome.pending.append(accepted)
        if self._on_accepted is not None and tell:
            self._on_accepted(batch, accepted)
        log.info("sent batch %d: %d contacts, %d attempt(s)", batch.index, len(positions), entry["attempts"])

    def _errored_all(
        self, batch: Batch, parts: Iterable[Sequence[int]], entry: BatchEntry, status: BatchStatus, message: str
    ) -> None:
        for positions in parts:
            self._errored(batch, positions, entry, status, message)

    def _after_refusal(
        self, batch: Batch, entry: BatchEntry, positions: Sequence[int], exc: SendGridError
    ) -> list[tuple[Sequence[int], None]]:
        """What to send next after a 4xx for ``positions``: halves, the rest without the
        contacts named, or nothing (the part is refused)."""
        half = len(positions) // 2
        if isinstance(exc, TooLarge) and half:
            entry["split"] = entry.get("split", 0) + 1
            return [(positions[:half], None), (positions[half:], None)]
        if isinstance(exc, InvalidRequest) and not isinstance(exc, BatchRefused):
            named = exc.named if isinstance(exc, NamesContacts) else {}
            if named and all(p < len(positions) for p in named) and len(named) < len(positions):
                for p in sorted(named):
                    self._reject(batch, positions[p], named[p])
                entry["isolated"] = entry.get("isolated", 0) + len(named)
                entry["error"] = redact(str(exc))[:1000]
                return [([q for i, q in enumerate(positions) if i not in named], None)]
            if half:  # SendGrid did not say which: halve until the contacts at fault stand alone
                entry["bisected"] = entry.get("bisected", 0) + 1
                return [(positions[:half], None), (positions[half:], None)]
            if len(positions) == 1:
                self._reject(batch, positions[0], str(exc))
                entry["isolated"] = entry.get("isolated", 0) + 1
                entry["error"] = redact(str(exc))[:1000]
                return []
        self._errored(batch, positions, entry, "refused", str(exc), exc.errors)
        return []

    def _reject(self, batch: Batch, position: int, why: str) -> None:
        origin = batch.origin(position)
        self.outcome.rejects.append((origin.source, origin.line, origin.email, "errored", why))
        self.outcome.errored += 1

    def _errored(
        self,
        batch: Batch,
        positions: Iterable[int],
        entry: BatchEntry,
        status: BatchStatus,
        message: str,
        errors: list[JsonObject] | None = None,
    ) -> None:
        if entry["status"] in (None, status):
            entry["status"] = status
        entry["error"] = redact(message)[:1000]
        per_contact = errors_by_position(errors or [])
        count = 0
        for i, position in enumerate(positions):
            origin = batch.origin(position)
            self.outcome.rejects.append(
                (origin.source, origin.line, origin.email, "errored", per_contact.get(i, message))
            )
            count += 1
        self.outcome.errored += count
