"""Per-destination sync state: what SendGrid has accepted from this app, and in what shape.

For each contact SendGrid confirmed, the state keeps two 64-bit numbers in ``array('Q')``
columns (16 bytes a contact, 16 MB at a million): the contact's key (BLAKE2b of its email) and
the fingerprint of the source row that produced what was sent (BLAKE2b of the row's fields,
salted with everything else that shapes the payload: lists, column plan, custom fields, the row
rules' version). A row whose fingerprint is in the state maps to exactly what SendGrid already
has, so it is skipped without being mapped or encoded: that is what makes a delta run fast.
Destinations in ``mirror`` mode also keep each contact's email, the only way to find it again
to take it off a list.

Crash safety: as each import job is confirmed, its contacts are written to a journal blob of the
run (``state/{destination}/journal-{run_id}-{batch}.bin``). The full state is written once at the
end of a run, then the journals are deleted. A run that dies leaves its journals, and the next
run's load applies them: only what SendGrid did not confirm is sent again.
"""

from __future__ import annotations

import gzip
import logging
import struct
import zlib
from array import array
from collections import deque
from collections.abc import Iterator, Set
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import ne

from shared.adapters.storage import BlobNotFound, BlobStore
from shared.run.journal import StateUpdates, SyncStateError, corrupt, journal_prefix
from shared.run.keysets import MISSING, KeySet, PositionIndex

log = logging.getLogger(__name__)

MAGIC = b"SGSYNC02"
_HEADER = struct.Struct("<8sBQ")  # magic, flags, count
_HAS_EMAILS = 1
# Mirror mode's departed contacts search could not find yet: key -> epoch second of the first miss.
_HAS_PENDING = 2
_PENDING_COUNT = struct.Struct("<Q")
# Update keys looked up in the state at once when merging: bounds the lists of a run of millions.
_MERGE_BLOCK = 65_536
# bytes.translate table: 1 for a byte 0 (a state entry no row claimed), 0 for any other.
_UNCLAIMED = bytes([1]) + bytes(255)


def state_blob_name(destination: str) -> str:
    return f"state/{destination}/state.bin"


