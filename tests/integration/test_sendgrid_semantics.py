"""What production SendGrid does that its documents understate, and how each run copes.

Each test sets the simulator to the stricter behaviour (README, "SendGrid") and asserts the final
state in the simulator, the stored record and the sync state.
"""

from __future__ import annotations

import csv
import io
import json
import time

import pytest
import requests

from shared.run.delta.sync_state import SyncState
from shared.run.export import queue_run, run_export
from shared.run.preflight import run_checks
from shared.run.records import ExportOptions
from shared.run.worker import run_locked
from tests.conftest import API_KEY, destination, make_runtime

pytestmark = pytest.mark.integration


def csv_of(emails: list[str], header=("Email", "FirstName")) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([(email, f"Name{i}") for i, email in enumerate(emails)])
    return out.getvalue()


def people(n: int, start: int = 0) -> list[str]:
    return [f"p{i}@example.com" for i in range(start, start + n)]


def run(workspace, runtime=None, **options):
    runtime = runtime or make_runtime(workspace)
    return run_export(runtime, queue_run(runtime, "newsletter", trigger="cli", options=ExportOptions(**options)))


def rejects_of(workspace, record) -> list[dict[str, str]]:
    if not record.rejects_blob:
        return []
    return list(csv.DictReader(io.StringIO(workspace.read_export(record.rejects_blob).decode("utf-8-sig"))))


def requests_to(simulator, method: str, path_start: str) -> list[dict]:
    return [r for r in simulator.state.requests if r["method"] == method and r["path"].startswith(path_start)]


# -- 1. request size ------------------------------------------------------------------------------


@pytest.mark.parametrize("answer", [413, 400])
def test_a_body_sendgrid_finds_too_large_is_halved_and_no_contact_is_refused(workspace, simulator, answer):
    simulator.config(max_body_bytes=20_000, too_large_status=answer)
    workspace.put_destinations(destination())
    workspace.put_segment("people.csv", csv_of(people(1000)))  # one batch of about 50 KB
    record = run(workspace)
    assert record.status == "succeeded", record.errors
    assert (record.counts.accepted, record.counts.errored) == (1000, 0)
    assert len(simulator.members("Newsletter")) == 1000
    batch = record.batches[0]
    assert batch["split"] >= 2 and batch["status"] == "completed" and len(batch["jobs"]) >= 3
    assert len(requests_to(simulator, "PUT", "/v3/marketing/contacts")) == 1 + 2 * batch["split"]
    assert run(workspace).counts.unchanged == 1000  # every part was confirmed in the state


def test_the_default_batch_cap_stays_under_the_4_mib_production_limit(workspace, simulator):
    # Realistic contacts, enough for more than one batch under the default cap (3.8 MB).
    rows = [
        (f"someone.{i}@example-mail.com", "Alexandria", "Montgomery-Smythe", "Lincoln Road " * 5) for i in range(40_000)
    ]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([("Email", "FirstName", "LastName", "Street"), *rows])
    workspace.put_segment("people.csv", text.getvalue())
    workspace.put_destinations(
        destination(
            mapping={"email": "Email", "first_name": "FirstName", "last_name": "LastName", "address_line_1": "Street"}
        )
    )
    record = run(workspace)
    assert record.status == "succeeded", record.errors
    assert len(record.batches) >= 2 and max(b["bytes"] for b in record.batches) <= 3_800_000
    assert "split" not in record.batches[0]  # the simulator's 4 MiB limit was never met


# -- 2 and 11. errors inside the import job ----------------------------------------------------------


@pytest.mark.parametrize("errors_format", ["csv", "json"])
def test_contacts_failed_inside_the_job_are_named_and_only_they_are_sent_again(workspace, simulator, errors_format):
    simulator.config(errors_format=errors_format)
    workspace.put_destinations(destination())
    workspace.put_segment("people.csv", csv_of(people(6)))
    simulator.fault(kind="job_status", emails=["p1@example.com", "p4@example.com"], times=1)
    first = run(workspace)
    assert (first.counts.accepted, first.counts.errored) == (4, 2)
    assert first.status == "completed_with_errors" and first.batches[0]["errors_file"] == "read"
    rejects = rejects_of(workspace, first)
    assert sorted(r["email"] for r in rejects) == ["p1@example.com", "p4@example.com"]
    assert all(r["reason"] == "simulated contact error" and r["line"] for r in rejects)
    second = run(workspace)
    assert (second.counts.unchanged, second.counts.sent, second.counts.accepted) == (4, 2, 2)
    assert len(simulator.members("Newsletter")) == 6


