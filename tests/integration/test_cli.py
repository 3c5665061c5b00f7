"""``python -m shared`` as a user runs it: exit codes, the record on stdout, nothing secret printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import API_KEY, REPO, destination

pytestmark = pytest.mark.integration


def cli(workspace, *args: str, env_overrides: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENDGRID_", "EXPORT_", "KEY_VAULT"))}
    env.update(workspace.env)
    env.update(env_overrides or {})
    return subprocess.run(
        # A developer's local.settings.json (make up writes one) must not leak into the tests.
        [sys.executable, "-m", "shared", "--no-local-settings", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_private(proc: subprocess.CompletedProcess[str], *emails: str) -> None:
    output = proc.stdout + proc.stderr
    assert API_KEY not in output
    for email in emails:
        assert email not in proc.stderr  # the record (stdout) holds counts; the log holds none


def test_a_clean_export_exits_0_and_prints_the_final_record(workspace, simulator):
    workspace.put_segment("people.csv", "Email,FirstName\na@example.com,Ann\nb@example.com,Bo\n")
    workspace.put_destinations(destination())
    proc = cli(workspace, "export", "newsletter")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["status"] == "succeeded" and record["trigger"] == "cli"
    assert record["counts"]["accepted"] == 2
    stored = json.loads(workspace.read_export(f"runs/newsletter/{record['run_id']}.json"))
    assert stored == record
    assert "sent batch 0: 2 contacts" in proc.stderr
    assert_private(proc, "a@example.com", "b@example.com", "Ann")


def test_rejected_rows_exit_3(workspace, simulator):
    workspace.put_segment("people.csv", "Email\na@example.com\nnot-an-email\n")
    workspace.put_destinations(destination())
    proc = cli(workspace, "export", "newsletter")
    assert proc.returncode == 3, proc.stderr
    assert json.loads(proc.stdout)["status"] == "completed_with_errors"
    assert_private(proc, "a@example.com", "not-an-email")


def test_a_failed_run_exits_1_with_its_record(workspace, simulator):
    workspace.put_destinations(destination(segments=[{"path": "absent.csv"}]))
    proc = cli(workspace, "export", "newsletter")
    assert proc.returncode == 1
    record = json.loads(proc.stdout)
    assert record["status"] == "failed" and "absent.csv" in record["errors"][0]


def test_dry_run_sends_nothing(workspace, simulator):
    workspace.put_segment("people.csv", "Email\na@example.com\n")
    workspace.put_destinations(destination())
    proc = cli(workspace, "export", "newsletter", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["options"]["dry_run"] and (record["counts"]["sent"], record["counts"]["would_send"]) == (0, 1)
    assert simulator.snapshot()["upserted_contacts"] == 0 and simulator.snapshot()["lists"] == []


@pytest.mark.parametrize(
    ("args", "overrides", "message"),
    [
        (("export", "nobody"), {}, "no destination named 'nobody'"),
        (("export",), {}, "the following arguments are required: name"),
        (("export", "newsletter"), {"SECRETS_SOURCE": "vault"}, "SECRETS_SOURCE"),
        (("export", "newsletter"), {"EXPORT_SCHEDULE": "daily"}, "EXPORT_SCHEDULE"),
        (("bogus",), {}, "invalid choice"),
    ],
)
def test_bad_usage_or_configuration_exits_2_naming_the_fault(workspace, simulator, args, overrides, message):
    workspace.put_destinations(destination())
    proc = cli(workspace, *args, env_overrides=overrides)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert proc.stdout == ""


def test_no_consent_exits_2_and_sends_nothing(workspace, simulator):
    workspace.put_segment("people.csv", "Email\na@example.com\n")
    workspace.put_destinations(destination(data_privacy_consent=False))
    proc = cli(workspace, "export", "newsletter")
    assert proc.returncode == 2 and "data_privacy_consent" in proc.stderr
    assert simulator.state.requests == []


def test_destinations_and_runs(workspace, simulator):
    workspace.put_segment("people.csv", "Email\na@example.com\n")
    workspace.put_destinations(destination(), destination(name="broken", region="mars"))
    listed = cli(workspace, "destinations")
    assert listed.returncode == 0
    entries = {d["name"]: d for d in json.loads(listed.stdout)["destinations"]}
    assert entries["newsletter"]["enabled"] and "field 'region'" in entries["broken"]["error"]
    first = json.loads(cli(workspace, "export", "newsletter").stdout)["run_id"]
    second = json.loads(cli(workspace, "export", "newsletter").stdout)["run_id"]
    runs = json.loads(cli(workspace, "runs", "newsletter", "--json").stdout)["runs"]
    assert [r["run_id"] for r in runs] == sorted([first, second], reverse=True)


def test_the_cli_takes_the_same_lock_as_the_worker(workspace, simulator):
    from shared.adapters.locks import BlobLeaseLock

    workspace.put_segment("people.csv", "Email\na@example.com\n")
    workspace.put_destinations(destination())
    with BlobLeaseLock(workspace.exports).hold("newsletter", "20261123T000000Z-0000beef"):
        proc = cli(workspace, "export", "newsletter")
    assert proc.returncode == 4  # skipped: its own code, apart from completed_with_errors (3)
    record = json.loads(proc.stdout)
    assert record["status"] == "skipped" and "run 20261123T000000Z-0000beef" in record["errors"][0]
    assert simulator.state.requests == []


def test_check_exits_0_when_ready_and_1_naming_what_is_not(workspace, simulator):
    workspace.put_segment("people.csv", "Email\na@example.com\n")
    workspace.put_destinations(destination(), destination(name="nolist", list={"name": "Absent"}))
    ready = cli(workspace, "check", "newsletter")
    assert ready.returncode == 0 and json.loads(ready.stdout)["ok"]
    missing = cli(workspace, "check", "nolist")
    assert missing.returncode == 1
    # Printed once: JSON where stdout is not a terminal, no checklist beside it on stderr.
    assert {c["name"]: c["ok"] for c in json.loads(missing.stdout)["checks"]}["list:Absent"] is False
    assert "FAIL" not in missing.stderr
    assert_private(missing)


def test_storage_that_refuses_is_one_clear_line_not_a_traceback(workspace, simulator):
    from tools.standins.storage import ACCOUNT, ACCOUNT_KEY

    # An endpoint that answers every storage call with 401, as an account refusing this identity does.
    refusing = (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint={simulator.url}/{ACCOUNT};QueueEndpoint={simulator.url}/{ACCOUNT};"
    )
    proc = cli(
        workspace, "export", "newsletter", env_overrides={"EXPORT_STORAGE": refusing, "AzureWebJobsStorage": refusing}
    )
    assert proc.returncode == 1, proc.stderr
    assert "error: Azure Storage (ClientAuthenticationError)" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_unreachable_storage_fails_within_seconds_in_one_line(workspace, simulator):
    import time

    from tools.standins.storage import ACCOUNT, ACCOUNT_KEY, free_port

    closed = f"http://127.0.0.1:{free_port()}/{ACCOUNT}"  # nothing listens there
    unreachable = f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};BlobEndpoint={closed};"
    started = time.monotonic()
    proc = cli(workspace, "export", "newsletter", env_overrides={"EXPORT_STORAGE": unreachable})
    assert time.monotonic() - started < 20
    assert proc.returncode == 1 and proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert line.startswith("error: Azure Storage (ServiceRequestError)") and "Check EXPORT_STORAGE" in line
    assert ACCOUNT_KEY not in line


@pytest.mark.parametrize(("stop", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_ctrl_c_or_sigterm_prints_one_line_releases_the_lock_and_records_the_run_failed(
    workspace, simulator, stop, code
):
    import signal
    import time

    from azure.storage.blob import BlobServiceClient

    from shared.adapters.locks import lock_blob_name

    workspace.put_segment("people.csv", "Email\n" + "".join(f"p{i}@example.com\n" for i in range(300)))
    workspace.put_destinations(destination())
    simulator.config(job_delay=30)  # the run waits on its import job: Ctrl-C comes mid-run
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENDGRID_", "EXPORT_", "KEY_VAULT"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared", "--no-local-settings", "export", "newsletter"],
        cwd=REPO,
        env={**env, **workspace.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not any(r["path"].startswith("/v3/marketing/contacts/imports/") for r in simulator.state.requests):
            assert proc.poll() is None and time.monotonic() < deadline, "the export never waited on its job"
            time.sleep(0.05)
        proc.send_signal(getattr(signal, stop))
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == code and stdout == ""
    assert stderr.splitlines()[-1] == "interrupted; safe to run again" and "Traceback" not in stderr
    (name,) = [n for n in workspace.export_names("runs/newsletter/") if n.endswith(".json")]
    record = json.loads(workspace.read_export(name))
    assert record["status"] == "failed" and "interrupted" in record["errors"][-1] and record["finished_at"]
    lock = BlobServiceClient.from_connection_string(workspace.connection_string).get_blob_client(
        workspace.exports.container_name, lock_blob_name("newsletter")
    )
    assert lock.get_blob_properties().lease.state == "available"


def test_verify_exits_0_on_a_list_that_matches_and_3_on_drift_printing_counts_only(workspace, simulator):
    workspace.put_segment("people.csv", "Email\na@example.com\nb@example.com\n")
    workspace.put_destinations(destination())
    assert cli(workspace, "export", "newsletter").returncode == 0
    proc = cli(workspace, "verify", "newsletter")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["members"] == 2
    with simulator.state.lock:
        simulator.state.set_lists(simulator.state.contacts["a@example.com"], frozenset())  # removed by hand
    proc = cli(workspace, "verify", "newsletter", "--repair")
    assert proc.returncode == 3, proc.stderr
    report = json.loads(proc.stdout)
    assert report["counts"]["missing_confirmed"] == 1 and report["repaired"] == 1
    assert "a@example.com" not in proc.stdout
    assert "verified newsletter: missing_confirmed=1, " in proc.stderr  # words, not a Python dict
    assert_private(proc, "a@example.com", "b@example.com")
