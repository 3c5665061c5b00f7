"""``make up`` / ``make down``: a local stack that keeps running between commands.

``up`` starts, each in a process of its own on 127.0.0.1 only:

- Azurite (always with ``--disableTelemetry``), its data in ``.azurite/`` so it survives a restart;
- the SendGrid simulator (``tools/standins/sendgrid/``);
- the Key Vault stand-in (HTTPS, a ``trustme`` CA written to the state folder) holding the
  simulator's API key as secret ``sendgrid-api-key``, and beside it a loopback token endpoint in
  the form App Service's managed identity uses, so the app's own ``DefaultAzureCredential`` and
  ``SecretClient`` read the key exactly as in Azure;

then creates the containers and the queue, uploads the sample segments and ``destinations.json``
(each only if absent: a second ``up`` never overwrites your edits, and says where a stored copy
differs from ``samples/``), and writes the settings into
``local.settings.json`` (read by ``func start`` and by ``python -m shared``) and
``.localstack/env`` (for a shell: ``set -a; . .localstack/env; set +a``).

Pids, ports and logs live in the state folder (``.localstack/``). A second ``up`` reuses a stack
that is whole and restarts one that is not; ``down`` stops only the processes it recorded (by
pid, after checking each is still the process it started) and is a no-op when nothing runs.

The ports are fixed (Azurite's own 10000-10002, the simulator 8787, the vault 8443 and its token
endpoint 8444), so ``func start`` and Storage Explorer keep working across restarts; a port held by
another process is an error that names it. ``--free-ports`` takes any free ones instead (tests, or
beside another stack). One Azurite per data folder: its pid is kept in the data folder.

Secrets reach the stand-ins through files (0600, in the 0700 state folder), never their command
lines: the simulator's API key and its control key (the ``X-Simulator-Key`` of its ``/__sim/``
endpoints), the vault's managed-identity header. The vault's access token is random per start.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

REPO = Path(__file__).resolve().parent.parent
DEFAULT_STATE = REPO / ".localstack"
DEFAULT_DATA = REPO / ".azurite"
DEFAULT_SETTINGS = REPO / "local.settings.json"
SAMPLES = REPO / "samples"
SECRET_NAME = "sendgrid-api-key"
SEGMENTS_CONTAINER = "segments"
EXPORTS_CONTAINER = "sendgrid-exports"
EXPORT_QUEUE = "sendgrid-export-jobs"
# Fixed, so that what points at them (func start, Storage Explorer, test.http) keeps working.
DEFAULT_PORTS = {"blob": 10000, "queue": 10001, "table": 10002, "sendgrid": 8787, "vault": 8443, "token": 8444}
AZURITE_PID_FILE = ".azurite-pid.json"  # in the data folder: one Azurite per data folder
START_TIMEOUT = 30.0
STACK_FILE = "stack.json"
SAMPLE_SEGMENT = "demo/newsletter.csv"  # what the sample destination 'newsletter' reads first


# -- ports and processes ---------------------------------------------------------------------------


def _pick_ports(free: bool, previous: dict[str, int] | None = None) -> dict[str, int]:
    """The fixed ports; with ``free``, the previous ones where still free, else any the system gives."""
    from tools.local_ports import free_port, holder, port_free

    ports: dict[str, int] = {}
    for name, default in DEFAULT_PORTS.items():
        # --free-ports never takes the fixed ones: a `make up` may want them later.
        port = (previous or {}).get(name, 0) if free else default
        if port and port_free(port) and port not in ports.values():
            ports[name] = port
        elif free:
            while (port := free_port()) in ports.values():
                pass
            ports[name] = port
        else:
            raise SystemExit(
                f"port {port} (for {name}) on 127.0.0.1 is taken by {holder(port)}. Stop that process, or start "
                "the stack on free ports instead: make up STACK_OPTS=--free-ports"
            )
    return ports


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _is_ours(entry: dict[str, Any]) -> bool:
    """The recorded pid still runs the command we started (a pid can be reused by another)."""
    pid = int(entry["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process now
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():  # no /proc (macOS): the pid alone has to do
        return True
    try:
        running = cmdline.read_bytes().split(b"\0")
    except OSError:
        return False
    marker = entry["marker"].encode()
    return any(marker in part for part in running)


def _spawn(name: str, args: list[str], state: Path, marker: str) -> dict[str, Any]:
    log = state / f"{name}.log"
    with open(log, "wb") as out:  # the child keeps its own handle
        proc = subprocess.Popen(
            args,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Its own session: 'make up' returns and the stack runs on; down stops the whole group.
            start_new_session=True,
            env={**os.environ, "AZURITE_ACCOUNTS": ""},
        )
    return {"pid": proc.pid, "marker": marker, "log": str(log)}


def _stop(entry: dict[str, Any], timeout: float = 10.0) -> None:
    if not _is_ours(entry):
        return
    pid = int(entry["pid"])
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)  # the group: npm's azurite wrapper has a node child
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    # Our own child that exited is a zombie until reaped; reap it if it is ours to reap.
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


# -- the state folder -------------------------------------------------------------------------------


def _read_stack(state: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((state / STACK_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("processes"), dict) else None


def _private_dir(path: Path) -> None:
    """0700: the stack's keys, its CA's key material and Azurite's contacts are this user's only."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)


