"""``make up`` / ``make down``: a local stack that keeps running between commands.

``up`` starts, each in a process of its own on 127.0.0.1 only:

- Azurite (always with ``--disableTelemetry``), its data in ``.azurite/`` so it survives a restart;
- the SendGrid simulator (``tools/sendgrid_simulator.py``);
- the Key Vault stand-in (HTTPS, a ``trustme`` CA written to the state folder) holding the
  simulator's API key as secret ``sendgrid-api-key``, and beside it a loopback token endpoint in
  the form App Service's managed identity uses, so the app's own ``DefaultAzureCredential`` and
  ``SecretClient`` read the key exactly as in Azure;

then creates the containers and the queue, uploads the sample segments and ``destinations.json``
(each only if absent: a second ``up`` never overwrites your edits), and writes the settings into
``local.settings.json`` (read by ``func start`` and by ``python -m shared``) and
``.localstack/env`` (for a shell: ``set -a; . .localstack/env; set +a``).

Pids, ports and logs live in the state folder (``.localstack/``). A second ``up`` reuses a stack
that is whole and restarts one that is not; ``down`` stops only the processes it recorded (by
pid, after checking each is still the process it started) and is a no-op when nothing runs.
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
# The usual local ports (Azurite's own defaults, the README's simulator port); a taken one is
# replaced by a free one, and the settings written always name the ports actually used.
PREFERRED_PORTS = {"blob": 10000, "queue": 10001, "table": 10002, "sendgrid": 8787, "vault": 8443, "token": 8444}
START_TIMEOUT = 30.0
STACK_FILE = "stack.json"


# -- ports and processes ---------------------------------------------------------------------------


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pick_ports() -> dict[str, int]:
    ports: dict[str, int] = {}
    for name, preferred in PREFERRED_PORTS.items():
        port = preferred
        while not _port_free(port) or port in ports.values():
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
        ports[name] = port
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


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
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


def up(state: Path, data: Path, settings_file: Path) -> int:
    state.mkdir(parents=True, exist_ok=True)
    data.mkdir(parents=True, exist_ok=True)
    stack = _read_stack(state)
    if stack is not None and _whole(stack):
        print(f"The local stack is already running (state in {state}); reusing it.")
    else:
        if stack is not None:
            print("A previous local stack is partly gone; stopping what is left and starting afresh.")
            down(state, quiet=True)
        stack = _start(state, data)
    _provision(stack)
    values = _settings(stack, state)
    _write_local_settings(settings_file, values)
    _write_private(state / "env", "".join(f"{k}={_shell_quote(v)}\n" for k, v in values.items()))
    ports = stack["ports"]
    ours = values["REQUESTS_CA_BUNDLE"]
    if os.environ.get("REQUESTS_CA_BUNDLE", ours) != ours:
        # The environment wins over local.settings.json, for the CLI as for func start.
        print(
            f"note: your environment sets REQUESTS_CA_BUNDLE, which wins over {settings_file.name}; the Key Vault "
            f"stand-in's certificate is then not trusted. Run: export REQUESTS_CA_BUNDLE={ours}",
            file=sys.stderr,
        )
    print(
        f"Storage (Azurite): blob 127.0.0.1:{ports['blob']}, queue {ports['queue']}, table {ports['table']}; "
        f"data in {data}\n"
        f"SendGrid simulator: http://127.0.0.1:{ports['sendgrid']} (state: GET /__sim/state)\n"
        f"Key Vault stand-in: https://127.0.0.1:{ports['vault']}/ (CA {state / 'keyvault-ca.pem'})\n"
        f"Settings written to {settings_file} (python -m shared and func start read it) and {state / 'env'}.\n"
        "Try: python -m shared export newsletter   Stop with: make down"
    )
    return 0


def _start(state: Path, data: Path) -> dict[str, Any]:
    from tools.storage_emulator import azurite_command

    try:
        azurite_command(0, 0, 0, None)  # says what to run when the emulator is not installed
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    ports = _pick_ports()
    # Kept across restarts, so a key you copied stays good; the identity header need not be.
    key_file = state / "sendgrid-api-key"
    api_key = key_file.read_text().strip() if key_file.exists() else "local-" + secrets.token_urlsafe(24)
    identity_header = secrets.token_urlsafe(24)
    _write_private(key_file, api_key)
    _write_private(state / "identity-header", identity_header)
    (state / "keyvault-ca.pem").unlink(missing_ok=True)  # the vault writes a new one once it serves
    processes: dict[str, dict[str, Any]] = {}
    try:
        azurite = azurite_command(ports["blob"], ports["queue"], ports["table"], str(data))
        processes["azurite"] = _spawn("azurite", azurite, state, str(data))
        processes["sendgrid"] = _spawn(
            "sendgrid",
            [
                sys.executable,
                "-m",
                "tools.sendgrid_simulator",
                "--host",
                "127.0.0.1",
                "--port",
                str(ports["sendgrid"]),
                "--api-key",
                api_key,
                "--job-delay",
                "0.3",
            ],
            state,
            "tools.sendgrid_simulator",
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
        raise
    return stack


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
    from tools.storage_emulator import ACCOUNT, ACCOUNT_KEY

    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{ports['blob']}/{ACCOUNT};"
        f"QueueEndpoint=http://127.0.0.1:{ports['queue']}/{ACCOUNT};"
        f"TableEndpoint=http://127.0.0.1:{ports['table']}/{ACCOUNT};"
    )


def _provision(stack: dict[str, Any]) -> None:
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.blob import BlobServiceClient
    from azure.storage.queue import QueueClient

    conn = connection_string(stack["ports"])
    service = BlobServiceClient.from_connection_string(conn)
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
            with contextlib.suppress(ResourceExistsError):
                client.upload_blob(name, path.read_bytes(), overwrite=False)
    with contextlib.suppress(ResourceExistsError):
        QueueClient.from_connection_string(conn, EXPORT_QUEUE).create_queue()


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
        "SENDGRID_API_BASE_URL": f"http://127.0.0.1:{ports['sendgrid']}",
        "SECRETS_SOURCE": "keyvault",
        "KEY_VAULT_URL": f"https://127.0.0.1:{ports['vault']}/",
        # The app's own DefaultAzureCredential, limited to managed identity, gets its token from
        # the stand-in's loopback endpoint (App Service's protocol): no developer login is tried,
        # and nothing leaves the machine.
        "AZURE_TOKEN_CREDENTIALS": "ManagedIdentityCredential",
        "IDENTITY_ENDPOINT": f"http://127.0.0.1:{ports['token']}/msi/token",
        "IDENTITY_HEADER": (state / "identity-header").read_text(),
        # requests (under the Key Vault SDK) trusts the stand-in's CA as well as the usual ones.
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
    from tools.keyvault_standin import KeyVaultStandIn

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

    state.mkdir(parents=True, exist_ok=True)
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
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="start (or reuse) the stack, provision it, write the settings")
    commands.add_parser("down", help="stop what up started; nothing to do is not an error")
    commands.add_parser("status", help="exit 0 if the whole stack runs")
    vault = commands.add_parser("serve-vault", help=argparse.SUPPRESS)
    vault.add_argument("--port", type=int, required=True)
    vault.add_argument("--token-port", type=int, required=True)
    args = parser.parse_args(argv)
    state = args.state.resolve()
    if args.command == "serve-vault":
        return serve_vault(state, args.port, args.token_port)
    with _lock(state):
        if args.command == "up":
            return up(state, args.data.resolve(), args.settings_file.resolve())
        if args.command == "down":
            return down(state)
        return status(state)


if __name__ == "__main__":
    sys.exit(main())
