"""The simulator's HTTP server: each request logged, then through its gate (injected faults, the
pace, the API key and its scopes) to its route, or to the ``/__sim/`` control endpoints.

Scopes carry SendGrid's published names (``marketing.read``, ``marketing.automation.read``, the
legacy ``marketing_campaigns.*``); a key without write access is refused writes (403).
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from tools.standins.sendgrid import control
from tools.standins.sendgrid.api import Answer, ApiCall, ApiError
from tools.standins.sendgrid.faults import Fault, take_request_fault
from tools.standins.sendgrid.pace import route_key
from tools.standins.sendgrid.routes import find_route
from tools.standins.sendgrid.rules import WRITE_SCOPES
from tools.standins.sendgrid.state import SimState


def _errors(message: str) -> dict[str, Any]:
    return {"errors": [{"field": None, "message": message}]}


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    query: str
    length: int  # as the Content-Length header says
    body: bytes


@dataclass(frozen=True)
class _Admission:
    """What the gate made of a request: its log entry, the fault it met, its place in the pace."""

    entry: dict[str, Any]
    fault: Fault | None
    allowed: bool
    headers: dict[str, str]  # X-RateLimit-*, on every answer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SimServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the simulator never prints request lines (they can hold addresses)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _dispatch(self, method: str) -> None:
        request = self._read(method)
        if request.path.startswith("/__sim/"):
            control.handle(self, method, request.path, request.body)
            return
        admission = self._admit(request)
        if admission.fault is not None and self._answered_by_fault(admission.fault, admission.headers):
            return
        if not admission.allowed:
            self.send_json(429, _errors("too many requests"), admission.headers)
            return
        scopes = self._scopes(request, admission.headers)
        if scopes is None:
            return
        status, payload = self._api(request, scopes)
        state = self.server.state
        with state.lock:  # the log says what each request came to (a test tells accepted batches)
            admission.entry["status"] = status
            if isinstance(payload, dict) and isinstance(payload.get("job_id"), str):
                admission.entry["job_id"] = payload["job_id"]
        self.send_json(status, payload, admission.headers)

    def _read(self, method: str) -> _Request:
        parsed = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        return _Request(method, parsed.path, parsed.query, length, body)

    def _admit(self, request: _Request) -> _Admission:
        """Log the request, and find the fault it meets and its place in its endpoint's window."""
        state = self.server.state
        with state.lock:
            entry: dict[str, Any] = {
                "method": request.method,
                "path": request.path,
                "query": request.query,
                "bytes": request.length,
            }
            entry["at"] = round(time.time(), 3)
            if state.record_bodies:
                entry["body"] = request.body.decode("utf-8", "replace")
            state.requests.append(entry)
            fault = take_request_fault(state.faults, request.method, request.path)
            allowed, headers = state.pace.take(route_key(request.method, request.path))
            if not allowed:
                entry["status"] = 429  # the request log tells which requests the pace refused
        return _Admission(entry, fault, allowed, headers)

    def _answered_by_fault(self, fault: Fault, headers: dict[str, str]) -> bool:
        """Act out the request's fault; True if that was the answer (a delay lets it go on)."""
        if fault.kind == "drop":
            self.hang_up()
            return True
        if fault.kind == "delay":
            time.sleep(fault.seconds)
            return False
        if fault.kind == "rate_limit":
            reset = str(math.ceil(time.time() + fault.reset_in))
            storm = {"X-RateLimit-Limit": "1", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}
            self.send_json(429, _errors("too many requests"), storm)
            return True
        if fault.kind == "status":
            self.send_json(fault.status, _errors(fault.message), headers)
            return True
        return False

    def _scopes(self, request: _Request, headers: dict[str, str]) -> list[str] | None:
        """The scopes of the request's API key; None once it is refused (401, or 403 for a write)."""
        state = self.server.state
        auth = self.headers.get("Authorization", "")
        key = auth[len("Bearer ") :] if auth.startswith("Bearer ") else None
        if key is None or key not in state.api_keys:
            self.send_json(401, _errors("authorization required"), headers)
            return None
        scopes = state.api_keys[key]
        reads = request.method == "GET" or request.path.startswith("/v3/marketing/contacts/search")
        if not reads and not set(scopes) >= WRITE_SCOPES:
            self.send_json(403, _errors("access forbidden"), headers)
            return None
        return scopes

    def _api(self, request: _Request, scopes: list[str]) -> Answer:
        try:
            handle, ids = find_route(request.method, request.path)
            call = ApiCall(parse_qs(request.query), request.body, self.server.state, scopes, ids, self.base())
            return handle(call)
        except ApiError as exc:
            return exc.status, {"errors": exc.errors}

    # -- answering ----------------------------------------------------------------------------------

    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_data(self, status: int, headers: dict[str, str], data: bytes) -> None:
        """An answer of raw bytes, with exactly these headers (Content-Length included)."""
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def hang_up(self) -> None:
        """Drop the connection, as a dying server or load balancer does."""
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)


class SimServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: SimState):
        super().__init__(address, Handler)
        self.state = state

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.state.close()

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


def start(state: SimState, host: str = "127.0.0.1", port: int = 0) -> SimServer:
    """Start a simulator on a background thread; ``server.stop()`` stops it."""
    server = SimServer((host, port), state)
    state.base_url = server.base_url
    threading.Thread(target=server.serve_forever, name="sendgrid-simulator", daemon=True).start()
    return server
