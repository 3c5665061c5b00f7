"""Storage unreachable for longer than the lock's lease: the run stops sending and ends failed."""

from __future__ import annotations

import threading
import time

import pytest
from azure.storage.blob import BlobServiceClient

from shared.adapters.locks import BlobLeaseLock
from shared.adapters.storage import AzureBlobStore
from shared.entrypoints.service import run_now
from shared.run.records import ExportOptions
from tests.conftest import Workspace, destination, make_runtime
from tests.integration.test_faults import people
from tools.standins.storage import Emulator

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LEASE = 15  # the shortest lease Blob Storage allows


def test_a_lock_that_cannot_be_renewed_stops_the_run_before_its_lease_expires(simulator):
    with Emulator() as storage:  # its own emulator: the test freezes it
        service = BlobServiceClient.from_connection_string(storage.connection_string)
        exports, segments = service.create_container("exports"), service.create_container("segments")
        env = {
            "EXPORT_STORAGE": storage.connection_string,
            "SEGMENTS_CONTAINER": "segments",
            "EXPORTS_CONTAINER": "exports",
            "SECRETS_SOURCE": "environment",
            "SENDGRID_SECRET_SENDGRID_API_KEY": "test-api-key-" + "x" * 24,
            "SENDGRID_API_BASE_URL": simulator.url,
        }
        workspace = Workspace(storage.connection_string, segments, exports, None, env)  # type: ignore[arg-type]
        workspace.put_segment("people.csv", people(6000))
        workspace.put_destinations(destination())
        # One batch of 100 every half second: sending would outlast the outage by far.
        simulator.fault(kind="delay", seconds=0.5, method="PUT", path="/v3/marketing/contacts", times=100)
        runtime = make_runtime(workspace, max_batch_contacts=100, send_concurrency=1)
        assert isinstance(runtime.edges.exports, AzureBlobStore)
        runtime.edges.lock = BlobLeaseLock(runtime.edges.exports._container, lease_seconds=LEASE, renew_every=5)
        done = []
        run = threading.Thread(
            target=lambda: done.append(run_now(runtime, "newsletter", options=ExportOptions(), requested_by="t"))
        )
        run.start()
        while not any(r["method"] == "PUT" for r in simulator.state.requests):
            time.sleep(0.05)
        storage.pause()
        time.sleep(LEASE + 5)  # longer than the lease: renewals fail until it would have expired
        sent_during_outage = _puts(simulator)
        storage.resume()
        run.join(120)
        (record,) = done
        assert record.status == "failed" and any("the lock of 'newsletter' was lost" in e for e in record.errors)
        assert _puts(simulator) == sent_during_outage < 60  # nothing sent once the lock was lost
        stored = runtime.edges.records.load("newsletter", record.run_id)
        assert stored is not None
        assert stored.status == "failed" and stored.errors == record.errors
        again = run_now(make_runtime(workspace), "newsletter", options=ExportOptions(), requested_by="t")
        assert again.status == "succeeded", again.errors


def _puts(simulator) -> int:
    return sum(r["method"] == "PUT" for r in simulator.state.requests)
