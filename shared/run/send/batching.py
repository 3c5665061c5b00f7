"""Batches for ``PUT /v3/marketing/contacts``: at most 30,000 contacts and ``max_bytes`` each.

Each contact is encoded to JSON once, and its exact byte length decides where batches end, so the
limit is measured, not guessed. Encoded contacts are spooled to a temporary file, not held in
memory, so sending can lag reading (or wait for all of it) without memory growing.
"""

from __future__ import annotations

import json
import os
import tempfile
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate, repeat
from typing import Any

import orjson

from shared.json_input import JsonObject
from shared.settings import MAX_CONTACTS_PER_BATCH

# The contacts document's limit; the run's own cap is lower (settings.DEFAULT_MAX_BATCH_BYTES).
MAX_BATCH_BYTES = 6_000_000


class ContactNotEncodable(ValueError):
    """A contact value JSON cannot carry: text holding undecodable bytes (lone surrogates)."""


def encode_contact(contact: JsonObject) -> bytes:
    """The contact's JSON, UTF-8. Raises :class:`ContactNotEncodable` for undecodable text.

    orjson, not the json module: every contact of a run is encoded here, the hottest call of a
    run, and orjson takes a third of the time of json's C encoder.
    """
    try:
        return orjson.dumps(contact)
    except orjson.JSONEncodeError as exc:
        raise ContactNotEncodable(str(exc)) from None


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


# Per contact, the spool keeps five numbers in columns (28 bytes, written to disk with the
# batch): where its JSON ends in the batch's region, its source file, its line, its email key and
# its row fingerprint.
_COLUMNS = (("ends", "I"), ("sources", "I"), ("lines", "I"), ("keys", "Q"), ("fps", "Q"))
_CONTACT_META_BYTES = sum(array(code).itemsize for _, code in _COLUMNS)
_PLUS_ONE = (1).__add__


@dataclass
class Batch:
    """One request's worth of spooled contacts; ``body`` is the exact request body."""

    index: int
    body: bytes
    count: int
    columns: dict[str, array[Any]]
    _sources: list[str]
    _head: bytes
    _tail: bytes

    def encoded(self, position: int) -> bytes:
        """The JSON of one contact, sliced from the body."""
        ends = self.columns["ends"]
        start = ends[position - 1] + 1 if position else 0
        offset = len(self._head)
        return self.body[offset + start : offset + ends[position]]

    def origin(self, position: int) -> Origin:
        """Decoded only when needed (for rejects): the hot path never parses a contact back."""
        source = self._sources[self.columns["sources"][position]]
        return Origin(source, self.columns["lines"][position], json.loads(self.encoded(position))["email"])

    def body_for(self, positions: list[int]) -> bytes:
        """The request body of only these contacts (to resend a batch without its refused rows)."""
        return self._head + b",".join(self.encoded(p) for p in positions) + self._tail


@dataclass
class _Plan:
    offset: int  # where the batch's contacts start in the spool file
    length: int  # bytes of contacts, each followed by a comma
    meta_offset: int  # where its columns start in the column file
    count: int


class ContactTooLarge(ValueError):
    @classmethod
    def of(cls, encoded: bytes) -> ContactTooLarge:
        return cls(f"contact is {len(encoded)} bytes of JSON, over the batch limit")


