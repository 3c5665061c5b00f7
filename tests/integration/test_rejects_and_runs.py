"""Rejects you can reach (CLI and HTTP), the runs table, and the CLI's settings sources."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import azure.functions as func
import pytest

from shared.entrypoints import http_api
from shared.run.counts import RunCounts
from shared.run.records import REJECT_COLUMNS, RunRecord, RunStatus
from tests.conftest import API_KEY, REPO, destination, make_runtime
from tests.integration.test_function_app import HOST, call, work

pytestmark = pytest.mark.integration

PEOPLE = "Email\na@example.com\nnot-an-address\nb@example.com\na@example.com\n"


def cli(env: dict[str, str], *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SENDGRID_", "EXPORT_", "KEY_VAULT", "SECRETS_"))}
    return subprocess.run(
        [sys.executable, "-m", "shared", *args],
        cwd=cwd,
        env={**base, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def exported(workspace, *extra: str) -> dict:
    proc = cli(workspace.env, "--no-local-settings", "export", "newsletter", *extra)
    assert proc.returncode in (0, 3), proc.stderr
    return json.loads(proc.stdout)


def get_rejects(route: dict[str, str]) -> tuple[int, str, bytes, dict[str, str]]:
    request = func.HttpRequest("GET", f"{HOST}/api/x?code=functionkey", route_params=route, params={}, body=b"")
    response = call("get_rejects", request)
    return response.status_code, response.mimetype, response.get_body(), dict(response.headers)


# -- HTTP ------------------------------------------------------------------------------------------


def test_get_rejects_returns_the_csv_as_written(workspace, simulator, app_runtime):
    workspace.put_segment("people.csv", PEOPLE)
    workspace.put_destinations(destination())
    call("start_export", func.HttpRequest("POST", f"{HOST}/api/x", route_params={"name": "newsletter"}, body=b""))
    assert work(workspace) == 1
    (record,) = app_runtime.edges.records.recent("newsletter")
    status, mimetype, body, headers = get_rejects({"name": "newsletter", "run_id": record.run_id})
    assert status == 200 and mimetype == "text/csv"
    assert body == workspace.read_export(record.rejects_blob)
    rows = list(csv.reader(io.StringIO(body.decode("utf-8"))))
    assert tuple(rows[0]) == REJECT_COLUMNS
    assert [r[2] for r in rows[1:]] == ["not-an-address"]  # the invalid row; a duplicate is counted, not rejected
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert f"{record.run_id}.rejects.csv" in headers["Content-Disposition"]


def json_error(route: dict[str, str]) -> tuple[int, str]:
    status, mimetype, body, _ = get_rejects(route)
    assert mimetype == "application/json"
    return status, json.loads(body)["error"]["code"]


def test_get_rejects_404s_and_400s(workspace, simulator, app_runtime):
    workspace.put_segment("people.csv", "Email\na@example.com\n")
    workspace.put_destinations(destination())
    call("start_export", func.HttpRequest("POST", f"{HOST}/api/x", route_params={"name": "newsletter"}, body=b""))
    work(workspace)
    (clean,) = app_runtime.edges.records.recent("newsletter")
    assert clean.rejects_blob is None
    assert json_error({"name": "newsletter", "run_id": clean.run_id}) == (404, "rejects_not_found")
    assert json_error({"name": "newsletter", "run_id": "20260101T000000Z-00000000"}) == (404, "run_not_found")
    assert json_error({"name": "newsletter", "run_id": clean.run_id + "\n"}) == (400, "invalid_run_id")
    assert json_error({"name": "News", "run_id": clean.run_id}) == (400, "invalid_name")
    assert json_error({"name": "newsletter\n", "run_id": clean.run_id}) == (400, "invalid_name")


def test_a_rejects_file_over_the_bound_is_a_413_naming_the_cli(workspace, simulator, app_runtime, monkeypatch):
    workspace.put_segment("people.csv", PEOPLE)
    workspace.put_destinations(destination())
    call("start_export", func.HttpRequest("POST", f"{HOST}/api/x", route_params={"name": "newsletter"}, body=b""))
    work(workspace)
    (record,) = app_runtime.edges.records.recent("newsletter")
    size = len(workspace.read_export(record.rejects_blob))
    monkeypatch.setattr(http_api, "MAX_REJECTS_HTTP_BYTES", size - 1)
    status, mimetype, body, _ = get_rejects({"name": "newsletter", "run_id": record.run_id})
    error = json.loads(body)["error"]
    assert (status, mimetype, error["code"]) == (413, "application/json", "rejects_too_large")
    assert f"python -m shared rejects newsletter {record.run_id}" in error["message"]
    assert "@" not in error["message"]
    monkeypatch.setattr(http_api, "MAX_REJECTS_HTTP_BYTES", size)
    assert get_rejects({"name": "newsletter", "run_id": record.run_id})[0] == 200


# -- CLI -------------------------------------------------------------------------------------------


def test_cli_rejects_prints_the_csv_and_exits_1_without_one(workspace, simulator):
    workspace.put_segment("people.csv", PEOPLE)
    workspace.put_destinations(destination())
    record = exported(workspace)
    proc = cli(workspace.env, "--no-local-settings", "rejects", "newsletter", record["run_id"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.encode() == workspace.read_export(record["rejects_blob"]).replace(b"\r\n", b"\n")
    assert proc.stdout.splitlines()[0] == ",".join(REJECT_COLUMNS)

    workspace.put_segment("people.csv", "Email\nc@example.com\n")
    clean = exported(workspace)
    proc = cli(workspace.env, "--no-local-settings", "rejects", "newsletter", clean["run_id"])
    assert proc.returncode == 1 and "rejected no rows" in proc.stderr and proc.stdout == ""
    proc = cli(workspace.env, "--no-local-settings", "rejects", "newsletter", "20260101T000000Z-00000000")
    assert proc.returncode == 1 and "no run 20260101T000000Z-00000000" in proc.stderr


def test_cli_rejects_of_a_run_stopped_before_writing_its_file_does_not_deny_its_rejected_rows(workspace, simulator):
    # A run killed (kill -9, a recycle) after the row rules refused rows but before its rejects
    # file was written: its record counts them, and `rejects` must not say it rejected none.
    workspace.put_destinations(destination())
    dead = RunRecord("20261207T065706Z-05772154", "newsletter", "cli")
    dead.status, dead.counts = RunStatus.FAILED, RunCounts(read=100, invalid=50, would_send=50)
    make_runtime(workspace).edges.records.save(dead)
    proc = cli(workspace.env, "--no-local-settings", "rejects", "newsletter", dead.run_id)
    assert proc.returncode == 1 and proc.stdout == ""
    assert "rejected no rows" not in proc.stderr and "50 rejected rows" in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("rejects", "newsletter", "latest"), "run ids look like"),
        (("rejects", "News", "20260101T000000Z-00000000"), "destination names match"),
        (("runs", "newsletter", "--limit", "0"), "from 1 to 100, not '0'"),
        (("runs", "newsletter", "--limit", "-1"), "from 1 to 100"),
        (("runs", "newsletter", "--limit", "101"), "from 1 to 100, not '101'"),
        (("runs", "newsletter", "--limit", "+5"), "from 1 to 100"),
        (("runs", "newsletter", "--limit", "ten"), "from 1 to 100"),
    ],
)
def test_bad_arguments_exit_2_naming_them(workspace, args, message):
    proc = cli(workspace.env, "--no-local-settings", *args)
    assert proc.returncode == 2 and message in proc.stderr and proc.stdout == ""


def test_runs_prints_a_table_and_json_on_request(workspace, simulator):
    workspace.put_segment("people.csv", PEOPLE)
    workspace.put_destinations(destination())
    first = exported(workspace)
    workspace.put_segment("people.csv", "Email\nc@example.com\n")
    second = exported(workspace)
    proc = cli(workspace.env, "--no-local-settings", "runs", "newsletter")
    assert proc.returncode == 0, proc.stderr
    header, *lines = proc.stdout.splitlines()
    assert header.split() == ["run", "id", "status", "trigger", "read", "sent", "rejected", "duration", "detail"]
    rows = [line.split() for line in lines]
    assert [r[0] for r in rows] == [second["run_id"], first["run_id"]]
    assert rows[1][1:6] == ["completed_with_errors", "cli", "4", "2", "1"]  # 1 invalid (the duplicate is not)
    assert rows[0][1:6] == ["succeeded", "cli", "1", "1", "0"]
    assert all(r[6].endswith("s") for r in rows)
    limited = cli(workspace.env, "--no-local-settings", "runs", "newsletter", "--limit", "1", "--json")
    assert [r["run_id"] for r in json.loads(limited.stdout)["runs"]] == [second["run_id"]]


def test_help_reads_cleanly():
    for args in ((), ("runs",), ("rejects",), ("export",)):
        proc = cli({}, *args, "--help")
        assert proc.returncode == 0
        assert "``" not in proc.stdout and ":class:" not in proc.stdout
    top = cli({}, "--help").stdout
    assert "exit codes:" in top and "rejects" in top and "local.settings.json" in top


# -- where settings come from ------------------------------------------------------------------------


def test_commands_that_read_no_secret_need_no_key_vault_setting(workspace, simulator):
    workspace.put_segment("people.csv", PEOPLE)
    workspace.put_destinations(destination())
    run_id = exported(workspace)["run_id"]
    env = {k: v for k, v in workspace.env.items() if not k.startswith(("SECRETS_", "SENDGRID_SECRET"))}
    assert "KEY_VAULT_URL" not in env  # SECRETS_SOURCE defaults to keyvault
    for args in (("destinations",), ("runs", "newsletter"), ("rejects", "newsletter", run_id)):
        proc = cli(env, "--no-local-settings", *args)
        assert proc.returncode == 0, (args, proc.stderr)
    for args in (("export", "newsletter"), ("check", "newsletter")):
        proc = cli(env, "--no-local-settings", *args)
        assert proc.returncode == 2 and "KEY_VAULT_URL is required" in proc.stderr, (args, proc.stderr)


def test_local_settings_values_fill_in_and_the_environment_wins(workspace, simulator, tmp_path):
    workspace.put_segment("people.csv", "Email\na@example.com\n")
    workspace.put_destinations(destination())
    values = {**workspace.env, "EXPORTS_CONTAINER": "not-this-one", "FUNCTIONS_WORKER_RUNTIME": "python"}
    (tmp_path / "local.settings.json").write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    # The file alone (read from the current directory, as func start reads it), but the
    # environment's container wins over the file's.
    proc = cli({"EXPORTS_CONTAINER": workspace.env["EXPORTS_CONTAINER"]}, "export", "newsletter", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert simulator.members("Newsletter") == ["a@example.com"]
    assert API_KEY not in proc.stdout + proc.stderr
    # Without the environment's word, the file's container is used (and does not exist).
    proc = cli({}, "--local-settings", str(tmp_path / "local.settings.json"), "destinations")
    assert proc.returncode != 0 and "not-this-one" in proc.stderr
    # --no-local-settings reads none of it.
    proc = cli({}, "--no-local-settings", "destinations", cwd=tmp_path)
    assert proc.returncode == 2 and "EXPORT_STORAGE is not set" in proc.stderr
    (tmp_path / "local.settings.json").write_text("{not json")
    proc = cli({}, "destinations", cwd=tmp_path)
    assert proc.returncode == 2 and "local.settings.json is not a local.settings.json" in proc.stderr
