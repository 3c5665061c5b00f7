"""Which blobs a segment names: one blob, every readable blob under a prefix, or the partitions a
CDM folder's ``model.json`` lists (see :mod:`shared.inputs.cdm`).

Each file is pinned to the version (ETag) the listing found: every read of it in the run (the
scan, the count, the read that sends; ``model.json`` too) asks for that version, and a blob
replaced since fails the run (:class:`~shared.errors.SegmentChanged`) instead of being read as
a mix of two versions, or counted in one and sent from another.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from shared.adapters.storage import BlobChanged, BlobInfo, BlobNotFound, BlobStore
from shared.errors import SegmentChanged, SegmentError
from shared.inputs import cdm
from shared.inputs.destination import CsvOptions, SegmentRef

CSV_SUFFIXES = (".csv", ".txt", ".csv.gz", ".txt.gz")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")


@dataclass(frozen=True)
class SegmentFile:
    """One file to read for a segment, and how."""

    name: str
    format: str  # "csv" or "jsonl"
    csv: CsvOptions = field(default_factory=CsvOptions)
    snapshot: str | None = None
    proven_complete: bool = True  # False: found by listing a CDM folder, not named by model.json
    etag: str | None = None  # the version listed: every read of the file asks for it (None: any)


# A run's reading plan: each segment of the destination, with the files it names, in order.
SegmentPlan = list[tuple[SegmentRef, list[SegmentFile]]]


def resolve_segment(store: BlobStore, segment: SegmentRef) -> list[SegmentFile]:
    """Every file a segment names, in name order; a segment that names nothing readable fails."""
    if segment.is_prefix:
        return _prefix_files(store, segment)
    if not _format_of(segment.path):
        raise SegmentError(
            f"segment '{segment.path}': unsupported file type (supported: "
            + ", ".join(CSV_SUFFIXES + JSONL_SUFFIXES)
            + "; or a CDM folder prefix ending in '/')."
        )
    found = [b for b in store.list_blobs(segment.path) if b.name == segment.path]
    if not found:
        raise SegmentError(f"segment '{segment.path}' not found in the segments container.")
    return [_plain_file(found[0], segment)]


def read_chunks(store: BlobStore, file: SegmentFile) -> Iterator[bytes]:
    """The file's bytes, of the version it was listed at (see the module doc)."""
    try:
        yield from store.iter_chunks(file.name, file.snapshot, etag=file.etag)
    except BlobChanged:
        raise SegmentChanged(file.name) from None


def unchanged_since_listed(store: BlobStore, plan: SegmentPlan) -> None:
    """Fail with :class:`SegmentChanged` if a file of the plan is no longer the version listed
    (one listing a segment): before a step that cannot be undone, such as creating a list."""
    for segment, files in plan:
        current = {b.name: b.etag for b in store.list_blobs(segment.path)}
        for file in files:
            if file.etag is not None and current.get(file.name) != file.etag:
                raise SegmentChanged(file.name)


def _prefix_files(store: BlobStore, segment: SegmentRef) -> list[SegmentFile]:
    listed = store.list_blobs(segment.path)
    by_name = {b.name: b for b in listed}
    model = segment.path + cdm.MODEL_FILE
    if model in by_name:
        return _cdm_files(store, segment, by_name[model], by_name)
    if segment.table:
        raise SegmentError(f"segment '{segment.path}': \"table\" is set but the prefix holds no {cdm.MODEL_FILE}.")
    files = [_plain_file(b, segment) for b in sorted(listed, key=lambda b: b.name) if _format_of(b.name)]
    if not files:
        raise SegmentError(
            f"segment '{segment.path}': no .csv, .txt, .jsonl, .ndjson (or .gz of them) files, and no "
            f"{cdm.MODEL_FILE}, under this prefix in the segments container."
        )
    return files


def _format_of(name: str) -> str | None:
    """The format a file is read as, by its suffix; None for a file no segment reads."""
    lowered = name.lower()
    if lowered.endswith(CSV_SUFFIXES):
        return "csv"
    if lowered.endswith(JSONL_SUFFIXES):
        return "jsonl"
    return None


def _plain_file(blob: BlobInfo, segment: SegmentRef) -> SegmentFile:
    return SegmentFile(blob.name, _format_of(blob.name) or "csv", segment.csv, etag=blob.etag)


def _cdm_files(
    store: BlobStore, segment: SegmentRef, model: BlobInfo, listed: dict[str, BlobInfo]
) -> list[SegmentFile]:
    source = f"segment '{segment.path}': {model.name}"
    entities = cdm.parse_model(_read_model(store, model, source), source)
    entity = cdm.select_entity(entities, segment.table, source)
    files = cdm.partition_files(entity, segment.path, set(listed), store.blob_name_from_url, source)
    return [
        # A snapshot never changes (and has an ETag of its own, not the listed blob's).
        SegmentFile(
            f.blob,
            "csv",
            f.csv,
            f.snapshot,
            proven_complete=f.listed,
            etag=None if f.snapshot or f.blob not in listed else listed[f.blob].etag,
        )
        for f in files
    ]


def _read_model(store: BlobStore, model: BlobInfo, source: str) -> bytes:
    """``model.json`` of the version listed, read no further than :data:`cdm.MAX_MODEL_BYTES`."""
    data = bytearray()
    try:
        for chunk in read_chunks(store, SegmentFile(model.name, "json", etag=model.etag)):
            data += chunk
            if len(data) > cdm.MAX_MODEL_BYTES:
                raise SegmentError(
                    f"{source} is over {cdm.MAX_MODEL_BYTES:,} bytes: no Customer Insights model.json "
                    "is; it is not read. Check that the folder's model.json is the one CDM wrote."
                )
    except BlobNotFound as exc:
        raise SegmentError(f"{source}: {exc}") from None
    return bytes(data)
