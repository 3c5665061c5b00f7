"""The ports of a run: everything it talks to outside itself, and nothing else.

:class:`Edges` is what :mod:`shared.bootstrap` builds once a process (storage, Key Vault, the
queue, the lock, SendGrid) and what tests replace with fakes. How a run is tuned and the values
read from the environment are not ports: they sit beside the edges in
:class:`shared.run.runtime.Runtime`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from shared.adapters.jobs import JobQueue
from shared.adapters.locks import RunLock
from shared.adapters.secrets import SecretProvider
from shared.adapters.sendgrid import CallStats, RequestPace
from shared.adapters.sendgrid_bulk import ImportUpload
from shared.adapters.sendgrid_jobs import JobResult
from shared.adapters.storage import BlobStore
from shared.json_input import JsonObject
from shared.run.progress import NoProgress, ProgressSink
from shared.run.records import RunRecordStore


class SendGridApi(Protocol):
    """The SendGrid calls a run and ``check`` make (:class:`shared.adapters.sendgrid.SendGridClient`)."""

    # Epoch second past which no call waits or retries (set by the run); None: no bound.
    deadline: float | None
    # Paces requests per endpoint, shared by the run's threads (set by the run: shared.run.send.pace).
    pace: RequestPace

    def upsert_contacts(self, body: bytes) -> tuple[str, CallStats]: ...

    def import_status(self, job_id: str) -> JobResult: ...

    def start_import(self, list_ids: list[str], field_mappings: list[str | None]) -> ImportUpload: ...

    def upload_import_file(self, upload: ImportUpload, path: str) -> None: ...

    def contact_count(self) -> int: ...

    def wait_for_jobs(
        self,
        job_ids: list[str],
        *,
        deadline: float,
        interval: float = ...,
        max_interval: float = ...,
        on_end: Callable[[JobResult], None] | None = ...,
        tick: Callable[[], None] | None = ...,
    ) -> dict[str, JobResult]: ...

    def download_errors_file(self, url: str) -> bytes: ...

    def start_export(self, list_ids: list[str], file_type: str = ...) -> str: ...

    def export_status(self, export_id: str) -> JsonObject: ...

    def download_export_file(self, url: str) -> bytes: ...

    def iter_lists(self) -> Iterator[JsonObject]: ...

    def get_list(self, list_id: str) -> JsonObject | None: ...

    def create_list(self, name: str) -> JsonObject: ...

    def search_emails(self, emails: list[str]) -> dict[str, str]: ...

    def search_email_by_query(self, email: str) -> str | None: ...

    def remove_from_list(self, list_id: str, contact_ids: list[str]) -> str | None: ...

    def scopes(self) -> list[str]: ...

    def field_definitions(self) -> JsonObject: ...

    def close(self) -> None: ...


# A client for one API base URL and key: a run makes its own, with the key it just read.
SendGridFactory = Callable[[str, str], SendGridApi]


@dataclass
class Edges:
    """Everything a run touches outside itself, built once (see :mod:`shared.bootstrap`)."""

    segments: BlobStore
    exports: BlobStore
    secrets: SecretProvider
    sendgrid: SendGridFactory
    lock: RunLock
    jobs: JobQueue
    records: RunRecordStore
    # Where a run's progress is shown while it goes (the CLI's stderr); the record moves anyway.
    progress: ProgressSink = field(default_factory=NoProgress)