def _write_private(path: Path, text: str) -> None:
    _private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _whole(stack: dict[str, Any]) -> bool:
    ports = stack.get("ports", {})
    processes = stack["processes"]
    return (
        set(processes) == {"azurite", "sendgrid", "vault"}
        and all(_is_ours(p) for p in processes.values())
        and all(_listening(int(port)) for port in ports.values())
    )


# -- up -------------------------------------------------------------------------------------------------


def up(state: Path, data: Path, settings_file: Path, free_ports: bool = False) -> int:
    _private_dir(state)
    _private_dir(data)
    stack = _read_stack(state)
    if stack is not None and _whole(stack):
        print(f"The local stack is already running (state in {_shown(state)}); reusing it.")
    else:
        previous = stack.get("ports") if stack is not None else None
        if stack is not None:
            print("A previous local stack is partly gone; stopping what is left and starting afresh.")
            down(state, quiet=True)
        stack = _start(state, data, _pick_ports(free_ports, previous))
    for note in _provision(stack):
        print(note)
    values = _settings(stack, state)
    _write_local_settings(settings_file, values)
    _write_private(state / "env", "".join(f"{k}={_shell_quote(v)}\n" for k, v in values.items()))
    print(_ready_text(stack, state, data, settings_file))
    ours = values["REQUESTS_CA_BUNDLE"]
    if os.environ.get("REQUESTS_CA_BUNDLE", ours) != ours:
        # sendgrid-export gives the vault client its CA itself; the Functions host reads the environment.
        print(
            "note: your shell sets REQUESTS_CA_BUNDLE. sendgrid-export is not affected (it uses KEY_VAULT_CA_BUNDLE), "
            f"but func start is: start it as  REQUESTS_CA_BUNDLE={_shown(Path(ours))} func start",
            file=sys.stderr,
        )
    return 0


