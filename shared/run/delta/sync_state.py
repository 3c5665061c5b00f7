"""Per-destination sync state: what SendGrid has accepted from this app, and in what shape.

For each contact SendGrid confirmed, the state keeps two 64-bit numbers in ``array('Q')``
columns (16 bytes a contact, 16 MB at a million): the contact's key (BLAKE2b of its email) and
the fingerprint of the source row that produced what was sent (XXH3 of the row's text, seeded
with everything else that shapes the payload: lists, column plan, custom fields, the row rules'
version; see :mod:`shared.run.delta.identity`). A row whose fingerprint is in the state maps to exactly
what SendGrid already has, so it is skipped without being mapped or encoded: that is what makes
a delta run fast.
The contacts are kept in the order their rows came, so that the next run finds most of its rows
where the state has them (:mod:`shared.run.delta.matching`, :mod:`shared.run.delta.run_order`).
Destinations in ``mirror`` mode also keep each contact's email, the only way to find it again
to take it off a list.

Crash safety: as each import job is confirmed, its contacts are written to a journal blob of the
run (``state/{destination}/journal-{run_id}-{batch}.bin``). The full state is written once at the
end of a run, then the journals are deleted. A run that dies leaves its journals, and the next
run's load applies them: only what SendGrid did not confirm is sent again.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import logging
import struct
from array import array
from collections.abc import Iterable, Iterator, Set
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import ne, not_

from shared.adapters.storage import BlobNotFound, BlobStore, ChunkStream
from shared.context import propagate
from shared.run.delta.journal import StateUpdates, SyncStateError, corrupt, journal_prefix
from shared.run.delta.keysets import (
    MISSING,
    PositionIndex,
    exhaust,
    extend_ranges,
    items_in_ranges,
    ranges_of,
)
from shared.run.delta.run_order import ConfirmedUpdates, RunOrder, gathered
from shared.run.delta.state_blob import BlobReader, read_emails

log = logging.getLogger(__name__)

MAGIC = b"SGSYNC02"
_HEADER = struct.Struct("<8sBQ")  # magic, flags, count
_HAS_EMAILS = 1
# Mirror mode's departed contacts search could not find yet: key -> epoch second of the first miss.
_HAS_PENDING = 2
_PENDING_COUNT = struct.Struct("<Q")
# Update keys looked up in the state at once when merging: bounds the lists of a run of millions.
_MERGE_BLOCK = 65_536
# Up to this many blocks of update keys are found by a pass over the state each; more, through
# its key index.
_SCAN_BLOCKS = 4
# A state up to this size is written in one request; a larger one is streamed in blocks.
_SAVED_WHOLE_BYTES = 4 * 1024 * 1024


def state_blob_name(destination: str) -> str:
    return f"state/{destination}/state.bin"


@dataclass
class SyncState:
    keys: array[int] = field(default_factory=lambda: array("Q"))
    fingerprints: array[int] = field(default_factory=lambda: array("Q"))
    emails: list[str] | None = None  # aligned with keys; kept for mirror mode only
    # Mirror mode: departed contacts not yet found by search (see shared.run.send.removals).
    pending: dict[int, int] = field(default_factory=dict)
    # Built when first asked for; cleared when a merge in place changes the columns.
    _indexes: dict[str, PositionIndex] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.keys)

    def key_index(self) -> PositionIndex:
        """Email key -> position in this state, about 9 bytes an entry."""
        if "keys" not in self._indexes:
            self._indexes["keys"] = PositionIndex(self.keys)
        return self._indexes["keys"]

    def email_at(self, index: int) -> str | None:
        return self.emails[index] if self.emails is not None else None

    # -- persistence ----------------------------------------------------------------------------

    @classmethod
    def load(cls, store: BlobStore, destination: str, *, with_emails: bool, discard_corrupt: bool = False) -> SyncState:
        """The state and any journals a dead run left. ``discard_corrupt`` (a ``--full`` run, which
        sends everyone anyway) starts afresh from a corrupt state or journal instead of failing."""
        empty = cls(emails=[] if with_emails else None)
        name = state_blob_name(destination)
        try:
            state = cls.from_chunks(store.iter_chunks(name), with_emails=with_emails, source=name)
        except BlobNotFound:
            state = empty
        except SyncStateError as exc:
            if not discard_corrupt:
                raise
            log.warning("%s; a full run starts from an empty state (earlier mirror removals are forgotten)", exc)
            state = empty
        journals = sorted(b.name for b in store.list_blobs(journal_prefix(destination)))
        if journals:
            updates = StateUpdates()
            for name in journals:
                try:
                    updates.extend_from_journal(store.read_bytes(name), source=name)
                except SyncStateError as exc:
                    if not discard_corrupt:
                        raise
                    log.warning("%s; a full run goes on without it", exc)
            state = state.merged(updates, removed=set(), keep_emails=with_emails, in_place=True)
        return state

    @classmethod
    def from_bytes(cls, raw: bytes, *, with_emails: bool, source: str) -> SyncState:
        return cls.from_chunks(iter((raw,)), with_emails=with_emails, source=source)

    @classmethod
    def from_chunks(cls, chunks: Iterator[bytes], *, with_emails: bool, source: str) -> SyncState:
        """The state from its blob's chunks, as they download. Each column is filled from them
        directly: a state takes its own 16 bytes a contact and a chunk, not a second copy as a
        whole blob, and a count in a damaged header allocates no more than the blob holds."""
        blob = BlobReader(chunks, source)
        try:
            magic, flags, count = _HEADER.unpack(blob.read(_HEADER.size))
            if magic != MAGIC:
                raise corrupt(source, "it is not in a known format")
            keys, fps = blob.column(count), blob.column(count)
            pending: dict[int, int] = {}
            if flags & _HAS_PENDING:
                (waiting,) = _PENDING_COUNT.unpack(blob.read(_PENDING_COUNT.size))
                pending_keys = blob.column(waiting)
                pending = dict(zip(pending_keys, blob.column(waiting), strict=True))
            emails: list[str] | None = None
            if with_emails:
                emails = read_emails(blob.rest(), count, source) if flags & _HAS_EMAILS else [""] * count
        finally:
            blob.close()
        return cls(keys, fps, emails, pending)

    def blob_parts(self) -> list[bytes | memoryview]:
        """The blob's bytes in parts; the columns as views of themselves, not copies."""
        flags = (_HAS_EMAILS if self.emails is not None else 0) | (_HAS_PENDING if self.pending else 0)
        parts: list[bytes | memoryview] = [
            _HEADER.pack(MAGIC, flags, len(self.keys)),
            memoryview(self.keys).cast("B"),
            memoryview(self.fingerprints).cast("B"),
        ]
        if self.pending:
            parts += [
                _PENDING_COUNT.pack(len(self.pending)),
                array("Q", self.pending.keys()).tobytes(),
                array("Q", self.pending.values()).tobytes(),
            ]
        if self.emails is not None:
            parts.append(gzip.compress("\n".join(self.emails).encode("utf-8"), compresslevel=5))
        return parts

    def to_bytes(self) -> bytes:
        return b"".join(self.blob_parts())

    def save(self, store: BlobStore, destination: str) -> None:
        """Write the state blob whole or not at all. A large one is streamed from the columns in
        blocks (committed at once, at the end), so saving does not copy the state in memory."""
        parts = self.blob_parts()
        name = state_blob_name(destination)
        if sum(map(len, parts)) <= _SAVED_WHOLE_BYTES:
            store.write_bytes(name, b"".join(parts), content_type="application/octet-stream")
        else:
            stream = io.BufferedReader(ChunkStream(parts))
            try:
                store.write_stream(name, stream, content_type="application/octet-stream")
            finally:
                # Views of the columns lock them (no append, no resize) while they live, and a
                # failed write's traceback would keep them: they are let go here.
                stream.close()
                for part in parts:
                    if isinstance(part, memoryview):
                        with contextlib.suppress(BufferError):  # still held elsewhere: left as it was
                            part.release()

    def save_replacing_journals(self, store: BlobStore, destination: str) -> None:
        """Save the state whole, then delete the journals it now holds (one a batch: many)."""
        self.save(store, destination)
        journals = [b.name for b in store.list_blobs(journal_prefix(destination))]
        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="journal-delete") as pool:
            list(pool.map(propagate(store.delete), journals))

    # -- change ---------------------------------------------------------------------------------

    def merged(
        self,
        updates: StateUpdates,
        *,
        removed: set[int],
        keep_emails: bool,
        pending: dict[int, int] | None = None,
        in_place: bool = False,
        order: RunOrder | None = None,
    ) -> SyncState:
        """A new state: this one, with each contact ``updates`` confirmed again replaced where it
        stands, less the ``removed`` keys, then the new contacts in the order their rows came (of
        a key confirmed twice, the last). So the state keeps the order of the input, which is
        what lets the next run confirm its unchanged rows in place (:mod:`shared.run.delta.matching`).
        ``pending`` replaces the pending map (None keeps this one's); a key confirmed again is no
        longer pending. ``in_place`` lets the merge change and reuse this state's columns and
        those of ``updates``, which the caller drops: a run then holds one state, not two.
        ``order`` is the run's: where it differs from this state's, the new state follows it."""
        waiting = self.pending if pending is None else pending
        watched = waiting if waiting and keep_emails else {}
        if updates.one_per_key:
            # Updates that come once a key (a run whose keys all went through its key set):
            # passes over the keys in C, where an index would cost 9 bytes and a visit in Python
            # an update.
            distinct = not removed or not any(map(removed.__contains__, updates.keys))
            again = set(compress(updates.keys, map(watched.__contains__, updates.keys))) if watched else set()
        else:
            # The update keys, positioned (about 9 bytes a key where a set of them costs 70).
            confirmed = PositionIndex(updates.keys, check_distinct=True)
            distinct = bool(confirmed.distinct) and all(confirmed.find(key) == MISSING for key in removed)
            again = {k for k in watched if confirmed.find(k) != MISSING}
            del confirmed  # memory the merge can use
        still_pending = {k: t for k, t in watched.items() if k not in again and k not in removed}
        if distinct:
            new = self._merged_distinct(updates, removed, keep_emails, in_place=in_place, order=order)
        else:
            new = self._merged(updates, removed=removed, keep_emails=keep_emails)
        new.pending = still_pending
        return new

    def _merged(self, updates: StateUpdates, *, removed: set[int], keep_emails: bool) -> SyncState:
        # A key confirmed twice: only journals of runs that died, applied at load (small).
        last = dict(zip(updates.keys, range(len(updates.keys)), strict=True))  # key -> its last confirmation
        keys, fps = array("Q"), array("Q")
        emails: list[str] | None = [] if keep_emails else None
        new_emails, old_emails = updates.emails, self.emails
        for index, key in enumerate(self.keys):
            if key in removed:
                continue
            update = last.pop(key, None)
            keys.append(key)
            if update is None:
                fps.append(self.fingerprints[index])
            else:
                fps.append(updates.fingerprints[update])
            if emails is not None:
                source, at = (old_emails, index) if update is None else (new_emails, update)
                emails.append(source[at] if source is not None else "")
        for start, stop in updates.in_input_order():
            for update in range(start, stop):
                key = updates.keys[update]
                if last.get(key) == update and key not in removed:
                    keys.append(key)
                    fps.append(updates.fingerprints[update])
                    if emails is not None:
                        emails.append(new_emails[update] if new_emails is not None else "")
        return SyncState(keys, fps, emails)

    def _merged_distinct(
        self, updates: StateUpdates, removed: Set[int], keep_emails: bool, *, in_place: bool, order: RunOrder | None
    ) -> SyncState:
        # The usual case, no key confirmed twice: whole-array operations, not a loop in Python
        # (a million entries take a tenth of the time).
        count, in_order = len(self.keys), updates.in_input_order()
        if in_place and not count:
            return _first_state(updates, in_order, keep_emails=keep_emails)
        fps = self.fingerprints if in_place else array("Q", self.fingerprints)
        emails = self._emails_to_merge(keep_emails, in_place=in_place)
        confirmed = ConfirmedUpdates(updates, self._replace_confirmed(updates, fps, emails), in_order)
        self._indexes.clear()  # a key index is of the columns as they were
        if order is not None and count and not order.follows_the_state():
            # The rows came in another order than the state's (contacts added in the middle, or
            # the input reordered): the new state follows this run's.
            columns = _Merging(self.keys, fps, emails)
            if in_place:
                self.keys = array("Q")  # held by the merge alone, which lets it go half-way
            return SyncState(*gathered(order, columns, confirmed, removed, in_place=in_place))
        keys = self.keys if in_place else array("Q", self.keys)
        if removed and count:
            # What is kept comes in runs (a few removed here and there): each run is copied as
            # bytes, not as a million ints.
            kept = bytearray(b"\x01") * count
            exhaust(map(kept.__setitem__, compress(range(count), map(removed.__contains__, self.keys)), repeat(0)))
            keys, fps, emails = _runs_of(kept, keys, fps, emails)
        _append_new(_Merging(keys, fps, emails), confirmed)
        return SyncState(keys, fps, emails)

    def _emails_to_merge(self, keep_emails: bool, *, in_place: bool) -> list[str] | None:
        """The emails column a merge writes into (a copy unless ``in_place``); None if none is kept."""
        if not keep_emails:
            return None
        if self.emails is None:
            return [""] * len(self.keys)
        return self.emails if in_place else list(self.emails)

    def _replace_confirmed(self, updates: StateUpdates, fps: array[int], emails: list[str] | None) -> bytearray:
        """Write each update the state holds (a contact confirmed again) into ``fps`` and
        ``emails`` where its key stands; returns one byte an update, 1 for a contact the state
        does not hold yet (added after the rest)."""
        count, confirmed, new_emails = len(self.keys), len(updates.keys), updates.emails
        # A delta's few updates are found by passes over the state in C; many, through its key index.
        scan = confirmed <= _SCAN_BLOCKS * _MERGE_BLOCK
        is_new = bytearray(b"\x01") * confirmed
        for start in range(0, confirmed if count else 0, _MERGE_BLOCK):
            stop = min(confirmed, start + _MERGE_BLOCK)
            where = self._positions_of(updates.keys[start:stop], scan=scan)
            held = list(map(ne, where, repeat(MISSING)))
            # A contact confirmed again is replaced where it stands (its key is the same).
            exhaust(map(fps.__setitem__, compress(where, held), compress(updates.fingerprints[start:stop], held)))
            if emails is not None:
                replaced = compress(_emails_of(new_emails, start, stop), held)
                exhaust(map(emails.__setitem__, compress(where, held), replaced))
            is_new[start:stop] = bytes(map(not_, held))
        return is_new

    def _positions_of(self, keys: array[int], *, scan: bool) -> list[int]:
        """Where each of ``keys`` (a block of at most ``_MERGE_BLOCK``) is in this state, or
        ``MISSING``: by one pass over the state (``scan``), or through its key index."""
        own = self.keys
        if not scan or "keys" in self._indexes:
            return self.key_index().find_many(keys)
        # One pass over the state in C (about 40 ms a million) where building the index visits a
        # table of millions once an entry, in Python.
        wanted = dict(zip(keys, range(len(keys)), strict=True))
        where = [MISSING] * len(keys)
        for position in compress(range(len(own)), map(wanted.__contains__, own)):
            where[wanted[own[position]]] = position
        return where


