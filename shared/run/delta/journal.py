"""The journals of a run: contacts SendGrid confirmed, written as each import job is confirmed,
so that a run that dies keeps them (the next run's load applies them; see
:mod:`shared.run.delta.sync_state`); and each job SendGrid accepted, written as it is accepted with what
it holds (``sent-`` blobs), so that the next run settles a job a stopped run left by its id
instead of sending its contacts again (:mod:`shared.run.send.resume`)."""

from __future__ import annotations

import struct
from array import array

from shared.errors import ExportError

# A journal: magic, count, the keys, the fingerprints, then (mirror mode) the emails, one a line.
_JOURNAL = struct.Struct("<8sQ")
JOURNAL_MAGIC = b"SGJRNL02"
_LEGACY_JOURNAL_RECORD = struct.Struct("<QQH")  # key, fingerprint, email length; then the email bytes


def _first(group: tuple[tuple[int, ...], int, int]) -> tuple[int, ...]:
    return group[0]


def journal_prefix(destination: str) -> str:
    return f"state/{destination}/journal-"


def sent_prefix(destination: str) -> str:
    return f"state/{destination}/sent-"


def sent_blob_name(destination: str, run_id: str, index: int, part: int) -> str:
    return f"{sent_prefix(destination)}{run_id}-{index:05d}-{part:02d}.bin"


def journal_for_sent(sent_name: str) -> str:
    """The journal a sent blob's job confirms into: the name its own run would have given it."""
    folder, _, name = sent_name.rpartition("/")
    return f"{folder}/journal-{name.removeprefix('sent-')}"


# A sent blob: magic, the job id's length and the job id, then a journal of what the job holds.
_SENT = struct.Struct("<8sH")
SENT_MAGIC = b"SGSENT01"
MAX_JOB_ID = 200


def sent_bytes(job_id: str, keys: array[int], fps: array[int], emails: list[str] | None) -> bytes:
    held = StateUpdates()
    held.extend(keys, fps, emails)
    encoded = job_id.encode("utf-8")[:MAX_JOB_ID]
    return _SENT.pack(SENT_MAGIC, len(encoded)) + encoded + held.journal_bytes()


def parse_sent(raw: bytes, source: str) -> tuple[str, StateUpdates]:
    """The job id and the contacts of a sent blob; :class:`SyncStateError` if it is damaged."""
    if len(raw) < _SENT.size or not raw.startswith(SENT_MAGIC):
        raise corrupt(source, "it is not a sent-batch journal")
    length = _SENT.unpack_from(raw)[1]
    if length == 0 or length > MAX_JOB_ID or len(raw) < _SENT.size + length:
        raise corrupt(source, "its job id is damaged")
    try:
        job_id = raw[_SENT.size : _SENT.size + length].decode("utf-8")
    except UnicodeDecodeError:
        raise corrupt(source, "its job id is not UTF-8") from None
    held = StateUpdates()
    journal = raw[_SENT.size + length :]
    if not journal.startswith(JOURNAL_MAGIC):
        raise corrupt(source, "its contacts are damaged")
    held.extend_from_journal(journal, source=source)
    return job_id, held


class SyncStateError(ExportError):
    pass


def corrupt(blob: str, why: str) -> SyncStateError:
    """The one wording of a corrupt state or journal: which blob, why, and the two ways out."""
    return SyncStateError(
        f"the sync state is corrupt ({blob}: {why}): delete {blob} or run with --full "
        "(either way the next run sends every contact once)."
    )