@dataclass
class SyncState:
    keys: array[int] = field(default_factory=lambda: array("Q"))
    fingerprints: array[int] = field(default_factory=lambda: array("Q"))
    emails: list[str] | None = None  # aligned with keys; kept for mirror mode only
    # Mirror mode: departed contacts not yet found by search (see shared.run.removals).
    pending: dict[int, int] = field(default_factory=dict)
    # Built when first asked for; a state is not changed once loaded (merged() makes a new one).
    _indexes: dict[str, PositionIndex] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.keys)

    def fingerprint_keys(self) -> dict[int, int]:
        """Fingerprint -> email key, for every contact SendGrid confirmed (a dict: for tests and
        small states; a run uses :meth:`fingerprint_index`)."""
        return dict(zip(self.fingerprints, self.keys, strict=True))

    def fingerprint_index(self) -> PositionIndex:
        """Fingerprint -> position in this state, about 9 bytes an entry. Not kept: only the read
        needs it, and at ten million entries it is 90 MB the merge can use."""
        return PositionIndex(self.fingerprints)

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
        try:
            raw = store.read_bytes(state_blob_name(destination))
        except BlobNotFound:
            state = empty
        else:
            try:
                state = cls.from_bytes(raw, with_emails=with_emails, source=state_blob_name(destination))
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
            state = state.merged(updates, removed=set(), keep_emails=with_emails)
        return state

    @classmethod
    def from_bytes(cls, raw: bytes, *, with_emails: bool, source: str) -> SyncState:
        if len(raw) < _HEADER.size:
            raise corrupt(source, "it is truncated")
        magic, flags, count = _HEADER.unpack_from(raw)
        if magic != MAGIC:
            raise corrupt(source, "it is not in a known format")
        start = _HEADER.size
        if len(raw) < start + 16 * count:
            raise corrupt(source, "it is truncated")
        # Slices of a memoryview: the arrays are the only copies of a state of 16 bytes a contact.
        view = memoryview(raw)
        keys, fps = array("Q"), array("Q")
        keys.frombytes(view[start : start + 8 * count])
        fps.frombytes(view[start + 8 * count : start + 16 * count])
        start += 16 * count
        pending: dict[int, int] = {}
        if flags & _HAS_PENDING:
            if len(raw) < start + _PENDING_COUNT.size:
                raise corrupt(source, "it is truncated")
            (waiting,) = _PENDING_COUNT.unpack_from(raw, start)
            start += _PENDING_COUNT.size
            if len(raw) < start + 16 * waiting:
                raise corrupt(source, "it is truncated")
            pending_keys, first_misses = array("Q"), array("Q")
            pending_keys.frombytes(view[start : start + 8 * waiting])
            first_misses.frombytes(view[start + 8 * waiting : start + 16 * waiting])
            pending = dict(zip(pending_keys, first_misses, strict=True))
            start += 16 * waiting
        emails: list[str] | None = None
        if with_emails:
            if flags & _HAS_EMAILS:
                try:
                    text = gzip.decompress(view[start:]).decode("utf-8")
                except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:  # BadGzipFile is an OSError
                    raise corrupt(source, f"its emails do not decompress ({type(exc).__name__})") from None
                emails = text.split("\n") if count else []
                if len(emails) != count:
                    raise corrupt(source, f"it holds {len(emails)} emails for {count} contacts")
            else:
                emails = [""] * count  # state from upsert mode: these contacts' emails are unknown
        return cls(keys, fps, emails, pending)

    def to_bytes(self) -> bytes:
        flags = (_HAS_EMAILS if self.emails is not None else 0) | (_HAS_PENDING if self.pending else 0)
        # memoryviews, not tobytes(): join() copies the columns once, into the blob.
        parts: list[bytes | memoryview] = [
            _HEADER.pack(MAGIC, flags, len(self.keys)),
            memoryview(self.keys),
            memoryview(self.fingerprints),
        ]
        if self.pending:
            parts += [
                _PENDING_COUNT.pack(len(self.pending)),
                array("Q", self.pending.keys()).tobytes(),
                array("Q", self.pending.values()).tobytes(),
            ]
        if self.emails is not None:
            parts.append(gzip.compress("\n".join(self.emails).encode("utf-8"), compresslevel=5))
        return b"".join(parts)

    def save(self, store: BlobStore, destination: str) -> None:
        store.write_bytes(state_blob_name(destination), self.to_bytes(), content_type="application/octet-stream")

    # -- change ---------------------------------------------------------------------------------

    def merged(
        self,
        updates: StateUpdates,
        *,
        removed: set[int],
        keep_emails: bool,
        pending: dict[int, int] | None = None,
    ) -> SyncState:
        """A new state: this one, less ``removed`` keys and the keys ``updates`` supersede, plus
        ``updates`` (for a key confirmed twice, the last one). ``pending`` replaces the pending
        map (None keeps this one's); a key confirmed again is no longer pending."""
        # The update keys, positioned (about 9 bytes a key where a set of them costs 70).
        confirmed = PositionIndex(updates.keys, check_distinct=True)
        if confirmed.distinct and all(confirmed.find(key) == MISSING for key in removed):
            new = self._merged_distinct(updates, removed, keep_emails)
        else:
            new = self._merged(updates, removed=removed, keep_emails=keep_emails)
        waiting = self.pending if pending is None else pending
        if waiting and keep_emails:
            new.pending = {k: t for k, t in waiting.items() if confirmed.find(k) == MISSING and k not in removed}
        return new

    def _merged(self, updates: StateUpdates, *, removed: set[int], keep_emails: bool) -> SyncState:
        # A key confirmed twice: only journals of runs that died, applied at load (small).
        keys, fps = array("Q"), array("Q")
        emails: list[str] | None = [] if keep_emails else None
        # Newest first, so that of a key confirmed twice (journals of several runs) the last wins.
        updated: set[int] = set()
        for index in range(len(updates.keys) - 1, -1, -1):
            key = updates.keys[index]
            if key in updated or key in removed:
                continue
            updated.add(key)
            keys.append(key)
            fps.append(updates.fingerprints[index])
            if emails is not None:
                emails.append(updates.emails[index] if updates.emails is not None else "")
        old_emails = self.emails
        for index, key in enumerate(self.keys):
            if key in updated or key in removed:
                continue
            keys.append(key)
            fps.append(self.fingerprints[index])
            if emails is not None:
                emails.append(old_emails[index] if old_emails is not None else "")
        return SyncState(keys, fps, emails)

    def _merged_distinct(self, updates: StateUpdates, removed: Set[int], keep_emails: bool) -> SyncState:
        # The usual case, no key confirmed twice: whole-array operations, not a loop in Python
        # (a million entries take a tenth of the time).
        # One byte an entry (1 to keep it), not a list of a million references.
        kept = bytearray(b"\x01") * len(self.keys)
        if self.keys and (updates.keys or removed):
            index, clear = self.key_index(), kept.__setitem__
            for start in range(0, len(updates.keys), _MERGE_BLOCK):
                found = index.find_many(updates.keys[start : start + _MERGE_BLOCK])
                _exhaust(map(clear, compress(found, map(ne, found, repeat(MISSING))), repeat(0)))
            for key in removed:
                if (at := index.find(key)) != MISSING:
                    kept[at] = 0
        keys, fps = array("Q", updates.keys), array("Q", updates.fingerprints)
        # What is kept comes in runs (a delta drops a few entries here and there): each run is
        # copied as bytes, not as a million ints.
        old_keys, old_fps = memoryview(self.keys).cast("B"), memoryview(self.fingerprints).cast("B")
        runs = list(_runs_of_ones(kept))
        for start, stop in runs:
            keys.frombytes(old_keys[8 * start : 8 * stop])
            fps.frombytes(old_fps[8 * start : 8 * stop])
        old_keys.release()
        old_fps.release()
        emails: list[str] | None = None
        if keep_emails:
            emails = list(updates.emails) if updates.emails is not None else [""] * len(updates.keys)
            for start, stop in runs:
                emails.extend(self.emails[start:stop] if self.emails is not None else repeat("", stop - start))
        return SyncState(keys, fps, emails)

    def indexes_not_in(self, present: Set[int] | RunKeys) -> Iterator[int]:
        """Indexes of entries whose key is not in ``present`` (mirror mode's removal candidates)."""
        if isinstance(present, RunKeys) and present.state is self:
            return present.unclaimed()
        return (index for index, key in enumerate(self.keys) if key not in present)