class BatchSpool:
    """Collects encoded contacts on disk and cuts them into request-sized batches.

    A batch's contacts are written as one region, each followed by a comma, so its request body is
    the envelope around that region: sending builds nothing per contact. A closed batch can be
    read (from any thread) while later ones are still being filled; ``on_ready`` is told the
    index of each batch as it closes.
    """

    def __init__(
        self,
        list_ids: list[str],
        *,
        max_contacts: int = MAX_CONTACTS_PER_BATCH,
        max_bytes: int = MAX_BATCH_BYTES,
        on_ready: Callable[[int], None] | None = None,
    ):
        self._head, self._tail = envelope(list_ids)
        self.empty_body_bytes = len(self._head) + len(self._tail)
        self._max_contacts = max_contacts
        self._max_bytes = max_bytes
        self.on_ready = on_ready
        self._file = tempfile.TemporaryFile(prefix="sendgrid-spool-")  # noqa: SIM115 - lives until close()
        self._meta = tempfile.TemporaryFile(prefix="sendgrid-spool-meta-")  # noqa: SIM115
        self._plans: list[_Plan] = []
        self._offset = self._meta_offset = 0
        self._sources: list[str] = []
        self._source_index: dict[str, int] = {}
        # The open batch: its contacts (each followed by a comma) and its columns.
        self._buffer = bytearray()
        self._columns = {name: array(code) for name, code in _COLUMNS}
        self.count = 0

    @property
    def max_contact_bytes(self) -> int:
        """The largest encoded contact that fits in a batch on its own."""
        return self._max_bytes - self.empty_body_bytes

    def add(self, encoded: bytes, source: str, line: int, key: int = 0, fp: int = 0) -> None:
        """Spool one encoded contact; raises :class:`ContactTooLarge` if it can never fit."""
        self.add_many([encoded], source, [line], [key], [fp])

    def add_many(
        self, encoded: list[bytes], source: str, lines: Sequence[int], keys: Sequence[int], fps: Sequence[int]
    ) -> None:
        """Spool contacts in order, as many :meth:`add` calls would, a batch's worth at a time.

        Raises :class:`ContactTooLarge` (having spooled those before it) for a contact that can
        never fit.
        """
        src = self._source_index.get(source)
        if src is None:
            src = self._source_index[source] = len(self._sources)
            self._sources.append(source)
        start = 0
        while start < len(encoded):
            columns = self._columns
            room = self._max_contacts - len(columns["ends"])
            part = encoded[start : start + room]
            # ends[i] - base: where contact i's JSON ends; each is followed by a comma, and the
            # body holds the region less its last comma.
            ends = list(accumulate(map(_PLUS_ONE, map(len, part))))
            fitting = bisect_right(ends, self._max_bytes - self.empty_body_bytes - len(self._buffer) + 1)
            if not fitting:
                if columns["ends"]:
                    self._close_batch()
                    continue
                raise ContactTooLarge.of(part[0])
            stop = start + fitting
            base = len(self._buffer) - 1
            self._buffer += b",".join(part[:fitting])
            self._buffer += b","
            columns["ends"].extend(map(base.__add__, ends[:fitting]))
            columns["sources"].extend(repeat(src, fitting))
            columns["lines"].extend(lines[start:stop])
            columns["keys"].extend(keys[start:stop])
            columns["fps"].extend(fps[start:stop])
            self.count += fitting
            start = stop
            if len(columns["ends"]) >= self._max_contacts:
                self._close_batch()

    def _close_batch(self) -> None:
        count = len(self._columns["ends"])
        if not count:
            return
        plan = _Plan(self._offset, len(self._buffer), self._meta_offset, count)
        self._file.write(self._buffer)
        self._file.flush()
        meta = b"".join(column.tobytes() for column in self._columns.values())
        self._meta.write(meta)
        self._meta.flush()
        self._offset += plan.length
        self._meta_offset += len(meta)
        self._buffer = bytearray()
        self._columns = {name: array(code) for name, code in _COLUMNS}
        self._plans.append(plan)
        if self.on_ready is not None:
            self.on_ready(len(self._plans) - 1)

    def finish(self) -> None:
        """Close the last, partly filled batch (no more contacts come)."""
        self._close_batch()

    @property
    def batch_count(self) -> int:
        return len(self._plans)

    def contacts_in(self, index: int) -> int:
        """How many contacts closed batch ``index`` holds, without reading it."""
        return self._plans[index].count

    def bytes_in(self, index: int) -> int:
        """The bytes of closed batch ``index``'s contacts (their JSON), without reading it."""
        return self._plans[index].length

    def batches(self) -> Iterator[Batch]:
        self.finish()
        for index in range(len(self._plans)):
            yield self.batch(index)

    def batch(self, index: int) -> Batch:
        plan = self._plans[index]
        # pread: no shared file position, so a batch can be read while the next one is written.
        region = os.pread(self._file.fileno(), plan.length, plan.offset)
        meta = os.pread(self._meta.fileno(), plan.count * _CONTACT_META_BYTES, plan.meta_offset)
        columns: dict[str, array[Any]] = {}
        at = 0
        for name, code in _COLUMNS:
            column = array(code)
            column.frombytes(meta[at : at + plan.count * column.itemsize])
            at += plan.count * column.itemsize
            columns[name] = column
        body = self._head + region[:-1] + self._tail
        return Batch(index, body, plan.count, columns, self._sources, self._head, self._tail)

    def close(self) -> None:
        self._file.close()
        self._meta.close()