def _shown(path: Path) -> str:
    """A path as typed from the current directory (make runs in the repo): relative where it can be."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve())) or "."
    except ValueError:
        return str(path)


def _ready_text(stack: dict[str, Any], state: Path, data: Path, settings_file: Path) -> str:
    ports = stack["ports"]
    command = _shown(REPO / ".venv" / "bin" / "sendgrid-export")
    activate = _shown(REPO / ".venv" / "bin" / "activate")
    settings_hint = "" if settings_file.parent == REPO else f" --local-settings {_shown(settings_file)}"
    control = _shown(state / "simulator-control-key")
    return (
        f"Local stack ready (state in {_shown(state)}/, Azurite's data in {_shown(data)}/):\n"
        f"  Storage (Azurite)   blob http://127.0.0.1:{ports['blob']}  queue {ports['queue']}  table {ports['table']}\n"
        f"  SendGrid simulator  http://127.0.0.1:{ports['sendgrid']}  (its /__sim/ endpoints need the "
        f"X-Simulator-Key in {control})\n"
        f"  Key Vault stand-in  https://127.0.0.1:{ports['vault']}/  (CA {_shown(state / 'keyvault-ca.pem')})\n"
        f"  Settings            {_shown(settings_file)} (sendgrid-export and func start read it)\n"
        "Try, as typed:\n"
        f"  {command}{settings_hint} export newsletter\n"
        f"  {command}{settings_hint} runs newsletter\n"
        f"Or once per shell: source {activate}   (then: sendgrid-export export newsletter)\n"
        "Your own data: make upload-segment FILE=people.csv    make upload-destinations FILE=destinations.json\n"
        "Stop: make down"
    )


def _start(state: Path, data: Path, ports: dict[str, int]) -> dict[str, Any]:
    from tools.standins.storage import azurite_command

    try:
        azurite_command(0, 0, 0, None)  # says what to run when the emulator is not installed
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    _refuse_a_second_azurite(data)
    # Kept across restarts, so a key you copied stays good; the others are new at every start.
    key_file = state / "sendgrid-api-key"
    api_key = key_file.read_text().strip() if key_file.exists() else "local-" + secrets.token_urlsafe(24)
    _write_private(key_file, api_key)
    _write_private(state / "identity-header", secrets.token_urlsafe(24))
    _write_private(state / "simulator-control-key", secrets.token_urlsafe(24))
    (state / "keyvault-ca.pem").unlink(missing_ok=True)  # the vault writes a new one once it serves
    processes: dict[str, dict[str, Any]] = {}
    try:
        azurite = azurite_command(ports["blob"], ports["queue"], ports["table"], str(data))
        processes["azurite"] = _spawn("azurite", azurite, state, str(data))
        _write_private(data / AZURITE_PID_FILE, json.dumps({**processes["azurite"], "state": str(state)}))
        processes["sendgrid"] = _spawn(
            "sendgrid",
            [
                sys.executable,
                "-m",
                "tools.standins.sendgrid",
                "--host",
                "127.0.0.1",
                "--port",
                str(ports["sendgrid"]),
                "--api-key-file",
                str(key_file),
                "--control-key-file",
                str(state / "simulator-control-key"),
                "--job-delay",
                "0.3",
            ],
            state,
            "tools.standins.sendgrid",
        )
        processes["vault"] = _spawn(
            "vault",
            [
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
            ],
            state,
            "serve-vault",
        )
        stack = {"processes": processes, "ports": ports, "data": str(data)}
        _write_private(state / STACK_FILE, json.dumps(stack, indent=2))
        _wait_until_ready(stack, state)
    except BaseException:
        for entry in processes.values():
            _stop(entry)
        (state / STACK_FILE).unlink(missing_ok=True)
        (data / AZURITE_PID_FILE).unlink(missing_ok=True)
        raise
    return stack


def _refuse_a_second_azurite(data: Path) -> None:
    """Two Azurites on one data folder overwrite each other's files."""
    try:
        entry = json.loads((data / AZURITE_PID_FILE).read_text())
    except (OSError, ValueError):
        return
    if isinstance(entry, dict) and "pid" in entry and "marker" in entry and _is_ours(entry):
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
        while not _listening(int(port)):
            if not _alive(int(entry["pid"])) or time.monotonic() > deadline:
                tail = Path(entry["log"]).read_text(errors="replace")[-2000:]
                raise SystemExit(
                    f"{owner} did not start listening on 127.0.0.1:{port}; its log ({entry['log']}):\n{tail}"
                )
            time.sleep(0.1)
    while not (state / "keyvault-ca.pem").exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"the Key Vault stand-in wrote no CA; see {stack['processes']['vault']['log']}")
        time.sleep(0.05)


