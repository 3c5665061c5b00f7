"""Membership by export: mirror mode finds departed contacts' ids in one export of the list
(several gzipped files), and searches only where the export fails."""

from __future__ import annotations

import pytest

from tests.conftest import destination
from tests.integration.test_sync_semantics import csv_of, people, run

pytestmark = pytest.mark.integration


def calls(simulator, since: int = 0) -> list[str]:
    return [f"{r['method']} {r['path'].split('/v3/marketing/')[-1]}" for r in simulator.state.requests[since:]]


def test_mirror_takes_the_departed_ids_from_one_export_and_spends_no_search(workspace, simulator):
    workspace.put_destinations(destination(mode="mirror", max_removal_fraction=1.0))
    workspace.put_segment("people.csv", csv_of(people(1000)))
    assert run(workspace).counts.accepted == 1000
    simulator.config(export_file_rows=300)  # the export comes in four gzipped files
    since = len(simulator.state.requests)
    workspace.put_segment("people.csv", csv_of(people(250)))  # 750 left
    record = run(workspace)
    assert record.status == "succeeded", record.errors
    assert record.removals["done"] == 750 and record.removals["found_by"] == "export"
    made = calls(simulator, since)
    assert made.count("POST contacts/exports") == 1
    assert not [c for c in made if "search" in c]
    assert len([c for c in made if c.startswith("DELETE lists/")]) == 8  # 750 ids, 100 a request
    assert simulator.members("Newsletter") == sorted(f"p{i}@example.com" for i in range(250))


def test_where_the_export_fails_the_run_searches_instead(workspace, simulator):
    workspace.put_destinations(destination(mode="mirror", max_removal_fraction=1.0))
    workspace.put_segment("people.csv", csv_of(people(300)))
    run(workspace)
    simulator.fault(kind="status", method="POST", path="/v3/marketing/contacts/exports", status=400, message="no")
    workspace.put_segment("people.csv", csv_of(people(100)))
    record = run(workspace)
    assert record.status == "succeeded", record.errors
    assert record.removals["done"] == 200 and record.removals["found_by"] == "search"
    assert "no" in record.removals["export_failed"]
    assert simulator.members("Newsletter") == sorted(f"p{i}@example.com" for i in range(100))


def test_the_simulated_export_is_ready_then_expires_and_an_empty_one_is_not_gzip(simulator):
    import time

    import requests

    from tests.conftest import API_KEY

    auth = {"Authorization": f"Bearer {API_KEY}"}
    simulator.config(job_delay=0.5)
    empty = simulator.state.add_list("Empty")["id"]
    started = requests.post(
        f"{simulator.url}/v3/marketing/contacts/exports", json={"list_ids": [empty]}, headers=auth, timeout=10
    )
    assert started.status_code == 202
    export_id = started.json()["id"]
    status = requests.get(f"{simulator.url}/v3/marketing/contacts/exports/{export_id}", headers=auth, timeout=10).json()
    assert status["status"] == "pending" and "expires_at" in status and "urls" not in status
    time.sleep(0.6)
    status = requests.get(f"{simulator.url}/v3/marketing/contacts/exports/{export_id}", headers=auth, timeout=10).json()
    assert status["status"] == "ready" and len(status["urls"]) == 1
    file = requests.get(status["urls"][0], timeout=10)
    assert file.status_code == 200 and file.content == b""  # empty, and not gzip
    simulator.config(export_ttl=0.0)
    late = requests.post(
        f"{simulator.url}/v3/marketing/contacts/exports", json={"list_ids": [empty]}, headers=auth, timeout=10
    ).json()["id"]
    time.sleep(0.6)
    urls = requests.get(f"{simulator.url}/v3/marketing/contacts/exports/{late}", headers=auth, timeout=10).json()[
        "urls"
    ]
    assert requests.get(urls[0], timeout=10).status_code == 403  # past expires_at
    unknown = requests.post(
        f"{simulator.url}/v3/marketing/contacts/exports", json={"list_ids": ["nope"]}, headers=auth, timeout=10
    )
    assert unknown.status_code == 400
