"""make up / make down: a stack that keeps running, used by the CLI through local.settings.json
alone, with the API key read by the real SecretClient from the Key Vault stand-in."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO
from tools import local_stack

pytestmark = pytest.mark.integration

# What a developer's shell or CI may set that would point the CLI elsewhere: the file must suffice.
FOREIGN = ("SENDGRID_", "EXPORT_", "KEY_VAULT", "SECRETS_", "AZURE", "IDENTITY_", "REQUESTS_CA_BUNDLE")


def make(paths: dict[str, Path], target: str) -> subprocess.CompletedProcess[str]:
    opts = f"--state {paths['state']} --data {paths['data']} --settings-file {paths['settings']}"
    if shutil.which("make") and (REPO / ".venv" / ".installed").exists():
        args = ["make", "-s", "-C", str(REPO), target, f"STACK_OPTS={opts}"]
    else:  # no make here, or no install: the module behind the target, as make would run it
        args = [sys.executable, "-m", "tools.local_stack", *opts.split(), target]
    return subprocess.run(args, capture_output=True, text=True, timeout=90, check=False)


def cli(paths: dict[str, Path], *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
    return subprocess.run(
        [sys.executable, "-m", "shared", "--local-settings", str(paths["settings"]), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


@pytest.fixture
def paths(tmp_path):
    paths = {"state": tmp_path / "state", "data": tmp_path / "data", "settings": tmp_path / "local.settings.json"}
    yield paths
    local_stack.main(["--state", str(paths["state"]), "down"])  # whatever the test did


def test_up_export_runs_rejects_check_down(paths):
    started = time.monotonic()
    up = make(paths, "up")
    assert up.returncode == 0, up.stdout + up.stderr
    stack = json.loads((paths["state"] / "stack.json").read_text())
    pids = [int(p["pid"]) for p in stack["processes"].values()]
    assert all(alive(pid) for pid in pids)
    values = json.loads(paths["settings"].read_text())["Values"]
    assert values["SECRETS_SOURCE"] == "keyvault" and values["KEY_VAULT_URL"].startswith("https://127.0.0.1:")
    assert "SENDGRID_SECRET_SENDGRID_API_KEY" not in values  # the key is only in the vault
    for key in ("AzureWebJobsStorage", "EXPORT_STORAGE", "SENDGRID_API_BASE_URL", "IDENTITY_ENDPOINT"):
        assert "127.0.0.1" in values[key]
    # Azurite keeps its files in the data folder, none in the repo.
    assert any(p.name.startswith("__azurite_db_") for p in paths["data"].iterdir())

    # Everything on loopback only: every port the stack recorded answers on 127.0.0.1.
    assert all(local_stack._listening(int(port)) for port in stack["ports"].values())

    export = cli(paths, "export", "newsletter")
    assert export.returncode == 3, export.stderr  # the samples hold bad rows: completed_with_errors
    record = json.loads(export.stdout)
    assert record["counts"]["accepted"] > 0 and record["counts"]["invalid"] > 0
    sim = requests.get(f"{values['SENDGRID_API_BASE_URL']}/__sim/state", timeout=5).json()
    (newsletter,) = sim["lists"]
    assert newsletter["contact_count"] == record["counts"]["accepted"]

    runs = cli(paths, "runs", "newsletter")
    assert runs.returncode == 0 and record["run_id"] in runs.stdout and "completed_with_errors" in runs.stdout
    rejects = cli(paths, "rejects", "newsletter", record["run_id"])
    assert rejects.returncode == 0
    assert len(list(csv.DictReader(io.StringIO(rejects.stdout)))) == record["counts"]["invalid"]
    check = cli(paths, "check", "newsletter")
    assert check.returncode == 0, check.stderr
    assert {c["name"]: c["ok"] for c in json.loads(check.stdout)["checks"]}["secret"] is True

    # A second up reuses the running stack, and leaves edited inputs alone.
    again = make(paths, "up")
    assert again.returncode == 0 and "reusing" in again.stdout
    assert [
        int(p["pid"]) for p in json.loads((paths["state"] / "stack.json").read_text())["processes"].values()
    ] == pids

    down = make(paths, "down")
    assert down.returncode == 0
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in pids), "a process of the stack was left running"
    assert not (paths["state"] / "stack.json").exists()
    nothing = make(paths, "down")
    assert nothing.returncode == 0 and "No local stack is running" in nothing.stdout
    assert time.monotonic() - started < 60


def test_up_restarts_a_stack_that_is_partly_gone_and_keeps_the_data(paths):
    assert make(paths, "up").returncode == 0
    values = json.loads(paths["settings"].read_text())["Values"]
    export = cli(paths, "export", "newsletter", "--dry-run")
    assert export.returncode in (0, 3), export.stderr
    first = json.loads((paths["state"] / "stack.json").read_text())["processes"]
    os.kill(int(first["sendgrid"]["pid"]), 15)
    again = make(paths, "up")
    assert again.returncode == 0 and "starting afresh" in again.stdout, again.stdout + again.stderr
    second = json.loads((paths["state"] / "stack.json").read_text())["processes"]
    assert not alive(int(first["azurite"]["pid"])) and not alive(int(first["vault"]["pid"]))
    assert all(alive(int(p["pid"])) for p in second.values())
    # Azurite's data survived the restart: the first run is still listed.
    runs = cli(paths, "runs", "newsletter", "--json")
    assert runs.returncode == 0 and len(json.loads(runs.stdout)["runs"]) == 1
    assert json.loads(paths["settings"].read_text())["Values"]["EXPORT_QUEUE"] == values["EXPORT_QUEUE"]


def test_emulator_and_stack_files_are_ignored_by_git_and_func():
    for path in (
        ".azurite/x",
        ".localstack/stack.json",
        "__azurite_db_blob__.json",
        "__blobstorage__/x",
        "__queuestorage__/x",
        "local.settings.json",
    ):
        assert subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO, check=False).returncode == 0, path
    funcignore = set((REPO / ".funcignore").read_text().split())
    assert {".azurite", ".localstack", "__azurite_db_*.json", "__blobstorage__", "__queuestorage__"} <= funcignore


def test_azurite_is_always_started_without_telemetry_on_loopback():
    from tools.storage_emulator import azurite_command

    for location in (None, "/tmp/x"):
        args = azurite_command(1, 2, 3, location)
        assert "--disableTelemetry" in args
        hosts = [args[i + 1] for i, a in enumerate(args) if a.endswith("Host")]
        assert hosts == ["127.0.0.1"] * 3
