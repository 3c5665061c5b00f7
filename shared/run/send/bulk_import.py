"""Sending by CSV import: a million contacts in two requests instead of 34-124 upserts.

The spool's batches are gathered in groups of at most 1,000,000 contacts (SendGrid's limit for
one file). Each group is written as one gzipped CSV in the run's temporary folder
(:mod:`shared.run.send.import_file`), then ``PUT /v3/marketing/contacts/imports`` names its columns and
lists and answers an upload link, and the file is streamed to the link from disk. The job is then
journaled and followed exactly as an upsert job (:mod:`shared.run.send.bulk_settling`): one ``sent-``
blob for the whole job, its errored contacts named from ``errors_url``, the rest confirmed batch
by batch, and a stopped run's job settled by the next run by its id.

:class:`BulkImporter` has the interface of :class:`shared.run.send.sending.BatchSender`: the run hands
it the batches as the spool closes them.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from array import array
from collections.abc import Callable

import orjson

from shared.context import propagate
from shared.errors import SendGridAuthError, SendGridError
from shared.privacy import redact
from shared.run.ports import SendGridApi
from shared.run.record_parts import BatchEntry, BatchStatus
from shared.run.send.batching import BatchSpool
from shared.run.send.import_file import (
    MAX_GROUP_JSON_BYTES,
    ImportColumns,
    columns_for,
    keys_in,
    reserved_ids,
    write_import_file,
)
from shared.run.send.sending import PendingJob, SendOutcome, batch_entry

log = logging.getLogger(__name__)

# Told a job SendGrid accepted: its first batch, its id, each batch's pending job, and the keys,
# fingerprints and (mirror mode) emails of all its contacts, for its sent- journal.
GroupAccepted = Callable[[int, str, list[PendingJob], "array[int]", "array[int]", list[str] | None], None]


class BulkImporter:
    """Imports the batches handed to :meth:`ready`, a group of up to ``rows`` contacts a file."""

    def __init__(
        self,
        client: SendGridApi,
        spool: BatchSpool,
        list_ids: list[str],
        *,
        rows: int,
        mirror: bool,
        on_accepted: GroupAccepted | None = None,
    ):
        self._client, self._spool, self._list_ids = client, spool, list_ids
        self._rows, self._mirror, self._on_accepted = rows, mirror, on_accepted
        self._group: list[int] = []
        self._group_rows = self._group_bytes = 0
        self._queue: queue.SimpleQueue[list[int] | None] = queue.SimpleQueue()
        self._held: list[list[int]] = []
        self._lock = threading.Lock()
        self._open = False
        self._abort: str | None = None
        self._crash: BaseException | None = None
        self._reserved: dict[str, str] | None = None
        self.outcome = SendOutcome()
        self.released = 0
        self.files = self.requests = 0  # import files uploaded, and requests spent for them
        self._thread = threading.Thread(target=propagate(self._run), name="sendgrid-importer", daemon=True)
        self._thread.start()

    # -- the run's thread -----------------------------------------------------------------------

    def ready(self, index: int) -> None:
        count, size = self._spool.contacts_in(index), self._spool.bytes_in(index)
        if self._group and (self._group_rows + count > self._rows or self._group_bytes + size > MAX_GROUP_JSON_BYTES):
            self._close_group()
        self._group.append(index)
        self._group_rows += count
        self._group_bytes += size

    def _close_group(self) -> None:
        group, self._group, self._group_rows, self._group_bytes = self._group, [], 0, 0
        if not group:
            return
        with self._lock:
            if self._open:
                self._release(group)
            else:
                self._held.append(group)

    def _release(self, group: list[int]) -> None:
        self.released += len(group)
        self._queue.put(group)

    def open(self) -> None:
        with self._lock:
            if not self._open:
                self._open = True
                for group in self._held:
                    self._release(group)
                self._held.clear()

    def halt(self, reason: str) -> None:
        if self._abort is None:
            self._abort = reason

    def finish(self, tick: Callable[[], None] | None = None) -> SendOutcome:
        self._close_group()
        self.open()
        self._queue.put(None)
        while self._thread.is_alive():
            self._thread.join(timeout=0.5)
            if tick is not None:
                tick()
        if self._crash is not None:
            raise self._crash
        return self.outcome

    def stop(self, reason: str) -> SendOutcome:
        self.halt(reason)
        self._queue.put(None)
        self._thread.join()
        return self.outcome

    # -- the importing thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while (group := self._queue.get()) is not None:
                entries = [batch_entry(self._spool.batch(i)) for i in group]
                for entry in entries:
                    entry["via"] = "import"
                self.outcome.entries.extend(entries)
                if self._abort is not None:
                    self._not_imported(group, entries, "not_sent", self._abort)
                else:
                    self._import(group, entries)
        except BaseException as exc:  # handed to the run's thread by finish()
            self._crash = exc

    def _import(self, group: list[int], entries: list[BatchEntry]) -> None:
        path = None
        try:
            columns = self._columns(group)
            path = write_import_file(self._spool, group, columns, None)
            self.requests += 1
            upload = self._client.start_import(self._list_ids, list(columns.mappings))
            for entry in entries:
                entry["job_id"], entry["status"], entry["attempts"] = upload.job_id, "pending", 1
            self.requests += 1
            self._client.upload_import_file(upload, path)
        except SendGridError as exc:
            status: BatchStatus = "refused" if exc.status is not None and 400 <= exc.status < 500 else "undelivered"
            self._not_imported(group, entries, status, str(exc))
            if self._abort is None or isinstance(exc, SendGridAuthError):
                self._abort = f"the import of batches {group[0]}-{group[-1]} failed: {exc}"
                self.outcome.failures.append(redact(self._abort)[:1000])
            return
        finally:
            if path is not None:
                os.unlink(path)
        self.files += 1
        self._accepted(group, entries, upload.job_id)
        log.info("imported batches %d-%d by one file: job accepted", group[0], group[-1])

    def _columns(self, group: list[int]) -> ImportColumns:
        if self._reserved is None:
            self.requests += 1
            self._reserved = reserved_ids(self._client.field_definitions())
        keys, custom = keys_in(self._spool, group)
        return columns_for(keys, custom, self._reserved)

    def _accepted(self, group: list[int], entries: list[BatchEntry], job_id: str) -> None:
        items: list[PendingJob] = []
        keys, fps = array("Q"), array("Q")
        emails: list[str] | None = [] if self._mirror else None
        for index, entry in zip(group, entries, strict=True):
            batch = self._spool.batch(index)
            keys.extend(batch.columns["keys"])
            fps.extend(batch.columns["fps"])
            if emails is not None:
                emails.extend(orjson.loads(batch.encoded(p))["email"] for p in range(batch.count))
            item = PendingJob(index, job_id, range(batch.count), 0, entry)
            items.append(item)
            self.outcome.pending.append(item)
        if self._on_accepted is not None:
            self._on_accepted(group[0], job_id, items, keys, fps, emails)

    def _not_imported(self, group: list[int], entries: list[BatchEntry], status: BatchStatus, message: str) -> None:
        for index, entry in zip(group, entries, strict=True):
            batch = self._spool.batch(index)
            entry["status"], entry["error"] = status, redact(message)[:1000]
            for position in range(batch.count):
                origin = batch.origin(position)
                self.outcome.rejects.append((origin.source, origin.line, origin.email, "errored", message))
            self.outcome.errored += batch.count
