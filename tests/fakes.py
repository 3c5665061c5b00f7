"""Fakes of the core's edges, for unit tests that must not touch a network or a disk service."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

from shared.adapters.storage import BlobInfo, BlobNotFound

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from shared.adapters.jobs import ExportJob
    from shared.adapters.locks import HeldLock


class InMemoryBlobStore:
    def __init__(self, blobs: dict[str, bytes] | None = None, chunk_size: int = 7):
        self.blobs: dict[str, bytes] = dict(blobs or {})
        self.chunk_size = chunk_size  # tiny chunks: readers must cope with any boundary

    container_url = "https://fake.blob.core.windows.net/fake"

    def list_blobs(self, prefix: str) -> list[BlobInfo]:
        return [BlobInfo(n, len(d)) for n, d in sorted(self.blobs.items()) if n.startswith(prefix)]

    def read_bytes(self, name: str) -> bytes:
        if name not in self.blobs:
            raise BlobNotFound(f"blob '{name}' not found")
        return self.blobs[name]

    def blob_name_from_url(self, url: str) -> tuple[str, str | None] | None:
        prefix = self.container_url + "/"
        if not url.startswith(prefix):
            return None
        name, _, query = url[len(prefix) :].partition("?")
        snapshot = query.split("snapshot=", 1)[1] if "snapshot=" in query else None
        return name, snapshot

    def iter_chunks(self, name: str, snapshot: str | None = None) -> Iterator[bytes]:
        data = self.read_bytes(name)
        for i in range(0, len(data), self.chunk_size):
            yield data[i : i + self.chunk_size]

    def write_bytes(self, name: str, data: bytes, *, content_type: str) -> None:
        self.blobs[name] = bytes(data)

    def write_stream(self, name: str, stream: IO[bytes], *, content_type: str) -> None:
        self.blobs[name] = stream.read()

    def delete(self, name: str) -> None:
        self.blobs.pop(name, None)

    def read_versioned(self, name: str) -> tuple[bytes, str] | None:
        data = self.blobs.get(name)
        return None if data is None else (data, str(hash(data)))

    def write_if(self, name: str, data: bytes, *, etag: str | None, content_type: str) -> bool:
        current = self.read_versioned(name)
        if (current[1] if current else None) != etag:
            return False
        self.blobs[name] = bytes(data)
        return True


class DictSecrets:
    def __init__(self, secrets: dict[str, str]):
        self.secrets = secrets

    def get_secret(self, name: str) -> str:
        from shared.errors import SecretError

        if name not in self.secrets:
            raise SecretError(f"secret '{name}' not found")
        return self.secrets[name]


class InMemoryLock:
    """The one-run-per-destination rule, in a process (the real one is a blob lease)."""

    def __init__(self) -> None:
        import threading

        self._mutex = threading.Lock()
        self.holders: dict[str, str] = {}

    def hold(self, destination: str, run_id: str) -> AbstractContextManager[HeldLock]:
        from contextlib import contextmanager

        from shared.adapters.locks import HeldLock, LockHeld

        @contextmanager
        def held() -> Iterator[HeldLock]:
            with self._mutex:
                if destination in self.holders:
                    raise LockHeld(destination, self.holders[destination])
                self.holders[destination] = run_id
            try:
                yield HeldLock()
            finally:
                with self._mutex:
                    del self.holders[destination]

        return held()


class ListQueue:
    def __init__(self) -> None:
        self.jobs: list[ExportJob] = []
        self.delays: list[int] = []

    def enqueue(self, job: ExportJob, *, delay: int = 0) -> None:
        self.jobs.append(job)
        self.delays.append(delay)
