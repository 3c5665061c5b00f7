"""The product under faults: every valid contact lands exactly once and every count adds up."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from shared.entrypoints.service import run_now
from shared.run.export import queue_run, run_export
from shared.run.records import ExportOptions
from tests.conftest import REPO, destination, make_runtime

pytestmark = pytest.mark.integration


def people(n: int, start: int = 0) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["Email", "FirstName", "City"])
    writer.writerows([f"p{i}@example.com", f"Name{i}", "Oslo"] for i in range(start, start + n))
    return out.getvalue()


def assert_exactly_once(simulator, n: int, start: int = 0) -> None:
    members = simulator.members("Newsletter")
    assert members == sorted(f"p{i}@example.com" for i in range(start, start + n))
    assert len(members) == len(set(members))


def test_a_429_storm_is_waited_out(workspace, simulator):
    workspace.put_segment("people.csv", people(200))
    workspace.put_destinations(destination())
    simulator.config(rate_limit=3, rate_window=1.0)  # SendGrid's own limit, every endpoint
    simulator.fault(kind="rate_limit", method="PUT", path="/v3/marketing/contacts", times=4, reset_in=1)
    simulator.fault(kind="rate_limit", method="GET", path="/v3/marketing/contacts/imports/", times=3, reset_in=1)
    runtime = make_runtime(workspace, max_batch_contacts=25)
    record = run_export(runtime, queue_run(runtime, "newsletter", trigger="cli"))
    assert record.status == "succeeded", record.errors
    assert sum(b.get("rate_limited", 0) for b in record.batches) >= 4
    assert record.counts.accepted == 200 and record.counts.conserved()
    assert_exactly_once(simulator, 200)


def test_bursts_of_500_and_503_everywhere(workspace, simulator):
    workspace.put_segment("people.csv", people(120))
    workspace.put_destinations(destination())
    for method, path in (
        ("GET", "/v3/marketing/lists"),
        ("POST", "/v3/marketing/lists"),
        ("PUT", "/v3/marketing/contacts"),
        ("GET", "/v3/marketing/contacts/imports/"),
    ):
        simulator.fault(kind="status", status=500, method=method, path=path, times=1)
        simulator.fault(kind="status", status=503, method=method, path=path, times=2, after=1)
    runtime = make_runtime(workspace, max_batch_contacts=30)
    record = run_export(runtime, queue_run(runtime, "newsletter", trigger="cli"))
    assert record.status == "succeeded", record.errors
    assert record.counts.accepted == 120 and record.counts.conserved()
    assert_exactly_once(simulator, 120)
    assert len(simulator.snapshot()["lists"]) == 1  # a retried create made no second list


def test_dropped_connections_and_read_timeouts(workspace, simulator):
    workspace.put_segment("people.csv", people(90))
    workspace.put_destinations(destination())
    simulator.fault(kind="drop", method="PUT", path="/v3/marketing/contacts", times=2)
    simulator.fault(kind="drop", method="GET", path="/v3/marketing/contacts/imports/", times=2)
    simulator.fault(kind="delay", seconds=1.2, method="PUT", path="/v3/marketing/contacts", times=1, after=2)
    from shared.adapters.sendgrid import ClientTuning, SendGridClient
    from tests.conftest import FAST_RETRY

    runtime = make_runtime(workspace, max_batch_contacts=30)
    runtime.edges.sendgrid = lambda url, key: SendGridClient(
        url, key, ClientTuning(policy=FAST_RETRY, timeout=(1.0, 0.8))
    )
    record = run_export(runtime, queue_run(runtime, "newsletter", trigger="cli"))
    assert record.status == "succeeded", record.errors
    assert record.counts.accepted == 90 and record.counts.conserved()
    assert_exactly_once(simulator, 90)


def test_the_export_process_killed_mid_run_then_run_again(workspace, simulator):
    workspace.put_segment("people.csv", people(600))
    workspace.put_destinations(destination())
    simulator.config(job_delay=0.4)  # slow jobs: the process is killed while they are confirmed
    env = {**os.environ, **workspace.env, "TEST_BATCH_CONTACTS": "100"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.export_process"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started = time.monotonic()
    try:
        while not workspace.export_names("state/newsletter/journal-"):  # at least one batch confirmed
            assert proc.poll() is None, "the export finished before it could be killed"
            assert time.monotonic() - started < 60, "no batch was confirmed within a minute"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    confirmed = len(workspace.export_names("state/newsletter/journal-")) * 100
    (dead,) = make_runtime(workspace).edges.records.recent("newsletter")
    assert dead.status == "running" and proc.returncode == -signal.SIGKILL
    time.sleep(16)  # the dead process's 15 s lease expires
    runtime = make_runtime(workspace)
    again = run_now(runtime, "newsletter", options=ExportOptions(), requested_by="test")
    assert again.status == "succeeded", again.errors
    assert again.counts.unchanged >= confirmed and again.counts.sent == 600 - again.counts.unchanged
    assert again.counts.conserved()
    assert_exactly_once(simulator, 600)
    marked = runtime.edges.records.load("newsletter", dead.run_id)
    assert marked is not None
    assert marked.status == "failed" and "stopped without finishing" in marked.errors[-1]
    assert workspace.export_names("state/newsletter/journal-") == []
    third = run_now(runtime, "newsletter", options=ExportOptions(), requested_by="test")
    assert third.counts.unchanged == 600 and third.counts.sent == 0


def test_two_runs_started_together(workspace, simulator):
    import threading

    workspace.put_segment("people.csv", people(50))
    workspace.put_destinations(destination())
    simulator.config(job_delay=1.0)
    results = []

    def one() -> None:
        runtime = make_runtime(workspace)
        results.append(run_now(runtime, "newsletter", options=ExportOptions(), requested_by="test"))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status for r in results) == ["skipped", "succeeded"]
    assert simulator.snapshot()["upserted_contacts"] == 50
    assert_exactly_once(simulator, 50)


def test_a_key_sendgrid_quotes_back_reaches_no_record_rejects_check_or_log(workspace, simulator):
    from shared.run.preflight import run_checks
    from tests.conftest import API_KEY

    workspace.put_segment("people.csv", people(3))
    workspace.put_destinations(destination())
    shaped = "SG." + "a" * 22 + "." + "b" * 43  # made here, so no key-shaped text is committed
    echo = f"key {API_KEY} refused; header was Authorization: Bearer abc.def-ghi; other key {shaped}"
    # Every PUT: a one-off 400 naming no contact is isolated by halving, and the contacts then go.
    simulator.fault(kind="status", status=400, method="PUT", path="/v3/marketing/contacts", message=echo, times=50)
    simulator.fault(kind="status", status=403, method="GET", path="/v3/scopes", message=echo)
    runtime = make_runtime(workspace)
    record = run_export(runtime, queue_run(runtime, "newsletter", trigger="cli"))
    checks = run_checks(runtime, "newsletter")
    written = json.dumps(record.to_dict()) + workspace.read_export(record.rejects_blob).decode()
    written += json.dumps([c.as_dict() for c in checks])
    assert record.counts.errored == 3 and "key *** refused" in written and "Bearer ***" in written
    for secret in (API_KEY, "abc.def-ghi", shaped):
        assert secret not in written
