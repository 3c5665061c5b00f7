"""Sending by CSV import against the simulator: the file, its upload, its job settled as an
upsert job's, a stopped run's import job settled by its id; and the simulator's strict rules."""

from __future__ import annotations

import gzip
from typing import Any

import pytest
import requests

from shared.run.export import queue_run, run_export
from tests.conftest import API_KEY, destination, make_runtime
from tests.integration.test_resume import people, request_log

pytestmark = pytest.mark.integration

IMPORTS = "/v3/marketing/contacts/imports"


def kinds(log: list[dict[str, Any]]) -> dict[str, int]:
    found: dict[str, int] = {}
    for entry in log:
        path = entry["path"]
        if path.startswith(IMPORTS + "/"):
            kind = "poll"
        elif path == IMPORTS:
            kind = "import"
        elif path.startswith("/__sim/uploads/"):
            kind = "upload"
        elif path == "/v3/marketing/contacts" and entry["method"] == "PUT":
            kind = "upsert"
        else:
            kind = "other"
        found[kind] = found.get(kind, 0) + 1
    return found


def test_a_run_above_the_threshold_sends_one_file_a_group_and_no_upsert(workspace, simulator):
    workspace.put_segment("people.csv", people(250))
    workspace.put_destinations(destination(mapping={"email": "Email", "first_name": "FirstName", "city": "City"}))
    runtime = make_runtime(workspace, max_batch_contacts=50, bulk_import_threshold=100, bulk_import_rows=120)
    record = run_export(runtime, queue_run(runtime, "newsletter", trigger="cli"))
    assert record.status == "succeeded", record.errors
    assert (record.counts.accepted, record.counts.created, record.counts.unconfirmed) == (250, 250, 0)
    found = kinds(request_log(simulator))
    # Batches of 50, files of at most 120 contacts: 100, 100 and 50 contacts, three files.
    assert (found.get("import"), found.get("upload"), found.get("upsert")) == (3, 3, None)
    assert all(b["via"] == "import" and b["status"] == "completed" for b in record.batches)
    assert simulator.members("Newsletter") == sorted(f"p{i}@example.com" for i in range(250))
    contact = simulator.state.contacts["p7@example.com"]
    assert (contact["first_name"], contact["city"]) == ("Name7", "Oslo")
    assert workspace.export_names("state/newsletter/sent-") == []
    # A second run sends nothing: the state holds every contact the import confirmed.
    again = run_export(runtime, queue_run(runtime, "newsletter", trigger="cli"))
    assert again.status == "succeeded" and (again.counts.unchanged, again.counts.sent) == (250, 0)


def test_below_the_threshold_the_run_upserts(workspace, simulator):
    workspace.put_segment("people.csv", people(60))
    workspace.put_destinations(destination())
    runtime = make_runtime(workspace, max_batch_contacts=50, bulk_import_threshold=100)
    record = run_export(runtime, queue_run(runtime, "newsletter", trigger="cli"))
    assert record.status == "succeeded", record.errors
    found = kinds(request_log(simulator))
    assert (found.get("import"), found.get("upsert")) == (None, 2)


def test_contacts_an_import_job_failed_are_named_and_the_rest_confirmed(workspace, simulator):
    workspace.put_segment("people.csv", people(150))
    workspace.put_destinations(destination())
    simulator.fault(kind="job_status", emails=["p3@example.com", "p120@example.com"])
    runtime = make_runtime(workspace, max_batch_contacts=50, bulk_import="always")
    record = run_export(runtime, queue_run(runtime, "newsletter", trigger="cli"))
    assert record.status == "completed_with_errors", record.errors
    assert (record.counts.accepted, record.counts.errored, record.counts.unconfirmed) == (148, 2, 0)
    rejects = workspace.read_export(record.rejects_blob).decode()
    assert "simulated contact error" in rejects and rejects.count("\n") == 3  # a header and two rows
    assert [b["status"] for b in record.batches] == ["errored", "completed", "errored"]
    # The import job's three batches count as sent when it is accepted, and confirmed when it ends.
    assert record.progress is not None
    assert (record.progress["batches_sent"], record.progress["batches_confirmed"]) == (3, 3), record.progress
    again = run_export(runtime, queue_run(runtime, "newsletter", trigger="cli"))
    assert again.status == "succeeded" and again.counts.sent == 2  # only the two are sent again


