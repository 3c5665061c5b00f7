"""A run under a lock it may lose: once lost, nothing more reaches SendGrid or the sync state."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import IO, Any, cast

from shared.adapters.locks import HeldLock
from shared.adapters.storage import BlobStore
from shared.errors import SendGridError
from shared.run.ports import SendGridApi
from shared.run.runtime import Runtime


class SendingStopped(SendGridError):
    """The run's lock is lost: nothing more may reach SendGrid."""


class _SendingWhileHeld:
    """A SendGrid client that refuses every call once the run's lock is lost."""

    def __init__(self, client: SendGridApi, held: HeldLock):
        self._client = client
        self._held = held

    def __setattr__(self, name: str, value: Any) -> None:
        # The run sets the client's deadline: it must reach the client that waits, not this wrapper.
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._client, name, value)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr) or name == "close":
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self._held.lost.is_set():
                raise SendingStopped(self._held.lost_reason or "the lock was lost")
            return attr(*args, **kwargs)

        return call


class _StateWritesWhileHeld:
    """The exports container, but the sync state (``state/``) is written only while the lock holds:
    a run that lost its lock must not overwrite, or delete the journals of, the run that took it."""

    def __init__(self, exports: BlobStore, held: HeldLock):
        self._exports = exports
        self._held = held

    def __getattr__(self, name: str) -> Any:
        return getattr(self._exports, name)

    def _check(self, name: str) -> None:
        if name.startswith("state/"):
            self._held.check()

    def write_bytes(
        self, name: str, data: bytes, *, content_type: str, metadata: Mapping[str, str] | None = None
    ) -> None:
        self._check(name)
        self._exports.write_bytes(name, data, content_type=content_type, metadata=metadata)

    def write_stream(self, name: str, stream: IO[bytes], *, content_type: str) -> None:
        self._check(name)
        self._exports.write_stream(name, stream, content_type=content_type)

    def delete(self, name: str) -> None:
        self._check(name)
        self._exports.delete(name)


def only_while_held(runtime: Runtime, held: HeldLock) -> Runtime:
    """The run's runtime: SendGrid calls and sync-state writes stop once the lock is lost.

    The run core needs no change for it; a per-run copy of the edges, as the process's are shared.
    """
    make_client = runtime.edges.sendgrid

    def sendgrid(base_url: str, api_key: str) -> SendGridApi:
        return cast(SendGridApi, _SendingWhileHeld(make_client(base_url, api_key), held))

    exports = cast(BlobStore, _StateWritesWhileHeld(runtime.edges.exports, held))
    return dataclasses.replace(runtime, edges=dataclasses.replace(runtime.edges, sendgrid=sendgrid, exports=exports))