def test_an_unreadable_errors_file_confirms_nothing_and_says_why(workspace, simulator):
    simulator.config(errors_format="garbage")
    workspace.put_destinations(destination())
    workspace.put_segment("people.csv", csv_of(people(4)))
    simulator.fault(kind="job_status", emails=["p1@example.com"], times=1)
    first = run(workspace)
    # Which contact failed is unknown: none is confirmed, none is named errored in the rejects.
    assert (first.counts.accepted, first.counts.errored, first.counts.unconfirmed) == (0, 0, 4)
    assert "binary" in first.batches[0]["errors_file"] and "per contact is unknown" in first.errors[0]
    assert first.rejects_blob is None
    assert run(workspace).counts.sent == 4  # the whole batch again: upserts are idempotent


def test_the_errors_file_is_fetched_without_the_api_key(workspace, simulator):
    # The simulator's pre-signed link refuses a request that carries an Authorization header, so
    # reading the file at all proves the key was not sent; the request log shows no key either.
    workspace.put_destinations(destination())
    workspace.put_segment("people.csv", csv_of(people(3)))
    simulator.fault(kind="job_status", emails=["p2@example.com"], times=1)
    record = run(workspace)
    assert record.batches[0]["errors_file"] == "read"
    url = simulator.snapshot()["jobs"][record.batches[0]["job_id"]]["results"]["errors_url"]
    assert requests.get(url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=5).status_code == 400


def test_a_contact_another_tool_gave_an_external_id_fails_in_the_job_and_is_rejected(workspace, simulator):
    requests.post(
        f"{simulator.url}/__sim/contacts", json={"email": "p2@example.com", "external_id": "crm-2"}, timeout=5
    ).raise_for_status()
    workspace.put_destinations(destination())
    workspace.put_segment("people.csv", csv_of(people(4)))
    record = run(workspace)
    assert (record.counts.accepted, record.counts.errored) == (3, 1)
    [reject] = rejects_of(workspace, record)
    assert reject["email"] == "p2@example.com" and "external_id" in reject["reason"]


# -- 3. 400s that name no contact ----------------------------------------------------------------------


@pytest.mark.parametrize("indexed", [False, True])
def test_a_contact_sendgrid_refuses_is_isolated_whether_or_not_the_400_names_it(workspace, simulator, indexed):
    simulator.config(indexed_errors=indexed)
    workspace.put_destinations(destination())
    emails = people(200)
    workspace.put_segment("people.csv", csv_of(emails))
    simulator.fault(kind="reject_email", emails=[emails[77], emails[150]])
    record = run(workspace)
    assert (record.counts.accepted, record.counts.errored) == (198, 2)
    assert sorted(r["email"] for r in rejects_of(workspace, record)) == sorted([emails[77], emails[150]])
    assert len(simulator.members("Newsletter")) == 198
    puts = len(requests_to(simulator, "PUT", "/v3/marketing/contacts"))
    assert puts <= (3 if indexed else 40)  # halving costs about 2 x log2(200) a bad contact


# -- 4, 5 and 6. mirror mode's removals -----------------------------------------------------------------


def mirror(**overrides):
    return destination(mode="mirror", max_removal_fraction=0.9, **overrides)


