"""Segment inputs: which blobs a segment names, and how each is read as rows, streamed.

A segment is a blob, a prefix of blobs, or a CDM folder (a prefix holding ``model.json``). Each
file is read as a :class:`TabularFile`: its column names and a stream of ``(line, fields)``,
where ``line`` is the physical line the record starts on. A row that cannot be read at all (a JSON
line that is not an object) comes as ``(line, None)`` with the reason in ``TabularFile.problem``,
so it is counted and rejected, never dropped.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
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
_JSONL_SNIFF_ROWS = 1000

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
class TabularFile:
    """One segment file opened for reading: its column names and a stream of its rows."""

    name: str
    columns: list[str]
    rows: Iterator[tuple[int, list[str] | None]]
    problem: str = ""


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
        chunks = store.iter_chunks(file.name, file.snapshot)
        if file.format == "jsonl":
            wanted = [*mapping.fields.values(), *mapping.custom_fields.values()] if mapping else []
            return read_jsonl(chunks, file.name, wanted)
        return read_csv(chunks, file.name, file.csv)
    except BlobNotFound as exc:
        raise SegmentError(f"segment file '{file.name}': {exc}") from None


def record_bound(store: BlobStore, file: SegmentFile) -> int:
    """At least as many as the records the file holds, without parsing it: its line breaks.

    Reads the whole file (decompressed), so a file that cannot be read fails here too.
    """
    try:
        binary, _ = _binary(store.iter_chunks(file.name, file.snapshot), file.name)
        breaks, last = 0, b""
        while chunk := binary.read(_BUFFER_BYTES):
            breaks += chunk.count(b"\n") + chunk.count(b"\r") - chunk.count(b"\r\n")
            last = chunk
    except BlobNotFound as exc:
        raise SegmentError(f"segment file '{file.name}': {exc}") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise SegmentError(f"segment file '{file.name}' cannot be read: {exc}") from None
    # A last line with no break after it is a record too; a header row is not.
    bound = breaks + (0 if last.endswith((b"\n", b"\r")) else 1)
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
    """Open a CSV stream; the header (if any) is read now, the rows lazily."""
    binary, head = _binary(chunks, name)
    encoding = "utf-8-sig" if options.encoding in ("utf-8", "utf-8-sig") else options.encoding
    delimiter = options.delimiter or detect_delimiter(head.decode(encoding, errors="replace"))
    # surrogateescape keeps undecodable bytes as lone surrogates: the row that holds them is
    # rejected by the row rules instead of the whole file failing.
    text = io.TextIOWrapper(binary, encoding=encoding, errors="surrogateescape", newline="")
    if options.quoted:
        reader = csv.reader(text, delimiter=delimiter, quotechar='"', doublequote=True, strict=False)
    else:
        reader = csv.reader(text, delimiter=delimiter, quoting=csv.QUOTE_NONE)
    rows: Iterator[tuple[int, list[str] | None]] = _numbered_rows(reader, name)
    if options.header:
        try:
            _, header = next(rows)
        except StopIteration:
            raise SegmentError(f"segment file '{name}' is empty: no header row.") from None
        columns = [c.strip() for c in header or []]
        if options.columns:
            columns = list(options.columns)
    else:
        assert options.columns is not None  # config validation guarantees it
        columns = list(options.columns)
        if options.skip_repeated_header:
            rows = _skip_repeated_header(rows, columns)
    if not any(columns):
        raise SegmentError(f"segment file '{name}': the header row has no column names.")
    return TabularFile(name=name, columns=columns, rows=rows)


def _numbered_rows(reader: Iterator[list[str]], name: str) -> Iterator[tuple[int, list[str] | None]]:
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


def _skip_repeated_header(
    rows: Iterator[tuple[int, list[str] | None]], columns: list[str]
) -> Iterator[tuple[int, list[str] | None]]:
    """A headerless partition whose first row repeats the attribute names: that row is no data."""
    first = next(rows, None)
    if first is None:
        return
    fields = first[1] or []
    if [f.strip().lower() for f in fields] != [c.lower() for c in columns]:
        yield first
    yield from rows


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
    table = TabularFile(name=name, columns=names, rows=iter(()))
    table.rows = _jsonl_rows(text, name, [n.lower() for n in names], table)
    return table


def _jsonl_rows(
    text: IO[str], name: str, order: list[str], table: TabularFile
) -> Iterator[tuple[int, list[str] | None]]:
    index = {column: i for i, column in enumerate(order)}
    width = len(order)
    for number, line in enumerate(text, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            table.problem = f"not valid JSON ({exc.msg} at column {exc.colno})"
            yield number, None
            continue
        if not isinstance(value, dict):
            table.problem = "not a JSON object"
            yield number, None
            continue
        fields = [""] * width
        for key, item in _flatten(value).items():
            position = index.get(key.lower())
            if position is not None:
                fields[position] = item
        yield number, fields


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
