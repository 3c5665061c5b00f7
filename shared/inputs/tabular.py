"""A segment file opened for reading (:class:`TabularFile`), and what both readers, CSV and JSON
Lines, do to records alike: strip control characters, and refuse an over-long record with its
reason instead of parsing it."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from shared.inputs.record_split import OVERSIZED, RecordChunk

# Control characters other than tab, line feed and carriage return (NUL, the C0 and C1 blocks,
# DEL) and the byte-order mark: they are removed from values, never sent to SendGrid.
_CONTROLS = "".join(map(chr, (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0), 0xFEFF)))
_ASCII_CONTROLS = _CONTROLS[: _CONTROLS.index("\x80")]
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufeff]")


class Tally:
    """What parsing a file's records changed in them, counted."""

    def __init__(self) -> None:
        self.control_chars_stripped = 0


# Fields of each record, or None when it cannot be parsed, with its reason by index.
Parsed = tuple[list[list[str] | None], dict[int, str]]


@dataclass
class TabularFile:
    """One segment file opened for reading: its column names and a stream of its records."""

    name: str
    columns: list[str]
    chunks: Iterator[RecordChunk]
    parse: Callable[[list[str]], Parsed]
    problem: str = ""
    tally: Tally = field(default_factory=Tally)

    @property
    def control_chars_stripped(self) -> int:
        """Records read so far whose values held control characters, which were removed."""
        return self.tally.control_chars_stripped

    @property
    def rows(self) -> Iterator[tuple[int, list[str] | None]]:
        """Every record parsed, as ``(line, fields)``; ``problem`` says why when fields is None."""
        for chunk in self.chunks:
            parsed, problems = self.parse(chunk.records)
            for index, fields in enumerate(parsed):
                if fields is None:
                    self.problem = problems.get(index, "unreadable record")
                yield chunk.line_of(index), fields


def refusing_oversized(parse: Callable[[list[str]], Parsed], limit: int) -> Callable[[list[str]], Parsed]:
    """``parse``, with every over-long record (:data:`OVERSIZED`) refused with its reason."""
    reason = (
        f"the record is longer than {limit:,} characters (MAX_RECORD_BYTES): refused, and the file read "
        "on from the line after it"
    )

    def guarded(batch: list[str]) -> Parsed:
        if OVERSIZED not in batch:  # a C loop of length checks: the usual chunk pays nothing more
            return parse(batch)
        keep = [index for index, record in enumerate(batch) if record is not OVERSIZED]
        parsed, problems = parse([batch[index] for index in keep])
        rows: list[list[str] | None] = [None] * len(batch)
        reasons = {index: reason for index, record in enumerate(batch) if record is OVERSIZED}
        for position, index in enumerate(keep):
            rows[index] = parsed[position]
            if position in problems:
                reasons[index] = problems[position]
        return rows, reasons

    return guarded


def may_hold_controls(text: str) -> bool:
    """Whether ``text`` may hold a control character: one fast substring search per character,
    which costs the hot path far less than a regular expression or a per-value test would."""
    return any(map(text.__contains__, _ASCII_CONTROLS if text.isascii() else _CONTROLS))


def without_controls(batch: list[str], tally: Tally) -> list[str]:
    """The records with control characters removed, each changed one counted."""
    cleaned = []
    for record in batch:
        if CONTROL.search(record):
            record = CONTROL.sub("", record)
            tally.control_chars_stripped += 1
        cleaned.append(record)
    return cleaned