def test_a_departed_address_over_100_characters_is_found_another_way_and_removed(workspace, simulator):
    long_email = "a" * 60 + "@" + "b" * 50 + ".example.com"
    assert 100 < len(long_email) <= 254
    workspace.put_destinations(mirror())
    workspace.put_segment("people.csv", csv_of([*people(3), long_email]))
    assert run(workspace).counts.accepted == 4
    workspace.put_segment("people.csv", csv_of(people(3)))
    second = run(workspace)
    assert second.status == "succeeded", second.errors
    assert second.removals["done"] == 1 and long_email not in simulator.members("Newsletter")
    sgql = [r for r in simulator.state.requests if r["path"] == "/v3/marketing/contacts/search"]
    assert len(sgql) == 1  # search/emails refuses it (maxLength 100): one SGQL query found it


def test_an_address_search_calls_invalid_is_isolated_and_the_rest_are_removed(workspace, simulator):
    workspace.put_destinations(mirror())
    workspace.put_segment("people.csv", csv_of(people(10)))
    run(workspace)
    simulator.fault(kind="search_invalid", emails=["p7@example.com"])
    workspace.put_segment("people.csv", csv_of(people(5)))
    record = run(workspace)
    assert record.status == "succeeded", record.errors
    assert record.removals["done"] == 4 and record.removals["unfindable"] == 1
    assert simulator.members("Newsletter") == sorted([*people(5), "p7@example.com"])


def test_a_departed_contact_search_cannot_find_yet_stays_pending_until_it_can(workspace, simulator):
    simulator.config(search_lag=600)
    workspace.put_destinations(mirror())
    workspace.put_segment("people.csv", csv_of(people(5)))
    run(workspace)
    workspace.put_segment("people.csv", csv_of(people(4)))
    second = run(workspace)
    assert second.removals["pending"] == 1 and second.removals["done"] == 0
    assert "p4@example.com" in simulator.members("Newsletter")
    runtime = make_runtime(workspace)
    state = SyncState.load(runtime.edges.exports, "newsletter", with_emails=True)
    assert len(state) == 5 and len(state.pending) == 1  # still owed a removal, kept for the next run
    with simulator.state.lock:
        simulator.state._unsearchable_until.clear()  # the search index caught up
    third = run(workspace)
    assert third.removals["done"] == 1 and "pending" not in third.removals
    assert "p4@example.com" not in simulator.members("Newsletter")
    state = SyncState.load(runtime.edges.exports, "newsletter", with_emails=True)
    assert len(state) == 4 and state.pending == {}


def test_a_removal_job_that_fails_leaves_the_contact_for_the_next_run(workspace, simulator):
    workspace.put_destinations(mirror())
    workspace.put_segment("people.csv", csv_of(people(5)))
    run(workspace)
    simulator.fault(kind="job_status", method="DELETE", job_status="failed", times=1)
    workspace.put_segment("people.csv", csv_of(people(4)))
    second = run(workspace)
    assert second.removals["unconfirmed"] == 1 and second.removals["done"] == 0
    assert "p4@example.com" in simulator.members("Newsletter")
    third = run(workspace)
    assert third.removals["done"] == 1 and "p4@example.com" not in simulator.members("Newsletter")


def test_a_removal_naming_a_contact_that_no_longer_exists_removes_the_rest(workspace, simulator):
    workspace.put_destinations(mirror())
    workspace.put_segment("people.csv", csv_of(people(10)))
    run(workspace)
    simulator.fault(kind="search_stale", emails=["p7@example.com"])  # deleted between search and removal
    workspace.put_segment("people.csv", csv_of(people(5)))
    record = run(workspace)
    assert record.status == "succeeded", record.errors
    assert record.removals["done"] == 5 and record.removals["gone"] == 1
    assert simulator.members("Newsletter") == sorted([*people(5), "p7@example.com"])
    assert len(SyncState.load(make_runtime(workspace).edges.exports, "newsletter", with_emails=True)) == 5


def test_removal_jobs_sendgrid_offers_no_status_for_are_taken_as_done(workspace, simulator):
    simulator.config(removal_jobs_pollable=False)
    workspace.put_destinations(mirror())
    workspace.put_segment("people.csv", csv_of(people(5)))
    run(workspace)
    workspace.put_segment("people.csv", csv_of(people(3)))
    record = run(workspace)
    assert record.status == "succeeded" and record.removals["done"] == 2
    assert "no status at SendGrid" in record.removals["reason"]
    time.sleep(0.1)  # the removal job itself still ends at SendGrid
    assert simulator.members("Newsletter") == people(3)


