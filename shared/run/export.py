"""One export run, start to end. The only module that knows the order of the stages.

Stages: configuration and consent, the API key, the lists (and custom fields), the sync state,
reading every segment row through the row rules into a spool of batches (unchanged rows skipped),
the ``max_profiles`` check, sending, waiting for SendGrid's import jobs (each confirmed batch
journaled at once), mirror-mode removals, and saving the new sync state. The run record is saved
when the run starts, after each stage, and at the end; whatever happens, it is final and its
counts add up.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from itertools import compress, repeat
from operator import eq
from typing import Any

from shared.adapters.sendgrid import JobResult
from shared.adapters.storage import BlobNotFound
from shared.context import propagate
from shared.errors import (
    ConfigError,
    ExportError,
    ProfileLimitError,
    SendGridError,
)
from shared.inputs.config import Destination, DestinationsConfig, ListRef, SegmentRef, parse_destinations
from shared.inputs.mapping import plan_columns
from shared.inputs.rows import CustomFieldDef, RowRules
from shared.inputs.segments import RecordChunk, SegmentFile, TabularFile, open_segment_file, resolve_segment
from shared.privacy import mask_emails
from shared.run.batching import (
    BatchSpool,
    ContactNotEncodable,
    ContactTooLarge,
    encode_contact,
)
from shared.run.counts import FILE_COUNTS, RunCounts
from shared.run.import_errors import ErrorsFileUnreadable, parse_errors_file, split_by_errors
from shared.run.keysets import MISSING, PositionIndex
from shared.run.ports import SendGridApi
from shared.run.profile_limit import BoundScan, require_within_limit
from shared.run.progress import ProgressSnapshot, RunProgress
from shared.run.records import (
    ExportOptions,
    RejectsWriter,
    RunRecord,
    RunStatus,
    iso,
    new_run_id,
    rejects_blob_name,
    utc_now,
)
from shared.run.removals import remove_departed
from shared.run.runtime import Runtime
from shared.run.sending import BatchSender, PendingJob, SendOutcome, batch_entry
from shared.run.sync_state import EMAIL_KEY_HASH, RowFingerprinter, RunKeys, StateUpdates, SyncState, journal_prefix
from shared.run.telemetry import emit_run_event

log = logging.getLogger(__name__)


class DestinationDisabledError(ConfigError):
    pass


def load_destinations(runtime: Runtime) -> DestinationsConfig:
    name = runtime.settings.destinations_blob
    try:
        text = runtime.edges.exports.read_bytes(name)
    except BlobNotFound:
        raise ConfigError(
            f"{name} not found in container '{runtime.settings.exports_container}': upload it "
            "(see README, 'destinations.json')."
        ) from None
    return parse_destinations(text, source=name)


def exportable_destination(runtime: Runtime, name: str, config: DestinationsConfig | None = None) -> Destination:
    """The destination, if it may be exported now; else the error that says why not."""
    destination = (config or load_destinations(runtime)).get(name)
    if not destination.enabled:
        raise DestinationDisabledError(
            'is disabled; set "enabled": true to export it.', destination=name, field="enabled"
        )
    destination.require_consent()
    return destination


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
    record = RunRecord(
        run_id=run_id or new_run_id(),
        destination=destination,
        trigger=trigger,
        requested_by=requested_by,
        options=options or ExportOptions(),
        status=RunStatus.QUEUED,
        queued_at=iso(utc_now()),
    )
    runtime.edges.records.save(record)
    return record


def run_export(runtime: Runtime, record: RunRecord) -> RunRecord:
    """Run a queued export to its end. Never raises for a run-level failure: the record says it."""
    run = _Run(runtime, record)
    try:
        run.execute()
    except ExportError as exc:
        run.fail(str(exc))
    except Exception as exc:  # a bug or an unforeseen fault: recorded, then surfaced to the host
        run.fail(describe_unexpected(exc))
        run.finish()
        raise
    run.finish()
    return run.record


def describe_unexpected(exc: BaseException) -> str:
    return mask_emails(f"unexpected error ({type(exc).__name__}): {exc}")[:500]


class _Run:
    def __init__(self, runtime: Runtime, record: RunRecord):
        self.runtime = runtime
        self.edges, self.settings, self.tuning = runtime.edges, runtime.settings, runtime.tuning
        self.record = record
        self.options = record.options
        self.rejects = RejectsWriter()
        self.store = self.edges.records
        self.failed = False
        self._t0 = time.monotonic()
        self._sent = False  # the sender's outcome has been taken into the record
        self._delivered = False  # a batch was handed to SendGrid
        self.progress = RunProgress(
            self.edges.progress,
            self._save_running,
            interval=self.tuning.progress_every,
            save_every=self.tuning.record_save_every,
        )

    # -- bookkeeping ---------------------------------------------------------------------------

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
        self.record.errors.append(mask_emails(message))
        log.error("run %s of %s failed: %s", self.record.run_id, self.record.destination, mask_emails(message))

    def finish(self) -> None:
        record = self.record
        counts = record.counts
        if counts.sent and not self._delivered:  # a dry run, or a run stopped before sending
            counts.take_back_unsent()
        self.progress.stage = "done"
        self.progress.rows_read = counts.read
        self.progress.close()
        record.progress = self.progress.snapshot().as_dict()
        if self.failed:
            record.status = RunStatus.FAILED
        elif counts.invalid or counts.errored or counts.fields_rejected:
            record.status = RunStatus.COMPLETED_WITH_ERRORS
        else:
            record.status = RunStatus.SUCCEEDED
        if self.rejects.count:
            name = rejects_blob_name(record.destination, record.run_id)
            self.rejects.upload(self.edges.exports, name)
            record.rejects_blob = name
        self.rejects.close()
        record.finished_at = iso(utc_now())
        record.timings["total"] = time.monotonic() - self._t0
        self.store.save(record)
        destination = getattr(self, "destination", None)
        emit_run_event(record, schedule_enabled=destination.schedule_enabled if destination else None)
        log.info(
            "run %s of %s: %s; %s",
            record.run_id,
            record.destination,
            record.status,
            ", ".join(f"{k}={v}" for k, v in counts.as_dict().items()),
        )

    # -- the stages ----------------------------------------------------------------------------

    def execute(self) -> None:
        record = self.record
        # A retried job starts again from nothing; only the notes of earlier attempts remain.
        fresh = RunRecord(record.run_id, record.destination, record.trigger)
        record.lists, record.segments, record.counts = fresh.lists, fresh.segments, fresh.counts
        record.batches, record.removals, record.timings = fresh.batches, fresh.removals, fresh.timings
        record.rejects_blob = None
        record.status = RunStatus.RUNNING
        record.started_at = iso(utc_now())
        self.store.save(record)
        with self.stage("config"):
            config = load_destinations(self.runtime)
            destination = exportable_destination(self.runtime, record.destination, config)
            base_url = destination.api_base_url(self.settings.sendgrid_api_base_url)
            # Every segment resolved before anything is read, so a missing one fails the run up front.
            plan = [(segment, resolve_segment(self.edges.segments, segment)) for segment in destination.segments]
        self.destination = destination
        self.mirror = destination.mode == "mirror"
        max_record_bytes = self.settings.max_record_bytes
        self.progress.stage = "preparing"
        with self.stage("secret"):
            api_key = self.edges.secrets.get_secret(destination.api_key_secret)
        client = self.edges.sendgrid(base_url, api_key)
        del api_key
        # From the run's start: the configuration and the key may already have taken a while.
        client.deadline = time.time() + self.tuning.run_deadline_seconds - (time.monotonic() - self._t0)
        sender: BatchSender | None = None
        proven = threading.Event()  # max_profiles cannot be passed: batches may go as they fill

        def on_bound(bound: int | None) -> None:
            # The scan's verdict: progress has its total, and sending may start while reading goes on.
            if bound is not None and bound <= destination.max_profiles:
                self.progress.rows_total = bound
                proven.set()
                if sender is not None:
                    sender.open()
                log.info("segment files scanned, at most %d rows: sending while reading", bound)

        scan = BoundScan(self.edges.segments, plan, destination, max_record_bytes, on_bound)
        try:
            with self.stage("lists"):
                found = self.find_lists(client, destination)
                if self.mirror:  # before any list is created: a refused run leaves nothing behind
                    refuse_mirror_on_shared_lists(config, destination, found)
                custom_fields = self.resolve_custom_fields(client, destination)
            creates = not self.options.dry_run and any(item is None for item in found)
            if creates:  # no list is created before max_profiles is proven: scan while the state loads
                scan.start()
            with self.stage("state"):
                state = SyncState.load(
                    self.edges.exports, destination.name, with_emails=self.mirror, discard_corrupt=self.options.full
                )
            if creates:
                with self.stage("scan"):
                    bound = scan.result()
                    if bound is not None and bound > destination.max_profiles:
                        # More lines than max_profiles: only counting the valid profiles can tell.
                        require_within_limit(self.edges.segments, plan, destination, max_record_bytes)
                        proven.set()
            with self.stage("lists"):
                list_ids = self.create_lists(client, destination, found)
            self.store.save(record)
            spool = BatchSpool(
                list_ids, max_contacts=self.tuning.max_batch_contacts, max_bytes=self.tuning.max_batch_bytes
            )
            try:
                if not self.options.dry_run:
                    sender = BatchSender(client, spool, concurrency=self.tuning.send_concurrency)
                    spool.on_ready = self._sending_gate(scan, sender)
                    if proven.is_set():
                        sender.open()
                self.progress.stage = "reading"
                with self.stage("read"):
                    present = self.read_segments(destination, plan, custom_fields, spool, state, list_ids, sender)
                    if not self.mirror:
                        present = RunKeys()  # only removals need who is present: free it now
                    scan.cancel()  # the read itself now vouches for every file
                    spool.finish()
                self.progress.reading_done = True
                self.progress.batches_spooled = spool.batch_count
                self.store.save(record)
                if spool.count > destination.max_profiles:  # a file did not scan: the read tells now
                    raise ProfileLimitError(
                        f"the segments hold {spool.count} valid profiles to send, more than max_profiles "
                        f"({destination.max_profiles}) for destination '{destination.name}'; "
                        + ("nothing was sent. " if sender is None or not sender.released else "")
                        + "Raise max_profiles in destinations.json if this is expected."
                    )
                self.progress.stage = "sending"
                with self.stage("send"):
                    pending = self.send(spool, sender)
                updates = StateUpdates()
                self.progress.stage = "waiting for SendGrid's jobs"
                with self.stage("jobs"):
                    self.wait_for_jobs(client, spool, pending, updates)
                removed: set[int] = set()
                not_found_yet: dict[int, int] | None = None
                if self.mirror:
                    self.progress.stage = "removing"
                    with self.stage("removals"):
                        removed, not_found_yet = remove_departed(
                            client,
                            list_ids,
                            state,
                            present,
                            record=self.record,
                            options=self.options,
                            failed=self.failed,
                            max_fraction=destination.max_removal_fraction,
                            job_wait_seconds=self.tuning.job_wait_seconds,
                            poll_interval=self.tuning.job_poll_interval,
                            poll_max_interval=self.tuning.job_poll_max_interval,
                            unproven=unproven_read(plan),
                        )
                if not self.options.dry_run:
                    with self.stage("state"):
                        new_state = state.merged(
                            updates, removed=removed, keep_emails=self.mirror, pending=not_found_yet
                        )
                        # The old state, its key index, the updates and the run's keys are about
                        # 45 bytes a contact the blob being made does not need.
                        del state, updates, present
                        new_state.save(self.edges.exports, destination.name)
                        journals = [b.name for b in self.edges.exports.list_blobs(journal_prefix(destination.name))]
                        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="journal-delete") as pool:
                            list(pool.map(propagate(self.edges.exports.delete), journals))  # one per batch: many
            finally:
                scan.cancel()
                if sender is not None and not self._sent:
                    # The run stopped before sending ended: what was sent stays recorded.
                    self._take_outcome(sender.stop("the run stopped before this batch was sent"))
                self._delivered = sender is not None and sender.released > 0
                spool.close()
        finally:
            scan.cancel()
            client.close()

    def find_lists(self, client: SendGridApi, destination: Destination) -> list[dict[str, Any] | None]:
        """Each list the destination names, as SendGrid has it, or None where it is to be created.
        Creates nothing: that waits until the run knows it will send."""
        found: list[dict[str, Any] | None] = []
        for ref in destination.lists:
            item = self._find_list(client, ref)
            if item is None and (ref.id is not None or not ref.create_if_missing):
                hint = "" if ref.id else ' (or set "create_if_missing": true)'
                raise ExportError(f"SendGrid has no {ref.describe()}: create it in SendGrid first{hint}.")
            found.append(item)
        return found

    def create_lists(
        self, client: SendGridApi, destination: Destination, found: list[dict[str, Any] | None]
    ) -> list[str]:
        ids: list[str] = []
        for ref, item in zip(destination.lists, found, strict=True):
            if item is not None:
                ids.append(item["id"])
                self.record.lists.append({"id": item["id"], "name": item.get("name"), "action": "found"})
                continue
            if self.options.dry_run:
                self.record.lists.append({"id": None, "name": ref.name, "action": "would_create"})
                continue
            created = client.create_list(ref.name or "")
            ids.append(created["id"])
            self.record.lists.append({"id": created["id"], "name": ref.name, "action": "created"})
            log.info("created SendGrid list %s for %s", created["id"], destination.name)
        return ids

    @staticmethod
    def _find_list(client: SendGridApi, ref: ListRef) -> dict[str, Any] | None:
        if ref.id is not None:
            return client.get_list(ref.id)
        return next((item for item in client.iter_lists() if item.get("name") == ref.name), None)

    def resolve_custom_fields(self, client: SendGridApi, destination: Destination) -> dict[str, CustomFieldDef]:
        wanted = dict(destination.mapping.custom_fields) if destination.mapping else {}
        if not wanted:
            return {}
        definitions = client.field_definitions().get("custom_fields") or []
        # SendGrid matches field names case-insensitively: so does the mapping.
        by_name = {str(d.get("name")).lower(): d for d in definitions if isinstance(d, dict)}
        missing = sorted(name for name in wanted if name.lower() not in by_name)
        if missing:
            raise ConfigError(
                f"SendGrid has no custom field named {', '.join(repr(m) for m in missing)}: create "
                "it in SendGrid (Marketing > Custom Fields) or fix the mapping.",
                destination=destination.name,
                field="mapping.custom_fields",
            )
        return {
            name: CustomFieldDef(
                name=name,
                id=str(by_name[name.lower()]["id"]),
                field_type=str(by_name[name.lower()]["field_type"]),
            )
            for name in wanted
        }

    def read_segments(
        self,
        destination: Destination,
        plan: list[tuple[SegmentRef, list[SegmentFile]]],
        custom_fields: dict[str, CustomFieldDef],
        spool: BatchSpool,
        state: SyncState,
        list_ids: list[str],
        sender: BatchSender | None = None,
    ) -> RunKeys:
        """Read every record into the spool. Returns the keys of every valid contact (mirror
        mode needs them to find who left). Each file's own counts go to its segment's summary."""
        # Fingerprint -> position in the state of the records SendGrid already has; --full knows none.
        known = None if self.options.full or not len(state) else state.fingerprint_index()
        # Email keys of this run's valid contacts: de-duplication, first wins. Those the state
        # holds are kept by position; a --full run in upsert mode needs no positions.
        seen = RunKeys(state if known is not None or self.mirror else None)
        customs = ";".join(f"{d.name}:{d.id}:{d.field_type}" for d in custom_fields.values())
        counts, progress = self.record.counts, self.progress

        def on_chunk(rows_in_file: int) -> None:
            progress.rows_read = counts.read + rows_in_file
            progress.batches_spooled = spool.batch_count
            if sender is not None:
                progress.batches_sent = sender.settled
            progress.tick()

        for segment, files in plan:
            summary: dict[str, Any] = {"path": segment.path, "files": len(files), "rows": 0, "by_file": []}
            self.record.segments.append(summary)
            for file in files:
                table = open_segment_file(
                    self.edges.segments, file, destination.mapping, self.settings.max_record_bytes
                )
                columns = plan_columns(destination.mapping, table.columns, file.name)
                reader = _FileReader(
                    table,
                    RowRules(columns, custom_fields, encoding=file.csv.encoding.upper()),
                    RowFingerprinter(",".join(sorted(list_ids)), repr(columns), customs, "\x1f".join(table.columns)),
                    columns.email,
                    self.record.counts,
                    self.rejects,
                    spool,
                )
                before = counts.snapshot()
                rows = reader.read(known, seen, on_chunk)
                counts.read += rows
                counts.control_chars_stripped += table.control_chars_stripped
                summary["rows"] += rows
                summary["by_file"].append({"name": file.name, "rows": rows} | counts.changed_since(before, FILE_COUNTS))
                self.tuning.release_memory()
                log.info("read %s: %d rows (%d to send so far)", file.name, rows, spool.count)
        return seen

    @staticmethod
    def _sending_gate(scan: BoundScan, sender: BatchSender) -> Callable[[int], None]:
        """The spool's ``on_ready``: each closed batch goes to the sender, and the first one
        starts the scan, if none ran yet, that may open sending while reading goes on. A run
        whose contacts fit in one batch (a small delta) never scans: nothing could go early."""

        def on_ready(index: int) -> None:
            scan.start()
            sender.ready(index)

        return on_ready

    def send(self, spool: BatchSpool, sender: BatchSender | None) -> list[PendingJob]:
        """Send what is left to send (a dry run only records the batches it would send)."""
        if sender is None:
            for batch in spool.batches():
                self.record.batches.append(batch_entry(batch) | {"status": "dry_run"})
            return []
        sender.open()
        outcome = sender.finish(tick=self.progress.tick)
        self.progress.batches_sent = sender.settled
        self._take_outcome(outcome)
        self.store.save(self.record)
        return outcome.pending

    def _take_outcome(self, outcome: SendOutcome) -> None:
        self._sent = True
        self.record.batches.extend(outcome.entries)
        self.record.counts.errored += outcome.errored
        for source, line, email, kind, why in outcome.rejects:
            self.rejects.add(source, line, email, kind, why)
        for message in outcome.failures:
            self.fail(message)

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
            self._confirm(batch, item.positions, updates, journal_name)
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
        self._confirm(batch, [p for p in item.positions if p not in failed], updates, journal_name)
        return result.status

    @staticmethod
    def _note_job(entry: dict[str, Any], item: PendingJob, result: JobResult) -> None:
        job = {"requested": result.requested, "created": result.created, "updated": result.updated}
        job["errored"] = result.errored
        if result.error:
            entry["error"] = mask_emails(result.error)[:1000]
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
        self, client: SendGridApi, batch: Any, item: PendingJob, result: JobResult
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

    def _confirm(self, batch: Any, positions: Sequence[int], updates: StateUpdates, journal_name: str) -> None:
        if not positions:
            return
        start = len(updates)
        keys, fps = batch.columns["keys"], batch.columns["fps"]
        if positions != range(batch.count):  # a part of the batch: only these contacts
            keys, fps = array("Q", map(keys.__getitem__, positions)), array("Q", map(fps.__getitem__, positions))
        emails = [json.loads(batch.encoded(p))["email"] for p in positions] if self.mirror else None
        updates.extend(keys, fps, emails)
        # Written before the next job is looked at: if the run dies now, this part stays confirmed.
        self.edges.exports.write_bytes(
            journal_name, updates.journal_bytes(start), content_type="application/octet-stream"
        )


def unproven_read(plan: list[tuple[SegmentRef, list[SegmentFile]]]) -> str:
    """Why the read may be incomplete, or "": files of a CDM entity that lists no partitions were
    found by listing its newest snapshot folder, and nothing says that folder was complete."""
    unproven = [file.name for _, files in plan for file in files if not file.proven_complete]
    if not unproven:
        return ""
    return f"{len(unproven)} file(s) of a CDM entity whose model.json lists no partitions, e.g. {unproven[0]}"


def refuse_mirror_on_shared_lists(
    config: DestinationsConfig, destination: Destination, found: list[dict[str, Any] | None]
) -> None:
    """Mirror mode removes by its own state alone, so it would take off a list the people another
    destination sends to the same list (and that one would never put them back): refuse it.

    Another destination may use another API key of the same account, so it is compared whatever
    its key: a list it names by id against this destination's lists' ids, one it names by name
    against their names (SendGrid's, or the name of one still to be created). Another account may
    well have a list of that name too: the error says to rename one, which is safe either way."""
    ids = {str(item["id"]) for item in found if item is not None}
    names = {str(item.get("name")) for item in found if item is not None}
    names |= {ref.name for ref, item in zip(destination.lists, found, strict=True) if item is None and ref.name}
    for other in config.destinations.values():
        if other.name == destination.name:
            continue
        same_key = other.api_key_secret == destination.api_key_secret and other.region == destination.region
        for ref in other.lists:
            if (ref.id is not None and ref.id in ids) or (ref.id is None and ref.name in names):
                hint = "" if same_key else " (if it is another SendGrid account, give the lists different names)"
                raise ConfigError(
                    f"mirror mode would remove contacts that destination '{other.name}' also sends to the "
                    f"SendGrid list {ref.describe()}{hint}; give each mirror destination a list of its own, "
                    'or set "mode": "upsert".',
                    destination=destination.name,
                    field="mode",
                )


class _FileReader:
    """One file's records through the row rules into the spool: the hot loop of a run.

    A record whose fingerprint SendGrid already has costs one hash and two lookups: it is not
    parsed, mapped or encoded. The others are parsed a chunk at a time.
    """

    def __init__(
        self,
        table: TabularFile,
        rules: RowRules,
        fingerprinter: RowFingerprinter,
        email_at: int,
        counts: RunCounts,
        rejects: RejectsWriter,
        spool: BatchSpool,
    ):
        self.table, self.rules, self.fingerprinter, self.email_at = table, rules, fingerprinter, email_at
        self.counts, self.rejects, self.spool = counts, rejects, spool

    def read(self, known: PositionIndex | None, seen: RunKeys, on_chunk: Callable[[int], None] | None = None) -> int:
        parse = self.table.parse
        rows = 0
        for chunk in self.table.chunks:
            if on_chunk is not None:
                on_chunk(rows)
            records = chunk.records
            rows += len(records)
            fps, undecodable = self.fingerprinter.many(records)
            fresh, claims = (
                self._take_unchanged(fps, known, seen) if known is not None else (range(len(records)), _Claims([], {}))
            )
            if fresh:
                parsed, problems = parse(records if len(fresh) == len(records) else [records[i] for i in fresh])
                self._add(chunk, fresh, fps, undecodable, parsed, problems, seen, claims)
        return rows

    def _take_unchanged(self, fps: list[int], known: PositionIndex, seen: RunKeys) -> tuple[Sequence[int], _Claims]:
        """Count the records SendGrid already has (the very records it accepted last time: valid,
        and unchanged) and return the indexes of the others. In a delta run nearly every record
        is one of these, so the usual chunk is settled with a few whole-list operations.

        Such a record is known by its position in the state, whose key is its email's: it is
        claimed there, without its key being made or looked up."""
        at = known.find_many(fps)
        missing = at.count(MISSING)
        if missing == len(at):
            return range(len(at)), _Claims(at, {})
        found = set(at)
        found.discard(MISSING)
        claimed = seen.claimed
        if len(found) == len(at) - missing and not any(map(claimed.__getitem__, found)):  # no email twice
            seen.claim_unclaimed(found)
            self.counts.unchanged += len(found)
            fresh = list(compress(range(len(at)), map(eq, at, repeat(MISSING)))) if missing else []
            return fresh, _Claims(at)
        fresh = []
        claims: dict[int, int] = {}
        for index, position in enumerate(at):
            if position == MISSING:
                fresh.append(index)
            elif claimed[position]:
                self.counts.duplicate += 1
            else:
                seen.claim_unclaimed({position})
                claims[position] = index
                self.counts.unchanged += 1
        return fresh, _Claims(at, claims)

    def _add(
        self,
        chunk: RecordChunk,
        indexes: Sequence[int],
        fps: list[int],
        undecodable: set[int],
        parsed: list[list[str] | None],
        problems: dict[int, str],
        seen: RunKeys,
        claims: _Claims,
    ) -> None:
        counts, rejects, apply = self.counts, self.rejects, self.rules.apply
        name, email_at, too_large = self.table.name, self.email_at, self.spool.max_contact_bytes
        new_key, from_bytes = EMAIL_KEY_HASH.copy, int.from_bytes
        locate, claimed, claim_new = seen.locate, seen.claimed, seen.others.add
        in_state = bool(claimed)
        encoded: list[bytes] = []
        lines: list[int] = []
        keys: list[int] = []
        chosen: list[int] = []
        for position, (index, fields) in enumerate(zip(indexes, parsed, strict=True)):
            if fields is None:  # a record the reader could not make fields of
                counts.invalid += 1
                rejects.add(name, chunk.line_of(index), "", "invalid", problems.get(position, "unreadable record"))
                continue
            contact, reason, truncated, field_rejects = apply(fields, index in undecodable)
            if contact is None:
                counts.invalid += 1
                email = fields[email_at] if email_at < len(fields) else ""
                rejects.add(name, chunk.line_of(index), email, "invalid", reason)
                continue
            email = contact["email"]
            hashed = new_key()  # email_key(email), without a call per row
            hashed.update(email.encode("utf-8", "surrogateescape"))
            key = from_bytes(hashed.digest(), "little")
            # An unchanged row further on in the chunk may have claimed this email (at its position
            # in the state): this row comes first, so it wins, and that one is the duplicate.
            at = locate(key) if in_state else MISSING
            # A key the state does not hold is claimed at once (one walk of the set, not two),
            # and given back below if the row cannot be sent.
            taken = claimed[at] if at != MISSING else not claim_new(key)
            takes_over = taken and at != MISSING and claims.later_than(at, index)
            if taken and not takes_over:
                counts.duplicate += 1
                continue
            line = chunk.line_of(index)
            try:
                contact_json = encode_contact(contact)
                if len(contact_json) > too_large:
                    raise ContactTooLarge.of(contact_json)
            except (ContactTooLarge, ContactNotEncodable) as exc:
                # Undecodable text can also come from a JSON escape, which the record's raw
                # text does not show.
                why = self.rules.undecodable(fields) if isinstance(exc, ContactNotEncodable) else ""
                counts.invalid += 1
                rejects.add(name, line, email, "invalid", why or str(exc))
                if at == MISSING:
                    seen.others.discard(key)
                continue
            if takes_over:
                counts.unchanged -= 1
                counts.duplicate += 1
            elif at != MISSING:
                seen.claim(at)
            encoded.append(contact_json)
            lines.append(line)
            keys.append(key)
            chosen.append(fps[index])
            if truncated:
                counts.truncated += 1
            if field_rejects:
                counts.fields_rejected += len(field_rejects)
                for field_name, problem in field_rejects:
                    rejects.add(name, line, email, "field_rejected", problem, field_name)
        self.spool.add_many(encoded, name, lines, keys, chosen)
        counts.sent += len(encoded)


class _Claims:
    """The state positions (emails) a chunk's unchanged records claimed, and where in the chunk.
    A changed record earlier in the chunk with the same email still comes first, so it wins, as
    the first row does."""

    def __init__(self, positions: list[int], claimed: dict[int, int] | None = None):
        self._positions = positions  # MISSING for a record the state does not know
        self._claimed = claimed  # None: every position in positions, at its index (built when first asked)

    def later_than(self, position: int, index: int) -> bool:
        """Whether an unchanged record after ``index`` claimed ``position`` (it then gives it up)."""
        if self._claimed is None:
            self._claimed = {p: i for i, p in enumerate(self._positions) if p != MISSING}
        at = self._claimed.get(position)
        if at is None or at < index:
            return False
        del self._claimed[position]
        return True