def _exhaust(calls: Iterator[object]) -> None:
    """Make every call of a ``map()``: a deque of length 0 drains it in C, not in a Python loop."""
    deque(calls, maxlen=0)


def _runs_of_ones(flags: bytearray) -> Iterator[tuple[int, int]]:
    """(start, stop) of each run of 1 bytes in ``flags`` (of 0 and 1 only)."""
    start, end = flags.find(1), len(flags)
    while 0 <= start < end:
        stop = flags.find(0, start)
        stop = end if stop < 0 else stop
        yield start, stop
        start = flags.find(1, stop)


class RunKeys:
    """The email keys of a run's valid contacts: de-duplication (the first row wins) and, in
    mirror mode, who is still present.

    A key the state holds is one byte, at its position in the state (``claimed``); any other key
    is in a :class:`KeySet`. A delta run of a million unchanged rows so costs a megabyte where a
    set of ints cost a hundred, and claims its rows a chunk at a time by position, without
    making their keys. Without a state (a ``--full`` run in upsert mode), every key is in the set.
    """

    def __init__(self, state: SyncState | None = None):
        self.state = state
        self.claimed = bytearray(len(state.keys) if state is not None else 0)
        self.claimed_count = 0
        self.others = KeySet()

    def __len__(self) -> int:
        return self.claimed_count + len(self.others)

    def __bool__(self) -> bool:
        return len(self) > 0

    def locate(self, key: int) -> int:
        """The key's position in the state, or ``MISSING``."""
        if self.state is None or not self.claimed:
            return MISSING
        return self.state.key_index().find(key)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, int):
            return False
        at = self.locate(key)
        return bool(self.claimed[at]) if at != MISSING else key in self.others

    def add(self, key: int, at: int | None = None) -> None:
        """Add ``key``; ``at`` is its position in the state if already located."""
        if at is None:
            at = self.locate(key)
        if at == MISSING:
            self.others.add(key)
        elif not self.claimed[at]:
            self.claimed[at] = 1
            self.claimed_count += 1

    def claim(self, position: int) -> None:
        """Claim the state position of a key located with :meth:`locate`."""
        if not self.claimed[position]:
            self.claimed[position] = 1
            self.claimed_count += 1

    def claim_unclaimed(self, positions: Set[int]) -> None:
        """Claim state positions none of which is claimed yet (the caller has checked)."""
        _exhaust(map(self.claimed.__setitem__, positions, repeat(1)))
        self.claimed_count += len(positions)

    def unclaimed(self) -> Iterator[int]:
        """The positions in the state of the keys no row of the run holds."""
        return compress(range(len(self.claimed)), self.claimed.translate(_UNCLAIMED))
