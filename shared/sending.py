"""Sending a spool's batches to SendGrid, on a thread of its own, while the spool still fills.

Batches are released to the sender only once the run knows it may send (see ``open``): until
then they wait in the spool, on disk. A few requests are in flight at once (the next body travels
while SendGrid parses the last); outcomes are settled in batch order. A 400 that names contacts
sends the batch again without them. An unreachable or refusing SendGrid stops the sending: the
batches after it are recorded ``not_sent``.

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
from typing import Any

from .batching import Batch, BatchSpool
from .errors import SendGridAuthError, SendGridError
from .privacy import mask_emails
from .sendgrid import CallStats, SendGridClient

log = logging.getLogger(__name__)

MAX_ISOLATION_ROUNDS = 5  # times a batch is sent again without the contacts a 400 named


@dataclass
class PendingJob:
    """A batch SendGrid accepted: its import job, and which of its contacts it holds."""

    index: int
    job_id: str
    positions: Sequence[int]  # a range unless contacts were taken out


@dataclass
class SendOutcome:
    entries: list[dict[str, Any]] = field(default_factory=list)  # one per batch, in order
    pending: list[PendingJob] = field(default_factory=list)
    errored: int = 0
    rejects: list[tuple[str, int, str, str, str]] = field(default_factory=list)  # source, line, email, kind, why
    failures: list[str] = field(default_factory=list)  # run-level: the run fails


def batch_entry(batch: Batch) -> dict[str, Any]:
    return {
        "index": batch.index,
        "contacts": batch.count,
        "bytes": len(batch.body),
        "attempts": 0,
        "job_id": None,
        "status": None,
    }


class BatchSender:
    """Sends the batches the spool reports ready, once :meth:`open` has been called."""

    def __init__(self, client: SendGridClient, spool: BatchSpool, *, concurrency: int):
        self._client = client
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
        self._thread = threading.Thread(target=self._run, name="sendgrid-sender", daemon=True)
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

    @property
    def is_open(self) -> bool:
        return self._open

    def finish(self) -> SendOutcome:
        """Wait until every released batch is settled; re-raise a fault of the sending thread."""
        self._queue.put(None)
        self._thread.join()
        if self._crash is not None:
            raise self._crash
        return self.outcome

    def stop(self, reason: str) -> SendOutcome:
        """The run cannot go on: batches not yet sent stay unsent; those in flight are settled."""
        if self._abort is None:
            self._abort = reason
        self._queue.put(None)
        self._thread.join()
        return self.outcome

    def _release(self, index: int) -> None:
        self.released += 1
        self._queue.put(index)

    # -- the sending thread ---------------------------------------------------------------------

    def _run(self) -> None:
        try:
            with ThreadPoolExecutor(max_workers=self._concurrency, thread_name_prefix="send") as pool:
                in_flight: deque[tuple[Batch, dict[str, Any], Future[tuple[str, CallStats]]]] = deque()
                while (index := self._queue.get()) is not None:
                    batch = self._spool.batch(index)
                    entry = batch_entry(batch)
                    self.outcome.entries.append(entry)
                    if self._abort is not None:
                        self._errored(batch, range(batch.count), entry, "not_sent", self._abort)
                        continue
                    in_flight.append((batch, entry, pool.submit(self._client.upsert_contacts, batch.body)))
                    if len(in_flight) >= self._concurrency:
                        self._settle(*in_flight.popleft())
                while in_flight:
                    self._settle(*in_flight.popleft())
        except BaseException as exc:  # handed to the run's thread by finish()
            self._crash = exc

    def _fail(self, message: str) -> None:
        self.outcome.failures.append(message)

    def _settle(self, batch: Batch, entry: dict[str, Any], first_try: Future[tuple[str, CallStats]]) -> None:
        """The outcome of one batch; a 400 that names contacts sends it again without them."""
        positions: Sequence[int] = range(batch.count)
        body = batch.body
        attempt: Callable[[], tuple[str, CallStats]] = first_try.result
        for _ in range(MAX_ISOLATION_ROUNDS):
            try:
                job_id, stats = attempt()
            except SendGridAuthError as exc:
                self._abort = str(exc)
                self._errored(batch, positions, entry, "refused", str(exc))
                self._fail(str(exc))
                return
            except SendGridError as exc:
                named = errors_by_position(exc.errors) if exc.status == 400 else {}
                if named and all(p < len(positions) for p in named) and len(named) < len(positions):
                    for p in sorted(named):
                        origin = batch.origin(positions[p])
                        self.outcome.rejects.append((origin.source, origin.line, origin.email, "errored", named[p]))
                    self.outcome.errored += len(named)
                    entry["isolated"] = entry.get("isolated", 0) + len(named)
                    entry["error"] = mask_emails(str(exc))[:1000]
                    entry["attempts"] += 1
                    positions = [q for i, q in enumerate(positions) if i not in named]
                    body = batch.body_for(positions)
                    attempt = functools.partial(self._client.upsert_contacts, body)
                    continue
                if exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
                    self._errored(batch, positions, entry, "refused", str(exc), exc.errors)
                    return
                # SendGrid is unreachable or failing: the batches after this one would fail too.
                self._errored(batch, positions, entry, "undelivered", str(exc))
                if self._abort is None:
                    self._abort = f"batch {batch.index} could not be delivered: {exc}"
                    self._fail(self._abort)
                return
            entry["attempts"] += stats.attempts
            entry.update(rate_limited=stats.rate_limited, job_id=job_id, status="pending")
            self.outcome.pending.append(PendingJob(batch.index, job_id, positions))
            log.info(
                "sent batch %d: %d contacts, %d bytes, %d attempt(s)",
                batch.index,
                len(positions),
                len(body),
                entry["attempts"],
            )
            return
        self._errored(batch, positions, entry, "refused", "SendGrid kept refusing contacts of this batch")

    def _errored(
        self,
        batch: Batch,
        positions: Iterable[int],
        entry: dict[str, Any],
        status: str,
        message: str,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        entry["status"] = status
        entry["error"] = mask_emails(message)[:1000]
        per_contact = errors_by_position(errors or [])
        count = 0
        for i, position in enumerate(positions):
            origin = batch.origin(position)
            self.outcome.rejects.append(
                (origin.source, origin.line, origin.email, "errored", per_contact.get(i, message))
            )
            count += 1
        self.outcome.errored += count


def errors_by_position(errors: list[dict[str, Any]]) -> dict[int, str]:
    """SendGrid names bad contacts as ``contacts[12].email``: map position -> its message."""
    found: dict[int, str] = {}
    for error in errors:
        field_name = str(error.get("field") or "")
        if field_name.startswith("contacts[") and "]" in field_name:
            try:
                position = int(field_name[len("contacts[") : field_name.index("]")])
            except ValueError:
                continue
            found[position] = f"{field_name}: {error.get('message', '')}"
    return found
