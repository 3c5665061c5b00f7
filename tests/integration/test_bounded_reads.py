"""Our own state blobs are outside input too: a gate, a run record or destinations.json far larger
than any we write is not read into memory whole (a careless upload, a hostile writer). Against
Azurite, whose range reads are the bound."""

from __future__ import annotations

import pytest

from shared.adapters.storage import AzureBlobStore, BlobTooLarge
from shared.errors import ConfigError
from shared.run import queue_gate
from shared.run.destinations import load_destinations
from tests.conftest import make_runtime

pytestmark = pytest.mark.integration


def test_a_bounded_read_fetches_no_more_than_its_bound_and_an_empty_blob_is_read(workspace):
    store = AzureBlobStore(workspace.exports)
    store.write_bytes("big", b"x" * 5000, content_type="application/octet-stream")
    store.write_bytes("empty", b"", content_type="application/octet-stream")
    with pytest.raises(BlobTooLarge, match="blob 'big' is over 4,999 bytes"):
        store.read_bytes("big", max_bytes=4999)
    assert store.read_bytes("big", max_bytes=5000) == b"x" * 5000
    assert store.read_bytes("empty", max_bytes=10) == b""
    big, empty = store.read_versioned("big", max_bytes=100), store.read_versioned("empty", max_bytes=100)
    assert big == (b"x" * 101, workspace.exports.get_blob_client("big").get_blob_properties().etag)
    assert (
        empty is not None
        and empty[0] == b""
        and empty[1] == workspace.exports.get_blob_client("empty").get_blob_properties().etag
    )
    assert store.read_versioned("none", max_bytes=100) is None


class Measured:
    """The exports store, noting how many bytes each read of a gate brought."""

    def __init__(self, store):
        self._store, self.read = store, []

    def __getattr__(self, attr):
        return getattr(self._store, attr)

    def read_versioned(self, name, **bound):
        found = self._store.read_versioned(name, **bound)
        self.read.append(len(found[0]) if found else 0)
        return found


def test_a_huge_gate_is_replaced_not_read_whole(workspace):
    runtime = make_runtime(workspace)
    runtime.edges.exports = measured = Measured(runtime.edges.exports)
    gate = queue_gate.new_data_gate("newsletter")
    huge = b'{"run_id": "' + b"x" * (queue_gate.MAX_GATE_BYTES * 4) + b'"}'
    runtime.edges.exports.write_bytes(gate, huge, content_type="application/json")
    record = queue_gate.queued_record(queue_gate.RunRequest("newsletter", "on_new_data"))
    assert queue_gate.claim(runtime, gate, record, delay=30) is None  # the run is its own
    assert runtime.edges.exports.read_bytes(gate).startswith(b'{"run_id": "' + record.run_id.encode())
    assert measured.read and max(measured.read) <= queue_gate.MAX_GATE_BYTES + 1


def test_a_run_record_or_destinations_json_past_its_bound_is_a_clear_error(workspace, monkeypatch):
    runtime = make_runtime(workspace)
    exports = runtime.edges.exports
    monkeypatch.setattr("shared.run.records.MAX_RECORD_BYTES", 1000)
    exports.write_bytes("runs/newsletter/20261201T000000Z-00000000.json", b" " * 2000, content_type="application/json")
    assert runtime.edges.records.recent("newsletter") == []  # skipped, as a corrupt record is
    monkeypatch.setattr("shared.run.destinations.MAX_DESTINATIONS_BYTES", 1000)
    exports.write_bytes(runtime.settings.destinations_blob, b" " * 2000, content_type="application/json")
    with pytest.raises(ConfigError, match=r"destinations\.json is over 1,000 bytes, far more than any list"):
        load_destinations(runtime)
