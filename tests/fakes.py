"""Fakes of the core's edges, for unit tests that must not touch a network or a disk service."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any

from shared.adapters.sendgrid import CallStats, NoPace, RequestPace
from shared.adapters.sendgrid_bulk import ImportUpload
from shared.adapters.sendgrid_jobs import JobResult, JobStatus
from shared.adapters.storage import BlobChanged, BlobInfo, BlobNotFound, BlobTooLarge
from shared.errors import SendGridError
from shared.run.ports import SendGridApi, SendGridFactory

LIST_ID = "ca7a3796-e8a8-4029-9ccb-df8937940562"


def key_shaped(first: str, second: str) -> str:
    """Text shaped like a SendGrid API key ("SG." + 22 + "." + 43 characters), made at run time
    from two fillers so that no key-shaped literal is committed."""
    return "SG." + (first * 22)[:22] + "." + (second * 43)[:43]

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from shared.adapters.jobs import ExportJob
    from shared.adapters.locks import HeldLock


class InMemoryBlobStore:
    def __init__(self, blobs: dict[str, bytes] | None = None, chunk_size: int = 7):
        self.blobs: dict[str, bytes] = dict(blobs or {})
        self.chunk_size = chunk_size  # tiny chunks: readers must cope with any boundary
        self.metadata: dict[str, dict[str, str]] = {}

    container_url = "https://fake.blob.core.windows.net/fake"

    def list_blobs(self, prefix: str, *, with_metadata: bool = False) -> list[BlobInfo]:
        return [
            BlobInfo(n, len(d), _etag_of(d), self.metadata.get(n, {}) if with_metadata else None)
            for n, d in sorted(self.blobs.items())
            if n.startswith(prefix)
        ]

    def read_bytes(self, name: str, *, max_bytes: int | None = None) -> bytes:
        if name not in self.blobs:
            raise BlobNotFound(f"blob '{name}' not found")
        if max_bytes is not None and len(self.blobs[name]) > max_bytes:
            raise BlobTooLarge(name, max_bytes)
        return self.blobs[name]

    def blob_name_from_url(self, url: str) -> tuple[str, str | None] | None:
        prefix = self.container_url + "/"
        if not url.startswith(prefix):
            return None
        name, _, query = url[len(prefix) :].partition("?")
        snapshot = query.split("snapshot=", 1)[1] if "snapshot=" in query else None
        return name, snapshot

    def iter_chunks(self, name: str, snapshot: str | None = None, *, etag: str | None = None) -> Iterator[bytes]:
        data = self.read_bytes(name)
        for i in range(0, len(data), self.chunk_size):
            if etag is not None and _etag_of(self.blobs.get(name, b"")) != etag:
                raise BlobChanged(name)
            yield data[i : i + self.chunk_size]

    def write_bytes(
        self, name: str, data: bytes, *, content_type: str, metadata: Mapping[str, str] | None = None
    ) -> None:
        self.blobs[name] = bytes(data)
        self.metadata[name] = dict(metadata or {})

    def write_stream(self, name: str, stream: IO[bytes], *, content_type: str) -> None:
        self.blobs[name] = stream.read()

    def delete(self, name: str) -> None:
        self.blobs.pop(name, None)
        self.metadata.pop(name, None)

    def read_versioned(self, name: str, *, max_bytes: int) -> tuple[bytes, str] | None:
        data = self.blobs.get(name)
        return None if data is None else (data[: max_bytes + 1], _etag_of(data))

    def write_if(self, name: str, data: bytes, *, etag: str | None, content_type: str) -> bool:
        current = self.blobs.get(name)
        if (None if current is None else _etag_of(current)) != etag:
            return False
        self.blobs[name] = bytes(data)
        return True


def _etag_of(data: bytes) -> str:
    return f'"{hashlib.blake2b(data, digest_size=8).hexdigest()}"'


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


class FakeSendGrid:
    """SendGrid for the run core: accepts every batch (but those told to fail) as a job that ends
    with ``job_status``, and keeps each request body it was sent."""

    def __init__(self, fail_batches: dict[int, Exception] | None = None, job_status: JobStatus = "completed"):
        self.bodies: list[dict[str, Any]] = []
        self.fail_batches = fail_batches or {}
        self.job_status = job_status
        self.lists: list[dict[str, Any]] = [{"id": LIST_ID, "name": "Newsletter"}]
        self.created_lists: list[str] = []
        self.closed = False
        self.lock = threading.Lock()
        self.deadline: float | None = None
        self.pace: RequestPace = NoPace()

    def upsert_contacts(self, body: bytes) -> tuple[str, CallStats]:
        with self.lock:  # called from the sender threads
            index = len(self.bodies)
            self.bodies.append(json.loads(body))
        if index in self.fail_batches:
            raise self.fail_batches[index]
        return f"job-{index}", CallStats(attempts=1)

    def wait_for_jobs(
        self,
        job_ids: list[str],
        *,
        deadline: float,
        interval: float = 0.25,
        max_interval: float = 30.0,
        on_end: Callable[[JobResult], None] | None = None,
        tick: Callable[[], None] | None = None,
    ) -> dict[str, JobResult]:
        results = {}
        for job_id in job_ids:
            count = len(self.bodies[int(job_id.split("-")[1])]["contacts"])
            results[job_id] = JobResult(job_id, self.job_status, requested=count, created=count)
            if on_end is not None:
                on_end(results[job_id])
        return results

    def import_status(self, job_id: str) -> JobResult:
        count = len(self.bodies[int(job_id.split("-")[1])]["contacts"])
        return JobResult(job_id, self.job_status, requested=count, created=count)

    def contact_count(self) -> int:
        return sum(len(body["contacts"]) for body in self.bodies)

    def download_errors_file(self, url: str) -> bytes:
        raise AssertionError("no job of this fake names an errors file")

    def start_import(self, list_ids: list[str], field_mappings: list[str | None]) -> ImportUpload:
        raise SendGridError("this fake takes no CSV import (the integration tests use the simulator)")

    def upload_import_file(self, upload: ImportUpload, path: str) -> None:
        raise AssertionError("this fake announced no upload")

    def start_export(self, list_ids: list[str], file_type: str = "csv") -> str:
        raise SendGridError("this fake has no contact export: removals search instead", status=400)

    def export_status(self, export_id: str) -> dict[str, Any]:
        raise AssertionError("this fake started no export")

    def download_export_file(self, url: str) -> bytes:
        raise AssertionError("this fake started no export")

    def iter_lists(self) -> Iterator[dict[str, Any]]:
        return iter(self.lists)

    def get_list(self, list_id: str) -> dict[str, Any] | None:
        return next((item for item in self.lists if item["id"] == list_id), None)

    def create_list(self, name: str) -> dict[str, Any]:
        self.created_lists.append(name)
        created = {"id": f"new-{name}", "name": name}
        self.lists.append(created)
        return created

    def search_emails(self, emails: list[str]) -> dict[str, str]:
        return {}

    def search_email_by_query(self, email: str) -> str | None:
        return None

    def remove_from_list(self, list_id: str, contact_ids: list[str]) -> str | None:
        raise AssertionError("this fake holds no contacts to remove")

    def scopes(self) -> list[str]:
        return []

    def field_definitions(self) -> dict[str, Any]:
        return {"custom_fields": []}

    def close(self) -> None:
        self.closed = True


def serving(client: SendGridApi) -> SendGridFactory:
    """A factory that hands out ``client`` whatever the URL and key (typed: a fake that drifts
    from :class:`SendGridApi` fails mypy here)."""

    def factory(base_url: str, api_key: str) -> SendGridApi:
        return client

    return factory
