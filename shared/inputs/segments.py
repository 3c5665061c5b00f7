"""Segment inputs: which blobs a segment names, and how each is read as rows, streamed.

A segment is a blob, a prefix of blobs, or a CDM folder (a prefix holding ``model.json``). Each
file is read as a :class:`TabularFile`: its column names and a stream of :class:`RecordChunk`,
the file's records as raw text, each with the physical line it starts on. Records are split
without being parsed (a record spans lines only inside a quoted field), so a run can recognise a
record it sent before by its text alone; ``TabularFile.parse`` makes fields of the records that
need them. A record that cannot be parsed (a JSON line that is not an object, a broken CSV
quote) gets ``None`` and its reason, so it is counted and rejected, never dropped.

This module is the entry the run uses; each concern has a module of its own:

- :mod:`~shared.inputs.segment_blobs`: which blobs a segment names (CDM folders via ``cdm``);
- :mod:`~shared.inputs.blob_stream`: a blob's bytes, decompressed, its encoding checked;
- :mod:`~shared.inputs.record_split`: text split into records, a record never held past its limit;
- :mod:`~shared.inputs.tabular`, :mod:`~shared.inputs.csv_reader`, :mod:`~shared.inputs.jsonl_reader`:
  records parsed into fields;
- :mod:`~shared.inputs.line_count`: the line-count scan, a bound on a file's records.
"""

from __future__ import annotations

from collections.abc import Iterable

from shared.adapters.storage import BlobNotFound, BlobStore
from shared.errors import SegmentError
from shared.inputs.csv_reader import read_csv
from shared.inputs.destination import FieldMapping
from shared.inputs.jsonl_reader import read_jsonl
from shared.inputs.line_count import record_bound, scan_plain
from shared.inputs.record_split import RecordChunk
from shared.inputs.segment_blobs import (
    CSV_SUFFIXES,
    JSONL_SUFFIXES,
    SegmentFile,
    SegmentPlan,
    read_chunks,
    resolve_segment,
    unchanged_since_listed,
)
from shared.inputs.tabular import TabularFile
from shared.settings import DEFAULT_MAX_RECORD_BYTES

__all__ = [
    "CSV_SUFFIXES",
    "JSONL_SUFFIXES",
    "RecordChunk",
    "SegmentFile",
    "SegmentPlan",
    "TabularFile",
    "open_segment_file",
    "record_bound",
    "resolve_segment",
    "scan_segment_file",
    "unchanged_since_listed",
    "unproven_read",
]


def open_segment_file(
    store: BlobStore,
    file: SegmentFile,
    mapping: FieldMapping | None = None,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> TabularFile:
    try:
        return _open(read_chunks(store, file), file, mapping, max_record_bytes)
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
    return scan_plain(store, file, lambda chunks: _open(chunks, file, mapping, max_record_bytes))


def unproven_read(plan: SegmentPlan) -> str:
    """Why the read may be incomplete, or "": files of a CDM entity that lists no partitions were
    found by listing its newest snapshot folder, and nothing says that folder was complete."""
    unproven = [file.name for _, files in plan for file in files if not file.proven_complete]
    if not unproven:
        return ""
    return f"{len(unproven)} file(s) of a CDM entity whose model.json lists no partitions, e.g. {unproven[0]}"
