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

import codecs
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

from shared.adapters.storage import BlobNotFound, BlobStore, ChunkStream
from shared.errors import SegmentError
from shared.inputs import cdm
from shared.inputs.config import CSV_DELIMITERS, CsvOptions, FieldMapping, SegmentRef
from shared.settings import DEFAULT_MAX_RECORD_BYTES, MAX_RECORD_BYTES_LIMIT

CSV_SUFFIXES = (".csv", ".txt", ".csv.gz", ".txt.gz")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
# How much of a file's start is looked at to detect its delimiter (and JSON Lines' keys).
_SNIFF_BYTES = 64 * 1024
_BUFFER_BYTES = 1024 * 1024
_TEXT_CHUNK_CHARS = 1024 * 1024
# What a record longer than the limit (MAX_RECORD_BYTES) stands as: never its text. The lone
# surrogate makes any real record with this text undecodable, so it is never one SendGrid took.
OVERSIZED = "\udcff\x00record over the length limit\x00\udcff"
# Contact rows compress 3 to 20 times; a gzip inflating past this ratio (beyond the floor) is a
# decompression bomb: 5 MB of gzip can hold 5 GB of rows.
MAX_GZIP_RATIO = 100
GZIP_RATIO_FLOOR = 64 * 1024 * 1024
# Control characters other than tab, line feed and carriage return (NUL, the C0 and C1 blocks,
# DEL) and the byte-order mark: they are removed from values, never sent to SendGrid.
_CONTROLS = "".join(map(chr, (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0), 0xFEFF)))
_ASCII_CONTROLS = _CONTROLS[: _CONTROLS.index("\x80")]
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufeff]")
_JSON_CONTROL = re.compile(r"\\u(?:00[01][0-9a-fA-F]|007[fF]|00[89][0-9a-fA-F]|[fF][eE][fF][fF])")
# No real header is this long; a file whose first line is has no header, or is not CSV.
MAX_HEADER_CHARS = 1024 * 1024
_JSONL_SNIFF_ROWS = 1000
# Objects nested deeper than this are no contact: such a line is refused, not recursed into.
MAX_JSON_DEPTH = 32
_ODD = (1).__and__  # of a count of quotes: a record that may end inside a quoted field

# Rows may hold long free-text fields; the csv module's default of 128 KiB would stop a run. A
# record's length is bounded by MAX_RECORD_BYTES, so a field's is too.
csv.field_size_limit(MAX_RECORD_BYTES_LIMIT)


@dataclass(frozen=True)
class SegmentFile:
    """One file to read for a segment, and how."""

    name: str
    format: str  # "csv" or "jsonl"
    csv: CsvOptions = field(default_factory=CsvOptions)
    snapshot: str | None = None
    proven_complete: bool = True  # False: found by listing a CDM folder, not named by model.json


@dataclass
class RecordChunk:
    """Consecutive records of a file, each its raw text without its line break."""

    first_line: int
    records: list[str]
    lines: list[int] | None = None  # where each record starts, when not simply first_line + index

    def line_of(self, index: int) -> int:
        return self.lines[index] if self.lines is not None else self.first_line + index


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
    entities = cdm.parse_model(_read_model(store, model, source), source)
    entity = cdm.select_entity(entities, segment.table, source)
    files = cdm.partition_files(entity, segment.path, names, store.blob_name_from_url, source)
    return [SegmentFile(f.blob, "csv", f.csv, f.snapshot, proven_complete=f.listed) for f in files]


def _read_model(store: BlobStore, name: str, source: str) -> bytes:
    """``model.json``, read no further than :data:`cdm.MAX_MODEL_BYTES`."""
    data = bytearray()
    try:
        for chunk in store.iter_chunks(name):
            data += chunk
            if len(data) > cdm.MAX_MODEL_BYTES:
                raise SegmentError(
                    f"{source} is over {cdm.MAX_MODEL_BYTES:,} bytes: no Customer Insights model.json "
                    "is; it is not read. Check that the folder's model.json is the one CDM wrote."
                )
    except BlobNotFound as exc:
        raise SegmentError(f"{source}: {exc}") from None
    return bytes(data)


