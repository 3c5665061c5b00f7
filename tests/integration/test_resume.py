"""At SendGrid's pace: runs that spend no request twice and survive being stopped.

A run killed (kill -9, a real process) after SendGrid accepted some of its batches, then run
again, sends none of them again (the simulator's request log says what was sent when); every
record saved meanwhile obeys the conservation law; a first export longer than one run goes on
where the last stopped; production's answers (the status shape, the contact cap) are met.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
import requests
from azure.storage.blob import BlobLeaseClient

from shared.entrypoints.service import run_now
from shared.run.counts import RunCounts, conservation_faults
from shared.run.delta.identity import email_key
from shared.run.delta.journal import StateUpdates, parse_sent
from shared.run.export import queue_run, run_export
from shared.run.preflight import run_checks
from shared.run.records import FINAL_STATUSES, ExportOptions, RunStatus
from tests.conftest import REPO, destination, make_runtime

pytestmark = pytest.mark.integration

UPSERT = "PUT /v3/marketing/contacts"


def people(n: int) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["Email", "FirstName", "City"])
    writer.writerows([f"p{i}@example.com", f"Name{i}", "Oslo"] for i in range(n))
    return out.getvalue()


def request_log(simulator) -> list[dict[str, Any]]:
    return requests.get(f"{simulator.url}/__sim/requests", timeout=10).json()["requests"]


def accepted_puts(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in log if e["method"] == "PUT" and e["path"] == "/v3/marketing/contacts" and e.get("status") == 202]


def emails_of(entry: dict[str, Any]) -> set[str]:
    return {c["email"] for c in json.loads(entry["body"])["contacts"]}


def held_keys(workspace) -> set[int]:
    """Keys the run journaled: confirmed (journal blobs) or accepted and not yet settled (sent blobs)."""
    keys: set[int] = set()
    for name in workspace.export_names("state/newsletter/"):
        raw = workspace.read_export(name)
        if "/sent-" in name:
            keys.update(parse_sent(raw, name)[1].keys)
        elif "/journal-" in name:
            updates = StateUpdates()
            updates.extend_from_journal(raw, source=name)
            keys.update(updates.keys)
    return keys


def records_now(workspace) -> list[dict[str, Any]]:
    found = []
    for name in workspace.export_names("runs/newsletter/"):
        if name.endswith(".json"):  # a blob is replaced whole: a read sees one save or the next
            found.append(json.loads(workspace.read_export(name)))
    return found


def assert_true(saved: dict[str, Any]) -> None:
    counts = RunCounts.from_dict(saved["counts"])
    final = saved["status"] in FINAL_STATUSES and saved["status"] != RunStatus.SKIPPED
    assert conservation_faults(counts, final=final) == [], saved
    if final:
        assert saved["progress"] is None or saved["progress"]["stage"] in ("done", "failed", "stopped"), saved


@pytest.mark.parametrize("after", [1, 3, 7])
def test_a_run_killed_after_batches_were_accepted_sends_none_of_them_again(workspace, simulator, after):
    rng = random.Random()
    seed = rng.randrange(1_000_000)
    extra = random.Random(seed).uniform(0.0, 0.5)  # a random point after the first accepted batches
    workspace.put_segment("people.csv", people(600))
    workspace.put_destinations(destination())
    # Jobs of 1.5 s at 3 PUTs a second: at the kill, some jobs are confirmed and some still running.
    simulator.config(record_bodies=True, job_delay=1.5, pace={UPSERT: {"limit": 3, "window": 1}})
    env = {**os.environ, **workspace.env, "TEST_BATCH_CONTACTS": "50", "TEST_RECORD_SAVE_EVERY": "0.1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.export_process"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    saved: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        while (
            len(workspace.export_names("state/newsletter/sent-"))
            + len(workspace.export_names("state/newsletter/journal-"))
            < after
        ):
            assert proc.poll() is None, f"the export finished before it could be killed (seed {seed})"
            assert time.monotonic() - started < 60, "no batch was accepted within a minute"
            saved += records_now(workspace)
        until = time.monotonic() + extra
        while time.monotonic() < until:
            saved += records_now(workspace)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    saved += records_now(workspace)
    left = workspace.export_names("state/newsletter/sent-")  # accepted, not settled: the rerun settles them
    before = request_log(simulator)
    held = held_keys(workspace)
    accepted = accepted_puts(before)
    journaled = [e for e in accepted if all(email_key(m) in held for m in emails_of(e))]
    # The one window no client can close: SendGrid accepted a batch whose answer the killed
    # process had not yet journaled (one request in flight: the export sends one at a time).
    assert len(accepted) - len(journaled) <= 1, f"seed {seed}"
    assert len(journaled) >= after

    # The dead process's lease is broken rather than waited out (15 s).
    BlobLeaseClient(workspace.exports.get_blob_client("locks/newsletter.lock")).break_lease(lease_break_period=0)
    runtime = make_runtime(workspace)
    again = run_now(runtime, "newsletter", options=ExportOptions(), requested_by="test")
    assert again.status == "succeeded", again.errors

    sent_again = set().union(*(emails_of(e) for e in accepted_puts(request_log(simulator)[len(before) :])))
    was_accepted = set().union(*(emails_of(e) for e in journaled))
    assert not sent_again & was_accepted, f"seed {seed}: a batch SendGrid had accepted was sent again"
    assert again.counts.sent + again.counts.unchanged == 600 and again.counts.unchanged >= len(was_accepted)
    if left:
        assert again.resumed is not None and again.resumed["jobs"] == len(left)
    members = simulator.members("Newsletter")
    assert members == sorted(f"p{i}@example.com" for i in range(600))
    dead = runtime.edges.records.load("newsletter", saved[0]["run_id"])
    assert dead is not None and dead.status == "failed"
    saved.append(dead.to_dict())
    assert saved
    for record in saved:
        assert_true(record)
    assert workspace.export_names("state/newsletter/sent-") == []


def test_a_first_export_longer_than_one_run_completes_in_the_next_without_sending_again(workspace, simulator):
    workspace.put_segment("people.csv", people(200))
    workspace.put_destinations(destination())
    simulator.config(record_bodies=True, job_delay=1.0)
    first = run_export(
        runtime := make_runtime(workspace, max_batch_contacts=50, job_wait_seconds=0.3),
        queue_run(runtime, "newsletter", trigger="cli"),
    )
    assert first.status == "completed_with_errors" and first.counts.unconfirmed == 200
    assert first.counts.accepted == first.counts.errored == 0 and first.rejects_blob is None
    assert_true(first.to_dict())
    puts = len(accepted_puts(request_log(simulator)))
    time.sleep(1.0)  # the jobs end at SendGrid meanwhile
    second = run_export(runtime, queue_run(runtime, "newsletter", trigger="cli"))
    assert second.status == "succeeded", second.errors
    assert second.resumed == {
        "jobs": 4,
        "confirmed": 200,
        "errored": 0,
        "again": 0,
        "unsettled_jobs": 0,
        "damaged": 0,
    }
    assert (second.counts.unchanged, second.counts.sent) == (200, 0)
    assert len(accepted_puts(request_log(simulator))) == puts  # nothing was sent again
    assert workspace.export_names("state/newsletter/sent-") == []


def test_jobs_answered_in_productions_shape_are_counted_once_they_end(workspace, simulator):
    # job_type "upsert_contacts", camelCase results, and a partial tally while pending.
    simulator.config(status_shape="camel", job_delay=0.3)
    workspace.put_segment("people.csv", people(120))
    workspace.put_destinations(destination())
    runtime = make_runtime(workspace, max_batch_contacts=40)
    record = run_export(runtime, queue_run(runtime, "newsletter", trigger="cli"))
    assert record.status == "succeeded", record.errors
    assert (record.counts.accepted, record.counts.created, record.counts.updated) == (120, 120, 0)
    polls = [e for e in request_log(simulator) if "/contacts/imports/" in e["path"]]
    assert len(polls) > 3  # some polls found the jobs pending, with their partial tallies
    checks = {c.name: c for c in run_checks(runtime, "newsletter")}
    assert checks["contacts"].ok and "holds 120 contacts" in checks["contacts"].detail


def test_the_contact_cap_fails_the_run_naming_it_and_nothing_after_it_is_sent(workspace, simulator):
    simulator.config(contact_cap=50, job_delay=0.05, pace={UPSERT: {"limit": 1, "window": 1}})
    workspace.put_segment("people.csv", people(120))
    workspace.put_destinations(destination())
    runtime = make_runtime(workspace, max_batch_contacts=30)
    record = run_export(runtime, queue_run(runtime, "newsletter", trigger="cli"))
    assert record.status == "failed"
    message = next(e for e in record.errors if "contact limit" in e)
    assert "holds 30 contacts" in message and "plan's cap" in message and "none is retried" in message
    puts = [e for e in request_log(simulator) if e["method"] == "PUT"]
    assert len(puts) == 2, (
        [(p["at"], p.get("status")) for p in puts],
        record.errors,
    )  # the batch that met the cap, and no more
    assert_true(record.to_dict())
    assert record.counts.accepted == 30 and record.counts.errored == 90
    rejects = workspace.read_export(record.rejects_blob).decode().strip().splitlines()
    assert len(rejects) - 1 == record.counts.rejected  # runs and rejects agree


@pytest.mark.parametrize(("stop", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_an_interrupted_run_settles_its_requests_then_records_true_counts(workspace, simulator, stop, code):
    """Ctrl-C (or SIGTERM) mid-send: no batch goes out after the run's final record; every batch
    SendGrid accepted is in the record with its job id (or counted unconfirmed); the rerun sends
    none of them again."""
    workspace.put_segment("people.csv", people(30_000))
    workspace.put_destinations(destination())
    simulator.config(record_bodies=True, job_delay=2, pace={UPSERT: {"limit": 2, "window": 1}})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENDGRID_", "EXPORT_", "KEY_VAULT"))}
    env = {**env, **workspace.env, "SENDGRID_MAX_BATCH_BYTES": "100000"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared", "--no-local-settings", "export", "newsletter", "--full"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        started = time.monotonic()
        while len(accepted_puts(request_log(simulator))) < 3:
            assert proc.poll() is None, "the export ended before it could be interrupted"
            assert time.monotonic() - started < 60, "no batch was accepted within a minute"
            time.sleep(0.1)
        time.sleep(random.uniform(0.0, 1.0))
        proc.send_signal(getattr(signal, stop))
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code, stderr
    assert stderr.splitlines()[-1] == "interrupted; safe to run again" and "Traceback" not in stderr
    time.sleep(1.5)  # a request still going out after the record was saved would show in the log
    before = request_log(simulator)
    (record,) = records_now(workspace)
    assert record["status"] == "failed" and "interrupted" in record["errors"][-1], record
    assert_true(record)
    assert record["progress"]["batches_confirmed"] <= record["progress"]["batches_sent"], record["progress"]
    by_job = {job["job_id"] for batch in record["batches"] for job in batch.get("jobs", [batch])}
    accepted = accepted_puts(before)
    held = held_keys(workspace)
    unconfirmed = record["counts"]["unconfirmed"]
    assert len(by_job - {None}) == len(accepted), "a batch SendGrid accepted is missing from the record"
    for entry in accepted:
        assert all(email_key(m) in held for m in emails_of(entry)), "a batch SendGrid accepted was not journaled"
    assert unconfirmed <= sum(len(emails_of(e)) for e in accepted)
    for batch in record["batches"]:
        assert batch["status"] is not None, batch
        if batch["status"] in ("pending", "unsettled", "imported", "completed"):
            assert batch["job_id"], batch

    runtime = make_runtime(workspace)
    runtime.tuning = dataclasses.replace(runtime.tuning, max_batch_bytes=100_000)
    simulator.config(job_delay=0.2, pace={UPSERT: {"limit": 50, "window": 1}})
    again = run_now(runtime, "newsletter", options=ExportOptions(), requested_by="test")
    assert again.status == "succeeded", again.errors
    sent_again = set().union(*(emails_of(e) for e in accepted_puts(request_log(simulator)[len(before) :])))
    assert not sent_again & set().union(*(emails_of(e) for e in accepted))
    assert len(simulator.members("Newsletter")) == 30_000
