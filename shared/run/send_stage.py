"""One run's sending side: the settler of its import jobs and its sender (upserts or CSV import),
started before reading so that batches go as the spool fills, let go once ``max_profiles`` is
proven, halted when the run stops or SendGrid's contact cap is reached. What they did goes into
the record under the run's lock; a failure is noted through the ledger, which alone saves it."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from shared.inputs.rows import CustomFieldDef
from shared.run.delta import StateUpdates
from shared.run.ledger import RunLedger
from shared.run.ports import SendGridApi
from shared.run.profile_limit import BoundScan
from shared.run.runtime import Tuning
from shared.run.send import UPSERT, BatchSender, BatchSpool, PaceBudget, SendOutcome, batch_entry, contact_cap_message
from shared.run.send.bulk_import import BulkImporter
from shared.run.send.bulk_settling import GroupSettler
from shared.run.send.send_route import SendRouter, release_to

CAP_REACHED = "not sent: SendGrid's contact limit was reached"


@dataclass(frozen=True)
class Outbox:
    """Where a run's contacts go: the spool of batches, for the destination's lists (by id), with
    the custom fields the mapping resolved to (by name)."""

    spool: BatchSpool
    list_ids: list[str]
    custom_fields: dict[str, CustomFieldDef]


class SendStage:
    """The sender and the settler of one run, from before its read to its end."""

    def __init__(self, ledger: RunLedger, tuning: Tuning):
        self.ledger, self.tuning = ledger, tuning
        self.pace = PaceBudget()  # one budget for every thread of the run
        self._proven = threading.Event()  # max_profiles cannot be passed: batches may go as they fill
        self.sender: SendRouter | None = None
        self.settler: GroupSettler | None = None
        self._bound: int | None = None  # the scan's bound on the segments' rows, once known
        self._client: SendGridApi | None = None
        self._taken = False  # the sender's outcome is in the record

    def bounded(self, bound: int) -> None:
        """The scan found at most ``bound`` rows (on the scan's thread)."""
        self._bound = bound
        if self.sender is not None:
            self.sender.at_most(bound)

    def prove(self) -> None:
        """``max_profiles`` cannot be passed: batches may go as soon as they fill."""
        self._proven.set()
        if self.sender is not None:
            self.sender.open()

    @property
    def released(self) -> bool:
        """Whether any batch was let go to SendGrid."""
        return self.sender is not None and bool(self.sender.released)

    def start(
        self, client: SendGridApi, outbox: Outbox, updates: StateUpdates, scan: BoundScan, *, mirror: bool
    ) -> None:
        """The settler and the sender, started before reading: batches may go as the spool fills
        (the scan, if not begun, begins with the first batch ready)."""
        self._client = client
        self.settler = GroupSettler(
            self.ledger.books, self.ledger.edges.exports, self.tuning, mirror=mirror, on_cap=self._cap_reached
        )
        self.settler.start(client, outbox.spool, updates)
        self.sender = self._router(client, outbox, self.settler, mirror=mirror)
        if self._bound is not None:  # the scan ended before: the number of rows is bounded
            self.sender.at_most(self._bound)
        outbox.spool.on_ready = release_to(scan.start, self.sender)
        if self._proven.is_set():
            self.sender.open()

    def _router(self, client: SendGridApi, outbox: Outbox, settler: GroupSettler, *, mirror: bool) -> SendRouter:
        """Upserts or CSV import, as SENDGRID_BULK_IMPORT and the contacts to send decide."""
        tuning, spool = self.tuning, outbox.spool

        def upserts() -> BatchSender:
            return BatchSender(client, spool, concurrency=tuning.send_concurrency, on_accepted=settler.accepted)

        def imports() -> BulkImporter:
            rows, list_ids = tuning.bulk_import_rows, outbox.list_ids
            return BulkImporter(client, spool, list_ids, rows=rows, mirror=mirror, on_accepted=settler.accepted_group)

        return SendRouter(spool, tuning.bulk_import, tuning.bulk_import_threshold, upserts, imports)

    def send(self, spool: BatchSpool) -> None:
        """Send what is left to send (a dry run only records the batches it would send)."""
        if self.sender is None:
            for batch in spool.batches():
                self.ledger.record.batches.append({**batch_entry(batch), "status": "dry_run"})
            return
        self.sender.open()
        self._take(self.sender.finish(tick=self.ledger.progress.tick))
        self.ledger.save()

    def settle(self) -> None:
        """Every batch is sent: wait for SendGrid's jobs to end."""
        if self.settler is not None:
            self.ledger.progress.stage = "waiting for SendGrid's jobs"
            with self.ledger.stage("jobs"):
                self.settler.finish()

    def stop(self) -> None:
        """The run ends, whichever way: if it stopped before sending ended (an interrupt too), no
        new request goes, those in flight end and are journaled, then what was sent is recorded.
        Jobs not ended stay journaled: the next run settles them."""
        if self.sender is not None and not self._taken:
            stopped = "the run stopped before this batch was sent"
            self.sender.halt(stopped)
            self.pace.refuse(UPSERT, stopped)  # a request waiting for budget does not go out
            self._take(self.sender.stop(stopped))
        if self.settler is not None:
            self.settler.stop()

    def _take(self, outcome: SendOutcome) -> None:
        books = self.ledger.books
        with books.lock:  # the settler writes the counts and the rejects too
            self._taken = True
            books.record.batches.extend(outcome.entries)
            books.record.counts.errored += outcome.errored
            for source, line, email, kind, why in outcome.rejects:
                books.rejects.add(source, line, email, kind, why)
        for message in outcome.failures:
            self.ledger.fail(message)

    def _cap_reached(self, words: str) -> None:
        """A job failed for the plan's contact limit: no batch after it is sent (each would fail
        the same way), and the run fails naming the cap."""
        assert self._client is not None
        if self.sender is not None:
            self.sender.halt(CAP_REACHED)
        self.pace.refuse(UPSERT, CAP_REACHED)
        self.ledger.fail(contact_cap_message(self._client, words))
