"""One export run, start to end. The only module that knows the order of the stages.

Stages: configuration and consent, the API key, the lists (and custom fields), the import jobs a
stopped run left (settled by their ids), the sync state, reading every segment row through the
row rules into a spool of batches (unchanged rows skipped), the ``max_profiles`` check, sending,
and SendGrid's import jobs (followed from the moment each is accepted, beside reading and
sending; each confirmed batch journaled at once), mirror-mode removals, and saving the new sync
state. The run record is saved when the run starts, after each stage, and at the end; whatever
happens (an interrupt too), it is final and its counts add up.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time

from shared.errors import ExportError, ProfileLimitError
from shared.inputs.config import Destination, DestinationsConfig
from shared.inputs.rows import CustomFieldDef
from shared.inputs.segments import SegmentPlan, resolve_segment, unchanged_since_listed, unproven_read
from shared.privacy import redact
from shared.run import ledger
from shared.run.delta import RunKeys, RunOrder, StateUpdates, SyncState
from shared.run.destinations import (
    create_lists,
    exportable_destination,
    load_destinations,
    refuse_mirror_on_shared_lists,
    require_lists,
    resolve_custom_fields,
)
from shared.run.lookups import SendGridList
from shared.run.ports import SendGridApi
from shared.run.preflight import require_mapped_columns
from shared.run.profile_limit import BoundScan, require_within_limit
from shared.run.queue_gate import queued_record
from shared.run.reader import ContactShape, SegmentsReading
from shared.run.records import (
    INTERRUPTED,
    ExportOptions,
    RunRecord,
)
from shared.run.runtime import Runtime
from shared.run.send import (
    UPSERT,
    BatchSender,
    BatchSpool,
    JobWaits,
    PaceBudget,
    RemovalRules,
    SendOutcome,
    batch_entry,
    contact_cap_message,
    remove_departed,
    resume_deadline,
    settle_left_jobs,
)
from shared.run.send.bulk_import import BulkImporter
from shared.run.send.bulk_settling import GroupSettler
from shared.run.send.send_route import Sending, SendRouter, release_to

log = logging.getLogger(__name__)


def queue_run(
    runtime: Runtime,
    destination: str,
    *,
    trigger: str,
    requested_by: str | None = None,
    options: ExportOptions | None = None,
    run_id: str | None = None,
) -> RunRecord:
    """Create and store a ``queued`` record; the run itself happens in :func:`run_export`."""
    record = queued_record(destination, trigger=trigger, requested_by=requested_by, options=options, run_id=run_id)
    return ledger.queue(runtime.edges.records, record)


def run_export(runtime: Runtime, record: RunRecord) -> RunRecord:
    """Run a queued export to its end. Never raises for a run-level failure: the record says it."""
    run = _Run(runtime, record)
    try:
        run.execute()
    except KeyboardInterrupt:  # Ctrl-C or a stop signal: the record ends true, then it goes on up
        run.fail(INTERRUPTED)
        run.finish()
        raise
    except ExportError as exc:
        run.fail(str(exc))
    except Exception as exc:  # a bug or an unforeseen fault: recorded, then surfaced to the host
        run.fail(describe_unexpected(exc))
        run.finish()
        raise
    run.finish()
    return run.record


def describe_unexpected(exc: BaseException) -> str:
    return redact(f"unexpected error ({type(exc).__name__}): {exc}")[:500]


class _Run(ledger.RunLedger):
    def __init__(self, runtime: Runtime, record: RunRecord):
        super().__init__(record, runtime.edges, runtime.tuning)
        self.runtime = runtime
        self.settings = runtime.settings
        self.options = record.options
        self.mirror = False
        self.sender: SendRouter | None = None
        self.settler: GroupSettler | None = None
        self.pace = PaceBudget()
        self._bound: int | None = None  # the scan's bound on the segments' rows, once known
        self.proven = threading.Event()  # max_profiles cannot be passed: batches may go as they fill
        self._state: SyncState | None = None
        self._order: RunOrder | None = None  # the run's order in terms of the state (a delta run's)
        # Whether every key of the read went through the run's exact key set: then no key is
        # confirmed twice. Keys claimed by their position in the state are one a position, and
        # a damaged state may hold a key at two.
        self._keys_in_set = False

    # -- the stages ----------------------------------------------------------------------------

    def execute(self) -> None:
        self.start()
        with self.stage("config"):
            config = load_destinations(self.runtime)
            destination = exportable_destination(self.runtime, self.record.destination, config)
            # Every segment resolved before anything is read, so a missing one fails the run up front.
            plan = [(segment, resolve_segment(self.edges.segments, segment)) for segment in destination.segments]
        self.destination = destination
        self.mirror = destination.mode == "mirror"
        self.progress.stage = "preparing"
        client = self._connect(destination)
        scan = BoundScan(self.edges.segments, plan, destination, self.settings.max_record_bytes, self._on_bound)
        try:
            self._sync(client, config, destination, plan, scan)
        finally:
            scan.cancel()
            client.close()

    def _connect(self, destination: Destination) -> SendGridApi:
        with self.stage("secret"):
            api_key = self.edges.secrets.get_secret(destination.api_key_secret)
        client = self.edges.sendgrid(destination.api_base_url(self.settings.sendgrid_api_base_url), api_key)
        del api_key
        client.pace = self.pace  # one budget for every thread of the run
        self._client: SendGridApi = client
        # From the run's start: the configuration and the key may already have taken a while.
        client.deadline = time.time() + self.tuning.run_deadline_seconds - (time.monotonic() - self._t0)
        return client

    def _on_bound(self, bound: int | None) -> None:
        """The scan's verdict: progress has its total, and sending may start while reading goes on."""
        assert self.destination is not None
        self._bound = bound
        if bound is not None and self.sender is not None:
            self.sender.at_most(bound)
        if bound is not None and bound <= self.destination.max_profiles:
            self.progress.rows_total = bound
            self.proven.set()
            if self.sender is not None:
                self.sender.open()
            log.info("segment files scanned, at most %d rows: sending while reading", bound)

    def _sync(
        self,
        client: SendGridApi,
        config: DestinationsConfig,
        destination: Destination,
        plan: SegmentPlan,
        scan: BoundScan,
    ) -> None:
        with self.stage("lists"):
            found = require_lists(client, destination)
            if self.mirror:  # before any list is created: a refused run leaves nothing behind
                refuse_mirror_on_shared_lists(config, destination, found)
            custom_fields = resolve_custom_fields(client, destination)
        creates = not self.options.dry_run and any(item is None for item in found)
        if creates:  # no list is created before max_profiles is proven: scan while the state loads
            # Nor before the mapping is known to fit the files' columns.
            require_mapped_columns(self.edges.segments, destination, plan, self.settings.max_record_bytes)
            scan.start()
        if not self.options.dry_run:
            self._resume(client, destination)
        with self.stage("state"):
            # Held by the run, not by this frame, so that the state stage can let it go.
            self._state = SyncState.load(
                self.edges.exports, destination.name, with_emails=self.mirror, discard_corrupt=self.options.full
            )
        if creates:
            self._prove_within_limit(destination, plan, scan)
        list_ids = self._lists(client, destination, found)
        spool = BatchSpool(list_ids, max_contacts=self.tuning.max_batch_contacts, max_bytes=self.tuning.max_batch_bytes)
        try:
            self._spool_send_and_settle(client, destination, plan, scan, spool, list_ids, custom_fields)
        finally:
            scan.cancel()
            if self.sender is not None and not self._sent:
                # The run stopped before sending ended (an interrupt too): no new request, those
                # in flight end and are journaled, then what was sent is recorded.
                stopped = "the run stopped before this batch was sent"
                self.sender.halt(stopped)
                self.pace.refuse(UPSERT, stopped)  # a request waiting for budget does not go out
                self._take_outcome(self.sender.stop(stopped))
            if self.settler is not None:
                self.settler.stop()  # jobs not ended stay journaled: the next run settles them
            spool.close()

    def _resume(self, client: SendGridApi, destination: Destination) -> None:
        """Settle the jobs a stopped run left, by their ids, before the state loads."""
        self.progress.stage = "settling the jobs of a stopped run"
        with self.stage("resume"):
            resumed = settle_left_jobs(
                client,
                self.edges.exports,
                destination.name,
                deadline=resume_deadline(client, self.tuning.job_wait_seconds),
                first_poll=self.tuning.job_poll_interval,
                most_poll=self.tuning.job_poll_max_interval,
                tick=self.progress.tick,
            )
        if resumed is not None:
            self.record.resumed = dataclasses.asdict(resumed)

    def _prove_within_limit(self, destination: Destination, plan: SegmentPlan, scan: BoundScan) -> None:
        with self.stage("scan"):
            bound = scan.result()
            if bound is not None and bound > destination.max_profiles:
                # More lines than max_profiles: only counting the valid profiles can tell.
                require_within_limit(self.edges.segments, plan, destination, self.settings.max_record_bytes)
                self.proven.set()
            # Proven of the versions listed, which every read asks for: a file replaced since
            # fails the run when read; it fails here instead, before a list is created for it.
            unchanged_since_listed(self.edges.segments, plan)

    def _lists(self, client: SendGridApi, destination: Destination, found: list[SendGridList | None]) -> list[str]:
        with self.stage("lists"):
            list_ids = create_lists(client, destination, found, self.record, dry_run=self.options.dry_run)
        self.save()
        return list_ids

    def _spool_send_and_settle(
        self,
        client: SendGridApi,
        destination: Destination,
        plan: SegmentPlan,
        scan: BoundScan,
        spool: BatchSpool,
        list_ids: list[str],
        custom_fields: dict[str, CustomFieldDef],
    ) -> None:
        state, self._state = self._state, None
        assert state is not None
        updates = StateUpdates(one_per_key=True)
        if not self.options.dry_run:
            self._start_sending(client, scan, spool, list_ids, updates)
        present = self._read(destination, plan, scan, spool, state, list_ids, custom_fields)
        # No key comes twice if every key went through the run's key set (and no part twice).
        updates.one_per_key = updates.one_per_key and self._keys_in_set
        self._require_spool_within_limit(destination, spool)
        self.progress.stage = "sending"
        with self.stage("send"):
            self.send(spool, self.sender)
        if self.settler is not None:
            self.progress.stage = "waiting for SendGrid's jobs"
            with self.stage("jobs"):
                self.settler.finish()
        removed, not_found_yet = self._remove(client, destination, plan, list_ids, state, present)
        if not self.options.dry_run:
            with self.stage("state"):
                new_state = state.merged(
                    updates,
                    removed=removed,
                    keep_emails=self.mirror,
                    pending=not_found_yet,
                    in_place=True,
                    order=self._order,
                )
                self._order = None
                # What is left of the old state, the updates and the run's keys: memory the blob
                # being made does not need.
                del state, updates, present
                new_state.save_replacing_journals(self.edges.exports, destination.name)

    def _start_sending(
        self, client: SendGridApi, scan: BoundScan, spool: BatchSpool, list_ids: list[str], updates: StateUpdates
    ) -> None:
        """The settler and the sender, started before reading: batches may go as the spool fills."""
        self.settler = GroupSettler(
            self.record,
            self.rejects,
            self.progress,
            self.edges.exports,
            self.tuning,
            mirror=self.mirror,
            lock=self.lock,
            on_cap=self._cap_reached,
        )
        self.settler.start(client, spool, updates)
        self.sender = self._router(client, spool, list_ids, self.settler)
        if self._bound is not None:  # the scan ended before: the number of rows is bounded
            self.sender.at_most(self._bound)
        spool.on_ready = release_to(scan.start, self.sender)
        if self.proven.is_set():
            self.sender.open()

    def _read(
        self,
        destination: Destination,
        plan: SegmentPlan,
        scan: BoundScan,
        spool: BatchSpool,
        state: SyncState,
        list_ids: list[str],
        custom_fields: dict[str, CustomFieldDef],
    ) -> RunKeys:
        self.progress.stage = "reading"
        with self.stage("read"):
            reading = SegmentsReading(self.record, self.rejects, self.progress, spool, self.runtime)
            shape = ContactShape(destination.mapping, custom_fields, list_ids)
            present = reading.read(shape, plan, state, full=self.options.full, mirror=self.mirror)
            self._order = present.order  # for the state's order; the rest is for removals only
            self._keys_in_set = not present.claimed
            if not self.mirror:
                present = RunKeys()  # only removals need who is present: free it now
            scan.cancel()  # the read itself now vouches for every file
            spool.finish()
        self.progress.reading_done = True
        self.progress.batches_spooled = spool.batch_count
        self.save()
        return present

    def _require_spool_within_limit(self, destination: Destination, spool: BatchSpool) -> None:
        if spool.count > destination.max_profiles:  # a file did not scan: the read tells now
            raise ProfileLimitError(
                f"the segments hold {spool.count} valid profiles to send, more than max_profiles "
                f"({destination.max_profiles}) for destination '{destination.name}'; "
                + ("nothing was sent. " if self.sender is None or not self.sender.released else "")
                + "Raise max_profiles in destinations.json if this is expected."
            )

    def _remove(
        self,
        client: SendGridApi,
        destination: Destination,
        plan: SegmentPlan,
        list_ids: list[str],
        state: SyncState,
        present: RunKeys,
    ) -> tuple[set[int], dict[int, int] | None]:
        """Mirror mode's removals: the keys to drop from the state, and the new pending map."""
        if not self.mirror:
            return set(), None
        self.progress.stage = "removing"
        with self.stage("removals"):
            rules = RemovalRules(
                self.options, self.failed, destination.max_removal_fraction, unproven_read(plan), by_export=True
            )
            tuning = self.tuning
            waits = JobWaits(tuning.job_wait_seconds, tuning.job_poll_interval, tuning.job_poll_max_interval)
            return remove_departed(client, list_ids, state, present, self.record, rules, waits)

    def _router(self, client: SendGridApi, spool: BatchSpool, list_ids: list[str], settler: GroupSettler) -> SendRouter:
        """Upserts or CSV import, as SENDGRID_BULK_IMPORT and the contacts to send decide."""
        tuning = self.tuning

        def upserts() -> BatchSender:
            return BatchSender(client, spool, concurrency=tuning.send_concurrency, on_accepted=settler.accepted)

        def imports() -> BulkImporter:
            rows = tuning.bulk_import_rows
            return BulkImporter(
                client, spool, list_ids, rows=rows, mirror=self.mirror, on_accepted=settler.accepted_group
            )

        return SendRouter(spool, tuning.bulk_import, tuning.bulk_import_threshold, upserts, imports)

    def send(self, spool: BatchSpool, sender: Sending | None) -> None:
        """Send what is left to send (a dry run only records the batches it would send)."""
        if sender is None:
            for batch in spool.batches():
                self.record.batches.append({**batch_entry(batch), "status": "dry_run"})
            return
        sender.open()
        outcome = sender.finish(tick=self.progress.tick)
        self._take_outcome(outcome)
        self.save()

    def _take_outcome(self, outcome: SendOutcome) -> None:
        with self.lock:  # the settler writes the counts and the rejects too
            self._sent = True
            self.record.batches.extend(outcome.entries)
            self.record.counts.errored += outcome.errored
            for source, line, email, kind, why in outcome.rejects:
                self.rejects.add(source, line, email, kind, why)
        for message in outcome.failures:
            self.fail(message)

    def _cap_reached(self, words: str) -> None:
        """A job failed for the plan's contact limit: no batch after it is sent (each would fail
        the same way), and the run fails naming the cap."""
        if self.sender is not None:
            self.sender.halt("not sent: SendGrid's contact limit was reached")
        self.pace.refuse(UPSERT, "not sent: SendGrid's contact limit was reached")
        self.fail(contact_cap_message(self._client, words))
