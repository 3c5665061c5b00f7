"""CSV segment files: delimiter detection, the header row, and records parsed a chunk at a time
by the csv module, one record at a time only where a chunk holds one it refuses."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from shared.errors import SegmentError
from shared.inputs.blob_stream import check_encoding, open_binary
from shared.inputs.destination import CSV_DELIMITERS, CsvOptions
from shared.inputs.record_split import OVERSIZED, QuoteTest, RecordChunk, RecordSyntax, drop_first, split_records
from shared.inputs.tabular import Parsed, TabularFile, Tally, may_hold_controls, refusing_oversized, without_controls
from shared.settings import DEFAULT_MAX_RECORD_BYTES, MAX_RECORD_BYTES_LIMIT

# No real header is this long; a file whose first line is has no header, or is not CSV.
MAX_HEADER_CHARS = 1024 * 1024

# Rows may hold long free-text fields; the csv module's default of 128 KiB would stop a run. A
# record's length is bounded by MAX_RECORD_BYTES, so a field's is too. The limit is process-wide
# (the csv module has no other), so no parser may rely on it for a bound: every CSV the app parses
# has its records cut to length BEFORE csv sees them (segments: MAX_RECORD_BYTES, in
# record_split; errors files: MAX_RECORD_CHARS, in run/import_errors), and this raised limit
# never decides what any parse holds.
csv.field_size_limit(MAX_RECORD_BYTES_LIMIT)


def read_csv(
    chunks: Iterable[bytes], name: str, options: CsvOptions, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
) -> TabularFile:
    """Open a CSV stream; the header (if any) is read now, the records lazily."""
    binary, head = open_binary(chunks, name)
    check_encoding(head, options.encoding, name)
    encoding = "utf-8-sig" if options.encoding in ("utf-8", "utf-8-sig") else options.encoding
    sample = head.decode(encoding, errors="replace")
    delimiter = options.delimiter or detect_delimiter(sample)
    # surrogateescape keeps undecodable bytes as lone surrogates: the row that holds them is
    # rejected by the row rules instead of the whole file failing.
    text = io.TextIOWrapper(binary, encoding=encoding, errors="surrogateescape", newline="")
    # Lines end with "\n" (or "\r\n"); a file with only "\r" uses that.
    separator = "\r" if "\n" not in sample and "\r" in sample else "\n"
    ends_open = QuoteTest(delimiter) if options.quoted else None
    syntax = RecordSyntax(separator, ends_open, _is_blank_csv, _has_blank_csv)
    records = split_records(text, name, syntax, max_record_bytes)
    tally = Tally()
    parse = refusing_oversized(_csv_parser(_dialect(delimiter, options.quoted), tally), max_record_bytes)
    if options.header:
        columns, records = _read_header(records, parse, options, name, max_record_bytes)
    else:
        assert options.columns is not None  # config validation guarantees it
        columns = list(options.columns)
        if options.skip_repeated_header:
            records = _skip_repeated_header(records, columns, parse)
    if not any(columns):
        raise SegmentError(f"segment file '{name}': the header row has no column names.")
    return TabularFile(name=name, columns=columns, chunks=records, parse=parse, tally=tally)


# Any: csv.reader's format parameters, of several types.
def _dialect(delimiter: str, quoted: bool) -> dict[str, Any]:
    if quoted:
        return {"delimiter": delimiter, "quotechar": '"', "doublequote": True, "strict": False}
    return {"delimiter": delimiter, "quoting": csv.QUOTE_NONE}


def _csv_parser(dialect: dict[str, Any], tally: Tally) -> Callable[[list[str]], Parsed]:
    def parse_csv(batch: list[str]) -> Parsed:
        # The csv module refuses a NUL: control characters go before the record is parsed.
        if may_hold_controls("".join(batch)):
            batch = without_controls(batch, tally)
        return _parse_csv(batch, dialect)

    return parse_csv


def _read_header(
    records: Iterator[RecordChunk], parse: Callable[[list[str]], Parsed], options: CsvOptions, name: str, limit: int
) -> tuple[list[str], Iterator[RecordChunk]]:
    """The column names (the header's, unless the segment names them), and the records after it."""
    first = next(records, None)
    if first is None:
        raise SegmentError(f"segment file '{name}' is empty: no header row.")
    if first.records[0] is OVERSIZED or len(first.records[0]) > MAX_HEADER_CHARS:
        raise SegmentError(
            f"segment file '{name}': the header row (line {first.line_of(0)}) is longer than "
            f"{min(MAX_HEADER_CHARS, limit):,} characters: no header is. Is the file "
            'CSV, in the encoding set for it? A file without a header row needs "header": false '
            'and "columns".'
        )
    header, problems = parse(first.records[:1])
    if header[0] is None:
        raise SegmentError(f"segment file '{name}': the header row cannot be read ({problems[0]}).")
    columns = list(options.columns) if options.columns else [c.strip() for c in header[0]]
    rest = drop_first(first)
    return columns, itertools.chain([rest] if rest.records else [], records)


def _skip_repeated_header(
    records: Iterator[RecordChunk], columns: list[str], parse: Callable[[list[str]], Parsed]
) -> Iterator[RecordChunk]:
    """A headerless partition whose first row repeats the attribute names: that row is no data."""
    first = next(records, None)
    if first is None:
        return
    parsed, _ = parse(first.records[:1])
    fields = parsed[0] or []
    if [f.strip().lower() for f in fields] == [c.lower() for c in columns]:
        first = drop_first(first)
    if first.records:
        yield first
    yield from records


def _parse_csv(batch: list[str], dialect: dict[str, Any]) -> Parsed:
    try:
        rows: list[list[str] | None] = list(csv.reader(batch, **dialect))
        if len(rows) == len(batch):
            return rows, {}
    except csv.Error:
        pass
    # Rare: a record the csv module refuses. Parse one at a time to name it and keep the rest.
    rows, problems = [], {}
    for index, record in enumerate(batch):
        try:
            rows.append(next(csv.reader([record], **dialect), []))
        except csv.Error as exc:
            rows.append(None)
            problems[index] = f"unreadable CSV record ({exc})"
    return rows, problems


def _is_blank_csv(piece: str) -> bool:
    return not piece or piece == "\r"


def _has_blank_csv(pieces: list[str]) -> bool:
    return "" in pieces or "\r" in pieces  # list containment: a C loop, not a Python one


def detect_delimiter(sample: str) -> str:
    """The candidate that splits the first line into the most fields; ',' when none does."""
    first_line = _first_record(sample.lstrip("\ufeff"))
    counts = {d: _count_unquoted(first_line, d) for d in CSV_DELIMITERS}
    best = max(CSV_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


def _first_record(sample: str) -> str:
    in_quotes = False
    for i, ch in enumerate(sample):
        if ch == '"':
            in_quotes = not in_quotes
        elif ch in "\r\n" and not in_quotes:
            return sample[:i]
    return sample


def _count_unquoted(line: str, delimiter: str) -> int:
    count, in_quotes = 0, False
    for ch in line:
        if ch == '"':
            in_quotes = not in_quotes
        elif ch == delimiter and not in_quotes:
            count += 1
    return count
