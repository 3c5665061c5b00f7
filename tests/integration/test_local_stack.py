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
from tools.local_stack import ports as stack_ports
from tools.local_stack.__main__ import main as local_stack

pytestmark = pytest.mark.integration

# What a developer's shell or CI may set that would point the CLI elsewhere: the file must suffice.
FOREIGN = ("SENDGRID_", "EXPORT_", "KEY_VAULT", "SECRETS_", "AZURE", "IDENTITY_", "REQUESTS_CA_BUNDLE")


def make(paths: dict[str, Path], target: str) -> subprocess.CompletedProcess[str]:
    # Free ports: the tests run beside a `make up` stack on the fixed ones.
    opts = f"--free-ports --state {paths['state']} --data {paths['data']} --settings-file {paths['settings']}"
    if shutil.which("make") and (REPO / ".venv" / ".installed").exists():
        args = ["make", "-s", "-C", str(REPO), target, f"STACK_OPTS={opts}"]
    else:  # no make here, or no install: the module behind the target, as make would run it
        args = [sys.executable, "-m", "tools.local_stack", *opts.split(), target]
    return subprocess.run(args, capture_output=True, text=True, timeout=90, check=False)


def cli(paths: dict[str, Path], *args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)} | (env_extra or {})
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
    local_stack(["--state", str(paths["state"]), "down"])  # whatever the test did


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

    # --free-ports leaves the fixed ports to a `make up` beside the tests.
    assert not set(stack["ports"].values()) & set(stack_ports.DEFAULT_PORTS.values())
    # Everything on loopback only: every port the stack recorded answers on 127.0.0.1.
    assert all(stack_ports.listening(int(port)) for port in stack["ports"].values())

    # The command up prints works as typed (from the repo, where make runs), in a shell without the venv.
    import shlex

    typed = up.stdout.split("Try, as typed:\n", 1)[1].splitlines()[0]
    assert typed.strip().startswith(".venv/bin/sendgrid-export ") and typed.strip().endswith(" export newsletter")
    shell_env = {k: v for k, v in os.environ.items() if not k.startswith((*FOREIGN, "VIRTUAL_ENV"))}
    shell_env["PATH"] = "/usr/bin:/bin"
    as_typed = subprocess.run(
        [*shlex.split(typed), "--dry-run"], cwd=REPO, env=shell_env, capture_output=True, text=True, timeout=60
    )
    assert as_typed.returncode == 3, as_typed.stderr  # completed_with_errors (the samples' bad rows), dry

    export = cli(paths, "export", "newsletter")
    assert export.returncode == 3, export.stderr  # the samples hold bad rows: completed_with_errors
    record = json.loads(export.stdout)
    assert record["counts"]["accepted"] > 0 and record["counts"]["invalid"] > 0
    control = {"X-Simulator-Key": (paths["state"] / "simulator-control-key").read_text()}
    sim = requests.get(f"{values['SENDGRID_API_BASE_URL']}/__sim/state", headers=control, timeout=5).json()
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
    from tools.standins.storage import azurite_command

    for location in (None, "/tmp/x"):
        args = azurite_command(1, 2, 3, location)
        assert "--disableTelemetry" in args
        hosts = [args[i + 1] for i, a in enumerate(args) if a.endswith("Host")]
        assert hosts == ["127.0.0.1"] * 3


