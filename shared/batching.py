"""Batches for ``PUT /v3/marketing/contacts``: at most 30,000 contacts and 6,000,000 bytes each.

Each contact is encoded to JSON once, and its exact byte length decides where batches end, so the
limit is measured, not guessed. Encoded contacts are spooled to a temporary file, not held in
memory: a run reads and checks every row (``max_profiles`` fails a run *before* anything is sent)
and only then sends.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

MAX_CONTACTS_PER_BATCH = 30_000
MAX_BATCH_BYTES = 6_000_000


# One encoder for every contact: json.dumps with non-default options builds a new one per call.
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode


def encode_contact(contact: dict[str, Any]) -> bytes:
    return _ENCODE(contact).encode("utf-8")


def envelope(list_ids: list[str]) -> tuple[bytes, bytes]:
    """The bytes before and after the comma-joined contacts of one request body."""
    head = b'{"list_ids":' + json.dumps(list_ids, separators=(",", ":")).encode() + b',"contacts":['
    return head, b"]}"


@dataclass(frozen=True)
class Origin:
    """Where a spooled contact came from: the segment file and the line its row starts on."""

    source: str
    line: int
    email: str


@dataclass
class Batch:
    """One request's worth of spooled contacts; ``body`` is the exact request body."""

    index: int
    body: bytes
    count: int
    _records: list[bytes]
    _sources: list[str]
    _head: bytes
    _tail: bytes

    def _fields(self, position: int) -> list[bytes]:
        return self._records[position].split(b"\t", 4)

    def origin(self, position: int) -> Origin:
        """Decoded only when needed (for rejects): the hot path never parses a record back."""
        src, line, _, _, encoded = self._fields(position)
        return Origin(self._sources[int(src)], int(line), json.loads(encoded)["email"])

    def state_entry(self, position: int) -> tuple[int, int, bytes]:
        """``(email key, fingerprint, encoded contact)`` of one contact."""
        _, _, key, fp, encoded = self._fields(position)
        return int(key), int(fp), encoded

    def body_for(self, positions: list[int]) -> bytes:
        """The request body of only these contacts (to resend a batch without its refused rows)."""
        return self._head + b",".join(self._fields(p)[4] for p in positions) + self._tail


@dataclass
class _Plan:
    offset: int  # where the batch's first spooled record starts in the spool file
    length: int  # bytes of spooled records
    count: int
    body_bytes: int


class ContactTooLarge(ValueError):
    pass


class BatchSpool:
    """Collects encoded contacts on disk and cuts them into request-sized batches."""

    def __init__(
        self,
        list_ids: list[str],
        *,
        max_contacts: int = MAX_CONTACTS_PER_BATCH,
        max_bytes: int = MAX_BATCH_BYTES,
    ):
        self._head, self._tail = envelope(list_ids)
        self._max_contacts = max_contacts
        self._max_bytes = max_bytes
        self._file = tempfile.TemporaryFile(prefix="sendgrid-spool-")  # noqa: SIM115 - lives until close()
        self._plans: list[_Plan] = []
        self._offset = 0
        self._sources: list[str] = []
        self._source_index: dict[str, int] = {}
        self._open: _Plan | None = None
        self.count = 0

    @property
    def empty_body_bytes(self) -> int:
        return len(self._head) + len(self._tail)

    def add(self, encoded: bytes, source: str, line: int, key: int = 0, fp: int = 0) -> None:
        """Spool one encoded contact; raises :class:`ContactTooLarge` if it can never fit."""
        size = len(encoded)
        if self.empty_body_bytes + size > self._max_bytes:
            raise ContactTooLarge(f"contact is {size} bytes of JSON, over the batch limit")
        plan = self._open
        if plan is None or plan.count >= self._max_contacts or plan.body_bytes + 1 + size > self._max_bytes:
            plan = _Plan(offset=self._offset, length=0, count=0, body_bytes=self.empty_body_bytes - 1)
            self._plans.append(plan)
            self._open = plan
        src = self._source_index.get(source)
        if src is None:
            src = self._source_index[source] = len(self._sources)
            self._sources.append(source)
        record = b"%d\t%d\t%d\t%d\t%s\n" % (src, line, key, fp, encoded)
        self._file.write(record)
        self._offset += len(record)
        plan.length += len(record)
        plan.count += 1
        plan.body_bytes += 1 + size  # the comma before it (the first one's is paid by the -1)
        self.count += 1

    @property
    def batch_count(self) -> int:
        return len(self._plans)

    def batches(self) -> Iterator[Batch]:
        for index in range(len(self._plans)):
            yield self.batch(index)

    def batch(self, index: int) -> Batch:
        plan = self._plans[index]
        self._file.flush()
        self._file.seek(plan.offset)
        records = self._file.read(plan.length).split(b"\n")[:-1]
        body = self._head + b",".join(record.split(b"\t", 4)[4] for record in records) + self._tail
        assert len(body) == plan.body_bytes, "batch size bookkeeping is off"
        self._file.seek(0, 2)  # back to the end, where add() writes
        return Batch(index, body, plan.count, records, self._sources, self._head, self._tail)

    def close(self) -> None:
        self._file.close()
