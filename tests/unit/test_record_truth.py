"""Every saved record is true: a run interrupted anywhere (Ctrl-C, a stop signal) saves a record
whose counts keep the conservation law, whose rejects file agrees with its counts, and whose
progress is final."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from typing import Any

import pytest

from shared.run.counts import RunCounts, conservation_faults
from shared.run.export import queue_run
from shared.run.reader import SegmentsReading
from shared.run.records import RunRecordStore
from shared.run.worker import INTERRUPTED, run_locked
from tests.unit.test_export_core import setup


def rows(n: int) -> str:
    lines = ["Email,FirstName"] + [f"p{i}@example.com,Ann" if i % 7 else f"bad {i},Bo" for i in range(n)]
    return "\n".join(lines) + "\n"


class SavedRecords(RunRecordStore):
    """The record store, keeping a copy of every record it saves."""

    def __init__(self, exports: Any) -> None:
        super().__init__(exports)
        self.saved: list[dict[str, Any]] = []

    def save(self, record: Any) -> None:
        super().save(record)
        self.saved.append(json.loads(json.dumps(record.to_dict())))


@pytest.mark.parametrize("at_chunk", [1, 2, 4, 7])
def test_a_run_interrupted_while_it_reads_and_sends_saves_only_true_records(monkeypatch, at_chunk):
    runtime, _ = setup(csv_text=rows(400_000))  # about 20 chunks of 1 MiB of text
    runtime.edges.segments.chunk_size = 256 * 1024
    runtime.edges.records = records = SavedRecords(runtime.edges.exports)
    runtime.tuning = dataclasses.replace(runtime.tuning, max_batch_contacts=5000)
    chunks = 0
    on_chunk = SegmentsReading._on_chunk

    def interrupted(self: SegmentsReading, rows_in_file: int, lines: int) -> None:
        nonlocal chunks
        chunks += 1
        if chunks == at_chunk:
            raise KeyboardInterrupt  # Ctrl-C while the run reads, batches already sent
        on_chunk(self, rows_in_file, lines)

    monkeypatch.setattr(SegmentsReading, "_on_chunk", interrupted)
    record = queue_run(runtime, "newsletter", trigger="cli")
    with pytest.raises(KeyboardInterrupt):
        run_locked(runtime, record)
    final = records.load("newsletter", record.run_id)
    assert final is not None and final.status == "failed" and final.errors.count(INTERRUPTED) == 1
    assert conservation_faults(final.counts, final=True) == []
    assert final.progress is not None and final.progress["stage"] == "failed"
    assert final.progress["eta_seconds"] is None
    for saved in records.saved:
        assert conservation_faults(RunCounts.from_dict(saved["counts"]), final=saved["status"] == "failed") == []
    # runs and rejects agree: rejected = invalid + errored = the rejects file's rows of those kinds
    rejected = 0
    if final.rejects_blob:
        table = csv.DictReader(io.StringIO(runtime.edges.exports.blobs[final.rejects_blob].decode()))
        rejected = sum(row["category"] in ("invalid", "errored") for row in table)
    assert rejected == final.counts.rejected
    assert (final.counts.read > 0) == (at_chunk > 1)
