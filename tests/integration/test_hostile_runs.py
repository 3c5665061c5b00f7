"""Hostile input that attacks a run's life rather than its rows: segment blobs replaced while a run
reads them, bursts of deliveries, duplicate deliveries of a running job. Against the real storage
emulator (Azurite) and the SendGrid simulator."""

from __future__ import annotations

import json

import pytest
from azure.storage.blob import ContainerClient

from shared.adapters.storage import AzureBlobStore, BlobChanged
from shared.run.export import queue_run, run_export
from tests.conftest import destination, make_runtime

pytestmark = pytest.mark.integration

CHANGED = "changed during the run; the next run will read the new one"


def rows(count: int, start: int = 0) -> bytes:
    return ("Email\n" + "".join(f"p{i}@example.com\n" for i in range(start, start + count))).encode()


# -- a segment blob replaced while the run reads it --------------------------------------------------


def test_azurite_honours_if_match_on_a_pinned_read(workspace):
    store = AzureBlobStore(workspace.segments)
    workspace.put_segment("a.csv", b"one")
    [listed] = store.list_blobs("a.csv")
    assert listed.etag and b"".join(store.iter_chunks("a.csv", etag=listed.etag)) == b"one"
    workspace.put_segment("a.csv", b"two")
    with pytest.raises(BlobChanged):
        list(store.iter_chunks("a.csv", etag=listed.etag))
    assert b"".join(store.iter_chunks("a.csv")) == b"two"  # unpinned: the current version


def test_a_blob_replaced_between_two_chunks_of_one_read_fails_it_never_mixes(workspace):
    # Small chunks, so the replacement lands between two range requests of one download.
    container = ContainerClient.from_connection_string(
        workspace.connection_string,
        workspace.segments.container_name,
        max_single_get_size=1024,
        max_chunk_get_size=1024,
    )
    store = AzureBlobStore(container)
    for pinned in (True, False):  # pinned by us, or only by the SDK to its first answer
        workspace.put_segment("big.csv", b"a" * 64 * 1024)
        [listed] = store.list_blobs("big.csv")
        chunks = store.iter_chunks("big.csv", etag=listed.etag if pinned else None)
        first = next(chunks)
        workspace.put_segment("big.csv", b"b" * 64 * 1024)
        with pytest.raises(BlobChanged):
            rest = b"".join(chunks)
            raise AssertionError(f"read {len(first) + len(rest)} bytes of two versions")


class ReplacingStore:
    """The run's segments store; replaces ``name`` with ``data`` once, at a chosen moment: when
    the first download of it (the scan) has read it through, or as the second (the read) starts."""

    def __init__(self, store, workspace, name: str, data: bytes, when: str):
        self._store, self._workspace, self._name, self._data, self._when = store, workspace, name, data, when
        self.downloads = 0

    def __getattr__(self, attr):
        return getattr(self._store, attr)

    def _replace(self) -> None:
        self._workspace.put_segment(self._name, self._data)

    def iter_chunks(self, name, snapshot=None, **pin):
        if name == self._name:
            self.downloads += 1
            if self._when == "at the read" and self.downloads == 2:
                self._replace()
        yield from self._store.iter_chunks(name, snapshot, **pin)
        if name == self._name and self._when == "after the scan" and self.downloads == 1:
            self._replace()


class ListThenReplace:
    """The run's segments store; ``name`` is rewritten just after the first listing."""

    def __init__(self, store, workspace, name: str, data: bytes):
        self._store, self._workspace, self._name, self._data = store, workspace, name, data
        self._replaced = False

    def __getattr__(self, attr):
        return getattr(self._store, attr)

    def list_blobs(self, prefix, **kwargs):
        listed = self._store.list_blobs(prefix, **kwargs)
        if not self._replaced:
            self._replaced = True
            self._workspace.put_segment(self._name, self._data)
        return listed


def list_names(simulator) -> list[str]:
    return [item["name"] for item in simulator.snapshot()["lists"]]


@pytest.mark.parametrize("when", ["after the scan", "at the read"])
def test_a_segment_replaced_after_the_limit_check_sends_nothing_past_the_limit(workspace, simulator, when):
    # 50 rows pass max_profiles (60); the file is then replaced by 200 rows. Batches of 20 go as
    # they fill once the limit is proven, so a read of the new version would send them all.
    workspace.put_segment("people.csv", rows(50))
    workspace.put_destinations(destination(max_profiles=60))
    runtime = make_runtime(workspace, max_batch_contacts=20)
    runtime.edges.segments = ReplacingStore(runtime.edges.segments, workspace, "people.csv", rows(200), when)
    record = run_export(runtime, queue_run(runtime, "newsletter", trigger="cli"))
    assert record.status == "failed" and f"segment 'people.csv' {CHANGED}." in record.errors, record.errors
    assert simulator.snapshot()["upserted_contacts"] == 0
    if when == "after the scan":  # found before the list is created: nothing is left behind
        assert "Newsletter" not in list_names(simulator)
    assert record.counts.conserved() and record.counts.accepted == 0


def test_a_cdm_partition_replaced_after_listing_fails_the_run_naming_it(workspace, simulator):
    folder = "ci/Newsletter/"
    base = workspace.segments.url
    model = {
        "name": "CustomerInsights",
        "version": "1.0",
        "entities": [
            {
                "$type": "LocalEntity",
                "name": "Newsletter",
                "attributes": [{"name": "Email", "dataType": "string"}],
                "partitions": [{"name": "p1", "location": f"{base}/{folder}Newsletter/part-1.csv"}],
            }
        ],
    }
    workspace.put_segment(folder + "model.json", json.dumps(model))
    workspace.put_segment(folder + "Newsletter/part-1.csv", rows(50)[len("Email\n") :])
    workspace.put_destinations(destination(segments=[{"path": folder}], max_profiles=60))
    runtime = make_runtime(workspace, max_batch_contacts=20)
    replaced = rows(200, start=1000)[len("Email\n") :]
    runtime.edges.segments = ReplacingStore(
        runtime.edges.segments, workspace, folder + "Newsletter/part-1.csv", replaced, "after the scan"
    )
    record = run_export(runtime, queue_run(runtime, "newsletter", trigger="cli"))
    assert record.status == "failed" and f"segment '{folder}Newsletter/part-1.csv' {CHANGED}." in record.errors
    assert simulator.snapshot()["upserted_contacts"] == 0 and "Newsletter" not in list_names(simulator)


def test_a_cdm_model_json_replaced_after_listing_is_not_read(workspace, simulator):
    folder = "ci/Newsletter/"
    workspace.put_segment(folder + "model.json", "{}")
    workspace.put_destinations(destination(segments=[{"path": folder}]))
    runtime = make_runtime(workspace)
    runtime.edges.segments = ListThenReplace(runtime.edges.segments, workspace, folder + "model.json", b"[]")
    record = run_export(runtime, queue_run(runtime, "newsletter", trigger="cli"))
    assert record.status == "failed" and f"segment '{folder}model.json' {CHANGED}." in record.errors
