"""The Functions app: bindings as the host reads them, and each trigger called as the host calls it,
against the storage emulator and the SendGrid simulator."""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import json
import pathlib
import threading
import time
from typing import Any

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest

import function_app
from shared.adapters.locks import BlobLeaseLock, lock_blob_name
from shared.entrypoints import service
from tests.conftest import API_KEY, REPO, destination, make_runtime
from tests.integration.worker_context import WorkerContext

HOST = "https://exports.example.net"


@functools.cache
def functions_by_name() -> dict[str | None, Any]:
    # get_functions() indexes the app and may run only once per process.
    return {f.get_function_name(): f for f in function_app.app.get_functions()}


def bindings_of(name: str) -> list[dict[str, Any]]:
    """The bindings as the host reads them (function.json)."""
    return json.loads(functions_by_name()[name].get_function_json())["bindings"]


def call(name: str, *args: Any) -> Any:
    function = functions_by_name()[name].get_user_function()
    if "context" in inspect.signature(function).parameters:  # the worker passes it by that name
        args = (*args, WorkerContext(name))
    return function(*args)


def http(
    name: str,
    method: str,
    path: str,
    *,
    route: dict[str, str] | None = None,
    body: bytes = b"",
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, dict]:
    request = func.HttpRequest(
        method,
        f"{HOST}/api/{path}?code=functionkey",
        route_params=route or {},
        params=params or {},
        headers=headers or {},
        body=body,
    )
    response = call(name, request)
    assert response.mimetype == "application/json"
    return response.status_code, json.loads(response.get_body()), dict(response.headers)


def work(workspace, dequeue_count: int = 1) -> int:
    """Hand every queued job to the worker, as the host would; returns how many ran."""
    bodies = workspace.take_jobs()
    for body in bodies:
        call("export_worker", QueueMessage(id="m", body=body.encode(), dequeue_count=dequeue_count))
    return len(bodies)


# -- bindings ------------------------------------------------------------------------------------


def test_every_function_and_its_bindings():
    expected_http = {
        "list_destinations": ("destinations", ["GET"]),
        "start_export": ("destinations/{name}/exports", ["POST"]),
        "list_exports": ("destinations/{name}/exports", ["GET"]),
        "get_export": ("destinations/{name}/exports/{run_id}", ["GET"]),
        "get_rejects": ("destinations/{name}/exports/{run_id}/rejects", ["GET"]),
        "check_destination": ("destinations/{name}/check", ["POST"]),
    }
    assert set(functions_by_name()) == {*expected_http, "health", "scheduled_export", "export_worker", "segment_landed"}
    (events,) = bindings_of("segment_landed")
    assert events == {"direction": "IN", "type": "eventGridTrigger", "name": "event"}
    for name, (route, methods) in expected_http.items():
        trigger, output = bindings_of(name)
        assert trigger["type"] == "httpTrigger" and trigger["route"] == route
        assert [m.upper() for m in trigger["methods"]] == methods
        assert trigger["authLevel"] == "FUNCTION", name
        assert output["type"] == "http" and output["direction"] == "OUT"
    assert bindings_of("health")[0]["authLevel"] == "ANONYMOUS"
    (timer,) = bindings_of("scheduled_export")
    assert timer == {
        "direction": "IN",
        "type": "timerTrigger",
        "name": "timer",
        "schedule": "%EXPORT_SCHEDULE%",
        "runOnStartup": False,
        "useMonitor": True,
    }
    (queue,) = bindings_of("export_worker")
    assert queue["type"] == "queueTrigger" and queue["queueName"] == "%EXPORT_QUEUE%"
    assert queue["connection"] == "AzureWebJobsStorage"


def test_host_json_poisons_after_the_attempts_the_worker_counts():
    host = json.loads((REPO / "host.json").read_text())
    assert host["extensions"]["queues"]["maxDequeueCount"] == service.MAX_DEQUEUE_COUNT
    assert host["extensionBundle"]["version"] == "[4.*, 5.0.0)"


def test_the_core_never_imports_the_functions_framework():
    for path in pathlib.Path(service.__file__).parents[1].rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n.startswith("azure.functions") for n in names), path


def test_health_is_a_bare_probe():
    assert http("health", "GET", "health") == (200, {"status": "ok"}, {})


# -- the flows -----------------------------------------------------------------------------------