# -- 7. jobs that take minutes ----------------------------------------------------------------------------


def test_all_jobs_are_waited_for_against_one_deadline(workspace, simulator):
    simulator.config(job_delay=120)
    workspace.put_destinations(destination())
    workspace.put_segment("people.csv", csv_of(people(50)))
    runtime = make_runtime(workspace, max_batch_contacts=10, job_wait_seconds=1.5)
    record = run(workspace, runtime)
    assert len(record.batches) == 5 and all(b["status"] == "timeout" for b in record.batches)
    assert record.counts.unconfirmed == 50 and record.counts.errored == 0
    assert "SENDGRID_JOB_WAIT_SECONDS" in record.errors[0]
    assert record.timings["jobs"] < 4.0  # one deadline for all five, not one each
    assert SyncState.load(runtime.edges.exports, "newsletter", with_emails=False).keys.tolist() == []


@pytest.mark.slow
def test_jobs_that_take_tens_of_seconds_are_followed_with_backoff(workspace, simulator):
    simulator.config(job_delay=12)
    workspace.put_destinations(destination())
    workspace.put_segment("people.csv", csv_of(people(40)))
    runtime = make_runtime(workspace, max_batch_contacts=10, job_poll_interval=0.25, job_poll_max_interval=5.0)
    record = run(workspace, runtime)
    assert record.status == "succeeded" and record.counts.accepted == 40
    polls = requests_to(simulator, "GET", "/v3/marketing/contacts/imports/")
    assert len(polls) <= 4 * 12  # backoff: a dozen polls a job over 12 s, not one every 0.25 s


def test_a_rate_limit_wait_never_outlasts_the_run_deadline(workspace, simulator):
    workspace.put_destinations(destination())
    workspace.put_segment("people.csv", csv_of(people(3)))
    simulator.fault(kind="rate_limit", method="PUT", reset_in=3600, times=1)
    runtime = make_runtime(workspace, run_deadline_seconds=2)  # the tests' 429 waits are capped at 3 s
    started = time.monotonic()
    # As the worker and the CLI run it: under the lock, whose guard wraps the SendGrid client.
    record = run_locked(runtime, queue_run(runtime, "newsletter", trigger="cli"))
    assert time.monotonic() - started < 3
    assert record.status == "failed" and "deadline" in " ".join(record.errors)


# -- 8. two destinations, one list ------------------------------------------------------------------------


def test_mirror_mode_is_refused_on_a_list_another_destination_sends_to(workspace, simulator):
    workspace.put_destinations(
        mirror(),
        destination(name="loyalty", list={"name": "Newsletter", "create_if_missing": True}),
    )
    workspace.put_segment("people.csv", csv_of(people(3)))
    runtime = make_runtime(workspace)
    loyalty = run_export(runtime, queue_run(runtime, "loyalty", trigger="cli"))
    assert loyalty.status == "succeeded"
    record = run(workspace)
    assert record.status == "failed"
    assert "'loyalty'" in record.errors[0] and "'newsletter'" in record.errors[0] and "mirror" in record.errors[0]
    assert len(requests_to(simulator, "PUT", "/v3/marketing/contacts")) == 1  # only loyalty's


# -- 9. custom fields -------------------------------------------------------------------------------------


def test_custom_field_names_match_sendgrids_case_insensitively(workspace, simulator):
    requests.post(
        f"{simulator.url}/__sim/field_definitions", json={"name": "loyalty_tier", "field_type": "Text"}, timeout=5
    ).raise_for_status()
    workspace.put_destinations(destination(mapping={"email": "Email", "custom_fields": {"Loyalty_Tier": "Tier"}}))
    workspace.put_segment("people.csv", "Email,Tier\np1@example.com,gold\n")
    record = run(workspace)
    assert record.status == "succeeded", record.errors
    assert simulator.snapshot()["contacts"]["p1@example.com"]["custom_fields"] == {"e1_T": "gold"}


# -- 10. scopes -------------------------------------------------------------------------------------------


