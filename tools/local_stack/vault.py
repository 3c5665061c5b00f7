"""The Key Vault stand-in's process (``serve-vault``): the vault holding the simulator's API key,
and beside it a loopback token endpoint in the form App Service's managed identity uses."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from tools.standins.keyvault import KeyVaultStandIn

SECRET_NAME = "sendgrid-api-key"


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