def connection_string(ports: dict[str, int]) -> str:
    from tools.standins.storage import ACCOUNT, ACCOUNT_KEY

    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{ports['blob']}/{ACCOUNT};"
        f"QueueEndpoint=http://127.0.0.1:{ports['queue']}/{ACCOUNT};"
        f"TableEndpoint=http://127.0.0.1:{ports['table']}/{ACCOUNT};"
    )


def _provision(stack: dict[str, Any]) -> list[str]:
    """Containers, queue and the samples, each only if absent. Returns notes on stored copies that
    differ from samples/ (kept: they are the user's edits, or the user's own data)."""
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.blob import BlobServiceClient
    from azure.storage.queue import QueueClient

    conn = connection_string(stack["ports"])
    service = BlobServiceClient.from_connection_string(conn)
    notes: list[str] = []
    uploads = {
        SEGMENTS_CONTAINER: {
            "demo/newsletter.csv": SAMPLES / "segments" / "newsletter.csv",
            "demo/vip/vip.csv": SAMPLES / "segments" / "vip.csv",
        },
        EXPORTS_CONTAINER: {"destinations.json": SAMPLES / "destinations.json"},
    }
    for container, blobs in uploads.items():
        client = service.get_container_client(container)
        with contextlib.suppress(ResourceExistsError):
            client.create_container()
        for name, path in blobs.items():
            # Only if absent: the stack keeps what you changed since the last up.
            try:
                client.upload_blob(name, path.read_bytes(), overwrite=False)
            except ResourceExistsError:
                if client.download_blob(name).readall() != path.read_bytes():
                    notes.append(_differs_note(container, name, path))
    with contextlib.suppress(ResourceExistsError):
        QueueClient.from_connection_string(conn, EXPORT_QUEUE).create_queue()
    return notes


def _differs_note(container: str, name: str, path: Path) -> str:
    sample = _shown(path)
    again = (
        f"make upload-destinations FILE={sample}"
        if name == "destinations.json"
        else f"make upload-segment FILE={sample} BLOB={name}"
    )
    return f"note: {container}/{name} in the stack differs from {sample} and was kept. To use the sample: {again}"


def _settings(stack: dict[str, Any], state: Path) -> dict[str, str]:
    ports = stack["ports"]
    conn = connection_string(ports)
    return {
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "AzureWebJobsStorage": conn,
        "EXPORT_STORAGE": conn,
        "SEGMENTS_CONTAINER": SEGMENTS_CONTAINER,
        "EXPORTS_CONTAINER": EXPORTS_CONTAINER,
        "EXPORT_QUEUE": EXPORT_QUEUE,
        "DESTINATIONS_BLOB": "destinations.json",
        "EXPORT_SCHEDULE": "0 0 3 * * *",  # the timer's schedule: func start will not index without it
        "SENDGRID_API_BASE_URL": f"http://127.0.0.1:{ports['sendgrid']}",
        "SECRETS_SOURCE": "keyvault",
        "KEY_VAULT_URL": f"https://127.0.0.1:{ports['vault']}/",
        # The app's own DefaultAzureCredential, limited to managed identity, gets its token from
        # the stand-in's loopback endpoint (App Service's protocol): no developer login is tried,
        # and nothing leaves the machine.
        "AZURE_TOKEN_CREDENTIALS": "ManagedIdentityCredential",
        "IDENTITY_ENDPOINT": f"http://127.0.0.1:{ports['token']}/msi/token",
        "IDENTITY_HEADER": (state / "identity-header").read_text(),
        # The CLI gives this CA to the Key Vault client itself, where a REQUESTS_CA_BUNDLE of the
        # shell cannot take its place.
        "KEY_VAULT_CA_BUNDLE": str((state / "keyvault-ca.pem").resolve()),
        # For func start (whose Key Vault client is the app's): the stand-in's CA and the usual ones.
        "REQUESTS_CA_BUNDLE": str(_ca_bundle(state)),
    }


