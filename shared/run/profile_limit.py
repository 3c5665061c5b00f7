"""``max_profiles``: proven before anything is sent, and before any list is created.

A scan reads every file through without parsing it (each must open, carry the mapping and
decompress to the end) and counts its line breaks: at least as many as the records it holds. If
that bound is within ``max_profiles``, the run may send as soon as batches fill. If it is not,
the files may still hold few enough valid profiles (rows rejected, duplicates): a run that must
create a list first counts the distinct valid emails by the row rules, and fails then if they are
too many (nothing sent, no list created); any other run reads on with its batches held on disk,
and checks the count it read. The bound is also the total the run's progress is measured against.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from shared.adapters.storage import BlobStore
from shared.context import propagate
from shared.errors import ExportError, ProfileLimitError, SegmentChanged
from shared.inputs.config import Destination
from shared.inputs.mapping import plan_columns
from shared.inputs.rows import RowRules
from shared.inputs.segments import SegmentPlan, open_segment_file, scan_segment_file
from shared.run.delta import KeySet, email_key

log = logging.getLogger(__name__)


def record_bound(
    store: BlobStore,
    plan: SegmentPlan,
    destination: Destination,
    max_record_bytes: int,
    cancelled: threading.Event | None = None,
) -> int | None:
    """At least as many records as the files hold (it stops counting once past max_profiles);
    None when a file does not scan (the read meets the same fault and reports it, naming the
    file) or the scan was cancelled."""
    bound = 0
    try:
        for _, files in plan:
            for file in files:
                if cancelled is not None and cancelled.is_set():
                    return None
                scanned = store if cancelled is None else _Cancellable(store, cancelled)
                columns, rows = scan_segment_file(scanned, file, destination.mapping, max_record_bytes)
                plan_columns(destination.mapping, columns, file.name)
                bound += rows
                if bound > destination.max_profiles:
                    return bound
    except ScanCancelled:
        return None
    except SegmentChanged:
        raise  # the run must stop: no read of this run may use the new version
    except ExportError as exc:
        log.info("a segment file did not scan (%s): sending waits for the whole read", type(exc).__name__)
        return None
    return bound


class ScanCancelled(ExportError):
    """The run no longer needs the scan (it ended, or its read finished first)."""


class _Cancellable:
    """The segments store, but a download stops at the next chunk once the scan is cancelled:
    a run that ends (Ctrl-C, a failure) must not wait for a scan to finish a large file."""

    def __init__(self, store: BlobStore, cancelled: threading.Event):
        self._store, self._cancelled = store, cancelled

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def iter_chunks(self, name: str, snapshot: str | None = None, *, etag: str | None = None) -> Iterator[bytes]:
        for chunk in self._store.iter_chunks(name, snapshot, etag=etag):
            if self._cancelled.is_set():
                raise ScanCancelled("the scan was cancelled")
            yield chunk


class BoundScan:
    """:func:`record_bound` on a thread of its own, started once, cancellable between files.
    ``on_bound`` is told the bound when it is known (from the scan's thread). A segment that
    changed since it was listed is kept in ``changed`` and raised by :meth:`result`."""

    def __init__(
        self,
        store: BlobStore,
        plan: SegmentPlan,
        destination: Destination,
        max_record_bytes: int,
        on_bound: Callable[[int | None], None] | None = None,
    ):
        self._cancelled = threading.Event()
        self.bound: int | None = None
        self.changed: SegmentChanged | None = None

        def scan() -> None:
            try:
                self.bound = record_bound(store, plan, destination, max_record_bytes, self._cancelled)
            except SegmentChanged as exc:  # the read meets it too, pinned to the same version
                self.changed = exc
            if on_bound is not None and not self._cancelled.is_set():
                on_bound(self.bound)

        self._thread = threading.Thread(target=propagate(scan), name="segment-scan", daemon=True)

    @property
    def started(self) -> bool:
        return self._thread.ident is not None

    def start(self) -> None:
        if not self.started:
            self._thread.start()

    def result(self) -> int | None:
        self.start()
        self._thread.join()
        if self.changed is not None:
            raise self.changed
        return self.bound

    def cancel(self) -> None:
        self._cancelled.set()
        if self.started:
            self._thread.join()


def require_within_limit(store: BlobStore, plan: SegmentPlan, destination: Destination, max_record_bytes: int) -> int:
    """Count the distinct valid emails, and fail past ``max_profiles`` (as soon as it is passed)."""
    limit = destination.max_profiles
    keys = KeySet()  # compact: this count must not cost memory a set of ints would (see keysets)
    for _, files in plan:
        for file in files:
            table = open_segment_file(store, file, destination.mapping, max_record_bytes)
            rules = RowRules(plan_columns(destination.mapping, table.columns, file.name))
            for _, fields in table.rows:
                if fields is None:
                    continue
                contact = rules.apply(fields)[0]
                if contact is not None:
                    keys.add(email_key(contact["email"]))
                    if len(keys) > limit:
                        raise ProfileLimitError(
                            f"the segments hold more than max_profiles ({limit}) valid profiles for destination "
                            f"'{destination.name}'; nothing was sent and no list was created. Raise max_profiles "
                            "in destinations.json if this is expected."
                        )
    return len(keys)
