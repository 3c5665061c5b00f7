"""Delta sync, mirror mode and its guard, several lists, custom fields, dry runs, regions."""

from __future__ import annotations

import csv
import io

import pytest

from shared.adapters.sendgrid import ClientTuning, SendGridClient
from shared.run.delta.sync_state import SyncState, state_blob_name
from shared.run.export import queue_run, run_export
from shared.run.records import ExportOptions
from tests.conftest import FAST_RETRY, destination, make_runtime

pytestmark = pytest.mark.integration


def csv_of(rows: list[tuple[str, ...]], header=("Email", "FirstName", "City")) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def people(n: int, city: str = "Oslo", start: int = 0) -> list[tuple[str, ...]]:
    return [(f"p{i}@example.com", f"Name{i}", city) for i in range(start, start + n)]


def run(workspace, **options):
    runtime = make_runtime(workspace)
    return run_export(runtime, queue_run(runtime, "newsletter", trigger="cli", options=ExportOptions(**options)))


def put_methods(simulator) -> list[str]:
    return [f"{r['method']} {r['path']}" for r in simulator.state.requests if r["method"] != "GET"]


def test_a_second_run_sends_nothing_and_a_changed_row_is_the_only_one_sent(workspace, simulator):
    workspace.put_destinations(destination())
    workspace.put_segment("people.csv", csv_of(people(50)))
    first = run(workspace)
    assert first.counts.sent == 50 and simulator.snapshot()["upserted_contacts"] == 50

    second = run(workspace)
    assert (second.counts.unchanged, second.counts.sent, second.batches) == (50, 0, [])
    assert second.status == "succeeded" and second.counts.conserved()
    assert simulator.snapshot()["upserted_contacts"] == 50

    rows = people(50)
    rows[7] = ("p7@example.com", "Name7", "Bergen")
    workspace.put_segment("people.csv", csv_of(rows))
    third = run(workspace)
    assert (third.counts.sent, third.counts.unchanged, third.counts.updated) == (1, 49, 1)
    assert simulator.snapshot()["contacts"]["p7@example.com"]["city"] == "Bergen"
    assert simulator.snapshot()["upserted_contacts"] == 51

    full = run(workspace, full=True)
    assert full.counts.sent == 50 and full.counts.unchanged == 0


def test_mirror_removes_exactly_the_contacts_that_left(workspace, simulator):
    workspace.put_destinations(destination(mode="mirror"))
    workspace.put_segment("people.csv", csv_of(people(10)))
    run(workspace)
    workspace.put_segment("people.csv", csv_of(people(9, start=1)))  # p0 left
    record = run(workspace)
    assert record.removals == {"planned": 1, "done": 1, "refused": False, "reason": None}
    assert record.counts.removed == 1 and record.status == "succeeded"
    assert simulator.members("Newsletter") == sorted(f"p{i}@example.com" for i in range(1, 10))
    assert "p0@example.com" in simulator.snapshot()["contacts"]  # removed from the list, never deleted
    again = run(workspace)
    assert again.removals["planned"] == 0 and again.counts.unchanged == 9


def test_mirror_refuses_a_mass_removal_unless_forced(workspace, simulator):
    workspace.put_destinations(destination(mode="mirror", max_removal_fraction=0.2))
    workspace.put_segment("people.csv", csv_of(people(10)))
    run(workspace)
    workspace.put_segment("people.csv", csv_of(people(5, start=5, city="Bergen")))  # half left, the rest changed
    refused = run(workspace)
    assert refused.removals["refused"] and "5 of 10" in refused.removals["reason"]
    assert refused.counts.removed == 0 and refused.counts.sent == 5  # the upserts still went
    assert len(simulator.members("Newsletter")) == 10
    forced = run(workspace, force_removals=True)
    assert forced.removals["done"] == 5 and not forced.removals["refused"]
    assert simulator.members("Newsletter") == sorted(f"p{i}@example.com" for i in range(5, 10))


def test_mirror_removes_nobody_when_the_run_failed(workspace, simulator):
    workspace.put_destinations(destination(mode="mirror", max_removal_fraction=1.0))
    workspace.put_segment("people.csv", csv_of(people(4)))
    run(workspace)
    workspace.put_segment("people.csv", csv_of(people(3, start=1, city="Bergen")))  # p0 left, the rest changed
    simulator.fault(kind="status", status=503, method="PUT", path="/v3/marketing/contacts", times=10)
    record = run(workspace)
    assert record.status == "failed" and record.removals["refused"]
    assert "the run failed" in record.removals["reason"]
    assert len(simulator.members("Newsletter")) == 4


