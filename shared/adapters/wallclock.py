"""A wall-clock bound on each of a ``requests`` session's calls, and a size bound on its answers.

``requests`` (and urllib3 under it) bound each socket operation, not a call: a server that sends
one byte every few seconds never trips a read timeout, and holds the caller for ever. Mounted on a
session, :class:`WallClockAdapter` gives each call a deadline (its connect plus read timeout,
from when it is sent); every receive and send of the call's connection waits at most what is
left of it, so the whole call, headers and body, ends by the deadline however the server sends.
The answer is read whole under the same deadline, and refused past ``max_bytes``.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError

_call = threading.local()  # the deadline (time.monotonic) of the call this thread is making


class _DeadlineSocket:
    """A socket whose every wait is cut to what is left of its thread's call deadline."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._timeout: float | None = sock.gettimeout()  # the per-operation timeout urllib3 set

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def settimeout(self, value: float | None) -> None:
        self._timeout = value
        self._sock.settimeout(value)

    def gettimeout(self) -> float | None:
        return self._timeout

    def _bound(self) -> None:
        deadline: float | None = getattr(_call, "deadline", None)
        if deadline is None:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the call's wall-clock deadline passed")
        self._sock.settimeout(left if self._timeout is None else min(self._timeout, left))

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        self._bound()
        return int(self._sock.recv_into(buffer, nbytes, flags))

    def recv(self, size: int, flags: int = 0) -> bytes:
        self._bound()
        return bytes(self._sock.recv(size, flags))

    def sendall(self, data: Any, flags: int = 0) -> None:
        self._bound()
        self._sock.sendall(data, flags)

    def send(self, data: Any, flags: int = 0) -> int:
        self._bound()
        return int(self._sock.send(data, flags))

    def makefile(self, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if mode not in ("rb", "br"):
            return self._sock.makefile(mode, *args, **kwargs)
        # What http.client reads an answer from: through this object, so that each read is bounded.
        return io.BufferedReader(_Reader(self))


class _Reader(io.RawIOBase):
    def __init__(self, sock: _DeadlineSocket) -> None:
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._sock.recv_into(buffer)


class _DeadlineHTTPConnection(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        self.sock = _DeadlineSocket(self.sock)


class _DeadlineHTTPSConnection(HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        self.sock = _DeadlineSocket(self.sock)


class _DeadlineHTTPPool(HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


class AnswerTooLarge(requests.ConnectionError):
    """An answer was longer than the adapter takes (retried as a dropped answer would be)."""


class WallClockAdapter(HTTPAdapter):
    def __init__(self, max_bytes: int, **kwargs: Any) -> None:
        self._max_bytes = max_bytes
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _DeadlineHTTPPool, "https": _DeadlineHTTPSPool}

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        parts = timeout if isinstance(timeout, tuple) else (timeout,)
        seconds = [float(p) for p in parts if p is not None]
        _call.deadline = time.monotonic() + sum(seconds) if len(seconds) == len(parts) else None
        try:
            response = super().send(request, True, timeout, verify, cert, proxies)
            if not stream:
                response._content = self._read(response)
            return response
        finally:
            _call.deadline = None

    def _read(self, response: requests.Response) -> bytes:
        data = bytearray()
        try:
            for piece in response.raw.stream(1 << 16, decode_content=True):
                data += piece
                if len(data) > self._max_bytes:
                    raise AnswerTooLarge(f"the answer is over {self._max_bytes} bytes")
        except (OSError, HTTPError, requests.RequestException, ValueError) as exc:
            response.close()
            if isinstance(exc, AnswerTooLarge):
                raise
            raise requests.ConnectionError(f"the answer was cut short ({type(exc).__name__})") from None
        return bytes(data)
