"""Which blobs a segment names: one blob, every readable blob under a prefix, or the partitions a
CDM folder's ``model.json`` lists (see :mod:`shared.inputs.cdm`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.adapters.storage import BlobNotFound, BlobStore
from shared.errors import SegmentError
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
    if not any(b.name == segment.path for b in store.list_blobs(segment.path)):
        raise SegmentError(f"segment '{segment.path}' not found in the segments container.")
    return [_plain_file(segment.path, segment)]


def _prefix_files(store: BlobStore, segment: SegmentRef) -> list[SegmentFile]:
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


def _format_of(name: str) -> str | None:
    """The format a file is read as, by its suffix; None for a file no segment reads."""
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
