"""``up``: start the stack's three processes (or reuse a whole stack), provision it, write the
settings, and say how to use it."""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from tools.local_stack.local_settings import settings, write_local_settings, write_shell_env
from tools.local_stack.paths import REPO, shown
from tools.local_stack.ports import listening, pick_ports
from tools.local_stack.processes import alive, is_ours, spawn, stop
from tools.local_stack.provision import provision
from tools.local_stack.stack import down, whole
from tools.local_stack.state import AZURITE_PID_FILE, STACK_FILE, private_dir, read_stack, write_private
from tools.standins.storage import azurite_command

START_TIMEOUT = 30.0


def up(state: Path, data: Path, settings_file: Path, free_ports: bool = False) -> int:
    private_dir(state)
    private_dir(data)
    stack = read_stack(state)
    if stack is not None and whole(stack):
        print(f"The local stack is already running (state in {shown(state)}); reusing it.")
    else:
        previous = stack.get("ports") if stack is not None else None
        if stack is not None:
            print("A previous local stack is partly gone; stopping what is left and starting afresh.")
            down(state, quiet=True)
        stack = _start(state, data, pick_ports(free_ports, previous))
    for note in provision(stack):
        print(note)
    values = settings(stack, state)
    write_local_settings(settings_file, values)
    write_shell_env(state / "env", values)
    print(_ready_text(stack, state, data, settings_file))
    ours = values["REQUESTS_CA_BUNDLE"]
    if os.environ.get("REQUESTS_CA_BUNDLE", ours) != ours:
        # sendgrid-export gives the vault client its CA itself; the Functions host reads the environment.
        print(
            "note: your shell sets REQUESTS_CA_BUNDLE. sendgrid-export is not affected (it uses KEY_VAULT_CA_BUNDLE), "
            f"but func start is: start it as  REQUESTS_CA_BUNDLE={shown(Path(ours))} func start",
            file=sys.stderr,
        )
    return 0


def _ready_text(stack: dict[str, Any], state: Path, data: Path, settings_file: Path) -> str:
    ports = stack["ports"]
    command = shown(REPO / ".venv" / "bin" / "sendgrid-export")
    activate = shown(REPO / ".venv" / "bin" / "activate")
    settings_hint = "" if settings_file.parent == REPO else f" --local-settings {shown(settings_file)}"
    control = shown(state / "simulator-control-key")
    return (
        f"Local stack ready (state in {shown(state)}/, Azurite's data in {shown(data)}/):\n"
        f"  Storage (Azurite)   blob http://127.0.0.1:{ports['blob']}  queue {ports['queue']}  table {ports['table']}\n"
        f"  SendGrid simulator  http://127.0.0.1:{ports['sendgrid']}  (its /__sim/ endpoints need the "
        f"X-Simulator-Key in {control})\n"
        f"  Key Vault stand-in  https://127.0.0.1:{ports['vault']}/  (CA {shown(state / 'keyvault-ca.pem')})\n"
        f"  Settings            {shown(settings_file)} (sendgrid-export and func start read it)\n"
        "Try, as typed:\n"
        f"  {command}{settings_hint} export newsletter\n"
        f"  {command}{settings_hint} runs newsletter\n"
        f"Or once per shell: source {activate}   (then: sendgrid-export export newsletter)\n"
        "Your own data: make upload-segment FILE=people.csv    make upload-destinations FILE=destinations.json\n"
        "Stop: make down"
    )


def _start(state: Path, data: Path, ports: dict[str, int]) -> dict[str, Any]:
    """The three processes, recorded in the state folder once started; none left running on error."""
    try:
        azurite_command(0, 0, 0, None)  # says what to run when the emulator is not installed
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    _refuse_a_second_azurite(data)
    key_file = _write_keys(state)
    (state / "keyvault-ca.pem").unlink(missing_ok=True)  # the vault writes a new one once it serves
    processes: dict[str, dict[str, Any]] = {}
    try:
        azurite = azurite_command(ports["blob"], ports["queue"], ports["table"], str(data))
        processes["azurite"] = spawn("azurite", azurite, state, str(data))
        write_private(data / AZURITE_PID_FILE, json.dumps({**processes["azurite"], "state": str(state)}))
        processes["sendgrid"] = spawn(
            "sendgrid", _simulator_command(state, ports["sendgrid"], key_file), state, "tools.standins.sendgrid"
        )
        processes["vault"] = spawn("vault", _vault_command(state, ports), state, "serve-vault")
        stack = {"processes": processes, "ports": ports, "data": str(data)}
        write_private(state / STACK_FILE, json.dumps(stack, indent=2))
        _wait_until_ready(stack, state)
    except BaseException:
        for entry in processes.values():
            stop(entry)
        (state / STACK_FILE).unlink(missing_ok=True)
        (data / AZURITE_PID_FILE).unlink(missing_ok=True)
        raise
    return stack


def _write_keys(state: Path) -> Path:
    """The stand-ins' secrets, in files (never on a command line). The API key is kept across
    restarts, so a key you copied stays good; the others are new at every start."""
    key_file = state / "sendgrid-api-key"
    api_key = key_file.read_text().strip() if key_file.exists() else "local-" + secrets.token_urlsafe(24)
    write_private(key_file, api_key)
    write_private(state / "identity-header", secrets.token_urlsafe(24))
    write_private(state / "simulator-control-key", secrets.token_urlsafe(24))
    return key_file


def _simulator_command(state: Path, port: int, key_file: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tools.standins.sendgrid",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--api-key-file",
        str(key_file),
        "--control-key-file",
        str(state / "simulator-control-key"),
        "--job-delay",
        "0.3",
    ]


def _vault_command(state: Path, ports: dict[str, int]) -> list[str]:
    """The Key Vault stand-in and its token endpoint: this command's hidden ``serve-vault``."""
    return [
        sys.executable,
        "-m",
        "tools.local_stack",
        "--state",
        str(state),
        "serve-vault",
        "--port",
        str(ports["vault"]),
        "--token-port",
        str(ports["token"]),
    ]


def _refuse_a_second_azurite(data: Path) -> None:
    """Two Azurites on one data folder overwrite each other's files."""
    try:
        entry = json.loads((data / AZURITE_PID_FILE).read_text())
    except (OSError, ValueError):
        return
    if isinstance(entry, dict) and "pid" in entry and "marker" in entry and is_ours(entry):
        raise SystemExit(
            f"an Azurite (pid {entry['pid']}) already serves {data}, for the stack whose state is in "
            f"{entry.get('state', '?')}: stop that one first (python -m tools.local_stack --state "
            f"{entry.get('state', '<state>')} down), or give this stack another --data folder."
        )


def _wait_until_ready(stack: dict[str, Any], state: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    for name, port in stack["ports"].items():
        owner = {"blob": "azurite", "queue": "azurite", "table": "azurite", "sendgrid": "sendgrid"}.get(name, "vault")
        entry = stack["processes"][owner]
        while not listening(int(port)):
            if not alive(int(entry["pid"])) or time.monotonic() > deadline:
                tail = Path(entry["log"]).read_text(errors="replace")[-2000:]
                raise SystemExit(
                    f"{owner} did not start listening on 127.0.0.1:{port}; its log ({entry['log']}):\n{tail}"
                )
            time.sleep(0.1)
    while not (state / "keyvault-ca.pem").exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"the Key Vault stand-in wrote no CA; see {stack['processes']['vault']['log']}")
        time.sleep(0.05)