def test_the_stack_keeps_its_secrets_from_other_local_users_and_the_cli_trusts_its_ca(paths, tmp_path):
    import stat

    import certifi

    assert make(paths, "up").returncode == 0
    stack = json.loads((paths["state"] / "stack.json").read_text())
    values = json.loads(paths["settings"].read_text())["Values"]
    for folder in (paths["state"], paths["data"]):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    secrets_on_disk = {
        name: (paths["state"] / name).read_text() for name in ("sendgrid-api-key", "simulator-control-key")
    }
    for name in secrets_on_disk:
        assert stat.S_IMODE((paths["state"] / name).stat().st_mode) == 0o600
    # No key on any command line of the stack (`ps` shows those to every user).
    for entry in stack["processes"].values():
        cmdline = Path(f"/proc/{entry['pid']}/cmdline").read_text()
        assert not any(secret in cmdline for secret in secrets_on_disk.values())
    # The simulator's control endpoints want its own key.
    sim = values["SENDGRID_API_BASE_URL"]
    assert requests.get(f"{sim}/__sim/state", timeout=5).status_code == 401
    control = {"X-Simulator-Key": secrets_on_disk["simulator-control-key"]}
    assert requests.get(f"{sim}/__sim/state", headers=control, timeout=5).status_code == 200
    # The vault takes no token that anyone could know (it used to take a fixed, published one).
    refused = requests.get(
        f"{values['KEY_VAULT_URL']}secrets/sendgrid-api-key?api-version=7.5",
        headers={"Authorization": "Bearer standin-access-token"},
        verify=values["KEY_VAULT_CA_BUNDLE"],
        timeout=5,
    )
    assert refused.status_code == 401

    # Your own CSV, in a shell whose REQUESTS_CA_BUNDLE lacks the stand-in's CA: the stack's CA wins.
    own = tmp_path / "people.csv"
    own.write_text("Email,FirstName\nana@example.com,Ana\nbo@example.com,Bo\n")
    up_opts = ["--state", str(paths["state"]), "--data", str(paths["data"])]
    uploaded = subprocess.run(
        [sys.executable, "-m", "tools.local_stack", *up_opts, "upload-segment", str(own)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert uploaded.returncode == 0, uploaded.stderr
    export = cli(paths, "export", "newsletter", env_extra={"REQUESTS_CA_BUNDLE": certifi.where()})
    assert export.returncode in (0, 3), export.stderr
    assert json.loads(export.stdout)["segments"][0]["rows"] == 2

    # The stored segment now differs from samples/: the next up says so, and keeps it.
    again = make(paths, "up")
    assert again.returncode == 0
    assert "segments/demo/newsletter.csv in the stack differs from samples/segments/newsletter.csv" in again.stdout

    # A second stack on the same data folder is refused: one Azurite per data folder.
    second = subprocess.run(
        [sys.executable, "-m", "tools.local_stack", "--free-ports", "--state", str(tmp_path / "other"), "--data",
         str(paths["data"]), "--settings-file", str(tmp_path / "other.json"), "up"],
        cwd=REPO, capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert second.returncode != 0 and "already serves" in second.stderr, second.stdout + second.stderr


def test_a_taken_port_is_named_with_its_holder_and_time_wait_does_not_move_ports(monkeypatch):
    import socket

    from tools import local_ports

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setattr(stack_ports, "DEFAULT_PORTS", {"blob": port})
        with pytest.raises(SystemExit, match=rf"port {port} \(for blob\) .* taken by pid {os.getpid()} "):
            stack_ports.pick_ports(free=False)

    # A port the previous stack closed first sits in TIME_WAIT; the servers bind it again (SO_REUSEADDR).
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    accepted.close()  # the server's side closes first: its port goes to TIME_WAIT
    listener.close()
    client.close()
    assert local_ports.port_free(port)
    monkeypatch.setattr(stack_ports, "DEFAULT_PORTS", {"blob": port})
    assert stack_ports.pick_ports(free=False) == {"blob": port}


def test_make_clean_stops_the_stack_before_it_removes_its_state():
    if not shutil.which("make"):
        pytest.skip("no make here")
    plan = subprocess.run(["make", "-n", "clean"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert plan.index("tools.local_stack down") < plan.index("rm -rf")


def test_the_sample_settings_file_names_what_make_up_writes(paths):
    assert make(paths, "up").returncode == 0
    written = json.loads(paths["settings"].read_text())["Values"]
    sample = json.loads((REPO / "local.settings.sample.json").read_text())["Values"]
    assert set(sample) == set(written)
    fixed = {k for k, v in sample.items() if not v.startswith("<")}
    # The stack was started on free ports here; the sample names the fixed ones.
    ports = json.loads((paths["state"] / "stack.json").read_text())["ports"]
    for key in fixed:
        expected = sample[key]
        for name, default in stack_ports.DEFAULT_PORTS.items():
            expected = expected.replace(f":{default}/", f":{ports[name]}/").replace(f":{default}", f":{ports[name]}")
        assert written[key] == expected, key


def test_test_http_covers_every_route_and_the_editor_knows_the_schema():
    import re

    routes = re.findall(r'route="([^"]+)", methods=\["(\w+)"\]', (REPO / "function_app.py").read_text())
    requests_in_file = (REPO / "test.http").read_text()
    for route, method in routes:
        pattern = re.sub(r"\\\{name\\\}", "{{destination}}", re.escape(route))
        pattern = re.sub(r"\\\{run_id\\\}", r"\{\{started[^}]*\}\}", pattern)
        line = rf"^{method} \{{\{{baseUrl\}}\}}/api/{pattern}(?=[?\s]|$)"
        assert re.search(line, requests_in_file, re.M), (method, route)
    assert "/runtime/webhooks/EventGrid?functionName=segment_landed" in requests_in_file
    event = json.loads((REPO / "samples" / "events" / "blob-created.json").read_text())[0]
    assert event["eventType"] == "Microsoft.Storage.BlobCreated" and "containers/segments/blobs/" in event["subject"]
    schema = json.loads((REPO / "schemas" / "destinations.schema.json").read_text())
    settings = json.loads((REPO / ".vscode" / "settings.json").read_text())
    assert any(m["url"] == "./schemas/destinations.schema.json" for m in settings["json.schemas"]) and schema["$id"]
    launch = json.loads((REPO / ".vscode" / "launch.json").read_text())
    assert any(c["request"] == "attach" and c["connect"]["port"] == 9091 for c in launch["configurations"])
    devcontainer = json.loads((REPO / ".devcontainer" / "devcontainer.json").read_text())
    assert "python:1-3.11" in devcontainer["image"] and len(devcontainer["features"]) == 4