def _ca_bundle(state: Path) -> Path:
    """certifi's CAs (requests' own default) plus the stand-in's: trusting the stand-in must not
    stop anything else from verifying."""
    import certifi

    bundle = state / "ca-bundle.pem"
    text = Path(certifi.where()).read_text() + "\n" + (state / "keyvault-ca.pem").read_text()
    bundle.write_text(text)
    return bundle.resolve()


def _write_local_settings(path: Path, values: dict[str, str]) -> None:
    """Merge into an existing local.settings.json: the stack's keys are replaced, yours are kept."""
    current: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        loaded = json.loads(path.read_text(encoding="utf-8-sig"))
        if isinstance(loaded, dict):
            current = loaded
    kept = current.get("Values")
    current_values: dict[str, Any] = kept if isinstance(kept, dict) else {}
    current.update({"IsEncrypted": False, "Values": {**current_values, **values}})
    _write_private(path, json.dumps(current, indent=2) + "\n")


def _shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


# -- your own data ------------------------------------------------------------------------------------


def _running_container(state: Path, container: str) -> Any:
    from azure.storage.blob import BlobServiceClient

    stack = _read_stack(state)
    if stack is None or not _whole(stack):
        raise SystemExit("the local stack is not running: make up first.")
    service = BlobServiceClient.from_connection_string(connection_string(stack["ports"]))
    return service.get_container_client(container)


def upload_segment(state: Path, file: Path, blob: str) -> int:
    if not file.is_file():
        raise SystemExit(f"{file}: no such file.")
    if blob.startswith("/") or ".." in blob.split("/") or not blob.strip("/"):
        raise SystemExit(f"--as {blob}: a blob name such as demo/newsletter.csv.")
    with open(file, "rb") as data:
        _running_container(state, SEGMENTS_CONTAINER).upload_blob(blob, data, overwrite=True)
    print(f"uploaded {file} ({file.stat().st_size:,} bytes) as {SEGMENTS_CONTAINER}/{blob}.")
    if blob == SAMPLE_SEGMENT:
        print("The sample destination 'newsletter' reads it: .venv/bin/sendgrid-export export newsletter")
    else:
        print(f'A destination reads it with "segments": [{{"path": "{blob}"}}] in destinations.json.')
    return 0


def upload_destinations(state: Path, file: Path) -> int:
    """Checked as the app reads it (and against the schema) first: a broken file is not uploaded."""
    checked = subprocess.run(
        [sys.executable, "-m", "shared", "validate-destinations", str(file)], cwd=REPO, check=False
    )
    if checked.returncode != 0:
        print(f"{file} was not uploaded: fix what FAIL names first.", file=sys.stderr)
        return checked.returncode
    _running_container(state, EXPORTS_CONTAINER).upload_blob("destinations.json", file.read_bytes(), overwrite=True)
    print(f"uploaded {file} as {EXPORTS_CONTAINER}/destinations.json; the next run reads it.")
    return 0


# -- down and status ------------------------------------------------------------------------------------


def down(state: Path, quiet: bool = False) -> int:
    stack = _read_stack(state)
    if stack is None:
        if not quiet:
            print("No local stack is running (nothing recorded in " + str(state) + ").")
        return 0
    for name, entry in stack["processes"].items():
        _stop(entry)
        if not quiet:
            print(f"stopped {name} (pid {entry['pid']})")
    if stack.get("data"):
        (Path(stack["data"]) / AZURITE_PID_FILE).unlink(missing_ok=True)
    (state / STACK_FILE).unlink(missing_ok=True)
    return 0


def status(state: Path) -> int:
    stack = _read_stack(state)
    if stack is None:
        print("not running")
        return 1
    for name, entry in stack["processes"].items():
        print(f"{name}: pid {entry['pid']} {'running' if _is_ours(entry) else 'GONE'}")
    print("ports: " + ", ".join(f"{k} {v}" for k, v in stack["ports"].items()))
    return 0 if _whole(stack) else 1


