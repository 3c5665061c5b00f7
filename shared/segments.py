"""Segment inputs: which blobs a segment names, and how each is read as rows, streamed.

A segment is a blob, a prefix of blobs, or a CDM folder (a prefix holding ``model.json``). Each
file is read as a :class:`TabularFile`: its column names and a stream of :class:`RecordChunk`,
the file's records as raw text, each with the physical line it starts on. Records are split
without being parsed (a record spans lines only inside a quoted field), so a run can recognise a
record it sent before by its text alone; ``TabularFile.parse`` makes fields of the records that
need them. A record that cannot be parsed (a JSON line that is not an object, a broken CSV
quote) gets ``None`` and its reason, so it is counted and rejected, never dropped.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import itertools
import json
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import repeat
from typing import IO, Any

from . import cdm
from .config import CSV_DELIMITERS, CsvOptions, FieldMapping, SegmentRef
from .errors import SegmentError
from .storage import BlobNotFound, BlobStore, ChunkStream

CSV_SUFFIXES = (".csv", ".txt", ".csv.gz", ".txt.gz")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
# How much of a file's start is looked at to detect its delimiter (and JSON Lines' keys).
_SNIFF_BYTES = 64 * 1024
_BUFFER_BYTES = 1024 * 1024
_TEXT_CHUNK_CHARS = 1024 * 1024
# The longest record read (a quoted field that never closes stops the file here).
MAX_RECORD_CHARS = 16 * 1024 * 1024
_JSONL_SNIFF_ROWS = 1000
_ODD = (1).__and__  # of a count of quotes: a record that may end inside a quoted field

# Rows may hold long free-text fields; the csv module's default of 128 KiB would stop a run.
csv.field_size_limit(16 * 1024 * 1024)


@dataclass(frozen=True)
class SegmentFile:
    """One file to read for a segment, and how."""

    name: str
    format: str  # "csv" or "jsonl"
    csv: CsvOptions = field(default_factory=CsvOptions)
    snapshot: str | None = None


@dataclass
class RecordChunk:
    """Consecutive records of a file, each its raw text without its line break."""

    first_line: int
    records: list[str]
    lines: list[int] | None = None  # where each record starts, when not simply first_line + index

    def line_of(self, index: int) -> int:
        return self.lines[index] if self.lines is not None else self.first_line + index


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

    @property
    def rows(self) -> Iterator[tuple[int, list[str] | None]]:
        """Every record parsed, as ``(line, fields)``; ``problem`` says why when fields is None."""
        for chunk in self.chunks:
            parsed, problems = self.parse(chunk.records)
            for index, fields in enumerate(parsed):
                if fields is None:
                    self.problem = problems.get(index, "unreadable record")
                yield chunk.line_of(index), fields


def resolve_segment(store: BlobStore, segment: SegmentRef) -> list[SegmentFile]:
    """Every file a segment names, in name order; a segment that names nothing readable fails."""
    if segment.is_prefix:
        listed = store.list_blobs(segment.path)
        names = {b.name for b in listed}
        model = segment.path + cdm.MODEL_FILE
        if model in names:
            return _cdm_files(store, segment, model, names)
        if segment.table:
            raise SegmentError(f"segment '{segment.path}': \"table\" is set but the prefix holds no {cdm.MODEL_FILE}.")
        files = [_plain_file(b.name, segment) for b in sorted(listed, key=lambda b: b.name) if _format_of(b.name)]
        if not files:
            raise SegmentError(
                f"segment '{segment.path}': no .csv, .txt, .jsonl, .ndjson (or .gz of them) files, and no "
                f"{cdm.MODEL_FILE}, under this prefix in the segments container."
            )
        return files
    if not _format_of(segment.path):
        raise SegmentError(
            f"segment '{segment.path}': unsupported file type (supported: "
            + ", ".join(CSV_SUFFIXES + JSONL_SUFFIXES)
            + "; or a CDM folder prefix ending in '/')."
        )
    if not any(b.name == segment.path for b in store.list_blobs(segment.path)):
        raise SegmentError(f"segment '{segment.path}' not found in the segments container.")
    return [_plain_file(segment.path, segment)]


def _format_of(name: str) -> str | None:
    lowered = name.lower()
    if lowered.endswith(CSV_SUFFIXES):
        return "csv"
    if lowered.endswith(JSONL_SUFFIXES):
        return "jsonl"
    return None


def _plain_file(name: str, segment: SegmentRef) -> SegmentFile:
    return SegmentFile(name, _format_of(name) or "csv", segment.csv)


def _cdm_files(store: BlobStore, segment: SegmentRef, model: str, names: set[str]) -> list[SegmentFile]:
    source = f"segment '{segment.path}': {model}"
    entities = cdm.parse_model(store.read_bytes(model), source)
    entity = cdm.select_entity(entities, segment.table, source)
    files = cdm.partition_files(entity, segment.path, names, store.blob_name_from_url, source)
    return [SegmentFile(f.blob, "csv", f.csv, f.snapshot) for f in files]


def open_segment_file(store: BlobStore, file: SegmentFile, mapping: FieldMapping | None = None) -> TabularFile:
    try:
        return _open(store.iter_chunks(file.name, file.snapshot), file, mapping)
    except BlobNotFound as exc:
        raise SegmentError(f"segment file '{file.name}': {exc}") from None


def _open(chunks: Iterable[bytes], file: SegmentFile, mapping: FieldMapping | None) -> TabularFile:
    if file.format == "jsonl":
        wanted = [*mapping.fields.values(), *mapping.custom_fields.values()] if mapping else []
        return read_jsonl(chunks, file.name, wanted)
    return read_csv(chunks, file.name, file.csv)


def scan_segment_file(
    store: BlobStore, file: SegmentFile, mapping: FieldMapping | None = None
) -> tuple[list[str], int]:
    """Open a file as a run does and read it to its end without parsing it: its column names, and
    at least as many as the records it holds (its line breaks, less a header).

    A file that cannot be opened or read fails here as it would in the run. A plain file is
    downloaded once: its bytes are counted as they pass. A compressed one is counted after
    decompression, in a second download.
    """
    if file.name.lower().endswith(".gz"):
        return open_segment_file(store, file, mapping).columns, record_bound(store, file)
    counter = _LineBreaks()
    try:
        chunks = counter.count(store.iter_chunks(file.name, file.snapshot))
        table = _open(chunks, file, mapping)
        for _ in chunks:  # the rest of the file, past what opening it read
            pass
    except BlobNotFound as exc:
        raise SegmentError(f"segment file '{file.name}': {exc}") from None
    except OSError as exc:
        raise SegmentError(f"segment file '{file.name}' cannot be read: {exc}") from None
    return table.columns, _bound(counter.breaks, counter.ends_with_break, file)


def record_bound(store: BlobStore, file: SegmentFile) -> int:
    """At least as many as the records the file holds, without parsing it: its line breaks.

    Reads the whole file (decompressed), so a file that cannot be read fails here too.
    """
    counter = _LineBreaks()
    try:
        binary, _ = _binary(store.iter_chunks(file.name, file.snapshot), file.name)
        for _ in counter.count(iter(lambda: binary.read(_BUFFER_BYTES), b"")):
            pass
    except BlobNotFound as exc:
        raise SegmentError(f"segment file '{file.name}': {exc}") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise SegmentError(f"segment file '{file.name}' cannot be read: {exc}") from None
    return _bound(counter.breaks, counter.ends_with_break, file)


class _LineBreaks:
    """Counts the line breaks of bytes passing through. A "\r\n" cut in two by a chunk boundary
    counts twice: the count is a bound, and may be one high there."""

    def __init__(self) -> None:
        self.breaks = 0
        self.ends_with_break = False

    def count(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            if chunk:
                self.breaks += chunk.count(b"\n") + chunk.count(b"\r") - chunk.count(b"\r\n")
                self.ends_with_break = chunk.endswith((b"\n", b"\r"))
            yield chunk


def _bound(breaks: int, ends_with_break: bool, file: SegmentFile) -> int:
    # A last line with no break after it is a record too; a header row is not.
    bound = breaks + (0 if ends_with_break else 1)
    return max(0, bound - (1 if file.format == "csv" and file.csv.header else 0))


def _binary(chunks: Iterable[bytes], name: str) -> tuple[IO[bytes], bytes]:
    """A streamed, decompressed byte stream of the file, and its first bytes (already in it)."""
    source: IO[bytes] = io.BufferedReader(ChunkStream(chunks), buffer_size=_BUFFER_BYTES)
    if name.lower().endswith(".gz"):
        source = gzip.GzipFile(fileobj=source, mode="rb")  # type: ignore[assignment]
    try:
        head = source.read(_SNIFF_BYTES)
    except (OSError, EOFError, zlib.error) as exc:
        raise SegmentError(f"segment file '{name}' cannot be read: {exc}") from None
    if not head.strip():
        raise SegmentError(f"segment file '{name}' is empty.")
    # The head was read to look at; put it back in front of the rest of the stream.
    rest = iter(lambda: source.read(_BUFFER_BYTES), b"")
    return io.BufferedReader(ChunkStream(itertools.chain([head], rest)), buffer_size=_BUFFER_BYTES), head


def read_csv(chunks: Iterable[bytes], name: str, options: CsvOptions) -> TabularFile:
    """Open a CSV stream; the header (if any) is read now, the records lazily."""
    binary, head = _binary(chunks, name)
    encoding = "utf-8-sig" if options.encoding in ("utf-8", "utf-8-sig") else options.encoding
    sample = head.decode(encoding, errors="replace")
    delimiter = options.delimiter or detect_delimiter(sample)
    # surrogateescape keeps undecodable bytes as lone surrogates: the row that holds them is
    # rejected by the row rules instead of the whole file failing.
    text = io.TextIOWrapper(binary, encoding=encoding, errors="surrogateescape", newline="")
    if options.quoted:
        dialect: dict[str, Any] = {"delimiter": delimiter, "quotechar": '"', "doublequote": True, "strict": False}
    else:
        dialect = {"delimiter": delimiter, "quoting": csv.QUOTE_NONE}
    # Lines end with "\n" (or "\r\n"); a file with only "\r" uses that.
    separator = "\r" if "\n" not in sample and "\r" in sample else "\n"
    ends_open = _open_quote_test(delimiter) if options.quoted else None
    records = _split_records(text, name, separator, ends_open, _is_blank_csv, _has_blank_csv)

    def parse(batch: list[str]) -> Parsed:
        return _parse_csv(batch, dialect)

    if options.header:
        first = next(records, None)
        if first is None:
            raise SegmentError(f"segment file '{name}' is empty: no header row.")
        header, problems = parse(first.records[:1])
        if header[0] is None:
            raise SegmentError(f"segment file '{name}': the header row cannot be read ({problems[0]}).")
        columns = [c.strip() for c in header[0]]
        if options.columns:
            columns = list(options.columns)
        records = itertools.chain([_drop_first(first)], records)
    else:
        assert options.columns is not None  # config validation guarantees it
        columns = list(options.columns)
        if options.skip_repeated_header:
            records = _skip_repeated_header(records, columns, parse)
    if not any(columns):
        raise SegmentError(f"segment file '{name}': the header row has no column names.")
    return TabularFile(name=name, columns=columns, chunks=records, parse=parse)


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


def _split_records(
    text: IO[str],
    name: str,
    separator: str,
    ends_open: Callable[[str], bool] | None,
    is_blank: Callable[[str], bool],
    has_blank: Callable[[list[str]], bool],
) -> Iterator[RecordChunk]:
    """The records of a text stream, a chunk at a time. A line that ends inside a quoted field
    (``ends_open``) continues on the next; blank lines are not records."""
    carry = ""
    line = 1  # the line the next piece is on
    pending: list[str] = []  # the lines so far of a record whose quoted field is still open
    pending_line = pending_chars = 0
    while True:
        try:
            chunk = text.read(_TEXT_CHUNK_CHARS)
        except (OSError, EOFError, zlib.error) as exc:
            raise SegmentError(f"segment file '{name}', line {line}: {exc}") from None
        if chunk:
            pieces = (carry + chunk).split(separator)
            carry = pieces.pop()
        elif carry:
            pieces, carry = [carry], ""
        elif pending:
            pieces = []
        else:
            return
        # The common case: no blank line, no record spanning lines, nothing to copy.
        if (
            not pending
            and not has_blank(pieces)
            and (ends_open is None or not any(map(_ODD, map(str.count, pieces, repeat('"')))))
        ):
            yield RecordChunk(line, pieces)
            line += len(pieces)
            continue
        records: list[str] = []
        lines: list[int] = []
        for number, piece in enumerate(pieces, start=line):
            if pending:
                pending.append(piece)
                pending_chars += len(piece)
                joined = separator.join(pending)
                if ends_open is not None and ends_open(joined):
                    if pending_chars > MAX_RECORD_CHARS:
                        raise SegmentError(
                            f"segment file '{name}', line {pending_line}: a quoted field never ends "
                            f"(over {MAX_RECORD_CHARS:,} characters)."
                        )
                    continue
                records.append(joined)
                lines.append(pending_line)
                pending = []
                continue
            if is_blank(piece):
                continue
            if ends_open is not None and '"' in piece and ends_open(piece):
                pending, pending_line, pending_chars = [piece], number, len(piece)
                continue
            records.append(piece)
            lines.append(number)
        if not chunk and pending:  # the file ended inside a quoted field: the csv module decides
            records.append(separator.join(pending))
            lines.append(pending_line)
            pending = []
        line += len(pieces)
        if records:
            yield RecordChunk(lines[0], records, lines)


@functools.lru_cache(maxsize=16)
def _open_quote_test(delimiter: str) -> Callable[[str], bool]:
    """Whether text ends inside a quoted field, as the csv module reads it (``strict=False``).

    A quote opens a quoted field only at a field's start, ``""`` inside one is a quote, and
    after the closing quote the field goes on unquoted. An even number of quotes cannot leave a
    field open unless a quote also stands inside an unquoted field: rare, so parity is asked
    first and the full pattern only for odd counts.
    """
    d = re.escape(delimiter)
    unquoted = rf'[^"{d}\r\n][^{d}\r\n]*+'
    field = rf'(?:"(?:[^"]|"")*+"(?:{unquoted})?|{unquoted}|)'
    complete = re.compile(rf"{field}(?:{d}{field})*+\r?")

    def ends_open(text: str) -> bool:
        return text.count('"') % 2 == 1 and complete.fullmatch(text) is None

    return ends_open


def _drop_first(chunk: RecordChunk) -> RecordChunk:
    lines = chunk.lines[1:] if chunk.lines is not None else None
    return RecordChunk(chunk.first_line + 1, chunk.records[1:], lines)


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
        first = _drop_first(first)
    yield first
    yield from records


def read_jsonl(chunks: Iterable[bytes], name: str, wanted: list[str]) -> TabularFile:
    """JSON Lines: one object a line. Nested objects are flattened to dotted names
    (``{"address": {"city": "Oslo"}}`` gives column ``address.city``); arrays of plain values are
    joined with commas (so an array of emails maps to ``alternate_emails``)."""
    binary, head = _binary(chunks, name)
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="surrogateescape", newline=None)
    columns: dict[str, str] = {}  # lower-case -> as first seen
    for column in wanted:
        columns.setdefault(column.lower(), column)
    for line in head.decode("utf-8", "replace").splitlines()[:_JSONL_SNIFF_ROWS]:
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            for key in _flatten(value):
                columns.setdefault(key.lower(), key)
    names = list(columns.values())
    index = {column.lower(): i for i, column in enumerate(names)}
    width = len(names)

    def parse(batch: list[str]) -> Parsed:
        rows: list[list[str] | None] = []
        problems: dict[int, str] = {}
        for position, line in enumerate(batch):
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                problems[position] = f"not valid JSON ({exc.msg} at column {exc.colno})"
                rows.append(None)
                continue
            if not isinstance(value, dict):
                problems[position] = "not a JSON object"
                rows.append(None)
                continue
            fields = [""] * width
            for key, item in _flatten(value).items():
                at = index.get(key.lower())
                if at is not None:
                    fields[at] = item
            rows.append(fields)
        return rows, problems

    records = _split_records(text, name, "\n", None, _is_blank_line, _has_blank_line)
    return TabularFile(name=name, columns=names, chunks=records, parse=parse)


def _is_blank_line(piece: str) -> bool:
    return not piece.strip()


def _has_blank_line(pieces: list[str]) -> bool:
    return any(not piece.strip() for piece in pieces)


def _flatten(value: dict[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict):
            flat.update(_flatten(item, name + "."))
        elif isinstance(item, list):
            flat[name] = ",".join("" if v is None else str(v) for v in item if not isinstance(v, (dict, list)))
        elif item is None:
            flat[name] = ""
        elif isinstance(item, bool):
            flat[name] = "true" if item else "false"
        else:
            flat[name] = str(item)
    return flat


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