@pytest.mark.integration
def test_post_then_worker_then_get_gives_a_final_record(workspace, simulator, app_runtime):
    workspace.put_segment("people.csv", "Email\na@example.com\nb@example.com\n")
    workspace.put_destinations(destination())
    status, body, headers = http(
        "start_export",
        "POST",
        "destinations/newsletter/exports",
        route={"name": "newsletter"},
        body=b'{"full": true}',
        headers={"X-MS-CLIENT-PRINCIPAL-NAME": "ops@example.com"},
    )
    assert status == 202 and body["status"] == "queued"
    run_id = body["run_id"]
    assert body["status_url"] == f"/api/destinations/newsletter/exports/{run_id}" == headers["Location"]
    assert "functionkey" not in json.dumps(body)
    _, queued, _ = http("get_export", "GET", "...", route={"name": "newsletter", "run_id": run_id})
    # App Service authentication is off (WEBSITE_AUTH_ENABLED unset): the header is the caller's word.
    assert queued["status"] == "queued" and queued["requested_by"] is None
    assert queued["options"] == {"dry_run": False, "full": True, "force_removals": False}
    assert simulator.state.requests == []  # nothing ran inside the HTTP request

    assert work(workspace) == 1
    status, final, _ = http("get_export", "GET", "...", route={"name": "newsletter", "run_id": run_id})
    assert status == 200 and final["status"] == "succeeded" and final["trigger"] == "on_demand"
    assert final["counts"]["accepted"] == 2
    assert simulator.members("Newsletter") == ["a@example.com", "b@example.com"]

    http("start_export", "POST", "x", route={"name": "newsletter"})
    work(workspace)
    status, listing, _ = http("list_exports", "GET", "x", route={"name": "newsletter"}, params={"limit": "1"})
    assert status == 200 and len(listing["runs"]) == 1 and listing["runs"][0]["run_id"] > run_id
    status, destinations, _ = http("list_destinations", "GET", "destinations")
    (entry,) = destinations["destinations"]
    assert entry["name"] == "newsletter" and entry["last_run"]["run_id"] == listing["runs"][0]["run_id"]
    assert API_KEY not in json.dumps(destinations) and "api_key" not in json.dumps(entry)


@pytest.mark.integration
def test_the_timer_enqueues_every_scheduled_consenting_destination(workspace, simulator, app_runtime):
    workspace.put_segment("people.csv", "Email\na@example.com\nb@example.com\n")
    workspace.put_destinations(
        destination(),
        destination(name="weekly", list={"name": "Weekly", "create_if_missing": True}),
        destination(name="paused", schedule_enabled=False),
        destination(name="off", enabled=False),
        destination(name="no-consent", data_privacy_consent=False),
        destination(name="broken", region="mars"),
    )
    call("scheduled_export", TimerRequest(past_due=True))
    jobs = [json.loads(m.content) for m in workspace.queue.peek_messages(max_messages=32)]
    assert sorted(j["destination"] for j in jobs) == ["newsletter", "weekly"]
    assert {j["trigger"] for j in jobs} == {"schedule"}
    assert simulator.state.requests == []
    assert work(workspace) == 2
    assert sorted(item["name"] for item in simulator.snapshot()["lists"]) == ["Newsletter", "Weekly"]
    for name in ("newsletter", "weekly"):
        (record,) = app_runtime.edges.records.recent(name)
        assert record.status == "succeeded" and record.trigger == "schedule"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("name", "body", "status", "code"),
    [
        ("Bad Name", b"", 400, "invalid_name"),
        ("newsletter", b"[]", 400, "invalid_body"),
        ("newsletter", b"{not json", 400, "invalid_body"),
        ("newsletter", b'{"dry_run": "yes"}', 400, "invalid_body"),
        ("newsletter", b'{"dryrun": true}', 400, "invalid_body"),
        ("newsletter", b'{"dry_run": true, "dry_run": false}', 400, "invalid_body"),  # which one was meant?
        ("newsletter", b'{"dry_run": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "invalid_body"),
        ("newsletter\n", b"", 400, "invalid_name"),
        ("nobody", b"", 404, "destination_not_found"),
        ("off", b"", 409, "destination_disabled"),
        ("no-consent", b"", 409, "consent_required"),
        ("broken", b"", 409, "destination_invalid"),
    ],
)
def test_start_export_refuses_with_a_clear_json_error(workspace, simulator, app_runtime, name, body, status, code):
    workspace.put_destinations(
        destination(),
        destination(name="off", enabled=False),
        destination(name="no-consent", data_privacy_consent=False),
        destination(name="broken", region="mars"),
    )
    got_status, got, _ = http("start_export", "POST", "x", route={"name": name}, body=body)
    assert got_status == status and got["error"]["code"] == code and got["error"]["message"]
    assert workspace.queue.peek_messages() == []


