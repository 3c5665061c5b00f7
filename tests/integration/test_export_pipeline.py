"""A segment in Blob Storage (the emulator) lands in a SendGrid list (the simulator)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import threading
import time

import pytest

from shared.run.export import queue_run, run_export
from shared.run.records import ExportOptions
from tests.conftest import destination, make_runtime

pytestmark = pytest.mark.integration


def people(start: int, count: int, *, domain: str = "example.com") -> list[list[str]]:
    rng = random.Random(start)
    return [
        [f"p{i}@{domain}", rng.choice(["Ann", "Bo", "Chloé", "Dev"]), f"Family{i}", rng.choice(["Oslo", "Lyon"])]
        for i in range(start, start + count)
    ]


def to_csv(rows: list[list[str]], header=("PrimaryEmail", "FirstName", "LastName", "City"), delimiter=",") -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def run(runtime, **options):
    return run_export(runtime, queue_run(runtime, "newsletter", trigger="cli", options=ExportOptions(**options)))


def stored_record(workspace, record) -> dict:
    return json.loads(workspace.read_export(f"runs/newsletter/{record.run_id}.json"))


def rejects_of(workspace, record) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(workspace.read_export(record.rejects_blob).decode("utf-8"))))


def test_every_valid_contact_lands_in_the_list_exactly_once(workspace, simulator):
    first = people(0, 1500)
    bad = [["not-an-email", "X", "Y", "Z"], ["", "No", "Email", "Oslo"]]
    dupes = [[first[3][0].upper(), "Dup", "Row", "Oslo"]]
    workspace.put_segment("ci/part-1.csv", "\ufeff" + to_csv(first[:700] + bad))
    workspace.put_segment("ci/part-2.csv.gz", gzip.compress(to_csv(first[700:] + dupes, delimiter=";").encode()))
    workspace.put_segment("manual/vip.csv", to_csv(people(1400, 300)))  # 100 overlap with ci/
    workspace.put_destinations(destination(segments=[{"path": "ci/"}, {"path": "manual/vip.csv"}]))
    runtime = make_runtime(workspace, max_batch_contacts=400)

    record = run(runtime)

    expected = {row[0] for row in first} | {row[0] for row in people(1400, 300)}
    members = simulator.members("Newsletter")
    assert sorted(members) == sorted(expected) and len(members) == len(set(members)) == 1700
    assert simulator.snapshot()["upserted_contacts"] == 1700  # each contact sent once
    c = record.counts
    assert (c.read, c.invalid, c.duplicate, c.sent, c.accepted, c.created) == (
        1803,
        2,
        101,
        1700,
        1700,
        1700,
    )
    assert record.counts.conserved()
    assert record.status == "completed_with_errors"
    assert [b["contacts"] for b in record.batches] == [400, 400, 400, 400, 100]
    assert all(b["status"] == "completed" and b["job_id"] for b in record.batches)
    assert [{k: v for k, v in s.items() if k != "by_file"} for s in record.segments] == [
        {"path": "ci/", "files": 2, "rows": 1503},
        {"path": "manual/vip.csv", "files": 1, "rows": 300},
    ]
    # Each file's own counts (those it changed), and they add up to the run's.
    by_file = [f for s in record.segments for f in s["by_file"]]
    assert [f["name"] for f in by_file] == ["ci/part-1.csv", "ci/part-2.csv.gz", "manual/vip.csv"]
    for count in ("read", "invalid", "duplicate", "sent"):
        assert sum(f.get("rows" if count == "read" else count, 0) for f in by_file) == getattr(c, count), count
    assert stored_record(workspace, record) == record.to_dict()
    assert record.lists[0]["action"] == "created"
    rejects = rejects_of(workspace, record)
    assert [(r["source"], r["line"], r["reason"]) for r in rejects] == [
        ("ci/part-1.csv", "702", "invalid email address"),
        ("ci/part-1.csv", "703", "missing email"),
    ]
    contact = simulator.snapshot()["contacts"]["p5@example.com"]
    assert contact["last_name"] == "Family5" and contact["city"] in ("Oslo", "Lyon")


def test_a_second_run_finds_the_list_it_created(workspace, simulator):
    workspace.put_segment("people.csv", to_csv(people(0, 10)))
    workspace.put_destinations(destination())
    runtime = make_runtime(workspace)
    run(runtime)
    second = run(runtime)
    assert second.lists[0]["action"] == "found"
    assert len(simulator.snapshot()["lists"]) == 1
    assert len(simulator.members("Newsletter")) == 10


def test_an_existing_list_by_id(workspace, simulator):
    list_id = simulator.state.add_list("Existing")["id"]
    workspace.put_segment("people.csv", to_csv(people(0, 3)))
    workspace.put_destinations(destination(list={"id": list_id}))
    record = run(make_runtime(workspace))
    assert record.status == "succeeded" and simulator.members("Existing") == [
        "p0@example.com",
        "p1@example.com",
        "p2@example.com",
    ]


def test_429s_are_waited_out_and_the_run_succeeds(workspace, simulator):
    workspace.put_segment("people.csv", to_csv(people(0, 50)))
    workspace.put_destinations(destination())
    simulator.fault(kind="rate_limit", method="PUT", path="/v3/marketing/contacts", times=2, reset_in=1)
    record = run(make_runtime(workspace))
    assert record.status == "succeeded", record.errors
    assert record.batches[0]["rate_limited"] == 2 and record.batches[0]["attempts"] == 3
    assert len(simulator.members("Newsletter")) == 50


def test_the_simulators_own_rate_limit_is_respected(workspace, simulator):
    workspace.put_segment("people.csv", to_csv(people(0, 60)))
    workspace.put_destinations(destination())
    simulator.config(rate_limit=2, rate_window=1.0)
    record = run(make_runtime(workspace, max_batch_contacts=10))
    assert record.status == "succeeded", record.errors
    # The run waits for the budget the headers announce instead of spending 429s.
    assert simulator.snapshot()["rate_limited"] == 0
    assert sum(b.get("rate_limited", 0) for b in record.batches) == 0
    assert len(simulator.members("Newsletter")) == 60


def test_5xx_and_dropped_connections_are_retried(workspace, simulator):
    workspace.put_segment("people.csv", to_csv(people(0, 30)))
    workspace.put_destinations(destination())
    simulator.fault(kind="status", status=500, method="PUT", path="/v3/marketing/contacts", times=1)
    simulator.fault(kind="status", status=503, method="PUT", path="/v3/marketing/contacts", times=1)
    simulator.fault(kind="drop", method="PUT", path="/v3/marketing/contacts", times=1)
    simulator.fault(kind="status", status=502, method="GET", path="/v3/marketing/contacts/imports/", times=2)
    record = run(make_runtime(workspace))
    assert record.status == "succeeded", record.errors
    assert record.batches[0]["attempts"] == 4
    assert sorted(simulator.members("Newsletter")) == sorted(p[0] for p in people(0, 30))


def test_a_read_timeout_is_retried_and_the_upsert_stays_idempotent(workspace, simulator):
    workspace.put_segment("people.csv", to_csv(people(0, 5)))
    workspace.put_destinations(destination())
    simulator.fault(kind="delay", seconds=1.5, method="PUT", path="/v3/marketing/contacts", times=1)
    runtime = make_runtime(workspace)
    from shared.adapters.sendgrid import ClientTuning, SendGridClient
    from tests.conftest import FAST_RETRY

    runtime.edges.sendgrid = lambda url, key: SendGridClient(
        url, key, ClientTuning(policy=FAST_RETRY, timeout=(1.0, 0.5))
    )
    record = run(runtime)
    assert record.status == "succeeded", record.errors
    assert record.batches[0]["attempts"] == 2
    assert len(simulator.members("Newsletter")) == 5


def test_retries_are_bounded(workspace, simulator):
    workspace.put_segment("people.csv", to_csv(people(0, 5)))
    workspace.put_destinations(destination())
    simulator.fault(kind="status", status=503, method="PUT", path="/v3/marketing/contacts", times=100)
    record = run(make_runtime(workspace))
    assert record.status == "failed"
    assert "answered 503 4 times" in record.errors[0]
    assert record.counts.errored == 5 and record.counts.conserved()
    assert simulator.members("Newsletter") == []


def test_a_400_naming_a_contact_isolates_it_with_sendgrids_message(workspace, simulator):
    rows = people(0, 5)
    workspace.put_segment("people.csv", to_csv(rows))
    workspace.put_destinations(destination())
    simulator.config(indexed_errors=True)  # the form production users report; documented nowhere
    simulator.fault(kind="reject_email", emails=[rows[2][0]], times=1)
    record = run(make_runtime(workspace))
    assert record.status == "completed_with_errors"
    assert record.counts.errored == 1 and record.counts.accepted == 4 and record.counts.conserved()
    batch = record.batches[0]
    assert batch["status"] == "completed" and batch["isolated"] == 1
    assert "SendGrid answered 400: contacts[2].email: email address is not deliverable" in batch["error"]
    assert sorted(simulator.members("Newsletter")) == sorted(r[0] for i, r in enumerate(rows) if i != 2)
    assert rows[2][0] not in json.dumps(stored_record(workspace, record))  # the record holds no address
    (rejected,) = rejects_of(workspace, record)
    assert rejected["email"] == rows[2][0] and rejected["line"] == "4"
    assert rejected["reason"] == "contacts[2].email: email address is not deliverable"


def test_a_400_that_names_no_contact_is_isolated_down_to_each_contact_with_sendgrids_message(workspace, simulator):
    workspace.put_segment("people.csv", to_csv(people(0, 3)))
    workspace.put_destinations(destination())
    simulator.fault(
        kind="status",
        status=400,
        message="contacts could not be processed",
        method="PUT",
        path="/v3/marketing/contacts",
        times=100,
    )
    record = run(make_runtime(workspace))
    assert record.batches[0]["status"] == "refused" and record.batches[0]["bisected"] >= 1
    assert "SendGrid answered 400: contacts could not be processed" in record.batches[0]["error"]
    assert record.counts.errored == 3 and record.counts.conserved()
    assert {r["reason"] for r in rejects_of(workspace, record)} == {record.batches[0]["error"]}


def test_a_400_that_names_no_contact_once_costs_no_contact(workspace, simulator):
    workspace.put_segment("people.csv", to_csv(people(0, 3)))
    workspace.put_destinations(destination())
    simulator.fault(kind="status", status=400, message="try again", method="PUT", path="/v3/marketing/contacts")
    record = run(make_runtime(workspace))
    assert record.status == "succeeded" and record.counts.accepted == 3
    assert record.batches[0]["status"] == "completed" and len(simulator.members("Newsletter")) == 3


def test_a_wrong_api_key_fails_the_run_with_a_clear_message(workspace, simulator):
    workspace.put_segment("people.csv", to_csv(people(0, 5)))
    workspace.put_destinations(destination())
    workspace.env["SENDGRID_SECRET_SENDGRID_API_KEY"] = "wrong-key-0123456789"
    record = run(make_runtime(workspace))
    assert record.status == "failed"
    assert "401" in record.errors[0] and "API key" in record.errors[0]
    assert "wrong-key-0123456789" not in json.dumps(record.to_dict())


def test_a_missing_segment_fails_before_anything_is_sent(workspace, simulator):
    workspace.put_segment("people.csv", to_csv(people(0, 5)))
    workspace.put_destinations(destination(segments=[{"path": "people.csv"}, {"path": "missing.csv"}]))
    record = run(make_runtime(workspace))
    assert record.status == "failed" and "'missing.csv' not found" in record.errors[0]
    assert simulator.snapshot()["upserted_contacts"] == 0
    assert record.counts.read == 0


def test_a_missing_destinations_file_says_what_to_upload(workspace, simulator):
    record = run(make_runtime(workspace))
    assert record.status == "failed" and "destinations.json not found" in record.errors[0]


def test_a_job_that_ends_errored_counts_its_errored_contacts(workspace, simulator):
    rows = people(0, 10)
    workspace.put_segment("people.csv", to_csv(rows))
    workspace.put_destinations(destination())
    simulator.fault(kind="job_status", emails=[rows[0][0], rows[1][0]], times=1)
    record = run(make_runtime(workspace))
    assert record.batches[0]["status"] == "errored"
    assert (record.counts.accepted, record.counts.errored) == (8, 2)
    assert record.status == "completed_with_errors" and record.counts.conserved()
    assert len(simulator.members("Newsletter")) == 8


def test_names_and_addresses_reach_sendgrid_but_no_log_line(workspace, simulator, caplog):
    # The autouse privacy fixture checks every log line of this run for these names and addresses.
    workspace.put_segment(
        "people.csv",
        to_csv(
            [["zebedee@example.com", "Zebedee", "Quixotica", "Oslo"], ["bad-address", "Zebedee", "Quixotica", "Oslo"]]
        ),
    )
    workspace.put_destinations(destination())
    simulator.fault(kind="status", status=503, method="PUT", path="/v3/marketing/contacts", times=1)
    record = run(make_runtime(workspace))
    assert record.counts.accepted == 1 and record.counts.invalid == 1
    assert simulator.snapshot()["contacts"]["zebedee@example.com"]["last_name"] == "Quixotica"
    assert len(caplog.records) > 5  # the run did log: progress, the retry, the event
    assert "bad-address" in workspace.read_export(record.rejects_blob).decode()  # the one place a row goes


def test_the_stored_record_moves_while_a_run_goes(workspace, simulator):
    workspace.put_segment("people.csv", to_csv(people(0, 20_000)))
    workspace.put_destinations(destination())
    simulator.fault(kind="delay", method="PUT", path="/v3/marketing/contacts", seconds=0.3, times=20)
    runtime = make_runtime(workspace, max_batch_contacts=1000, progress_every=0.1, record_save_every=0.2)
    record = queue_run(runtime, "newsletter", trigger="cli")
    seen: list[tuple[str, int, int | None, int | None]] = []
    done = threading.Event()

    def poll() -> None:  # as `runs` and the HTTP status_url read it
        while not done.is_set():
            stored = stored_record(workspace, record)
            moved = stored.get("progress") or {}
            seen.append(
                (stored["status"], stored["counts"]["read"], moved.get("batches_sent"), moved.get("batches_confirmed"))
            )
            time.sleep(0.05)

    watcher = threading.Thread(target=poll)
    watcher.start()
    try:
        final = run_export(runtime, record)
    finally:
        done.set()
        watcher.join()
    assert final.status == "succeeded" and final.counts.accepted == 20_000
    moving = {tuple(progress) for status, *progress in seen if status == "running"}
    assert len(moving) >= 3, seen[:20]  # several distinct running counts, not one frozen record
    # A batch is counted sent when SendGrid accepts it: never more confirmed than sent.
    told = [(sent, confirmed) for _, _, sent, confirmed in seen if sent is not None and confirmed is not None]
    assert all(confirmed <= sent for sent, confirmed in told), told
    assert final.progress is not None and final.progress["batches_sent"] == final.progress["batches_confirmed"] == 20
