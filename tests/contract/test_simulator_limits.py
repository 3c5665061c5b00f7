"""The simulator refuses what SendGrid refuses: the limits and shapes are enforced, not assumed."""

from __future__ import annotations

import json

import pytest
import requests

from tests.conftest import API_KEY


def put(simulator, body, key=API_KEY):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.put(
        f"{simulator.url}/v3/marketing/contacts",
        data=data,
        timeout=30,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"contacts": []}, "contacts"),
        ({"contacts": [{"email": f"p{i}@example.com"} for i in range(30_001)]}, "contacts"),
        ({"contacts": [{"first_name": "No identifier"}]}, "contacts[0]"),
        ({"contacts": [{"email": "a@example.com", "first_name": "x" * 51}]}, "contacts[0].first_name"),
        ({"contacts": [{"email": "a@example.com", "city": "x" * 61}]}, "contacts[0].city"),
        ({"contacts": [{"email": "not-an-email"}]}, "contacts[0].email"),
        ({"contacts": [{"email": "a@example.com", "nickname": "x"}]}, "contacts[0].nickname"),
        ({"contacts": [{"email": "a@example.com", "custom_fields": {"w99": "x"}}]}, "contacts[0].custom_fields"),
        ({"contacts": [{"email": "a@example.com"}], "list_ids": ["no-such-list"]}, "list_ids[0]"),
        ({"contacts": [{"email": "a@example.com"}], "surprise": 1}, "surprise"),
    ],
)
def test_shapes_and_limits_are_refused_with_the_field_named(simulator, body, field):
    simulator.config(indexed_errors=True)
    response = put(simulator, body)
    assert response.status_code == 400
    assert field in [e["field"] for e in response.json()["errors"]]


def test_by_default_a_400_does_not_say_which_contact_is_at_fault(simulator):
    # Per-contact positions are documented nowhere: the default must not offer them.
    response = put(simulator, {"contacts": [{"email": "a@example.com"}, {"email": "not-an-email"}]})
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == [None]


def test_bodies_over_4_mib_are_refused_though_the_document_says_6_mb(simulator):
    contacts = [{"email": f"p{i}@example.com", "address_line_1": "x" * 95} for i in range(30_000)]
    body = json.dumps({"contacts": contacts}).encode()
    assert 4 * 1024 * 1024 < len(body) < 6_000_000
    assert put(simulator, body).status_code == 413
    simulator.config(too_large_status=400)
    refused = put(simulator, body)
    assert refused.status_code == 400 and "too large" in refused.json()["errors"][0]["message"]


def test_a_bad_key_is_401_and_rate_limit_headers_are_sent(simulator):
    response = put(simulator, {"contacts": [{"email": "a@example.com"}]}, key="nope")
    assert response.status_code == 401
    ok = put(simulator, {"contacts": [{"email": "a@example.com"}]})
    assert ok.status_code == 202 and "job_id" in ok.json()
    assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(ok.headers)


def test_rate_limit_answers_429_until_the_window_resets(simulator):
    simulator.config(rate_limit=1, rate_window=60)
    assert put(simulator, {"contacts": [{"email": "a@example.com"}]}).status_code == 202
    limited = put(simulator, {"contacts": [{"email": "a@example.com"}]})
    assert limited.status_code == 429 and limited.headers["X-RateLimit-Remaining"] == "0"
    assert int(limited.headers["X-RateLimit-Reset"]) > 0


def test_import_jobs_finish_after_a_delay(simulator):
    simulator.config(job_delay=0.3)
    job_id = put(simulator, {"contacts": [{"email": "a@example.com"}]}).json()["job_id"]
    url = f"{simulator.url}/v3/marketing/contacts/imports/{job_id}"
    headers = {"Authorization": f"Bearer {API_KEY}"}
    assert requests.get(url, headers=headers, timeout=5).json()["status"] == "pending"
    assert simulator.snapshot()["contacts"] == {}
    import time

    time.sleep(0.35)
    done = requests.get(url, headers=headers, timeout=5).json()
    assert done["status"] == "completed" and done["results"]["created_count"] == 1


def test_list_contact_counts_follow_upserts_and_removals(simulator):
    auth = {"Authorization": f"Bearer {API_KEY}"}
    a, b = simulator.state.add_list("A")["id"], simulator.state.add_list("B")["id"]

    def counts():
        simulator.state.process_jobs()
        listed = requests.get(f"{simulator.url}/v3/marketing/lists", headers=auth, timeout=10).json()["result"]
        one = requests.get(f"{simulator.url}/v3/marketing/lists/{b}", headers=auth, timeout=10).json()
        return {item["name"]: item["contact_count"] for item in listed} | {"B alone": one["contact_count"]}

    simulator.state.job_delay = 0
    assert put(simulator, {"list_ids": [a], "contacts": [{"email": f"p{i}@example.com"} for i in range(5)]}).ok
    assert put(simulator, {"list_ids": [a, b], "contacts": [{"email": f"p{i}@example.com"} for i in range(3, 7)]}).ok
    assert counts() == {"A": 7, "B": 4, "B alone": 4}
    ids = [simulator.state.contacts[f"p{i}@example.com"]["id"] for i in (3, 4)]
    removal = requests.delete(
        f"{simulator.url}/v3/marketing/lists/{b}/contacts",
        params={"contact_ids": ",".join(ids)},
        headers=auth,
        timeout=10,
    )
    assert removal.status_code == 202
    assert counts() == {"A": 7, "B": 2, "B alone": 2}


def test_a_contact_put_straight_into_the_store_is_on_the_lists_it_names(simulator):
    listed = simulator.state.add_list("A")["id"]
    made = requests.post(
        f"{simulator.url}/__sim/contacts", json={"email": "P1@example.com", "list_ids": [listed]}, timeout=5
    )
    assert made.status_code == 201 and made.json()["list_ids"] == [listed]
    assert simulator.members("A") == ["p1@example.com"]