@pytest.mark.integration
@pytest.mark.parametrize(
    ("function", "route", "params", "status", "code"),
    [
        ("get_export", {"name": "newsletter", "run_id": "20261123T031500Z-1a2b3c4d"}, {}, 404, "run_not_found"),
        ("get_export", {"name": "newsletter", "run_id": "../../x"}, {}, 400, "invalid_run_id"),
        ("get_export", {"name": "NEWS", "run_id": "20261123T031500Z-1a2b3c4d"}, {}, 400, "invalid_name"),
        ("list_exports", {"name": "newsletter"}, {"limit": "0"}, 400, "invalid_limit"),
        ("list_exports", {"name": "newsletter"}, {"limit": "many"}, 400, "invalid_limit"),
        ("list_exports", {"name": "newsletter"}, {"limit": "\u00b2"}, 400, "invalid_limit"),  # isdigit(), not int()
        ("list_exports", {"name": "newsletter"}, {"limit": "5\n"}, 400, "invalid_limit"),
        ("list_exports", {"name": "newsletter\n"}, {}, 400, "invalid_name"),
        ("get_export", {"name": "newsletter", "run_id": "20261123T031500Z-1a2b3c4d\n"}, {}, 400, "invalid_run_id"),
        ("list_exports", {"name": "nobody"}, {}, 404, "destination_not_found"),
        ("check_destination", {"name": "nobody"}, {}, 404, "destination_not_found"),
    ],
)
def test_reads_refuse_with_a_clear_json_error(workspace, simulator, app_runtime, function, route, params, status, code):
    workspace.put_destinations(destination())
    got_status, got, _ = http(function, "GET", "x", route=route, params=params)
    assert (got_status, got["error"]["code"]) == (status, code)


@pytest.mark.integration
@pytest.mark.parametrize("auth_on", [False, True])
def test_requested_by_is_believed_only_under_app_service_authentication(workspace, simulator, app_runtime, auth_on):
    app_runtime.settings = dataclasses.replace(app_runtime.settings, app_service_auth=auth_on)
    workspace.put_destinations(destination())
    status, body, _ = http(
        "start_export",
        "POST",
        "x",
        route={"name": "newsletter"},
        headers={"X-MS-CLIENT-PRINCIPAL-NAME": "ceo@example.com", "Host": "evil.example.org"},
    )
    assert status == 202 and "evil" not in body["status_url"] and body["status_url"].startswith("/api/")
    record = app_runtime.edges.records.load("newsletter", body["run_id"])
    assert record.requested_by == ("ceo@example.com" if auth_on else None)


@pytest.mark.integration
def test_a_corrupt_older_record_is_skipped_by_the_listings_and_the_next_run(workspace, simulator, app_runtime, caplog):
    workspace.put_segment("people.csv", "Email\na@example.com\n")
    workspace.put_destinations(destination())
    for run_id, junk in (("20200101T000000Z-00000001", b"\xff{"), ("20200101T000000Z-00000002", b'{"run_id": 1}')):
        workspace.exports.upload_blob(f"runs/newsletter/{run_id}.json", junk)
    http("start_export", "POST", "x", route={"name": "newsletter"})
    work(workspace)
    status, listing, _ = http("list_exports", "GET", "x", route={"name": "newsletter"})
    assert status == 200 and [r["status"] for r in listing["runs"]] == ["succeeded"]
    status, destinations, _ = http("list_destinations", "GET", "destinations")
    assert status == 200 and destinations["destinations"][0]["last_run"]["status"] == "succeeded"
    route = {"name": "newsletter", "run_id": "20200101T000000Z-00000001"}
    status, body, _ = http("get_export", "GET", "x", route=route)
    assert status == 500 and body["error"]["code"] == "run_record_corrupt"
    assert "runs/newsletter/20200101T000000Z-00000001.json is corrupt" in body["error"]["message"]
    assert any("20200101T000000Z-00000002.json is corrupt" in r.getMessage() for r in caplog.records)


@pytest.mark.integration
def test_a_missing_destinations_file_is_a_server_side_configuration_error(workspace, simulator, app_runtime):
    status, body, _ = http("list_destinations", "GET", "destinations")
    assert status == 500 and body["error"]["code"] == "configuration_error"
    assert "destinations.json not found" in body["error"]["message"]


