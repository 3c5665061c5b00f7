"""Per-destination sync state: what SendGrid has accepted from this app, and in what shape.

For each contact SendGrid confirmed, the state keeps a 64-bit key (BLAKE2b of the email) and a
64-bit fingerprint (BLAKE2b of the exact JSON sent plus the list ids), in two sorted ``array('Q')``
columns: 16 bytes a contact, 16 MB at a million, searched with ``bisect``. Destinations in
``mirror`` mode also keep each contact's email (the only way to remove it from a list later).

Crash safety: as each import job is confirmed, its contacts are written to a journal blob of the
run (``state/{destination}/journal-{run_id}-{batch}.bin``). The full state is written once at the end
of a run, then the journals are deleted. A run that dies leaves its journal, and the next run's
load applies it: only what SendGrid did not confirm is sent again.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .errors import ExportError
from .storage import BlobNotFound, BlobStore

MAGIC = b"SGSYNC01"
_HEADER = struct.Struct("<8sBQ")  # magic, flags, count
_HAS_EMAILS = 1
_JOURNAL_RECORD = struct.Struct("<QQH")  # key, fingerprint, email length; then the email bytes


def email_key(email: str) -> int:
    return int.from_bytes(hashlib.blake2b(email.encode("utf-8"), digest_size=8).digest(), "little")


def fingerprint(encoded_contact: bytes, list_salt: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(encoded_contact, digest_size=8, key=list_salt[:64]).digest(), "little")


def list_salt(list_ids: Iterable[str]) -> bytes:
    """Lists are part of what was sent: adding a list to a destination resends everyone."""
    return hashlib.blake2b(",".join(sorted(list_ids)).encode(), digest_size=32).digest()


def state_blob_name(destination: str) -> str:
    return f"state/{destination}/state.bin"


def journal_prefix(destination: str) -> str:
    return f"state/{destination}/journal-"


class SyncStateError(ExportError):
    pass


@dataclass
class SyncState:
    keys: array = field(default_factory=lambda: array("Q"))
    fingerprints: array = field(default_factory=lambda: array("Q"))
    emails: list[str] | None = None  # aligned with keys; kept for mirror mode only

    def __len__(self) -> int:
        return len(self.keys)

    def fingerprint_of(self, key: int) -> int | None:
        i = bisect_left(self.keys, key)
        if i < len(self.keys) and self.keys[i] == key:
            return int(self.fingerprints[i])
        return None

    def email_at(self, index: int) -> str | None:
        return self.emails[index] if self.emails is not None else None

    # -- persistence ----------------------------------------------------------------------------

    @classmethod
    def load(cls, store: BlobStore, destination: str, *, with_emails: bool) -> SyncState:
        try:
            raw = store.read_bytes(state_blob_name(destination))
        except BlobNotFound:
            state = cls(emails=[] if with_emails else None)
        else:
            state = cls.from_bytes(raw, with_emails=with_emails, source=state_blob_name(destination))
        journals = sorted(b.name for b in store.list_blobs(journal_prefix(destination)))
        if journals:
            updates = StateUpdates()
            for name in journals:
                updates.extend_from_journal(store.read_bytes(name))
            state = state.merged(updates, removed=set(), keep_emails=with_emails)
        return state

    @classmethod
    def from_bytes(cls, raw: bytes, *, with_emails: bool, source: str) -> SyncState:
        if len(raw) < _HEADER.size:
            raise SyncStateError(f"sync state {source} is truncated; delete it to resend everything once.")
        magic, flags, count = _HEADER.unpack_from(raw)
        if magic != MAGIC:
            raise SyncStateError(f"sync state {source} is not in a known format; delete it to resend everything once.")
        start = _HEADER.size
        keys, fps = array("Q"), array("Q")
        keys.frombytes(raw[start : start + 8 * count])
        fps.frombytes(raw[start + 8 * count : start + 16 * count])
        if len(keys) != count or len(fps) != count:
            raise SyncStateError(f"sync state {source} is truncated; delete it to resend everything once.")
        emails: list[str] | None = None
        if with_emails:
            if flags & _HAS_EMAILS:
                text = gzip.decompress(raw[start + 16 * count :]).decode("utf-8")
                emails = text.split("\n") if count else []
            else:
                emails = [""] * count  # state from upsert mode: these contacts' emails are unknown
        return cls(keys, fps, emails)

    def to_bytes(self) -> bytes:
        flags = _HAS_EMAILS if self.emails is not None else 0
        parts = [_HEADER.pack(MAGIC, flags, len(self.keys)), self.keys.tobytes(), self.fingerprints.tobytes()]
        if self.emails is not None:
            parts.append(gzip.compress("\n".join(self.emails).encode("utf-8"), compresslevel=5))
        return b"".join(parts)

    def save(self, store: BlobStore, destination: str) -> None:
        store.write_bytes(state_blob_name(destination), self.to_bytes(), content_type="application/octet-stream")

    # -- change ---------------------------------------------------------------------------------

    def merged(self, updates: StateUpdates, *, removed: set[int], keep_emails: bool) -> SyncState:
        """A new state: this one, less ``removed`` keys, with ``updates`` applied (newest wins)."""
        upd_keys, upd_fps, upd_emails = updates.sorted_unique()
        keys, fps = array("Q"), array("Q")
        emails: list[str] | None = [] if keep_emails else None
        i = j = 0
        old_keys, old_fps, old_emails = self.keys, self.fingerprints, self.emails
        n_old, n_upd = len(old_keys), len(upd_keys)
        while i < n_old or j < n_upd:
            if j >= n_upd or (i < n_old and old_keys[i] < upd_keys[j]):
                key = old_keys[i]
                if key not in removed:
                    keys.append(key)
                    fps.append(old_fps[i])
                    if emails is not None:
                        emails.append(old_emails[i] if old_emails is not None else "")
                i += 1
                continue
            key = upd_keys[j]
            if i < n_old and old_keys[i] == key:
                i += 1  # replaced by the update
            keys.append(key)
            fps.append(upd_fps[j])
            if emails is not None:
                emails.append(upd_emails[j] if upd_emails is not None else "")
            j += 1
        return SyncState(keys, fps, emails)

    def keys_not_in(self, present: set[int]) -> Iterator[int]:
        """Indexes of entries whose key is not in ``present`` (mirror mode's removal candidates)."""
        for index, key in enumerate(self.keys):
            if key not in present:
                yield index


class StateUpdates:
    """Confirmed (key, fingerprint[, email]) triples, in the order they were confirmed."""

    def __init__(self) -> None:
        self.keys = array("Q")
        self.fingerprints = array("Q")
        self.emails: list[str] | None = None

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, key: int, fp: int, email: str | None) -> None:
        self.keys.append(key)
        self.fingerprints.append(fp)
        if email is not None:
            if self.emails is None:
                self.emails = [""] * (len(self.keys) - 1)
            self.emails.append(email)
        elif self.emails is not None:
            self.emails.append("")

    def journal_bytes(self, start: int = 0) -> bytes:
        """The records from ``start`` on, in the journal's binary form."""
        out = bytearray()
        for i in range(start, len(self.keys)):
            email = (self.emails[i] if self.emails is not None else "").encode("utf-8")
            out += _JOURNAL_RECORD.pack(self.keys[i], self.fingerprints[i], len(email))
            out += email
        return bytes(out)

    def extend_from_journal(self, raw: bytes) -> None:
        offset = 0
        while offset + _JOURNAL_RECORD.size <= len(raw):
            key, fp, length = _JOURNAL_RECORD.unpack_from(raw, offset)
            offset += _JOURNAL_RECORD.size
            email = raw[offset : offset + length].decode("utf-8")
            offset += length
            self.add(key, fp, email or None)

    def sorted_unique(self) -> tuple[array, array, list[str] | None]:
        """Sorted by key; where a key repeats, the last confirmed entry wins."""
        keys_of = self.keys.__getitem__
        ordered = sorted(range(len(self.keys)), key=keys_of)  # stable: equal keys keep their order
        order = [
            index
            for position, index in enumerate(ordered)
            if position + 1 == len(ordered) or keys_of(ordered[position + 1]) != keys_of(index)
        ]
        keys = array("Q", (self.keys[i] for i in order))
        fps = array("Q", (self.fingerprints[i] for i in order))
        emails = [self.emails[i] for i in order] if self.emails is not None else None
        return keys, fps, emails
