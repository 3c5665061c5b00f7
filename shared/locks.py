"""One run at a time per destination: a blob lease in the exports container.

The lease is taken for :data:`LEASE_SECONDS` and renewed while the run lasts, so a worker that
dies leaves a lease that expires on its own and the next run proceeds. The holder's run id is
written on the lock blob, so a run that finds the lock held can say which run holds it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobLeaseClient, ContainerClient

from .errors import ExportError

log = logging.getLogger(__name__)

LEASE_SECONDS = 60  # Blob Storage allows 15 to 60
RENEW_EVERY_SECONDS = 20


class LockHeld(ExportError):
    def __init__(self, destination: str, holder: str | None):
        self.holder = holder
        by = f"run {holder}" if holder else "another run"
        super().__init__(f"destination '{destination}' is being exported by {by}; this run was skipped.")


class RunLock(Protocol):
    def hold(self, destination: str, run_id: str) -> AbstractContextManager[None]: ...


def lock_blob_name(destination: str) -> str:
    return f"locks/{destination}.lock"


class BlobLeaseLock:
    def __init__(
        self,
        container: ContainerClient,
        *,
        lease_seconds: int = LEASE_SECONDS,
        renew_every: float = RENEW_EVERY_SECONDS,
    ):
        self._container = container
        self._lease_seconds = lease_seconds
        self._renew_every = renew_every

    @contextmanager
    def hold(self, destination: str, run_id: str) -> Iterator[None]:
        """Hold the destination's lock for the ``with`` block, or raise :class:`LockHeld`."""
        blob = self._container.get_blob_client(lock_blob_name(destination))
        with contextlib.suppress(ResourceExistsError):  # made by an earlier run: only its lease matters
            blob.upload_blob(b"", overwrite=False)
        try:
            lease = blob.acquire_lease(lease_duration=self._lease_seconds)
        except HttpResponseError as exc:
            if exc.status_code != 409:
                raise
            raise LockHeld(destination, self._holder(blob)) from None
        blob.set_blob_metadata({"run_id": run_id}, lease=lease)
        stop = threading.Event()
        renewer = threading.Thread(
            target=self._renew, args=(lease, stop, destination), name=f"lease-{destination}", daemon=True
        )
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join()
            try:
                lease.release()
            except (HttpResponseError, ResourceNotFoundError) as exc:
                log.warning("could not release the lock of %s (%s); it expires by itself", destination, exc)

    def _renew(self, lease: BlobLeaseClient, stop: threading.Event, destination: str) -> None:
        while not stop.wait(self._renew_every):
            try:
                lease.renew()
            except HttpResponseError as exc:
                log.error("lost the lock of %s: %s", destination, exc)
                return

    @staticmethod
    def _holder(blob: object) -> str | None:
        try:
            return blob.get_blob_properties().metadata.get("run_id")  # type: ignore[attr-defined]
        except HttpResponseError:
            return None