@pytest.mark.integration
def test_two_workers_for_one_destination_give_one_run_and_one_skipped(workspace, simulator, app_runtime):
    workspace.put_segment("people.csv", "Email\na@example.com\n")
    workspace.put_destinations(destination())
    simulator.config(job_delay=1.5)  # keeps the first run busy while the second arrives
    http("start_export", "POST", "x", route={"name": "newsletter"})
    # Other options: a second run (a request with the same ones joins the queued run).
    http("start_export", "POST", "x", route={"name": "newsletter"}, body=b'{"full": true}')
    bodies = workspace.take_jobs()
    threads = [
        threading.Thread(target=call, args=("export_worker", QueueMessage(body=b.encode(), dequeue_count=1)))
        for b in bodies
    ]
    for t in threads:
        t.start()
        time.sleep(0.2)
    for t in threads:
        t.join()
    records = app_runtime.edges.records.recent("newsletter")
    statuses = sorted(r.status for r in records)
    assert statuses == ["skipped", "succeeded"]
    ran = next(r for r in records if r.status == "succeeded")
    skipped = next(r for r in records if r.status == "skipped")
    assert f"run {ran.run_id}" in skipped.errors[0]
    assert simulator.snapshot()["upserted_contacts"] == 1


@pytest.mark.integration
@pytest.mark.slow
def test_a_lease_left_by_a_dead_worker_expires_and_the_next_run_proceeds(workspace, simulator, app_runtime):
    workspace.put_segment("people.csv", "Email\na@example.com\n")
    workspace.put_destinations(destination())
    # A worker that took the lock (15 s, the shortest lease) and died without renewing or releasing it.
    blob = workspace.exports.get_blob_client(lock_blob_name("newsletter"))
    blob.upload_blob(b"", overwrite=True)
    lease = blob.acquire_lease(lease_duration=15)
    blob.set_blob_metadata({"run_id": "20261123T000000Z-deadbeef"}, lease=lease)
    taken_at = time.monotonic()
    http("start_export", "POST", "x", route={"name": "newsletter"})
    work(workspace)
    (first,) = app_runtime.edges.records.recent("newsletter")
    assert first.status == "skipped" and "run 20261123T000000Z-deadbeef" in first.errors[0]
    time.sleep(max(0.0, 16 - (time.monotonic() - taken_at)))
    http("start_export", "POST", "x", route={"name": "newsletter"})
    work(workspace)
    latest = app_runtime.edges.records.recent("newsletter")[0]
    assert latest.status == "succeeded" and simulator.members("Newsletter") == ["a@example.com"]


@pytest.mark.integration
def test_the_lock_is_renewed_while_a_run_lasts(workspace, simulator):
    lock = BlobLeaseLock(workspace.exports, lease_seconds=15, renew_every=1)
    with lock.hold("newsletter", "20261123T000000Z-00000001"):
        blob = workspace.exports.get_blob_client(lock_blob_name("newsletter"))
        assert blob.get_blob_properties().lease.state == "leased"
    assert blob.get_blob_properties().lease.state == "available"  # released at the end


@pytest.mark.integration
def test_a_malformed_message_is_recorded_and_dropped(workspace, simulator, app_runtime):
    workspace.put_destinations(destination())
    bodies = (
        b"not json",
        b'{"run_id": "x", "destination": "newsletter", "trigger": "schedule"}',
        b"[" * 5000 + b"]" * 5000,  # nested past what the parser can hold
        b"[" * 100_000 + b"]" * 100_000,
    )
    for body in bodies:
        call("export_worker", QueueMessage(body=body, dequeue_count=1))  # returns: never retried
    recorded = workspace.export_names("runs/_malformed/")
    assert len(recorded) == 4
    reasons = sorted(json.loads(workspace.read_export(n))["reason"] for n in recorded)
    assert reasons[0].startswith("run_id is missing or malformed")
    assert reasons[1].startswith("the message is not valid JSON: Expecting value")
    assert reasons[2] == "the message is over 16384 characters"
    assert reasons[3].startswith("the message nests arrays or objects more than 64 levels deep")
    assert simulator.state.requests == []