def test_mirror_never_empties_a_list_from_an_empty_input(workspace, simulator):
    workspace.put_destinations(destination(mode="mirror", max_removal_fraction=1.0))
    workspace.put_segment("people.csv", csv_of(people(4)))
    run(workspace)
    workspace.put_segment("people.csv", csv_of([("not-an-email", "X", "Y")]))
    record = run(workspace)
    assert record.removals["refused"] and "no valid contacts" in record.removals["reason"]
    assert len(simulator.members("Newsletter")) == 4


def test_several_lists_and_a_list_created_once(workspace, simulator):
    existing = simulator.state.add_list("Existing")["id"]
    workspace.put_destinations(destination(lists=[{"id": existing}, {"name": "Fresh", "create_if_missing": True}]))
    workspace.put_segment("people.csv", csv_of(people(3)))
    first = run(workspace)
    assert [item["action"] for item in first.lists] == ["found", "created"]
    assert simulator.members("Existing") == simulator.members("Fresh") == [f"p{i}@example.com" for i in range(3)]
    second = run(workspace)
    assert [item["action"] for item in second.lists] == ["found", "found"]
    assert [item["name"] for item in simulator.snapshot()["lists"]] == ["Existing", "Fresh"]


def test_adding_a_list_resends_everyone(workspace, simulator):
    workspace.put_destinations(destination())
    workspace.put_segment("people.csv", csv_of(people(3)))
    run(workspace)
    workspace.put_destinations(
        destination(lists=[{"name": "Newsletter"}, {"name": "Second", "create_if_missing": True}])
    )
    record = run(workspace)
    assert record.counts.sent == 3 and simulator.members("Second") == [f"p{i}@example.com" for i in range(3)]


def test_custom_fields_are_coerced_and_a_bad_value_rejects_only_that_field(workspace, simulator):
    tier = simulator.state.add_custom_field("tier", "Text")["id"]
    points = simulator.state.add_custom_field("points", "Number")["id"]
    since = simulator.state.add_custom_field("member_since", "Date")["id"]
    mapping = {"email": "Email", "custom_fields": {"tier": "Tier", "points": "Points", "member_since": "Since"}}
    workspace.put_destinations(destination(mapping=mapping))
    workspace.put_segment(
        "people.csv",
        csv_of(
            [("a@example.com", "Gold", "1,200.5", "2024-02-29"), ("b@example.com", "Silver", "lots", "not a date")],
            header=("Email", "Tier", "Points", "Since"),
        ),
    )
    record = run(workspace)
    contacts = simulator.snapshot()["contacts"]
    assert contacts["a@example.com"]["custom_fields"] == {tier: "Gold", points: 1200.5, since: "02/29/2024"}
    assert contacts["b@example.com"]["custom_fields"] == {tier: "Silver"}
    assert record.counts.fields_rejected == 2 and record.counts.accepted == 2
    assert record.status == "completed_with_errors"
    rejects = list(csv.DictReader(io.StringIO(workspace.read_export(record.rejects_blob).decode())))
    assert [(r["email"], r["category"], r["field"]) for r in rejects] == [
        ("b@example.com", "field_rejected", "custom_fields.points"),
        ("b@example.com", "field_rejected", "custom_fields.member_since"),
    ]


def test_a_mapped_custom_field_that_does_not_exist_fails_before_sending(workspace, simulator):
    workspace.put_destinations(destination(mapping={"email": "Email", "custom_fields": {"nope": "Tier"}}))
    workspace.put_segment("people.csv", csv_of([("a@example.com", "Gold")], header=("Email", "Tier")))
    record = run(workspace)
    assert record.status == "failed" and "no custom field named 'nope'" in record.errors[0]
    assert simulator.snapshot()["upserted_contacts"] == 0


def test_a_dry_run_writes_nothing_to_sendgrid_or_the_state(workspace, simulator):
    workspace.put_destinations(destination(mode="mirror", max_removal_fraction=1.0))
    workspace.put_segment("people.csv", csv_of(people(6)))
    run(workspace)
    state_before = workspace.read_export(state_blob_name("newsletter"))
    simulator.state.requests.clear()
    rows = people(5, start=1)
    rows[0] = ("p1@example.com", "Renamed", "Oslo")
    workspace.put_segment("people.csv", csv_of(rows))
    record = run(workspace, dry_run=True)
    assert (record.counts.would_send, record.counts.unchanged, record.counts.sent) == (1, 4, 0)
    assert record.removals["planned"] == 1 and record.removals["done"] == 0
    assert put_methods(simulator) == []  # only GETs
    assert workspace.read_export(state_blob_name("newsletter")) == state_before
    assert simulator.snapshot()["contacts"]["p1@example.com"]["first_name"] == "Name1"


