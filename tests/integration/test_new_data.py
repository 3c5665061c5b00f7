"""Exports that follow their data: Event Grid BlobCreated events through the registered function."""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import UTC, datetime

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage

from shared.entrypoints import service
from shared.run.records import RunRecord, RunStatus
from tests.conftest import destination, make_runtime
from tests.integration.test_function_app import call

pytestmark = pytest.mark.integration

ACCOUNT_TOPIC = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-export/providers/"
    "Microsoft.Storage/storageAccounts/stexport"
)


def blob_created(container: str, name: str, event_type: str = "Microsoft.Storage.BlobCreated") -> func.EventGridEvent:
    """An event as Event Grid documents BlobCreated (Event Grid schema)."""
    return func.EventGridEvent(
        id=str(uuid.uuid4()),
        topic=ACCOUNT_TOPIC,
        subject=f"/blobServices/default/containers/{container}/blobs/{name}",
        event_type=event_type,
        event_time=datetime.now(UTC),
        data_version="",
        data={
            "api": "PutBlockList",
            "clientRequestId": str(uuid.uuid4()),
            "requestId": str(uuid.uuid4()),
            "eTag": "0x8D4BCC2E4835CD0",
            "contentType": "text/csv",
            "contentLength": 524288,
            "blobType": "BlockBlob",
            "url": f"https://stexport.blob.core.windows.net/{container}/{name}",
            "sequencer": "00000000000004420000000000028963",
            "storageDiagnostics": {"batchId": "b68529f3-68cd-4744-baa4-3c0498ec19f0"},
        },
    )


@pytest.fixture
def app_runtime(workspace):
    workspace.env["EXPORT_SETTLE_SECONDS"] = "2"
    runtime = make_runtime(workspace)
    service.reset_app_runtime(runtime)
    yield runtime
    service.reset_app_runtime()


def queued_records(runtime, name="newsletter") -> list[RunRecord]:
    return [r for r in runtime.edges.records.recent(name, limit=50) if r.trigger == "on_new_data"]


def land(workspace, name: str, data: str = "Email\np1@example.com\n") -> None:
    workspace.put_segment(name, data)
    call("segment_landed", blob_created(workspace.segments.container_name, name))


def test_one_event_queues_one_run_that_starts_after_the_settle_delay(workspace, simulator, app_runtime):
    workspace.put_destinations(destination(on_new_data=True))
    land(workspace, "people.csv")
    [record] = queued_records(app_runtime)
    assert record.status == "queued" and record.requested_by == "event grid"
    assert workspace.take_jobs() == []  # invisible for the settle delay: a burst has time to land
    message = None
    for _ in range(40):
        messages = list(workspace.queue.receive_messages(max_messages=1, visibility_timeout=30))
        if messages:
            message = messages[0]
            break
        time.sleep(0.25)
    assert message is not None and record.run_id in message.content
    call("export_worker", QueueMessage(id="m", body=message.content.encode(), dequeue_count=1))
    final = app_runtime.edges.records.load("newsletter", record.run_id)
    assert final.status == "succeeded" and final.trigger == "on_new_data"
    assert simulator.members("Newsletter") == ["p1@example.com"]


def test_a_burst_of_five_files_queues_one_run(workspace, simulator, app_runtime):
    workspace.put_destinations(destination(on_new_data=True, segments=[{"path": "drop/"}]))
    for i in range(5):
        land(workspace, f"drop/part-{i}.csv")
    assert len(queued_records(app_runtime)) == 1


def test_a_cdm_folder_runs_on_its_model_json_not_on_each_partition(workspace, simulator, app_runtime):
    workspace.put_destinations(destination(on_new_data=True, segments=[{"path": "ci/Newsletter/"}]))
    workspace.put_segment("ci/Newsletter/model.json", "{}")
    land(workspace, "ci/Newsletter/Newsletter/part-1.csv")
    assert queued_records(app_runtime) == []
    call("segment_landed", blob_created(workspace.segments.container_name, "ci/Newsletter/model.json"))
    assert len(queued_records(app_runtime)) == 1


@pytest.mark.parametrize(
    ("container", "name", "event_type"),
    [
        (None, "other/people.csv", "Microsoft.Storage.BlobCreated"),  # a path no destination covers
        ("another-container", "people.csv", "Microsoft.Storage.BlobCreated"),
        (None, "people.csv", "Microsoft.Storage.BlobDeleted"),
    ],
)
def test_unrelated_events_queue_nothing(workspace, simulator, app_runtime, container, name, event_type):
    workspace.put_destinations(destination(on_new_data=True))
    call("segment_landed", blob_created(container or workspace.segments.container_name, name, event_type))
    assert queued_records(app_runtime) == [] and workspace.take_jobs() == []