@pytest.mark.integration
def test_a_job_that_keeps_failing_is_retried_then_recorded_failed(workspace, simulator, app_runtime):
    workspace.put_segment("people.csv", "Email\na@example.com\n")
    workspace.put_destinations(destination())

    def broken_factory(url, key):
        raise RuntimeError("simulated worker crash")

    app_runtime.edges.sendgrid = broken_factory
    http("start_export", "POST", "x", route={"name": "newsletter"})
    (body,) = workspace.take_jobs()
    run_id = json.loads(body)["run_id"]
    for attempt in (1, 2, 3):
        with pytest.raises(RuntimeError):
            call("export_worker", QueueMessage(body=body.encode(), dequeue_count=attempt))
        record = app_runtime.edges.records.load("newsletter", run_id)
        assert record.status == ("queued" if attempt < 3 else "failed")
    assert record.errors[-2:] == [
        "unexpected error (RuntimeError): simulated worker crash",
        "attempt 3 failed; gave up after 3 attempts.",
    ]
    # A copy delivered again after that is not run again.
    call("export_worker", QueueMessage(body=body.encode(), dequeue_count=1))
    assert app_runtime.edges.records.load("newsletter", run_id).status == "failed"


@pytest.mark.integration
def test_a_retried_job_starts_from_clean_counts(workspace, simulator, app_runtime):
    workspace.put_segment("people.csv", "Email\na@example.com\nb@example.com\n")
    workspace.put_destinations(destination())
    real_factory = app_runtime.edges.sendgrid
    calls = {"n": 0}

    def flaky_factory(url, key):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("first attempt dies")
        return real_factory(url, key)

    app_runtime.edges.sendgrid = flaky_factory
    http("start_export", "POST", "x", route={"name": "newsletter"})
    (body,) = workspace.take_jobs()
    with pytest.raises(RuntimeError):
        call("export_worker", QueueMessage(body=body.encode(), dequeue_count=1))
    call("export_worker", QueueMessage(body=body.encode(), dequeue_count=2))
    (record,) = app_runtime.edges.records.recent("newsletter")
    assert record.status == "succeeded" and record.counts.read == 2 and record.counts.conserved()
    assert record.errors == [
        "unexpected error (RuntimeError): first attempt dies",
        "attempt 1 of 3 failed; the job will be retried.",
    ]


@pytest.mark.integration
def test_check_reports_each_verdict(workspace, simulator, app_runtime):
    simulator.state.add_custom_field("tier", "Text")
    workspace.put_segment("people.csv", "Email,Tier\na@example.com,Gold\n")
    workspace.put_destinations(
        destination(mapping={"email": "Email", "custom_fields": {"tier": "Tier"}}),
        destination(
            name="gaps",
            list={"name": "Nowhere"},
            segments=[{"path": "missing.csv"}],
            mapping={"email": "Email", "custom_fields": {"points": "Points"}},
        ),
    )
    status, body, _ = http("check_destination", "POST", "x", route={"name": "newsletter"})
    assert status == 200 and body["ok"], body
    assert {c["name"] for c in body["checks"]} >= {
        "config",
        "consent",
        "secret",
        "api_key",
        "list:Newsletter",
        "custom_field:tier",
        "segment:people.csv",
    }
    _, gaps, _ = http("check_destination", "POST", "x", route={"name": "gaps"})
    failed = {c["name"]: c["detail"] for c in gaps["checks"] if not c["ok"]}
    assert set(failed) == {"list:Nowhere", "custom_field:points", "segment:missing.csv"}
    assert "create_if_missing" in failed["list:Nowhere"]
    assert simulator.snapshot()["lists"] == [] and simulator.snapshot()["upserted_contacts"] == 0
    workspace.env["SENDGRID_SECRET_SENDGRID_API_KEY"] = "revoked-key-0123456789"
    service.reset_app_runtime(make_runtime(workspace))
    _, bad_key, _ = http("check_destination", "POST", "x", route={"name": "newsletter"})
    verdict = next(c for c in bad_key["checks"] if c["name"] == "api_key")
    assert not bad_key["ok"] and not verdict["ok"] and "401" in verdict["detail"]
    assert "revoked-key-0123456789" not in json.dumps(bad_key)


def test_the_app_redacts_secrets_on_the_handler_the_worker_installed():
    import subprocess
    import sys

    # As the worker does: its handler is on the root logger before function_app is imported.
    script = (
        "import logging, sys\n"
        "logging.getLogger().addHandler(logging.StreamHandler(sys.stdout))\n"
        "import function_app\n"
        "from shared.privacy import register_secret\n"
        f"register_secret({API_KEY!r})\n"
        f"logging.getLogger('shared.x').warning('SendGrid said: key %s, Authorization: Bearer t0k.en', {API_KEY!r})\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "SendGrid said: key ***, Authorization: Bearer ***"