def open_segment_file(
    store: BlobStore,
    file: SegmentFile,
    mapping: FieldMapping | None = None,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> TabularFile:
    try:
        return _open(store.iter_chunks(file.name, file.snapshot), file, mapping, max_record_bytes)
    except BlobNotFound as exc:
        raise SegmentError(f"segment file '{file.name}': {exc}") from None


def _open(chunks: Iterable[bytes], file: SegmentFile, mapping: FieldMapping | None, limit: int) -> TabularFile:
    if file.format == "jsonl":
        wanted = [*mapping.fields.values(), *mapping.custom_fields.values()] if mapping else []
        return read_jsonl(chunks, file.name, wanted, limit)
    return read_csv(chunks, file.name, file.csv, limit)


def scan_segment_file(
    store: BlobStore,
    file: SegmentFile,
    mapping: FieldMapping | None = None,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> tuple[list[str], int]:
    """Open a file as a run does and read it to its end without parsing it: its column names, and
    at least as many as the records it holds (its line breaks, less a header).

    A file that cannot be opened or read fails here as it would in the run. A plain file is
    downloaded once: its bytes are counted as they pass. A compressed one is counted after
    decompression, in a second download.
    """
    if file.name.lower().endswith(".gz"):
        return open_segment_file(store, file, mapping, max_record_bytes).columns, record_bound(store, file)
    counter = _LineBreaks()
    try:
        chunks = counter.count(store.iter_chunks(file.name, file.snapshot))
        table = _open(chunks, file, mapping, max_record_bytes)
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
    compressed = _Counted(chunks)
    source: IO[bytes] = io.BufferedReader(ChunkStream(compressed), buffer_size=_BUFFER_BYTES)
    read: Callable[[int], bytes] = source.read
    if name.lower().endswith(".gz"):
        read = _inflate_guarded(gzip.GzipFile(fileobj=source, mode="rb"), compressed, name)
    try:
        head = read(_SNIFF_BYTES)
    except (OSError, EOFError, zlib.error) as exc:
        raise SegmentError(f"segment file '{name}' cannot be read: {exc}") from None
    if not head.strip():
        raise SegmentError(f"segment file '{name}' is empty.")
    # The head was read to look at; put it back in front of the rest of the stream.
    rest = iter(lambda: read(_BUFFER_BYTES), b"")
    return io.BufferedReader(ChunkStream(itertools.chain([head], rest)), buffer_size=_BUFFER_BYTES), head


class _Counted:
    """The bytes of a download as they pass, counted."""

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks = iter(chunks)
        self.bytes = 0

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        chunk = next(self._chunks)
        self.bytes += len(chunk)
        return chunk


def _inflate_guarded(gz: gzip.GzipFile, compressed: _Counted, name: str) -> Callable[[int], bytes]:
    """``gz.read``, stopped with a clear error once the file inflates past what real rows do."""
    inflated = 0

    def read(size: int) -> bytes:
        nonlocal inflated
        data = gz.read(size)
        inflated += len(data)
        if inflated > GZIP_RATIO_FLOOR and inflated > MAX_GZIP_RATIO * compressed.bytes:
            raise SegmentError(
                f"segment file '{name}' inflates to over {MAX_GZIP_RATIO} times its compressed size "
                f"({inflated:,} bytes from {compressed.bytes:,} so far): no file of contact rows does; "
                "it is refused as a decompression bomb. If it is genuine, store it uncompressed."
            )
        return data

    return read


def read_csv(
    chunks: Iterable[bytes], name: str, options: CsvOptions, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
) -> TabularFile:
    """Open a CSV stream; the header (if any) is read now, the records lazily."""
    binary, head = _binary(chunks, name)
    _check_encoding(head, options.encoding, name)
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
    ends_open = _QuoteTest(delimiter) if options.quoted else None
    records = _split_records(text, name, separator, ends_open, _is_blank_csv, _has_blank_csv, max_record_bytes)

    tally = Tally()

    def parse_csv(batch: list[str]) -> Parsed:
        # The csv module refuses a NUL: control characters go before the record is parsed.
        if _may_hold_controls("".join(batch)):
            batch = _without_controls(batch, tally)
        return _parse_csv(batch, dialect)

    parse = _refusing_oversized(parse_csv, max_record_bytes)
    if options.header:
        first = next(records, None)
        if first is None:
            raise SegmentError(f"segment file '{name}' is empty: no header row.")
        if first.records[0] is OVERSIZED or len(first.records[0]) > MAX_HEADER_CHARS:
            raise SegmentError(
                f"segment file '{name}': the header row (line {first.line_of(0)}) is longer than "
                f"{min(MAX_HEADER_CHARS, max_record_bytes):,} characters: no header is. Is the file "
                'CSV, in the encoding set for it? A file without a header row needs "header": false '
                'and "columns".'
            )
        header, problems = parse(first.records[:1])
        if header[0] is None:
            raise SegmentError(f"segment file '{name}': the header row cannot be read ({problems[0]}).")
        columns = [c.strip() for c in header[0]]
        if options.columns:
            columns = list(options.columns)
        rest = _drop_first(first)
        records = itertools.chain([rest] if rest.records else [], records)
    else:
        assert options.columns is not None  # config validation guarantees it
        columns = list(options.columns)
        if options.skip_repeated_header:
            records = _skip_repeated_header(records, columns, parse)
    if not any(columns):
        raise SegmentError(f"segment file '{name}': the header row has no column names.")
    return TabularFile(name=name, columns=columns, chunks=records, parse=parse, tally=tally)


def _check_encoding(head: bytes, encoding: str, name: str) -> None:
    """A clear error for UTF-16 text read without knowing its byte order, or read as 8-bit."""
    bom = head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    if encoding == "utf-16" and not bom:
        raise SegmentError(
            f"segment file '{name}' is set to encoding utf-16 but does not start with a byte-order "
            "mark (FF FE or FE FF), so its byte order is unknown: save it as UTF-16 with a BOM, or as UTF-8."
        )
    if encoding != "utf-16" and (bom or _looks_like_utf16(head)):
        raise SegmentError(
            f"segment file '{name}' looks like UTF-16 text (a byte-order mark, or a zero byte beside "
            f'every character), not {encoding}: set "encoding": "utf-16" for the segment (the file '
            "needs its byte-order mark), or save it as UTF-8."
        )


def _looks_like_utf16(head: bytes) -> bool:
    # Latin text in UTF-16 has a zero byte on one side of nearly every pair, and on the other side
    # of almost none; 8-bit text almost never holds a zero byte.
    sample = head[:4096]
    pairs = len(sample) // 2
    zeros = sorted((sample[0::2].count(0), sample[1::2].count(0)))
    return pairs >= 4 and zeros[1] * 2 >= pairs and zeros[0] * 8 < zeros[1]


def _refusing_oversized(parse: Callable[[list[str]], Parsed], limit: int) -> Callable[[list[str]], Parsed]:
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


def _may_hold_controls(text: str) -> bool:
    """Whether ``text`` may hold a control character: one fast substring search per character,
    which costs the hot path far less than a regular expression or a per-value test would."""
    return any(map(text.__contains__, _ASCII_CONTROLS if text.isascii() else _CONTROLS))


def _without_controls(batch: list[str], tally: Tally) -> list[str]:
    cleaned = []
    for record in batch:
        if _CONTROL.search(record):
            record = _CONTROL.sub("", record)
            tally.control_chars_stripped += 1
        cleaned.append(record)
    return cleaned


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
    ends_open: _QuoteTest | None,
    is_blank: Callable[[str], bool],
    has_blank: Callable[[list[str]], bool],
    limit: int = DEFAULT_MAX_RECORD_BYTES,
) -> Iterator[RecordChunk]:
    """The records of a text stream, a chunk at a time. A line that ends inside a quoted field
    (``ends_open``) continues on the next; blank lines are not records.

    No record longer than ``limit`` characters is ever held: a line that outgrows it is read past
    to its line break and stands as :data:`OVERSIZED`, rejected with its line. A quoted field that
    outgrows it stops the file: where its record ends cannot be known.
    """
    carry = ""
    line = 1  # the line the next piece is on
    # The lines so far of a record whose quoted field is still open. Written to a buffer, not kept
    # in a list: a record of a million short lines would cost fifty bytes a line as strings.
    pending: io.StringIO | None = None
    pending_line = pending_chars = pending_quotes = 0
    skipping = 0  # the line of an over-long line being read past to its end; 0 when none
    skipped_quotes = 0
    while True:
        try:
            chunk = text.read(_TEXT_CHUNK_CHARS)
        except (OSError, EOFError, zlib.error) as exc:
            raise SegmentError(f"segment file '{name}', line {line}: {exc}") from None
        if skipping:
            at = chunk.find(separator) if chunk else len(chunk)
            if at < 0:
                skipped_quotes += chunk.count('"')
                continue
            skipped_quotes += chunk.count('"', 0, at)
            if chunk and ends_open is not None and _ODD(skipped_quotes):
                # Odd quotes: its record most likely goes on inside a quoted field.
                raise _endless_quote(name, skipping, limit)
            yield RecordChunk(skipping, [OVERSIZED])
            line, skipping = skipping + 1, 0
            if not chunk:
                return
            chunk = chunk[at + 1 :]
            if not chunk:
                continue
        long_piece = False
        if chunk:
            pieces = (carry + chunk).split(separator)
            # Only a read that makes the text past the limit can hold an over-long piece.
            long_piece = len(carry) + len(chunk) > limit and max(map(len, pieces[:-1]), default=0) > limit
            carry = pieces.pop()
        elif carry:
            pieces, carry = [carry], ""
        elif pending is not None:
            pieces = []
        else:
            return
        # The common case: no blank line, no record spanning lines, nothing to copy.
        if (
            pending is None
            and not long_piece
            and not has_blank(pieces)
            and (ends_open is None or not any(map(_ODD, map(str.count, pieces, repeat('"')))))
        ):
            if pieces:
                yield RecordChunk(line, pieces)
                line += len(pieces)
        else:
            records: list[str] = []
            lines: list[int] = []
            for number, piece in enumerate(pieces, start=line):
                if pending is not None:
                    pending.write(separator)
                    pending.write(piece)
                    pending_chars += len(piece) + 1
                    # Only the new line is looked at, never the record so far: a record of many
                    # lines costs what its length does, not its length squared.
                    quotes = piece.count('"')
                    pending_quotes += quotes
                    if ends_open is not None and (not quotes or ends_open.goes_on(piece, pending_quotes)):
                        if pending_chars > limit:
                            raise _endless_quote(name, pending_line, limit)
                        continue
                    records.append(pending.getvalue() if pending_chars <= limit else OVERSIZED)
                    lines.append(pending_line)
                    pending = None
                    continue
                if is_blank(piece):
                    continue
                if ends_open is not None and '"' in piece and ends_open(piece):
                    if len(piece) > limit:
                        raise _endless_quote(name, number, limit)
                    pending, pending_line, pending_chars = io.StringIO(piece), number, len(piece)
                    pending.seek(0, io.SEEK_END)
                    pending_quotes = piece.count('"')
                    continue
                records.append(piece if len(piece) <= limit else OVERSIZED)
                lines.append(number)
            if not chunk and pending is not None:  # ended inside a quoted field: the csv module decides
                records.append(pending.getvalue())
                lines.append(pending_line)
                pending = None
            line += len(pieces)
            if records:
                yield RecordChunk(lines[0], records, lines)
        if len(carry) > limit:
            if pending is not None:
                raise _endless_quote(name, pending_line, limit)
            # A line with no break in sight: its text is let go as it is read.
            skipping, skipped_quotes, carry = line, carry.count('"'), ""


def _endless_quote(name: str, line: int, limit: int) -> SegmentError:
    return SegmentError(
        f"segment file '{name}', line {line}: a quoted field never ends (its record runs past "
        f"{limit:,} characters, MAX_RECORD_BYTES); close the quote, or raise MAX_RECORD_BYTES if "
        "a field really is that long."
    )


class _QuoteTest:
    """Whether text ends inside a quoted field, as the csv module reads it (``strict=False``).

    A quote opens a quoted field only at a field's start, ``""`` inside one is a quote, and after
    the closing quote the field goes on unquoted. An even number of quotes cannot leave a field
    open unless a quote also stands inside an unquoted field: rare, so parity is asked first and
    the full pattern only for odd counts.
    """

    def __init__(self, delimiter: str):
        self._complete, self._rest = _quote_patterns(delimiter)

    def __call__(self, text: str) -> bool:
        return text.count('"') % 2 == 1 and self._complete.fullmatch(text) is None

    def goes_on(self, line: str, quotes: int) -> bool:
        """Whether a record still ends inside a quoted field once ``line`` is added to it, when it
        did before, and ``quotes`` is its count of quotes with the line's."""
        return quotes % 2 == 1 and self._rest.fullmatch(line) is None


@functools.lru_cache(maxsize=16)
def _quote_patterns(delimiter: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Complete fields, and the end of a quoted field then complete fields."""
    d = re.escape(delimiter)
    unquoted = rf'[^"{d}\r\n][^{d}\r\n]*+'
    field = rf'(?:"(?:[^"]|"")*+"(?:{unquoted})?|{unquoted}|)'
    complete = re.compile(rf"{field}(?:{d}{field})*+\r?")
    rest = re.compile(rf'(?:[^"]|"")*+"(?:{unquoted})?(?:{d}{field})*+\r?')
    return complete, rest


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
    if first.records:
        yield first
    yield from records


def read_jsonl(
    chunks: Iterable[bytes], name: str, wanted: list[str], max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
) -> TabularFile:
    """JSON Lines: one object a line. Nested objects are flattened to dotted names
    (``{"address": {"city": "Oslo"}}`` gives column ``address.city``); arrays of plain values are
    joined with commas (so an array of emails maps to ``alternate_emails``)."""
    binary, head = _binary(chunks, name)
    _check_encoding(head, "utf-8", name)
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="surrogateescape", newline=None)
    columns: dict[str, str] = {}  # lower-case -> as first seen
    for column in wanted:
        columns.setdefault(column.lower(), column)
    for line in head.decode("utf-8", "replace").splitlines()[:_JSONL_SNIFF_ROWS]:
        try:
            value = json.loads(line)
            flat = _flatten(value) if isinstance(value, dict) else {}
        except (ValueError, RecursionError):  # the line is refused when its turn comes
            continue
        for key in flat:
            columns.setdefault(key.lower(), key)
    names = list(columns.values())
    index = {column.lower(): i for i, column in enumerate(names)}
    width = len(names)

    tally = Tally()

    def parse(batch: list[str]) -> Parsed:
        rows: list[list[str] | None] = []
        problems: dict[int, str] = {}
        joined = "".join(batch)
        # A JSON string may also spell a control character as an escape (\u0000).
        dirty = _may_hold_controls(joined) or ("\\u" in joined and _JSON_CONTROL.search(joined) is not None)
        for position, line in enumerate(batch):
            try:
                value = json.loads(line)
                flat = _flatten(value) if isinstance(value, dict) else None
            except json.JSONDecodeError as exc:
                problems[position] = f"not valid JSON ({exc.msg} at column {exc.colno})"
                rows.append(None)
                continue
            except (RecursionError, _TooDeep):
                problems[position] = f"JSON nested deeper than {MAX_JSON_DEPTH} levels: not a contact"
                rows.append(None)
                continue
            except ValueError as exc:  # e.g. an integer past Python's 4,300-digit conversion limit
                problems[position] = f"a JSON value cannot be read ({str(exc)[:120]})"
                rows.append(None)
                continue
            if flat is None:
                problems[position] = "not a JSON object"
                rows.append(None)
                continue
            fields = [""] * width
            for key, item in flat.items():
                at = index.get(key.lower())
                if at is not None:
                    fields[at] = item
            if dirty and (_CONTROL.search(line) or _JSON_CONTROL.search(line)):
                cleaned = [_CONTROL.sub("", value) for value in fields]
                if cleaned != fields:
                    fields = cleaned
                    tally.control_chars_stripped += 1
            rows.append(fields)
        return rows, problems

    records = _split_records(text, name, "\n", None, _is_blank_line, _has_blank_line, max_record_bytes)
    return TabularFile(
        name=name, columns=names, chunks=records, parse=_refusing_oversized(parse, max_record_bytes), tally=tally
    )


def _is_blank_line(piece: str) -> bool:
    return not piece.strip()


def _has_blank_line(pieces: list[str]) -> bool:
    return any(not piece.strip() for piece in pieces)


class _TooDeep(ValueError):
    pass


def _flatten(value: dict[str, Any], prefix: str = "", depth: int = 1) -> dict[str, str]:
    if depth > MAX_JSON_DEPTH:
        raise _TooDeep
    flat: dict[str, str] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict):
            flat.update(_flatten(item, name + ".", depth + 1))
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
