"""A run's read: every file of every segment through a :class:`FileReader` (the hot loop), with
each file's counts summed up in the record and the run's progress told as chunks are read."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import cast

from shared.inputs.destination import FieldMapping
from shared.inputs.mapping import plan_columns
from shared.inputs.rows import CustomFieldDef, RowRules
from shared.inputs.segments import SegmentFile, SegmentPlan, open_segment_file
from shared.run.counts import FILE_COUNTS
from shared.run.delta import KnownRows, RowFingerprinter, RunKeys, RunOrder, SyncState
from shared.run.file_reader import FileReader
from shared.run.progress import RunProgress
from shared.run.record_parts import FileEntry, SegmentEntry
from shared.run.records import RejectsWriter, RunRecord
from shared.run.runtime import Runtime
from shared.run.send import BatchSpool

log = logging.getLogger(__name__)

# Lines read (at least this many, and a tenth of all) before the share of them that made keys
# is taken to promise how many keys come.
_LINES_BEFORE_RESERVING = 50_000


@dataclass(frozen=True)
class ContactShape:
    """What shapes the contact a row makes, besides the row: the destination's field mapping,
    its custom fields as SendGrid defines them, and the lists it is sent to. All of it seeds a
    row's fingerprint, so that a change to any of it sends every contact again."""

    mapping: FieldMapping | None
    custom_fields: dict[str, CustomFieldDef]
    list_ids: list[str]

    def fingerprint_seeds(self) -> tuple[str, str]:
        """The lists, and the custom fields as SendGrid defines them, as a row's fingerprint is
        seeded with them."""
        lists = ",".join(sorted(self.list_ids))
        return lists, ";".join(f"{d.name}:{d.id}:{d.field_type}" for d in self.custom_fields.values())


class SegmentsReading:
    """Every file of every segment through a :class:`FileReader`; each file's own counts go to
    its segment's summary in the record."""

    def __init__(
        self, record: RunRecord, rejects: RejectsWriter, progress: RunProgress, spool: BatchSpool, runtime: Runtime
    ):
        self.record, self.rejects, self.progress, self.spool = record, rejects, progress, spool
        self.store, self.max_record_bytes = runtime.edges.segments, runtime.settings.max_record_bytes
        self.release_memory = runtime.tuning.release_memory
        self._seen: RunKeys | None = None  # the keys of the read under way, until told how many lines come
        self._lines_done = 0  # lines of the files read to the end
        self._file_rows = 0  # rows of the file under way already in counts.read

    def read(self, shape: ContactShape, plan: SegmentPlan, state: SyncState, *, full: bool, mirror: bool) -> RunKeys:
        """Read every record into the spool. Returns the keys of every valid contact (mirror
        mode needs them to find who left)."""
        # The records SendGrid already has, found in the state; --full knows none.
        known = None if full or not len(state) else KnownRows(state.fingerprints)
        # Email keys of this run's valid contacts: de-duplication, first wins. Those the state
        # holds are kept by position; a --full run in upsert mode needs no positions.
        seen = RunKeys(state if known is not None or mirror else None)
        if known is not None:
            seen.order = RunOrder()
        self._seen = seen
        for segment, files in plan:
            summary: SegmentEntry = {"path": segment.path, "files": len(files), "rows": 0, "by_file": []}
            self.record.segments.append(summary)
            for file in files:
                by_file = self._read_file(file, shape, known, seen)
                summary["rows"] += by_file["rows"]
                summary["by_file"].append(by_file)
                self.release_memory()
        self._seen = None
        return seen

    def _read_file(self, file: SegmentFile, shape: ContactShape, known: KnownRows | None, seen: RunKeys) -> FileEntry:
        counts, mapping, (lists, customs) = self.record.counts, shape.mapping, shape.fingerprint_seeds()
        table = open_segment_file(self.store, file, mapping, self.max_record_bytes)
        columns = plan_columns(mapping, table.columns, file.name)
        reader = FileReader(
            table,
            RowRules(columns, shape.custom_fields, encoding=file.csv.encoding.upper()),
            RowFingerprinter(lists, repr(columns), customs, "\x1f".join(table.columns)),
            counts,
            self.rejects,
            self.spool,
        )
        before = counts.snapshot()
        self._file_rows = 0
        try:
            rows = reader.read(known, seen, self._on_chunk)
        except BaseException:
            # Stopped inside a chunk: the rows it got to were read (each is counted once already).
            counts.read = counts.invalid + counts.duplicate + counts.unchanged + counts.sent + counts.would_send
            raise
        counts.read += rows - self._file_rows
        self._lines_done += reader.lines
        counts.control_chars_stripped += table.control_chars_stripped
        log.info("read %s: %d rows (%d to send so far)", file.name, rows, self.spool.count)
        changed = cast(FileEntry, counts.changed_since(before, FILE_COUNTS))  # only FILE_COUNTS keys
        return {"name": file.name, "rows": rows, **changed}

    def _on_chunk(self, rows_in_file: int, lines_in_file: int) -> None:
        progress = self.progress
        # Counted as each chunk is done, so that a record saved meanwhile adds up.
        self.record.counts.read += rows_in_file - self._file_rows
        self._file_rows = rows_in_file
        progress.rows_read = self.record.counts.read
        lines, total = self._lines_done + lines_in_file, progress.rows_total
        if self._seen is not None and total and lines >= max(_LINES_BEFORE_RESERVING, total // 10):
            # The scan has counted the lines (rows_total, at least as many as the rows): here,
            # in the reading thread, the run's keys make room once for as many as the lines
            # read so far promise.
            self._seen.expect(total, lines)
            self._seen = None
        progress.batches_spooled = self.spool.batch_count
        progress.tick()
