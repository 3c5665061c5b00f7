"""The gate that makes a burst of deliveries one queued run: the cases a real burst seldom meets."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from shared.errors import ExportError
from shared.run.ports import Edges
from shared.run.queue_gate import GATE_GRACE_SECONDS, RunRequest, claim, new_data_gate, on_demand_gate, queued_record
from shared.run.records import ExportOptions, RunRecordStore, RunStatus, iso, utc_now
from shared.run.runtime import Runtime
from shared.settings import Settings
from tests.fakes import DictSecrets, FakeSendGrid, InMemoryBlobStore, InMemoryLock, ListQueue, serving

GATE = new_data_gate("newsletter")


def runtime(exports: InMemoryBlobStore | None = None) -> Runtime:
    exports = exports or InMemoryBlobStore()
    edges = Edges(
        segments=InMemoryBlobStore(),
        exports=exports,
        secrets=DictSecrets({}),
        sendgrid=serving(FakeSendGrid()),
        lock=InMemoryLock(),
        jobs=ListQueue(),
        records=RunRecordStore(exports),
    )
    return Runtime(
        Settings.from_env({"EXPORT_STORAGE": "UseDevelopmentStorage=true", "SECRETS_SOURCE": "environment"}), edges
    )


def fresh():
    return queued_record(RunRequest("newsletter", "on_new_data", "event grid"))


def name_in_gate(rt: Runtime, run_id: str, seconds_ago: float) -> None:
    named_at = iso(utc_now() - timedelta(seconds=seconds_ago))
    rt.edges.exports.write_bytes(GATE, json.dumps({"run_id": run_id, "queued_at": named_at}).encode(), content_type="x")


def test_a_gate_naming_a_run_whose_record_is_being_saved_is_joined_then_taken_as_lost():
    rt = runtime()
    waiting = fresh()
    name_in_gate(rt, waiting.run_id, seconds_ago=1)  # its delivery is saving the record
    assert claim(rt, GATE, fresh(), delay=0) == waiting.run_id
    name_in_gate(rt, waiting.run_id, seconds_ago=GATE_GRACE_SECONDS + 5)  # that delivery died
    mine = fresh()
    assert claim(rt, GATE, mine, delay=0) is None
    assert json.loads(rt.edges.exports.read_bytes(GATE))["run_id"] == mine.run_id


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1]",
        b'{"run_id": "../../x"}',
        b'{"run_id": 7}',
        b"[" * 5000 + b"]" * 5000,
        # a time without its zone (a TypeError when compared), or none a calendar has
        b'{"run_id": "20261207T060000Z-00000000", "queued_at": "2026-12-07T06:00:00"}',
        b'{"run_id": "20261207T060000Z-00000000", "queued_at": "2026-13-45T99:00:00Z"}',
    ],
)
def test_a_gate_that_names_no_run_we_can_trust_is_replaced(body):
    rt = runtime()
    rt.edges.exports.write_bytes(GATE, body, content_type="x")
    mine = fresh()
    assert claim(rt, GATE, mine, delay=0) is None
    assert json.loads(rt.edges.exports.read_bytes(GATE))["run_id"] == mine.run_id


@pytest.mark.parametrize("status", [RunStatus.RUNNING, RunStatus.SUCCEEDED, RunStatus.SKIPPED])
def test_a_run_that_started_or_ended_is_not_joined(status):
    rt = runtime()
    earlier = fresh()
    earlier.status = status
    rt.edges.records.save(earlier)
    name_in_gate(rt, earlier.run_id, seconds_ago=0)
    assert claim(rt, GATE, fresh(), delay=0) is None


def test_a_run_queued_again_recently_is_joined_however_long_ago_it_was_first_queued():
    rt = runtime()
    earlier = fresh()
    earlier.queued_at = iso(utc_now() - timedelta(hours=5))
    rt.edges.records.save(earlier)
    name_in_gate(rt, earlier.run_id, seconds_ago=5 * 3600)
    assert claim(rt, GATE, fresh(), delay=120) is None  # lost: not queued again for hours
    rt.edges.exports.delete(GATE)
    name_in_gate(rt, earlier.run_id, seconds_ago=5 * 3600)
    earlier.requeued_at = iso(utc_now())
    rt.edges.records.save(earlier)
    assert claim(rt, GATE, fresh(), delay=120) == earlier.run_id


def test_a_gate_that_keeps_changing_is_an_error_not_a_loop():
    class Churning(InMemoryBlobStore):
        def write_if(self, name, data, *, etag, content_type):
            return False  # another writer always came first

    rt = runtime(Churning())
    with pytest.raises(ExportError, match="kept changing"):
        claim(rt, GATE, fresh(), delay=0)


def test_each_set_of_options_has_a_gate_of_its_own():
    gates = {on_demand_gate("d", ExportOptions(dry_run=d, full=f)) for d in (False, True) for f in (False, True)}
    assert len(gates) == 4 and new_data_gate("d") not in gates


def test_a_time_in_the_future_does_not_hold_deliveries_off_for_ever():
    """A gate (or a record) dated years ahead, by a skewed clock or a hostile writer, was joined
    by every delivery until that date: no run of new data or on demand ever started."""
    rt = runtime()
    phantom = fresh()
    name_in_gate(rt, phantom.run_id, seconds_ago=-10 * 365 * 86400)  # no record: "being saved"
    mine = fresh()
    assert claim(rt, GATE, mine, delay=0) is None
    earlier = fresh()
    earlier.queued_at = iso(utc_now() + timedelta(days=3650))
    rt.edges.records.save(earlier)
    name_in_gate(rt, earlier.run_id, seconds_ago=0)
    assert claim(rt, GATE, fresh(), delay=120) is None
    # A clock a little ahead is a clock, not an attack: still joined.
    name_in_gate(rt, phantom.run_id, seconds_ago=-30)
    assert claim(rt, GATE, fresh(), delay=0) == phantom.run_id
