"""One export run, start to end. The only module that knows the order of the stages.

Stages: configuration and consent, the API key, the lists (and custom fields), reading every
segment row through the row rules into a spool of batches, the ``max_profiles`` check, sending,
and waiting for SendGrid's import jobs. The run record is saved when the run starts, after each
stage, and at the end; whatever happens, it is final and its counts add up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .batching import MAX_BATCH_BYTES, MAX_CONTACTS_PER_BATCH, BatchSpool, ContactTooLarge, encode_contact
from .config import Destination, DestinationsConfig, ListRef, parse_destinations
from .errors import (
    ConfigError,
    ExportError,
    ProfileLimitError,
    SendGridAuthError,
    SendGridError,
)
from .jobs import JobQueue
from .locks import RunLock
from .mapping import plan_columns
from .privacy import mask_emails
from .records import RejectsWriter, RunRecord, RunRecordStore, iso, new_run_id, rejects_blob_name, utc_now
from .rows import CustomFieldDef, RowRules
from .secrets import SecretProvider
from .segments import open_segment_file, resolve_segment
from .sendgrid import JobResult, SendGridClient
from .settings import Settings
from .storage import BlobNotFound, BlobStore

log = logging.getLogger(__name__)

SendGridFactory = Callable[[str, str], SendGridClient]


@dataclass(frozen=True)
class ExportOptions:
    dry_run: bool = False
    full: bool = False
    force_removals: bool = False

    def as_dict(self) -> dict[str, bool]:
        return {"dry_run": self.dry_run, "full": self.full, "force_removals": self.force_removals}


@dataclass
class Edges:
    """Everything a run touches outside itself, built once (see :mod:`shared.bootstrap`)."""

    settings: Settings
    segments: BlobStore
    exports: BlobStore
    secrets: SecretProvider
    sendgrid: SendGridFactory
    lock: RunLock
    jobs: JobQueue
    job_timeout: float = 900.0
    job_poll_interval: float = 0.25
    max_batch_contacts: int = MAX_CONTACTS_PER_BATCH
    max_batch_bytes: int = MAX_BATCH_BYTES

    @property
    def records(self) -> RunRecordStore:
        return RunRecordStore(self.exports)


class DestinationDisabledError(ConfigError):
    pass


def load_destinations(edges: Edges) -> DestinationsConfig:
    name = edges.settings.destinations_blob
    try:
        text = edges.exports.read_bytes(name)
    except BlobNotFound:
        raise ConfigError(
            f"{name} not found in container '{edges.settings.exports_container}': upload it "
            "(see README, 'destinations.json')."
        ) from None
    return parse_destinations(text, source=name)


def exportable_destination(edges: Edges, name: str) -> Destination:
    """The destination, if it may be exported now; else the error that says why not."""
    destination = load_destinations(edges).get(name)
    if not destination.enabled:
        raise DestinationDisabledError(
            'is disabled; set "enabled": true to export it.', destination=name, field="enabled"
        )
    destination.require_consent()
    return destination


def queue_run(
    edges: Edges,
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
        options=(options or ExportOptions()).as_dict(),
        status="queued",
        queued_at=iso(utc_now()),
    )
    edges.records.save(record)
    return record


def run_export(edges: Edges, record: RunRecord) -> RunRecord:
    """Run a queued export to its end. Never raises for a run-level failure: the record says it."""
    run = _Run(edges, record)
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
    def __init__(self, edges: Edges, record: RunRecord):
        self.edges = edges
        self.record = record
        self.options = ExportOptions(**record.options)
        self.rejects = RejectsWriter()
        self.store = edges.records
        self.failed = False
        self._t0 = time.monotonic()

    # -- bookkeeping ---------------------------------------------------------------------------

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.record.timings[name] = self.record.timings.get(name, 0.0) + time.monotonic() - start

    def fail(self, message: str) -> None:
        self.failed = True
        self.record.errors.append(mask_emails(message))
        log.error("run %s of %s failed: %s", self.record.run_id, self.record.destination, mask_emails(message))

    def finish(self) -> None:
        record = self.record
        counts = record.counts
        if self.failed:
            record.status = "failed"
        elif counts["invalid"] or counts["errored"] or counts["fields_rejected"]:
            record.status = "completed_with_errors"
        else:
            record.status = "succeeded"
        if self.rejects.count:
            name = rejects_blob_name(record.destination, record.run_id)
            self.rejects.upload(self.edges.exports, name)
            record.rejects_blob = name
        self.rejects.close()
        record.finished_at = iso(utc_now())
        record.timings["total"] = time.monotonic() - self._t0
        self.store.save(record)
        log.info(
            "run %s of %s: %s; %s",
            record.run_id,
            record.destination,
            record.status,
            ", ".join(f"{k}={v}" for k, v in counts.items()),
        )

    # -- the stages ----------------------------------------------------------------------------

    def execute(self) -> None:
        record = self.record
        # A retried job starts again from nothing; only the notes of earlier attempts remain.
        fresh = RunRecord(record.run_id, record.destination, record.trigger)
        record.lists, record.segments, record.counts = fresh.lists, fresh.segments, fresh.counts
        record.batches, record.removals, record.timings = fresh.batches, fresh.removals, fresh.timings
        record.rejects_blob = None
        record.status = "running"
        record.started_at = iso(utc_now())
        self.store.save(record)
        with self.stage("config"):
            destination = exportable_destination(self.edges, record.destination)
            base_url = destination.api_base_url(self.edges.settings.sendgrid_api_base_url)
        with self.stage("secret"):
            api_key = self.edges.secrets.get_secret(destination.api_key_secret)
        client = self.edges.sendgrid(base_url, api_key)
        del api_key
        try:
            with self.stage("lists"):
                list_ids = self.resolve_lists(client, destination)
                custom_fields = self.resolve_custom_fields(client, destination)
            self.store.save(record)
            spool = BatchSpool(
                list_ids, max_contacts=self.edges.max_batch_contacts, max_bytes=self.edges.max_batch_bytes
            )
            try:
                with self.stage("read"):
                    self.read_segments(destination, custom_fields, spool)
                self.store.save(record)
                if spool.count > destination.max_profiles:
                    raise ProfileLimitError(
                        f"the segments hold {spool.count} valid profiles, more than max_profiles "
                        f"({destination.max_profiles}) for destination '{destination.name}'; nothing "
                        "was sent. Raise max_profiles in destinations.json if this is expected."
                    )
                with self.stage("send"):
                    jobs = self.send(client, spool)
                with self.stage("jobs"):
                    self.wait_for_jobs(client, jobs)
            finally:
                spool.close()
        finally:
            client.close()

    def resolve_lists(self, client: SendGridClient, destination: Destination) -> list[str]:
        ids: list[str] = []
        for ref in destination.lists:
            found = self._find_list(client, ref)
            if found is not None:
                ids.append(found["id"])
                self.record.lists.append({"id": found["id"], "name": found.get("name"), "action": "found"})
                continue
            if ref.id is not None or not ref.create_if_missing:
                hint = "" if ref.id else ' (or set "create_if_missing": true)'
                raise ExportError(f"SendGrid has no {ref.describe()}: create it in SendGrid first{hint}.")
            if self.options.dry_run:
                self.record.lists.append({"id": None, "name": ref.name, "action": "would_create"})
                continue
            created = client.create_list(ref.name or "")
            ids.append(created["id"])
            self.record.lists.append({"id": created["id"], "name": ref.name, "action": "created"})
            log.info("created SendGrid list %s for %s", created["id"], destination.name)
        return ids

    @staticmethod
    def _find_list(client: SendGridClient, ref: ListRef) -> dict[str, Any] | None:
        if ref.id is not None:
            return client.get_list(ref.id)
        return next((item for item in client.iter_lists() if item.get("name") == ref.name), None)

    def resolve_custom_fields(self, client: SendGridClient, destination: Destination) -> dict[str, CustomFieldDef]:
        wanted = dict(destination.mapping.custom_fields) if destination.mapping else {}
        if not wanted:
            return {}
        definitions = client.field_definitions().get("custom_fields") or []
        by_name = {d.get("name"): d for d in definitions if isinstance(d, dict)}
        missing = sorted(name for name in wanted if name not in by_name)
        if missing:
            raise ConfigError(
                f"SendGrid has no custom field named {', '.join(repr(m) for m in missing)}: create "
                "it in SendGrid (Marketing > Custom Fields) or fix the mapping.",
                destination=destination.name,
                field="mapping.custom_fields",
            )
        return {
            name: CustomFieldDef(name=name, id=str(by_name[name]["id"]), field_type=str(by_name[name]["field_type"]))
            for name in wanted
        }

    def read_segments(
        self, destination: Destination, custom_fields: dict[str, CustomFieldDef], spool: BatchSpool
    ) -> None:
        counts = self.record.counts
        rejects = self.rejects
        seen: set[int] = set()
        # Resolve every segment before reading any, so a missing one fails the run up front.
        plan = [(segment, resolve_segment(self.edges.segments, segment)) for segment in destination.segments]
        for segment, blobs in plan:
            summary: dict[str, Any] = {"path": segment.path, "files": len(blobs), "rows": 0}
            self.record.segments.append(summary)
            for blob in blobs:
                table = open_segment_file(self.edges.segments, blob.name, segment.csv)
                columns = plan_columns(destination.mapping, table.columns, blob.name)
                rules = RowRules(columns, custom_fields)
                name = blob.name
                rows = 0
                for line, fields in table.rows:
                    rows += 1
                    contact, reason, truncated, field_rejects = rules.apply(fields)
                    if contact is None:
                        counts["invalid"] += 1
                        email = fields[columns.email] if columns.email < len(fields) else ""
                        rejects.add(name, line, email, "invalid", reason)
                        continue
                    email = contact["email"]
                    key = hash(email)
                    if key in seen:
                        counts["duplicate"] += 1
                        continue
                    try:
                        spool.add(encode_contact(contact), name, line)
                    except ContactTooLarge as exc:
                        counts["invalid"] += 1
                        rejects.add(name, line, email, "invalid", str(exc))
                        continue
                    seen.add(key)
                    counts["sent"] += 1
                    if truncated:
                        counts["truncated"] += 1
                    if field_rejects:
                        counts["fields_rejected"] += len(field_rejects)
                        for field_name, problem in field_rejects:
                            rejects.add(name, line, email, "field_rejected", problem, field_name)
                counts["read"] += rows
                summary["rows"] += rows
                log.info("read %s: %d rows (%d valid so far)", name, rows, spool.count)

    def send(self, client: SendGridClient, spool: BatchSpool) -> list[tuple[int, str]]:
        """Send every batch; returns ``(batch index, job id)`` of those SendGrid took."""
        jobs: list[tuple[int, str]] = []
        batches = self.record.batches
        abort: str | None = None
        for batch in spool.batches():
            entry: dict[str, Any] = {
                "index": batch.index,
                "contacts": batch.count,
                "bytes": len(batch.body),
                "attempts": 0,
                "job_id": None,
                "status": None,
            }
            batches.append(entry)
            if self.options.dry_run:
                entry["status"] = "dry_run"
                continue
            if abort is not None:
                self._batch_errored(batch, entry, "not_sent", abort)
                continue
            try:
                job_id, stats = client.upsert_contacts(batch.body)
            except SendGridAuthError as exc:
                abort = str(exc)
                self._batch_errored(batch, entry, "refused", abort)
                self.fail(abort)
                continue
            except SendGridError as exc:
                if exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
                    self._batch_errored(batch, entry, "refused", str(exc), exc.errors)
                    continue
                # SendGrid is unreachable or failing: the rest would fail the same way.
                abort = f"batch {batch.index} could not be delivered: {exc}"
                self._batch_errored(batch, entry, "undelivered", str(exc))
                self.fail(abort)
                continue
            entry.update(attempts=stats.attempts, rate_limited=stats.rate_limited, job_id=job_id, status="pending")
            jobs.append((batch.index, job_id))
            log.info(
                "sent batch %d: %d contacts, %d bytes, %d attempt(s)",
                batch.index,
                batch.count,
                len(batch.body),
                stats.attempts,
            )
        if self.options.dry_run:
            return []
        self.store.save(self.record)
        return jobs

    def _batch_errored(
        self,
        batch: Any,
        entry: dict[str, Any],
        status: str,
        message: str,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        entry["status"] = status
        entry["error"] = mask_emails(message)[:1000]
        self.record.counts["errored"] += batch.count
        per_contact = _errors_by_position(errors or [])
        for position in range(batch.count):
            origin = batch.origin(position)
            reason = per_contact.get(position, message)
            self.rejects.add(origin.source, origin.line, origin.email, "errored", reason)

    def wait_for_jobs(self, client: SendGridClient, jobs: list[tuple[int, str]]) -> None:
        counts = self.record.counts
        for index, job_id in jobs:
            entry = self.record.batches[index]
            try:
                result = client.wait_for_job(
                    job_id, timeout=self.edges.job_timeout, interval=self.edges.job_poll_interval
                )
            except SendGridError as exc:
                result = JobResult(job_id=job_id, status="unknown")
                entry["error"] = mask_emails(str(exc))[:1000]
            entry["status"] = result.status
            entry["job"] = {
                "requested": result.requested,
                "created": result.created,
                "updated": result.updated,
                "errored": result.errored,
            }
            if result.errors_url:
                entry["job"]["errors_url"] = result.errors_url
            if result.status in ("completed", "errored"):
                errored = min(result.errored, entry["contacts"])
                counts["accepted"] += entry["contacts"] - errored
                counts["errored"] += errored
                counts["created"] += result.created
                counts["updated"] += result.updated
            else:
                # failed, or not finished in time: nothing of this batch is confirmed.
                counts["errored"] += entry["contacts"]
                if result.status == "timeout":
                    self.record.errors.append(
                        f"import job of batch {index} did not finish within {self.edges.job_timeout:.0f}s; "
                        "its contacts are counted errored and will be sent again by the next run."
                    )


def _errors_by_position(errors: list[dict[str, Any]]) -> dict[int, str]:
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