# -- the Key Vault stand-in's process -------------------------------------------------------------------


class _TokenHandler(BaseHTTPRequestHandler):
    """App Service's managed identity endpoint, for the stand-in's token only."""

    server: _TokenServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        url = urlparse(self.path)
        resource = parse_qs(url.query).get("resource", [""])[0]
        if url.path != "/msi/token" or self.headers.get("X-IDENTITY-HEADER") != self.server.identity_header:
            self._send(401, {"error": "invalid_request", "error_description": "wrong path or X-IDENTITY-HEADER"})
            return
        expires = int(time.time()) + 3600
        self._send(
            200,
            {
                "access_token": self.server.token,
                "expires_on": str(expires),
                "resource": resource,
                "token_type": "Bearer",
            },
        )

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _TokenServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, token: str, identity_header: str):
        super().__init__(("127.0.0.1", port), _TokenHandler)
        self.token = token
        self.identity_header = identity_header


def serve_vault(state: Path, port: int, token_port: int) -> int:
    from tools.standins.keyvault import KeyVaultStandIn

    api_key = (state / "sendgrid-api-key").read_text()
    vault = KeyVaultStandIn({SECRET_NAME: api_key}, port=port).start()
    tokens = _TokenServer(token_port, vault.state.token, (state / "identity-header").read_text())
    threading.Thread(target=tokens.serve_forever, name="token-endpoint", daemon=True).start()
    # Written last: up waits for this file, so the vault and the token endpoint serve by then.
    shutil.copyfile(vault.ca_path, state / "keyvault-ca.pem.tmp")
    os.replace(state / "keyvault-ca.pem.tmp", state / "keyvault-ca.pem")
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with contextlib.suppress(KeyboardInterrupt):
        stopped.wait()
    tokens.shutdown()
    vault.stop()
    return 0


# -- entry ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _lock(state: Path) -> Iterator[None]:
    """One up or down at a time on a state folder (two terminals, or make -j)."""
    import fcntl

    _private_dir(state)
    with open(state / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.local_stack", description="The local stack: up, down, status."
    )
    parser.add_argument(
        "--state", type=Path, default=DEFAULT_STATE, help="pids, ports, logs, CA (default .localstack/)"
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Azurite's data (default .azurite/)")
    parser.add_argument("--settings-file", type=Path, default=DEFAULT_SETTINGS, help="default ./local.settings.json")
    parser.add_argument(
        "--free-ports", action="store_true", help="up: any free ports, not the fixed ones (tests; beside another stack)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="start (or reuse) the stack, provision it, write the settings")
    commands.add_parser("down", help="stop what up started; nothing to do is not an error")
    commands.add_parser("status", help="exit 0 if the whole stack runs")
    segment = commands.add_parser("upload-segment", help="put a segment file into the running stack")
    segment.add_argument("file", type=Path)
    segment.add_argument("--as", dest="blob", default=SAMPLE_SEGMENT, help=f"blob name (default {SAMPLE_SEGMENT})")
    config = commands.add_parser("upload-destinations", help="check a destinations.json, then put it into the stack")
    config.add_argument("file", type=Path)
    vault = commands.add_parser("serve-vault", help=argparse.SUPPRESS)
    vault.add_argument("--port", type=int, required=True)
    vault.add_argument("--token-port", type=int, required=True)
    args = parser.parse_args(argv)
    state = args.state.resolve()
    if args.command == "serve-vault":
        return serve_vault(state, args.port, args.token_port)
    if args.command == "upload-segment":
        return upload_segment(state, args.file, args.blob)
    if args.command == "upload-destinations":
        return upload_destinations(state, args.file)
    with _lock(state):
        if args.command == "up":
            return up(state, args.data.resolve(), args.settings_file.resolve(), args.free_ports)
        if args.command == "down":
            return down(state)
        return status(state)


if __name__ == "__main__":
    sys.exit(main())