def test_check_does_not_pass_a_key_whose_scopes_show_only_read_access(workspace, simulator):
    workspace.put_destinations(destination())
    workspace.put_segment("people.csv", csv_of(people(2)))
    runtime = make_runtime(workspace)
    full = {c.name: c for c in run_checks(runtime, "newsletter")}
    assert full["api_key"].ok, full["api_key"].detail
    simulator.config(scopes={API_KEY: ["marketing.read", "marketing.automation.read"]})
    limited = {c.name: c for c in run_checks(runtime, "newsletter")}
    assert not limited["api_key"].ok and limited["api_key"].detail.startswith("unconfirmed")
    assert "Marketing: Full Access" in limited["api_key"].detail
    record = run(workspace)  # and SendGrid refuses the writes of such a key
    assert record.status == "failed" and "403" in record.errors[0]


# -- what a hostile review found ------------------------------------------------------------------------


@pytest.mark.parametrize(("how", "why"), [("drop", "could not be fetched"), ("redirect", "answered 302")])
def test_an_errors_file_that_cannot_be_fetched_confirms_none_of_its_job_and_the_run_goes_on(
    workspace, simulator, how, why
):
    simulator.config(errors_format=how)
    workspace.put_destinations(destination())
    workspace.put_segment("people.csv", csv_of(people(30)))
    simulator.fault(kind="job_status", emails=["p1@example.com"], times=3)  # batches may arrive in any order
    record = run(workspace, make_runtime(workspace, max_batch_contacts=10))
    assert record.status == "completed_with_errors", record.errors
    assert why in record.batches[0]["errors_file"] and "X-Signature" not in json.dumps(record.to_dict())
    # None of the first batch's contacts is confirmed, and none is named errored: unconfirmed.
    assert (record.counts.accepted, record.counts.errored, record.counts.unconfirmed) == (20, 0, 10)
    assert record.counts.conserved() and record.rejects_blob is None
    assert [b["status"] for b in record.batches[1:]] == ["completed", "completed"]
    assert run(workspace).counts.sent == 10  # only the batch whose errors file could not be read


def test_mirror_mode_is_refused_when_another_key_names_the_same_list(workspace, simulator):
    workspace.put_destinations(
        mirror(),
        destination(name="loyalty", api_key_secret="loyalty-key", list={"name": "Newsletter"}),
    )
    workspace.put_segment("people.csv", csv_of(people(3)))
    record = run(workspace)
    assert (
        record.status == "failed" and "'loyalty'" in record.errors[0] and "another SendGrid account" in record.errors[0]
    )
    assert requests_to(simulator, "PUT", "/v3/marketing/contacts") == []


def test_a_departed_address_now_someone_elses_alternate_email_removes_nobody(workspace, simulator):
    workspace.put_destinations(mirror())
    workspace.put_segment("people.csv", csv_of(["old@example.com", "keep@example.com", "p2@example.com"]))
    run(workspace)
    with simulator.state.lock:  # the address moved: it is now an alternate email of a present contact
        simulator.state.forget("old@example.com")
        simulator.state.contacts["keep@example.com"]["alternate_emails"] = ["old@example.com"]
    workspace.put_segment("people.csv", csv_of(["keep@example.com", "p2@example.com"]))
    record = run(workspace)
    assert record.removals["done"] == 0 and record.removals["pending"] == 1
    assert "keep@example.com" in simulator.members("Newsletter")


def test_many_contacts_sendgrid_refuses_cost_a_bounded_number_of_requests(workspace, simulator):
    emails = people(1000)
    workspace.put_destinations(destination())
    workspace.put_segment("people.csv", csv_of(emails))
    simulator.fault(kind="reject_email", emails=emails[:30])  # 30 bad ones, all in the first 100
    record = run(workspace)
    puts = len(requests_to(simulator, "PUT", "/v3/marketing/contacts"))
    assert puts <= 1 + 64 + 10  # the budget, then one last pass in parts of 100
    assert record.counts.conserved() and record.counts.errored <= 100
    assert len(simulator.members("Newsletter")) == record.counts.accepted >= 900
