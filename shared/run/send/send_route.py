"""Which way a run's contacts go to SendGrid: upserts (``PUT /v3/marketing/contacts``, a batch a
request) or CSV import (:mod:`shared.run.send.bulk_import`, up to a million contacts a file).

``SENDGRID_BULK_IMPORT``: ``never`` upserts, ``always`` imports, ``auto`` (the default) holds the
spool's batches until it knows: once the contacts to send reach ``SENDGRID_BULK_IMPORT_THRESHOLD``
the run imports them all; if the segment files are scanned to hold fewer rows, or reading ends
below it, the batches go by upsert. A small delta of a large segment then waits for the read
(seconds) before its few upserts; a large run never spends an upsert.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from shared.run.send.batching import BatchSpool
from shared.run.send.bulk_import import BulkImporter
from shared.run.send.sending import BatchSender, SendOutcome

log = logging.getLogger(__name__)


class Sending(Protocol):
    """What the run asks of whatever sends its batches."""

    @property
    def released(self) -> int: ...

    def ready(self, index: int) -> None: ...

    def open(self) -> None: ...

    def halt(self, reason: str) -> None: ...

    def finish(self, tick: Callable[[], None] | None = None) -> SendOutcome: ...

    def stop(self, reason: str) -> SendOutcome: ...


class SendRouter:
    """Hands each closed batch to the upsert sender or to the importer, as the mode decides."""

    def __init__(
        self,
        spool: BatchSpool,
        mode: str,
        threshold: int,
        upserts: Callable[[], BatchSender],
        imports: Callable[[], BulkImporter],
    ):
        self._spool, self._mode, self._threshold = spool, mode, threshold
        self._make_upserts, self._make_imports = upserts, imports
        self._lock = threading.Lock()
        self._chosen: BatchSender | BulkImporter | None = None
        self._held: list[int] = []
        self._held_contacts = 0
        self._open = False
        self._halted: str | None = None
        if mode == "never":
            self._choose(upserts())
        elif mode == "always":
            self._choose(imports())

    @property
    def by_import(self) -> bool:
        return isinstance(self._chosen, BulkImporter)

    @property
    def released(self) -> int:
        return self._chosen.released if self._chosen is not None else 0

    def _choose(self, sender: BatchSender | BulkImporter) -> None:
        self._chosen = sender
        if self._halted is not None:
            sender.halt(self._halted)
        for index in self._held:
            sender.ready(index)
        self._held.clear()
        if self._open:
            sender.open()

    def ready(self, index: int) -> None:
        with self._lock:
            if self._chosen is None:
                self._held.append(index)
                self._held_contacts += self._spool.contacts_in(index)
                if self._held_contacts >= self._threshold:
                    log.info("%d contacts or more to send: sending by CSV import", self._threshold)
                    self._choose(self._make_imports())
                return
            chosen = self._chosen
        chosen.ready(index)

    def at_most(self, contacts: int) -> None:
        """The segments hold at most ``contacts`` rows (the scan's bound): below the threshold,
        upserts at once, so that they go while reading goes on."""
        with self._lock:
            if self._chosen is None and contacts < self._threshold:
                self._choose(self._make_upserts())

    def open(self) -> None:
        with self._lock:
            self._open = True
            chosen = self._chosen
        if chosen is not None:
            chosen.open()

    def halt(self, reason: str) -> None:
        with self._lock:
            self._halted = self._halted or reason
            chosen = self._chosen
        if chosen is not None:
            chosen.halt(reason)

    def _settled_choice(self) -> BatchSender | BulkImporter:
        with self._lock:
            if self._chosen is None:  # reading ended below the threshold: upserts
                self._choose(self._make_upserts())
            assert self._chosen is not None
            return self._chosen

    def finish(self, tick: Callable[[], None] | None = None) -> SendOutcome:
        return self._settled_choice().finish(tick)

    def stop(self, reason: str) -> SendOutcome:
        return self._settled_choice().stop(reason)


def release_to(start: Callable[[], None], sender: Sending) -> Callable[[int], None]:
    """The spool's ``on_ready`` (as :func:`shared.run.send.sending.release_when_ready`, for any
    :class:`Sending`): each closed batch goes to ``sender``, the first one calls ``start`` (the scan)."""

    def on_ready(index: int) -> None:
        start()
        sender.ready(index)

    return on_ready
