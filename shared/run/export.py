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
import time
from dataclasses import dataclass

from shared.errors import ExportError, ProfileLimitError
from shared.inputs.config import Destination, DestinationsConfig
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
from shared.run.queue_gate import RunRequest, queued_record
from shared.run.reader import ContactShape, SegmentsReading
from shared.run.records import INTERRUPTED, ExportOptions, RunRecord
from shared.run.runtime import Runtime
from shared.run.send import BatchSpool, RemovalRules, remove_departed, settle_left_jobs
from shared.run.send_stage import Outbox, SendStage

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
    asked = RunRequest(destination, trigger, requested_by, options or ExportOptions(), run_id)
    record = queued_record(asked)
    return ledger.queue(runtime.edges.records, record)


def run_export(runtime: Runtime, record: RunRecord) -> RunRecord:
    """Run a queued export to its end. Never raises for a run-level failure: the record says it."""
    run = _Run(runtime, record)
    try:
        run.execute()
    except KeyboardInterrupt:  # Ctrl-C or a stop signal: the record ends true, then it goes on up
        run.ledger.fail(INTERRUPTED)
        run.ledger.finish()
        raise
    except ExportError as exc:
        run.ledger.fail(str(exc))
    except Exception as exc:  # a bug or an unforeseen fault: recorded, then surfaced to the host
        run.ledger.fail(describe_unexpected(exc))
        run.ledger.finish()
        raise
    run.ledger.finish()
    return run.record


def describe_unexpected(exc: BaseException) -> str:
    return redact(f"unexpected error ({type(exc).__name__}): {exc}")[:500]


@dataclass(frozen=True)
class RunContext:
    """What every stage of one run works with, once the configuration is read and SendGrid is
    reached: the destination, its segments resolved, the client, and the scan of the rows' bound."""

    destination: Destination
    plan: SegmentPlan
    client: SendGridApi
    scan: BoundScan