def test_an_errored_job_confirms_all_but_the_contacts_its_errors_file_names(workspace, simulator):
    workspace.put_destinations(destination())
    workspace.put_segment("people.csv", csv_of(people(4)))
    simulator.fault(kind="job_status", emails=["p1@example.com"], times=1)
    first = run(workspace)
    assert (first.counts.accepted, first.counts.errored) == (3, 1)
    second = run(workspace)
    assert (second.counts.sent, second.counts.unchanged, second.counts.accepted) == (1, 3, 1)


def test_a_run_that_dies_after_some_jobs_sends_none_of_what_sendgrid_accepted_again(workspace, simulator):
    workspace.put_destinations(destination())
    workspace.put_segment("people.csv", csv_of(people(30)))
    runtime = make_runtime(workspace, max_batch_contacts=10)
    real = runtime.edges.exports

    class DiesOnSecondJournal:
        written = 0

        def __getattr__(self, name):
            return getattr(real, name)

        def write_bytes(self, name, data, **kwargs):
            if "/journal-" in name:
                DiesOnSecondJournal.written += 1
                if DiesOnSecondJournal.written == 2:
                    raise KeyboardInterrupt("the worker was killed")  # not an Exception: nothing catches it
            return real.write_bytes(name, data, **kwargs)

    runtime.edges.exports = DiesOnSecondJournal()
    with pytest.raises(KeyboardInterrupt):
        run_export(runtime, queue_run(runtime, "newsletter", trigger="cli"))
    assert len(workspace.export_names("state/newsletter/journal-")) == 1  # batch 0 confirmed, then death
    runtime.edges.exports = real
    puts = simulator.snapshot()["upserted_contacts"]
    again = run_export(runtime, queue_run(runtime, "newsletter", trigger="cli"))
    # The other two batches' jobs were accepted and journaled: settled by their ids, not sent again.
    assert again.resumed is not None and again.resumed["confirmed"] == 20
    assert (again.counts.unchanged, again.counts.sent) == (30, 0)
    assert simulator.snapshot()["upserted_contacts"] == puts
    assert workspace.export_names("state/newsletter/journal-") == []
    assert len(SyncState.load(runtime.edges.exports, "newsletter", with_emails=False)) == 30


def test_the_eu_region_uses_the_eu_host(workspace, simulator):
    workspace.put_destinations(destination(region="eu"))
    workspace.put_segment("people.csv", csv_of(people(1)))
    del workspace.env["SENDGRID_API_BASE_URL"]
    runtime = make_runtime(workspace)
    asked: list[str] = []

    def factory(url, key):
        asked.append(url)
        return SendGridClient(simulator.url, key, ClientTuning(policy=FAST_RETRY))

    runtime.edges.sendgrid = factory
    run_export(runtime, queue_run(runtime, "newsletter", trigger="cli"))
    assert asked == ["https://api.eu.sendgrid.com"]


def test_a_large_state_is_written_in_blocks_and_read_back_from_the_emulator(workspace, monkeypatch):
    import random
    from array import array

    from shared.adapters.storage import AzureBlobStore
    from shared.run.delta import sync_state

    monkeypatch.setattr(sync_state, "_SAVED_WHOLE_BYTES", 1024)
    rng = random.Random(7)
    count = 300_000  # 4.8 MB: more than one of the SDK's 4 MB blocks
    state = SyncState(
        array("Q", (rng.getrandbits(64) for _ in range(count))),
        array("Q", (rng.getrandbits(64) for _ in range(count))),
    )
    store = AzureBlobStore(workspace.exports)
    state.save(store, "newsletter")
    blob = workspace.exports.get_blob_client(state_blob_name("newsletter"))
    committed, _ = blob.get_block_list("committed")
    assert len(committed) >= 2  # streamed in blocks, committed together
    assert blob.download_blob().readall() == state.to_bytes()
    loaded = SyncState.load(store, "newsletter", with_emails=False)
    assert loaded.keys == state.keys and loaded.fingerprints == state.fingerprints
