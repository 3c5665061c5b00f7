"""Hostile input that attacks a run's life rather than its rows: segment blobs replaced while a run
reads them, bursts of deliveries, duplicate deliveries of a running job. Against the real storage
emulator (Azurite) and the SendGrid simulator."""

from __future__ import annotations

import json
import threading
import time

import pytest
from azure.functions.queue import QueueMessage
from azure.storage.blob import ContainerClient

from shared.adapters.storage import AzureBlobStore, BlobChanged
from shared.entrypoints import service
from shared.run.export import queue_run, run_export
from shared.run.records import ExportOptions, RunStatus
from tests.conftest import destination, make_runtime
from tests.integration.test_function_app import call, http
from tests.integration.test_new_data import blob_created, land, queue_length

pytestmark = pytest.mark.integration

CHANGED = "changed during the run; the next run will read the new one"


def rows(count: int, start: int = 0) -> bytes:
    return ("Email\n" + "".join(f"p{i}@example.com\n" for i in range(start, start + count))).encode()


# -- a segment blob replaced while the run reads it --------------------------------------------------


def test_azurite_honours_if_match_on_a_pinned_read(workspace):
    store = AzureBlobStore(workspace.segments)
    workspace.put_segment("a.csv", b"one")
    [listed] = store.list_blobs("a.csv")
    assert listed.etag == workspace.segments.get_blob_client("a.csv").get_blob_properties().etag  # quoted
    assert b"".join(store.iter_chunks("a.csv", etag=listed.etag)) == b"one"
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


# -- bursts, duplicates and waits of the runs themselves ----------------------------------------------


@pytest.fixture
def app_runtime(workspace):
    """The Functions app's runtime; a run of new data settles for 2 s."""
    workspace.env["EXPORT_SETTLE_SECONDS"] = "2"
    runtime = make_runtime(workspace)
    service.reset_app_runtime(runtime)
    yield runtime
    service.reset_app_runtime()


def all_records(runtime) -> list:
    return runtime.edges.records.recent("newsletter", limit=100)


def in_parallel(count: int, target) -> list:
    """``target()`` from ``count`` threads at once (a barrier lines them up); their results."""
    barrier = threading.Barrier(count)
    results: list = [None] * count
    errors: list[BaseException] = []

    def one(index: int) -> None:
        barrier.wait()
        try:
            results[index] = target()
        except BaseException as exc:  # reported below, on the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return results


def test_a_burst_of_parallel_events_costs_one_run_record(workspace, simulator, app_runtime, caplog):
    workspace.put_destinations(destination(on_new_data=True))
    workspace.put_segment("people.csv", rows(3))
    event = blob_created(workspace.segments.container_name, "people.csv")
    in_parallel(36, lambda: call("segment_landed", event))
    [record] = all_records(app_runtime)
    assert record.status == "queued" and record.trigger == "on_new_data"
    assert queue_length(workspace) == 1
    joined = [r for r in caplog.records if f"run {record.run_id} is queued and has not started" in r.getMessage()]
    assert len(joined) == 35


def test_a_burst_of_parallel_requests_costs_one_run_record(workspace, simulator, app_runtime):
    workspace.put_destinations(destination())
    workspace.put_segment("people.csv", rows(3))
    answers = in_parallel(30, lambda: http("start_export", "POST", "x", route={"name": "newsletter"}))
    assert {status for status, _, _ in answers} == {202}
    run_ids = {body["run_id"] for _, body, _ in answers}
    [record] = all_records(app_runtime)
    assert run_ids == {record.run_id} and queue_length(workspace) == 1
    # Other options are another request: a run of their own.
    status, body, _ = http("start_export", "POST", "x", route={"name": "newsletter"}, body=b'{"dry_run": true}')
    assert status == 202 and body["run_id"] != record.run_id and len(all_records(app_runtime)) == 2


def test_the_abandoned_run_scan_is_not_outrun_by_later_records(workspace, simulator, app_runtime):
    workspace.put_destinations(destination())
    workspace.put_segment("people.csv", rows(3))
    store = app_runtime.edges.records
    abandoned = queue_run(app_runtime, "newsletter", trigger="schedule")
    abandoned.status, abandoned.started_at = RunStatus.RUNNING, abandoned.queued_at
    store.save(abandoned)  # its process died: it stays "running"
    for _ in range(30):  # then many runs that ended at once (skipped: the lock was held)
        later = queue_run(app_runtime, "newsletter", trigger="on_demand")
        later.status = RunStatus.SKIPPED
        store.save(later)
    record = service.run_now(app_runtime, "newsletter", options=ExportOptions(), requested_by=None)
    assert record.status == "succeeded"
    closed = store.load("newsletter", abandoned.run_id)
    assert closed.status == "failed" and f"found by run {record.run_id}" in closed.errors[-1]


def test_a_new_data_run_waiting_behind_the_lock_for_hours_is_queued_once_with_one_line(
    workspace, simulator, app_runtime
):
    workspace.put_destinations(destination(on_new_data=True))
    land(workspace, "people.csv")
    [record] = all_records(app_runtime)
    record.queued_at = "2026-01-01T00:00:00.000Z"  # queued hours ago, and waiting since
    app_runtime.edges.records.save(record)
    workspace.take_jobs()
    job = job_body(record)
    with app_runtime.edges.lock.hold("newsletter", "20261201T000000Z-0000beef"):  # a long run of older data
        for _ in range(5):
            call("export_worker", QueueMessage(id="m", body=job.encode(), dequeue_count=1))
    land(workspace, "people.csv")  # more new data: it joins the waiting run, not lost but waiting
    assert [r.run_id for r in all_records(app_runtime)] == [record.run_id]
    waiting = app_runtime.edges.records.load("newsletter", record.run_id)
    assert waiting.status == "queued" and waiting.errors == [
        "run 20261201T000000Z-0000beef held the lock; queued again to start in 30 s (5 times so far)."
    ]


@pytest.mark.parametrize("trigger", ["on_demand", "on_new_data"])
def test_a_duplicate_delivery_of_a_running_job_leaves_its_record_alone(
    workspace, simulator, app_runtime, caplog, trigger
):
    workspace.put_destinations(destination())
    workspace.put_segment("people.csv", rows(3))
    simulator.config(job_delay=2.0)  # keeps the run waiting for SendGrid's job
    record = queue_run(app_runtime, "newsletter", trigger=trigger)
    job = job_body(record)
    first = threading.Thread(target=call, args=("export_worker", QueueMessage(body=job.encode(), dequeue_count=1)))
    first.start()
    store = app_runtime.edges.records
    for _ in range(200):  # until the run has started (a condition, not a race)
        if store.load("newsletter", record.run_id).status == "running":
            break
        time.sleep(0.05)
    call("export_worker", QueueMessage(body=job.encode(), dequeue_count=1))  # the same job again
    during = store.load("newsletter", record.run_id)
    first.join()
    assert during.status == "running" and during.finished_at is None and during.errors == []
    final = store.load("newsletter", record.run_id)
    assert final.status == "succeeded" and final.errors == []
    assert queue_length(workspace) == 0  # not queued again either
    said = [r.getMessage() for r in caplog.records]
    assert any(f"run {record.run_id} of newsletter is under way in another delivery" in m for m in said)
    assert not any("skipped" in m for m in said)


def job_body(record) -> str:
    return json.dumps(
        {
            "run_id": record.run_id,
            "destination": record.destination,
            "trigger": record.trigger,
            "requested_by": record.requested_by,
        }
    )