@dataclass
class _Merging:
    """The columns a merge gathers from (see :func:`shared.run.delta.run_order.gathered`)."""

    keys: array[int]
    fps: array[int]
    emails: list[str] | None


def _first_state(updates: StateUpdates, in_order: list[tuple[int, int]], *, keep_emails: bool) -> SyncState:
    """A first run's state, merged in place: the confirmed columns are the new state, put in
    input order if the jobs ended in another, a column at a time (one more column held, not two)."""
    if in_order != sorted(in_order):
        updates.keys = ranges_of(updates.keys, in_order)
        updates.fingerprints = ranges_of(updates.fingerprints, in_order)
        if updates.emails is not None:
            updates.emails = list(items_in_ranges(updates.emails, in_order))
    first = (updates.emails if updates.emails is not None else [""] * len(updates.keys)) if keep_emails else None
    return SyncState(updates.keys, updates.fingerprints, first)


def _append_new(columns: _Merging, confirmed: ConfirmedUpdates) -> None:
    """Append to the columns the updates the state did not hold (``confirmed.is_new``), in the
    order their rows came: a whole group at once where all of it is new."""
    updates, is_new = confirmed.updates, confirmed.is_new
    if not any(is_new):
        return
    for start, stop in confirmed.groups:
        fresh = is_new[start:stop]
        if fresh.count(0) == 0:
            extend_ranges(columns.keys, updates.keys, [(start, stop)])
            extend_ranges(columns.fps, updates.fingerprints, [(start, stop)])
        else:
            columns.keys.extend(compress(updates.keys[start:stop], fresh))
            columns.fps.extend(compress(updates.fingerprints[start:stop], fresh))
        if columns.emails is not None:
            columns.emails.extend(compress(_emails_of(updates.emails, start, stop), fresh))


def _emails_of(emails: list[str] | None, start: int, stop: int) -> Iterable[str]:
    """The updates' emails from ``start`` to ``stop``; empty ones where none are kept."""
    return emails[start:stop] if emails is not None else repeat("", stop - start)


def _runs_of(
    kept: bytearray, keys: array[int], fps: array[int], emails: list[str] | None
) -> tuple[array[int], array[int], list[str] | None]:
    """The entries whose byte in ``kept`` is 1, in order."""
    runs = list(_runs_of_ones(kept))
    new_emails = None if emails is None else list(items_in_ranges(emails, runs))
    return ranges_of(keys, runs), ranges_of(fps, runs), new_emails


def _runs_of_ones(flags: bytearray) -> Iterator[tuple[int, int]]:
    """(start, stop) of each run of 1 bytes in ``flags`` (of 0 and 1 only)."""
    start, end = flags.find(1), len(flags)
    while 0 <= start < end:
        stop = flags.find(0, start)
        stop = end if stop < 0 else stop
        yield start, stop
        start = flags.find(1, stop)
