"""Segment inputs: which blobs a segment names, and how each is read as rows, streamed.

A reader yields ``(line_number, fields)`` pairs, where ``line_number`` is the physical line the
record starts on (records may span lines), so a rejected row can be found in its file.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO

from .config import CSV_DELIMITERS, CsvOptions, SegmentRef
from .errors import SegmentError
from .storage import BlobInfo, BlobNotFound, BlobStore, ChunkStream

CSV_SUFFIXES = (".csv", ".txt", ".csv.gz", ".txt.gz")
# How much of a file's start is looked at to detect its delimiter.
_SNIFF_BYTES = 64 * 1024
_BUFFER_BYTES = 1024 * 1024

# Rows may hold long free-text fields; the csv module's default of 128 KiB would stop a run.
csv.field_size_limit(16 * 1024 * 1024)


@dataclass
class TabularFile:
    """One segment file opened for reading: its column names and a stream of its rows."""

    name: str
    columns: list[str]
    rows: Iterator[tuple[int, list[str]]]


def resolve_segment(store: BlobStore, segment: SegmentRef) -> list[BlobInfo]:
    """The blobs a segment names: one blob, or every readable blob under a prefix, in name order."""
    if segment.is_prefix:
        blobs = [b for b in store.list_blobs(segment.path) if _is_readable(b.name)]
        if not blobs:
            raise SegmentError(
                f"segment '{segment.path}': no .csv, .txt or .gz files under this prefix in the segments container."
            )
        return sorted(blobs, key=lambda b: b.name)
    if not _is_readable(segment.path):
        raise SegmentError(
            f"segment '{segment.path}': unsupported file type (supported: " + ", ".join(CSV_SUFFIXES) + ")."
        )
    found = [b for b in store.list_blobs(segment.path) if b.name == segment.path]
    if not found:
        raise SegmentError(f"segment '{segment.path}' not found in the segments container.")
    return found


def _is_readable(name: str) -> bool:
    return name.lower().endswith(CSV_SUFFIXES)


def open_segment_file(store: BlobStore, name: str, options: CsvOptions) -> TabularFile:
    try:
        chunks = store.iter_chunks(name)
        return read_csv(chunks, name, options)
    except BlobNotFound as exc:
        raise SegmentError(f"segment file '{name}': {exc}") from None


def read_csv(chunks: Iterable[bytes], name: str, options: CsvOptions) -> TabularFile:
    """Open a CSV stream; the header (if any) is read now, the rows lazily."""
    source: IO[bytes] = io.BufferedReader(ChunkStream(chunks), buffer_size=_BUFFER_BYTES)
    if name.lower().endswith(".gz"):
        source = gzip.GzipFile(fileobj=source, mode="rb")  # type: ignore[assignment]
    encoding = "utf-8-sig" if options.encoding in ("utf-8", "utf-8-sig") else options.encoding
    try:
        head = source.read(_SNIFF_BYTES)
    except (OSError, EOFError, zlib.error) as exc:
        raise SegmentError(f"segment file '{name}' cannot be read: {exc}") from None
    if not head.strip():
        raise SegmentError(f"segment file '{name}' is empty.")
    delimiter = options.delimiter or detect_delimiter(head.decode(encoding, errors="replace"))
    # The head was read to look at; put it back in front of the rest of the stream.
    rest = iter(lambda: source.read(_BUFFER_BYTES), b"")
    binary = io.BufferedReader(ChunkStream(itertools.chain([head], rest)), buffer_size=_BUFFER_BYTES)
    # surrogateescape keeps undecodable bytes as lone surrogates: the row that holds them is
    # rejected by the row rules instead of the whole file failing.
    text = io.TextIOWrapper(binary, encoding=encoding, errors="surrogateescape", newline="")
    reader = csv.reader(text, delimiter=delimiter, quotechar='"', doublequote=True, strict=False)
    rows = _numbered_rows(reader, name)
    if options.header:
        try:
            _, header = next(rows)
        except StopIteration:
            raise SegmentError(f"segment file '{name}' is empty: no header row.") from None
        columns = [c.strip() for c in header]
        if options.columns:
            columns = list(options.columns)
    else:
        assert options.columns is not None  # config validation guarantees it
        columns = list(options.columns)
    if not any(columns):
        raise SegmentError(f"segment file '{name}': the header row has no column names.")
    return TabularFile(name=name, columns=columns, rows=rows)


def _numbered_rows(reader: Iterator[list[str]], name: str) -> Iterator[tuple[int, list[str]]]:
    line_num = 0
    while True:
        start = line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except (csv.Error, OSError, EOFError, zlib.error) as exc:
            raise SegmentError(f"segment file '{name}', line {start}: {exc}") from None
        line_num = reader.line_num  # type: ignore[attr-defined]
        if row:  # a blank line is not a row
            yield start, row


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