class _Run:
    """One run's stages, in their order. It holds the run's ledger: every change of the record's
    status, every save and the run event go through it."""

    def __init__(self, runtime: Runtime, record: RunRecord):
        self.runtime = runtime
        self.edges, self.settings, self.tuning = runtime.edges, runtime.settings, runtime.tuning
        self.ledger = ledger.RunLedger(record, runtime.edges, runtime.tuning)
        self.record = record  # its parts are filled by the stages; its status and saves are the ledger's
        self.progress = self.ledger.progress
        self.options = record.options
        self.mirror = False
        self.sending = SendStage(self.ledger, runtime.tuning)
        self._state: SyncState | None = None
        self._order: RunOrder | None = None  # the run's order in terms of the state (a delta run's)
        # Whether every key of the read went through the run's exact key set: then no key is
        # confirmed twice. Keys claimed by their position in the state are one a position, and
        # a damaged state may hold a key at two.
        self._keys_in_set = False

    # -- the stages ----------------------------------------------------------------------------

    def execute(self) -> None:
        self.ledger.start()
        with self.ledger.stage("config"):
            config = load_destinations(self.runtime)
            destination = exportable_destination(self.runtime, self.record.destination, config)
            # Every segment resolved before anything is read, so a missing one fails the run up front.
            plan = [(segment, resolve_segment(self.edges.segments, segment)) for segment in destination.segments]
        self.ledger.destination = destination
        self.mirror = destination.mode == "mirror"
        self.progress.stage = "preparing"
        client = self._connect(destination)

        def on_bound(bound: int | None) -> None:
            self._on_bound(bound, destination.max_profiles)

        scan = BoundScan(self.edges.segments, plan, destination, self.settings.max_record_bytes, on_bound)
        try:
            self._sync(RunContext(destination, plan, client, scan), config)
        finally:
            scan.cancel()
            client.close()

    def _connect(self, destination: Destination) -> SendGridApi:
        with self.ledger.stage("secret"):
            api_key = self.edges.secrets.get_secret(destination.api_key_secret)
        client = self.edges.sendgrid(destination.api_base_url(self.settings.sendgrid_api_base_url), api_key)
        del api_key
        client.pace = self.sending.pace
        # From the run's start: the configuration and the key may already have taken a while.
        client.deadline = time.time() + self.tuning.run_deadline_seconds - self.ledger.elapsed()
        return client

    def _on_bound(self, bound: int | None, max_profiles: int) -> None:
        """The scan's verdict: progress has its total, and sending may start while reading goes on."""
        if bound is None:
            return
        self.sending.bounded(bound)
        if bound <= max_profiles:
            self.progress.rows_total = bound
            self.sending.prove()
            log.info("segment files scanned, at most %d rows: sending while reading", bound)

    def _sync(self, run: RunContext, config: DestinationsConfig) -> None:
        destination = run.destination
        with self.ledger.stage("lists"):
            found = require_lists(run.client, destination)
            if self.mirror:  # before any list is created: a refused run leaves nothing behind
                refuse_mirror_on_shared_lists(config, destination, found)
            custom_fields = resolve_custom_fields(run.client, destination)
        creates = not self.options.dry_run and any(item is None for item in found)
        if creates:  # no list is created before max_profiles is proven: scan while the state loads
            # Nor before the mapping is known to fit the files' columns.
            require_mapped_columns(self.edges.segments, destination, run.plan, self.settings.max_record_bytes)
            run.scan.start()
        if not self.options.dry_run:
            self._resume(run.client, destination)
        with self.ledger.stage("state"):
            # Held by the run, not by this frame, so that the state stage can let it go.
            self._state = SyncState.load(
                self.edges.exports, destination.name, with_emails=self.mirror, discard_corrupt=self.options.full
            )
        if creates:
            self._prove_within_limit(run)
        list_ids = self._lists(run, found)
        spool = BatchSpool(list_ids, max_contacts=self.tuning.max_batch_contacts, max_bytes=self.tuning.max_batch_bytes)
        try:
            self._spool_send_and_settle(run, Outbox(spool, list_ids, custom_fields))
        finally:
            run.scan.cancel()
            self.sending.stop()
            spool.close()

    def _resume(self, client: SendGridApi, destination: Destination) -> None:
        """Settle the jobs a stopped run left, by their ids, before the state loads."""
        self.progress.stage = "settling the jobs of a stopped run"
        with self.ledger.stage("resume"):
            resumed = settle_left_jobs(
                client, self.edges.exports, destination.name, self.tuning.job_waits, tick=self.progress.tick
            )
        if resumed is not None:
            self.record.resumed = dataclasses.asdict(resumed)

    def _prove_within_limit(self, run: RunContext) -> None:
        destination = run.destination
        with self.ledger.stage("scan"):
            bound = run.scan.result()
            if bound is not None and bound > destination.max_profiles:
                # More lines than max_profiles: only counting the valid profiles can tell.
                require_within_limit(self.edges.segments, run.plan, destination, self.settings.max_record_bytes)
                self.sending.prove()
            # Proven of the versions listed, which every read asks for: a file replaced since
            # fails the run when read; it fails here instead, before a list is created for it.
            unchanged_since_listed(self.edges.segments, run.plan)

    def _lists(self, run: RunContext, found: list[SendGridList | None]) -> list[str]:
        with self.ledger.stage("lists"):
            list_ids = create_lists(run.client, run.destination, found, self.record, dry_run=self.options.dry_run)
        self.ledger.save()
        return list_ids

    def _spool_send_and_settle(self, run: RunContext, outbox: Outbox) -> None:
        state, self._state = self._state, None
        assert state is not None
        updates = StateUpdates(one_per_key=True)
        if not self.options.dry_run:
            self.sending.start(run.client, outbox, updates, run.scan, mirror=self.mirror)
        present = self._read(run, outbox, state)
        # No key comes twice if every key went through the run's key set (and no part twice).
        updates.one_per_key = updates.one_per_key and self._keys_in_set
        self._require_spool_within_limit(run.destination, outbox.spool)
        self.progress.stage = "sending"
        with self.ledger.stage("send"):
            self.sending.send(outbox.spool)
        self.sending.settle()
        removed, not_found_yet = self._remove(run, outbox.list_ids, state, present)
        if not self.options.dry_run:
            with self.ledger.stage("state"):
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
                new_state.save_replacing_journals(self.edges.exports, run.destination.name)

    def _read(self, run: RunContext, outbox: Outbox, state: SyncState) -> RunKeys:
        self.progress.stage = "reading"
        spool, plan = outbox.spool, run.plan
        with self.ledger.stage("read"):
            reading = SegmentsReading(self.record, self.ledger.rejects, self.progress, spool, self.runtime)
            shape = ContactShape(run.destination.mapping, outbox.custom_fields, outbox.list_ids)
            present = reading.read(shape, plan, state, full=self.options.full, mirror=self.mirror)
            self._order = present.order  # for the state's order; the rest is for removals only
            self._keys_in_set = not present.claimed
            if not self.mirror:
                present = RunKeys()  # only removals need who is present: free it now
            run.scan.cancel()  # the read itself now vouches for every file
            spool.finish()
        self.progress.reading_done = True
        self.progress.batches_spooled = spool.batch_count
        self.ledger.save()
        return present

    def _require_spool_within_limit(self, destination: Destination, spool: BatchSpool) -> None:
        if spool.count > destination.max_profiles:  # a file did not scan: the read tells now
            raise ProfileLimitError(
                f"the segments hold {spool.count} valid profiles to send, more than max_profiles "
                f"({destination.max_profiles}) for destination '{destination.name}'; "
                + ("nothing was sent. " if not self.sending.released else "")
                + "Raise max_profiles in destinations.json if this is expected."
            )

    def _remove(
        self, run: RunContext, list_ids: list[str], state: SyncState, present: RunKeys
    ) -> tuple[set[int], dict[int, int] | None]:
        """Mirror mode's removals: the keys to drop from the state, and the new pending map."""
        if not self.mirror:
            return set(), None
        self.progress.stage = "removing"
        with self.ledger.stage("removals"):
            rules = RemovalRules(
                self.options,
                self.ledger.failed,
                run.destination.max_removal_fraction,
                self.tuning.job_waits,
                unproven=unproven_read(run.plan),
                by_export=True,
            )
            return remove_departed(run.client, list_ids, state, present, self.record, rules)
