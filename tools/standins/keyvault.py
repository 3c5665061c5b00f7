"""A Key Vault stand-in: HTTPS on loopback (certificates from ``trustme``) serving secrets.

The real ``SecretClient`` talks to it through its real challenge-authentication path: a first
request without a token is answered 401 with a ``WWW-Authenticate`` challenge, the client asks its
credential for a token for the challenge's resource, and retries with it.

The SDK accepts a challenge only when the vault's host is a subdomain of the challenge resource
(as ``myvault.vault.azure.net`` is of ``vault.azure.net``). The stand-in listens on
``127.0.0.1:PORT`` and names ``https://0.0.1:PORT`` as its resource: the same relation, so the
SDK's check runs unmodified.
"""

from __future__ import annotations

import json
import secrets
import ssl
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import trustme

TENANT = "00000000-0000-0000-0000-000000000000"


@dataclass
class VaultState:
    secrets: dict[str, str] = field(default_factory=dict)
    # Random per stand-in (per make up): a token anyone could read in the source would let any local
    # user read the secrets.
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    down: bool = False  # answer 503 to everything (Key Vault unavailable)
    requests: list[tuple[str, str, bool]] = field(default_factory=list)  # method, path, had token


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _VaultServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        state = self.server.state
        path = urlparse(self.path).path
        auth = self.headers.get("Authorization", "")
        state.requests.append(("GET", path, auth.startswith("Bearer ")))
        if state.down:
            self._send(503, {"error": {"code": "ServiceUnavailable", "message": "The vault is unavailable."}})
            return
        if not secrets.compare_digest(auth.encode(), f"Bearer {state.token}".encode()):
            port = self.server.server_address[1]
            challenge = (
                f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", resource="https://0.0.1:{port}"'
            )
            self._send(
                401,
                {"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}},
                {"WWW-Authenticate": challenge},
            )
            return
        parts = path.strip("/").split("/")
        if len(parts) in (2, 3) and parts[0] == "secrets":
            name = parts[1]
            if name not in state.secrets:
                self._send(
                    404,
                    {
                        "error": {
                            "code": "SecretNotFound",
                            "message": f"A secret with (name/id) {name} was not found in this key vault.",
                        }
                    },
                )
                return
            version = parts[2] if len(parts) == 3 and parts[2] else uuid.uuid4().hex
            now = int(time.time())
            self._send(
                200,
                {
                    "value": state.secrets[name],
                    "id": f"https://{self.headers.get('Host')}/secrets/{name}/{version}",
                    "attributes": {
                        "enabled": True,
                        "created": now,
                        "updated": now,
                        "recoveryLevel": "Recoverable+Purgeable",
                    },
                },
            )
            return
        self._send(404, {"error": {"code": "NotFound", "message": "not found"}})

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _VaultServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: VaultState, port: int = 0):
        super().__init__(("127.0.0.1", port), _Handler)
        self.state = state


class StaticTokenCredential:
    """A TokenCredential that hands out the stand-in's token (tests only; never a real identity)."""

    def __init__(self, token: str):
        self.token = token
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **_: Any) -> Any:
        from azure.core.credentials import AccessToken

        self.scopes.append(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)

    def close(self) -> None:
        pass


class KeyVaultStandIn:
    """Start with :meth:`start`; ``vault_url``, ``ca_path`` and ``credential()`` are for the client."""

    def __init__(self, secrets: dict[str, str] | None = None, port: int = 0):
        self.state = VaultState(secrets=dict(secrets or {}))
        self._port = port  # 0: any free one (tests); the local stack asks for its own
        self._ca = trustme.CA()
        self._dir = tempfile.TemporaryDirectory(prefix="kv-standin-")
        self.ca_path = str(Path(self._dir.name) / "ca.pem")
        self._ca.cert_pem.write_to_path(self.ca_path)
        self._server: _VaultServer | None = None

    def start(self) -> KeyVaultStandIn:
        server = _VaultServer(self.state, self._port)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, name="keyvault-standin", daemon=True).start()
        self._server = server
        return self

    @property
    def vault_url(self) -> str:
        assert self._server is not None
        return f"https://127.0.0.1:{self._server.server_address[1]}/"

    def credential(self) -> StaticTokenCredential:
        return StaticTokenCredential(self.state.token)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._dir.cleanup()