def test_a_stopped_runs_import_job_is_settled_by_its_id_and_not_sent_again(workspace, simulator):
    workspace.put_segment("people.csv", people(120))
    workspace.put_destinations(destination())
    simulator.config(job_delay=1.0)
    runtime = make_runtime(workspace, max_batch_contacts=50, bulk_import="always", job_wait_seconds=0.2)
    first = run_export(runtime, queue_run(runtime, "newsletter", trigger="cli"))
    assert first.status == "completed_with_errors" and first.counts.unconfirmed == 120
    assert {b["status"] for b in first.batches} == {"timeout"}
    assert len(workspace.export_names("state/newsletter/sent-")) == 1  # one journal for the whole job
    imports = kinds(request_log(simulator))["import"]
    import time

    time.sleep(1.0)
    second = run_export(runtime, queue_run(runtime, "newsletter", trigger="cli"))
    assert second.status == "succeeded", second.errors
    assert second.resumed is not None and (second.resumed["jobs"], second.resumed["confirmed"]) == (1, 120)
    assert (second.counts.unchanged, second.counts.sent) == (120, 0)
    assert kinds(request_log(simulator))["import"] == imports


def _start(simulator, mappings: list[str | None]) -> dict[str, Any]:
    answer = requests.put(
        f"{simulator.url}{IMPORTS}",
        json={"file_type": "csv", "field_mappings": mappings},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def _status(simulator, job_id: str) -> dict[str, Any]:
    import time

    for _ in range(100):
        got = requests.get(
            f"{simulator.url}{IMPORTS}/{job_id}", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10
        ).json()
        if got["status"] != "pending":
            return got
        time.sleep(0.05)
    raise AssertionError("the job did not end")


def test_the_upload_link_demands_exactly_the_announced_headers_and_expires(simulator):
    started = _start(simulator, ["_rf2_T"])
    (header,) = started["upload_headers"]
    assert header == {"header": "x-amz-server-side-encryption", "value": "aws:kms"}
    body = gzip.compress(b"email\r\na@example.com\r\n")
    assert requests.put(started["upload_uri"], data=body, timeout=10).status_code == 403
    wrong = {"x-amz-server-side-encryption": "AES256"}
    assert requests.put(started["upload_uri"], data=body, headers=wrong, timeout=10).status_code == 403
    right = {header["header"]: header["value"]}
    assert requests.put(started["upload_uri"], data=body, headers=right, timeout=10).status_code == 200
    assert _status(simulator, started["job_id"])["status"] == "completed"
    simulator.config(upload_ttl=0.0)
    late = _start(simulator, ["_rf2_T"])
    assert requests.put(late["upload_uri"], data=body, headers=right, timeout=10).status_code == 403


def test_a_mapping_that_does_not_match_the_file_or_a_multipart_body_fails_the_job_later(simulator):
    right = {"x-amz-server-side-encryption": "aws:kms"}
    started = _start(simulator, ["_rf2_T", "_rf0_T"])  # two columns mapped, the file has one
    assert requests.put(started["upload_uri"], data=b"email\r\na@example.com\r\n", headers=right, timeout=10).ok
    failed = _status(simulator, started["job_id"])
    assert failed["status"] == "failed" and "field mapping doesn't match the CSV" in failed["errors"][0]["message"]
    started = _start(simulator, ["_rf2_T"])
    multipart = requests.put(
        started["upload_uri"], files={"file": ("a.csv", b"email\r\na@example.com\r\n")}, headers=right, timeout=10
    )
    assert multipart.ok
    assert _status(simulator, started["job_id"])["status"] == "failed"


def test_the_contact_cap_met_by_an_import_job_fails_the_run_naming_it(workspace, simulator):
    """The CSV import path meets the plan's cap as the upsert path does: the import job ends
    ``failed`` with SendGrid's words, the run fails naming the cap, and its rows are rejected."""
    simulator.config(contact_cap=50)
    workspace.put_segment("people.csv", people(120))
    workspace.put_destinations(destination())
    runtime = make_runtime(workspace, max_batch_contacts=40, bulk_import="always", bulk_import_rows=200)
    record = run_export(runtime, queue_run(runtime, "newsletter", trigger="cli"))
    assert record.status == "failed", record.errors
    message = next(e for e in record.errors if "contact limit" in e)
    assert "plan's cap" in message
    assert record.counts.accepted == 0 and record.counts.errored == 120
    rejects = workspace.read_export(record.rejects_blob).decode()
    assert rejects.count("SendGrid's contact limit") == 120