def test_destinations_that_do_not_follow_or_may_not_run_are_not_queued_and_the_log_says_why(
    workspace, simulator, app_runtime, caplog
):
    workspace.put_destinations(
        destination(),  # on_new_data not set: the timer and HTTP only
        destination(name="paused", on_new_data=True, enabled=False),
        destination(name="unconsented", on_new_data=True, data_privacy_consent=False),
    )
    land(workspace, "people.csv")
    assert [queued_records(app_runtime, n) for n in ("newsletter", "paused", "unconsented")] == [[], [], []]
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "paused, which is disabled" in said and "unconsented, which has no data_privacy_consent" in said


def test_a_run_that_started_lets_the_next_event_queue_another(workspace, simulator, app_runtime):
    workspace.put_destinations(destination(on_new_data=True))
    land(workspace, "people.csv")
    [first] = queued_records(app_runtime)
    first.status = RunStatus.RUNNING
    app_runtime.edges.records.save(first)
    land(workspace, "people.csv")
    assert len(queued_records(app_runtime)) == 2


@pytest.mark.parametrize(
    "event",
    [
        func.EventGridEvent(
            id="1", topic="t", subject="", event_type="", event_time=None, data_version="", data={}
        ),  # no type
        func.EventGridEvent(
            id="2",
            topic="t",
            subject="/blobServices/default/containers/x/nothing",
            event_type="Microsoft.Storage.BlobCreated",
            event_time=None,
            data_version="",
            data={},
        ),  # a subject that names no blob
        func.EventGridEvent(
            id="3",
            topic="t",
            subject="/blobServices/default/containers/segments/blobs/" + "a" * 5000,
            event_type="Microsoft.Storage.BlobCreated",
            event_time=None,
            data_version="",
            data={},
        ),
    ],
)
def test_a_malformed_event_is_logged_and_dropped(workspace, simulator, app_runtime, caplog, event):
    workspace.put_destinations(destination(on_new_data=True))
    caplog.set_level(logging.DEBUG)
    call("segment_landed", event)  # returns: Event Grid must not deliver it again and again
    assert queued_records(app_runtime) == []
    assert any("dropped a malformed Event Grid event" in r.getMessage() for r in caplog.records)


def queue_length(workspace) -> int:
    # Counts invisible (delayed) messages too.
    return workspace.queue.get_queue_properties().approximate_message_count


def test_two_deliveries_handled_at_the_same_moment_queue_one_run(workspace, simulator, app_runtime):
    workspace.put_destinations(destination(on_new_data=True))
    workspace.put_segment("people.csv", "Email\np1@example.com\n")
    event = blob_created(workspace.segments.container_name, "people.csv")
    real_write_if = app_runtime.edges.exports.write_if
    raced: list[bool] = []

    def write_if(name, data, **kwargs):
        if not raced:  # a second delivery runs in the gap between reading the gate and writing it
            raced.append(True)
            call("segment_landed", event)
        return real_write_if(name, data, **kwargs)

    app_runtime.edges.exports.write_if = write_if
    call("segment_landed", event)
    # The delivery that lost the gate joined the winner's run: no second record, skipped or not.
    statuses = sorted(r.status for r in queued_records(app_runtime))
    assert statuses == ["queued"] and queue_length(workspace) == 1


def test_a_new_data_run_that_finds_the_lock_held_is_queued_again_not_dropped(workspace, simulator, app_runtime):
    workspace.put_destinations(destination(on_new_data=True))
    land(workspace, "people.csv")
    [record] = queued_records(app_runtime)
    job = json.dumps(
        {"run_id": record.run_id, "destination": "newsletter", "trigger": "on_new_data", "requested_by": "event grid"}
    )
    with app_runtime.edges.lock.hold("newsletter", "20261201T000000Z-0000beef"):  # an older run still going
        call("export_worker", QueueMessage(id="m", body=job.encode(), dequeue_count=1))
    again = app_runtime.edges.records.load("newsletter", record.run_id)
    assert again.status == "queued" and "queued again" in again.errors[-1]
    assert queue_length(workspace) == 2  # the first delivery's message, and this one