class StateUpdates:
    """Confirmed (key, fingerprint[, email]) triples, in the order they were confirmed, and where
    each group of them stands in the run's input (its batch), for a state in input order."""

    def __init__(self, *, one_per_key: bool = False) -> None:
        # Whether no key comes twice: a run whose keys all went through its exact key set (a
        # first run, a --full one in upsert mode), as each contact is then sent once; a (batch,
        # part) added twice makes it False. Journals of dead runs may repeat a key, and so may a
        # delta's updates if a damaged state holds a key twice.
        self.one_per_key = one_per_key
        self.keys = array("Q")
        self.fingerprints = array("Q")
        self.emails: list[str] | None = None
        # (where in the input, start, stop) of each group added: jobs end in any order.
        self._groups: list[tuple[tuple[int, ...], int, int]] = []
        self._orders: set[tuple[int, ...]] = set()

    def __len__(self) -> int:
        return len(self.keys)

    def in_input_order(self) -> list[tuple[int, int]]:
        """(start, stop) of the groups of triples, in the order their rows came in the input."""
        return [(start, stop) for _, start, stop in sorted(self._groups, key=_first)]

    def extend(
        self, keys: array[int], fps: array[int], emails: list[str] | None, order: tuple[int, ...] | None = None
    ) -> None:
        """Add many triples at once; ``emails`` aligned with ``keys``, or None if none is kept.
        ``order`` is where they stand in the input (their batch and part); by default, after
        every group added so far."""
        start = len(self.keys)
        where = order if order is not None else (len(self._groups),)
        if where in self._orders:
            self.one_per_key = False
        self._orders.add(where)
        self._groups.append((where, start, start + len(keys)))
        if emails is None and self.emails is not None:
            emails = [""] * len(keys)
        elif emails is not None and self.emails is None:
            self.emails = [""] * len(self.keys)
        self.keys.extend(keys)
        self.fingerprints.extend(fps)
        if self.emails is not None and emails is not None:
            self.emails.extend(emails)

    def add(self, key: int, fp: int, email: str | None) -> None:
        # One at a time (a journal of the earlier format, tests): part of the last group.
        self.one_per_key = False
        if self._groups:
            order, start, stop = self._groups[-1]
            self._groups[-1] = (order, start, stop + 1)
        else:
            self._groups.append(((0,), 0, 1))
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
        parts = [
            _JOURNAL.pack(JOURNAL_MAGIC, len(self.keys) - start),
            self.keys[start:].tobytes(),
            self.fingerprints[start:].tobytes(),
        ]
        if self.emails is not None:
            parts.append("\n".join(self.emails[start:]).encode("utf-8"))
        return b"".join(parts)

    def extend_from_journal(self, raw: bytes, *, source: str = "a sync state journal") -> None:
        if not raw.startswith(JOURNAL_MAGIC):
            self._extend_from_legacy_journal(raw, source)
            return
        count = _JOURNAL.unpack_from(raw)[1] if len(raw) >= _JOURNAL.size else -1
        if count < 0 or len(raw) < _JOURNAL.size + 16 * count:
            raise corrupt(source, "the journal is truncated")
        keys, fps = array("Q"), array("Q")
        keys.frombytes(raw[_JOURNAL.size : _JOURNAL.size + 8 * count])
        fps.frombytes(raw[_JOURNAL.size + 8 * count : _JOURNAL.size + 16 * count])
        rest = raw[_JOURNAL.size + 16 * count :]
        emails = None
        if rest and count:
            try:
                emails = rest.decode("utf-8").split("\n")
            except UnicodeDecodeError:
                raise corrupt(source, "the journal's emails are not UTF-8") from None
            if len(emails) != count:
                raise corrupt(source, f"the journal holds {len(emails)} emails for {count} contacts")
        self.extend(keys, fps, emails)

    def _extend_from_legacy_journal(self, raw: bytes, source: str) -> None:
        # Written by versions before journal format 2; only a run that died leaves one behind.
        # Parsed whole before anything is added, so a corrupt one adds nothing.
        parsed: list[tuple[int, int, str | None]] = []
        offset = 0
        while offset + _LEGACY_JOURNAL_RECORD.size <= len(raw):
            key, fp, length = _LEGACY_JOURNAL_RECORD.unpack_from(raw, offset)
            offset += _LEGACY_JOURNAL_RECORD.size
            if offset + length > len(raw):
                raise corrupt(source, "the journal is truncated")
            try:
                email = raw[offset : offset + length].decode("utf-8")
            except UnicodeDecodeError:
                raise corrupt(source, "the journal's emails are not UTF-8") from None
            offset += length
            parsed.append((key, fp, email or None))
        if offset != len(raw):
            raise corrupt(source, "the journal is truncated")
        for key, fp, maybe_email in parsed:
            self.add(key, fp, maybe_email)
