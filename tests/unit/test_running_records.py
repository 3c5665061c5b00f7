"""Which records are still running: found by the status each record blob carries in its metadata."""

from __future__ import annotations

import json

from shared.run.records import RunRecord, RunRecordStore, RunStatus, record_blob_name
from tests.fakes import InMemoryBlobStore


def saved(store: RunRecordStore, run_id: str, status: RunStatus) -> RunRecord:
    record = RunRecord(run_id, "d", "schedule", status=status)
    store.save(record)
    return record


def test_every_running_record_is_found_however_many_came_after_it():
    exports = InMemoryBlobStore()
    store = RunRecordStore(exports)
    saved(store, "20260101T000000Z-00000001", RunStatus.RUNNING)
    for i in range(50):
        saved(store, f"20260102T000000Z-{i:08x}", RunStatus.SKIPPED)
    exports.write_bytes(record_blob_name("d", "20260103T000000Z-bad00000"), b"not json", content_type="x")
    assert [r.run_id for r in store.running("d")] == ["20260101T000000Z-00000001"]
    assert exports.metadata[record_blob_name("d", "20260101T000000Z-00000001")] == {"status": "running"}


def test_records_of_an_earlier_version_without_the_mark_are_read_among_the_newest():
    exports = InMemoryBlobStore()
    store = RunRecordStore(exports)

    def legacy(run_id: str, status: str) -> None:  # written before records carried their status
        body = json.dumps(RunRecord(run_id, "d", "schedule", status=RunStatus(status)).to_dict()).encode()
        exports.write_bytes(record_blob_name("d", run_id), body, content_type="application/json")

    legacy("20260101T000000Z-00000001", "running")  # older than the newest 20 unmarked
    for i in range(20):
        legacy(f"20260102T000000Z-{i:08x}", "succeeded")
    legacy("20260103T000000Z-00000002", "running")
    assert [r.run_id for r in store.running("d", unmarked=20)] == ["20260103T000000Z-00000002"]
