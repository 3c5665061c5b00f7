"""verify: planted drift (a contact removed from the list by hand, one added to it by hand, one
changed there) is found, counted in a record, listed in a CSV in storage, and --repair mends it
on the next run."""

from __future__ import annotations

import csv
import io
import json

import pytest

from shared.entrypoints import http_api
from shared.run.export import queue_run, run_export
from shared.run.verify import verify_destination
from tests.conftest import destination, make_runtime
from tests.integration.test_sync_semantics import csv_of, people

pytestmark = pytest.mark.integration


def test_verify_finds_planted_drift_and_repair_mends_it_on_the_next_run(workspace, simulator):
    workspace.put_destinations(destination(mapping={"email": "Email", "first_name": "FirstName", "city": "City"}))
    workspace.put_segment("people.csv", csv_of(people(10)))
    runtime = make_runtime(workspace)
    assert run_export(runtime, queue_run(runtime, "newsletter", trigger="cli")).counts.accepted == 10
    clean = verify_destination(runtime, "newsletter")
    assert set(clean["counts"].values()) == {0} and clean["members"] == 10

    state = simulator.state
    with state.lock:
        list_id = next(iter(state.lists))
        state.set_lists(state.contacts["p1@example.com"], frozenset())  # removed from the list by hand
        state.contacts["p2@example.com"]["city"] = "Paris"  # changed there by hand
        hand = {"email": "hand@example.com", "id": state.new_contact_id()}  # added to the list by hand
        state.set_lists(hand, frozenset({list_id}))
        state.contacts["hand@example.com"] = hand
    workspace.put_segment("people.csv", csv_of(people(9)))  # p9 left the segment (append mode keeps it)

    report = verify_destination(runtime, "newsletter", repair=True)
    assert report["counts"] == {
        "missing_confirmed": 1,
        "missing_unsent": 0,
        "extra_never_ours": 1,
        "extra_ours_departed": 1,
        "stale": 1,
    }
    assert report["repaired"] == 2
    rows = list(csv.reader(io.StringIO(workspace.read_export(report["addresses_blob"]).decode())))
    assert sorted(rows[1:]) == sorted(
        [
            ["missing_confirmed", "p1@example.com", ""],
            ["extra_never_ours", "hand@example.com", ""],
            ["extra_ours_departed", "p9@example.com", ""],
            ["stale", "p2@example.com", "differs in city"],
        ]
    )
    stored = json.loads(workspace.read_export(f"verify/newsletter/{report['verify_id']}.json"))
    assert stored["counts"] == report["counts"] and "p1@example.com" not in json.dumps(stored)

    mended = run_export(runtime, queue_run(runtime, "newsletter", trigger="cli"))
    assert mended.status == "succeeded" and mended.counts.sent == 2  # p1 and p2, nobody else
    assert state.contacts["p2@example.com"]["city"] == "Oslo"
    assert "p1@example.com" in simulator.members("Newsletter")
    after = verify_destination(runtime, "newsletter")
    assert (after["counts"]["missing_confirmed"], after["counts"]["stale"]) == (0, 0)


def test_verify_over_http_answers_counts_and_refuses_a_bad_body(workspace, simulator):
    workspace.put_destinations(destination())
    workspace.put_segment("people.csv", csv_of(people(3)))
    runtime = make_runtime(workspace)
    run_export(runtime, queue_run(runtime, "newsletter", trigger="cli"))
    request = http_api.ApiRequest("POST", "/api/destinations/newsletter/verify", route={"name": "newsletter"})
    answer = http_api.handle(http_api.verify_destination, lambda: runtime, request)
    assert answer.status == 200 and answer.body["counts"]["missing_confirmed"] == 0
    assert "@" not in json.dumps(answer.body)
    bad = http_api.ApiRequest("POST", "/x", route={"name": "newsletter"}, body=b'{"repair": "yes"}')
    assert http_api.handle(http_api.verify_destination, lambda: runtime, bad).status == 400
