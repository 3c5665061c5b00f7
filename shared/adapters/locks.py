"""One run at a time per destination: a blob lease in the exports container.

The lease is taken for :data:`LEASE_SECONDS` and renewed while the run lasts, so a worker that
dies leaves a lease that expires on its own and the next run proceeds. The holder's run id is
written on the lock blob, so a run that finds the lock held can say which run holds it.

A renewal that fails (storage unreachable, a timeout, a 5xx) is retried until shortly before the
lease would expire. If none succeeds by then, the lock is *lost*: :attr:`HeldLock.lost` is set,
with :attr:`HeldLock.lost_reason`, while the lease is still ours, so the run can stop sending
before another run can take the lock. Two runs of one destination then never send at once.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.storage.blob import BlobLeaseClient, ContainerClient

from shared.context import propagate
from shared.errors import ExportError

log = logging.getLogger(__name__)

LEASE_SECONDS = 60  # Blob Storage allows 15 to 60
MIN_LEASE_SECONDS = 15
RENEW_EVERY_SECONDS = 20
# After a failed renewal, try again this soon: many tries fit in the lease's remaining time.
RETRY_EVERY_SECONDS = 1.0
# One lease call's own bounds: its retries are the renewer's loop, which knows the deadline.
CALL_CONNECT_SECONDS = 2.0
CALL_READ_SECONDS = 3.0


class LockHeld(ExportError):
    def __init__(self, destination: str, holder: str | None):
        self.holder = holder
        by = f"run {holder}" if holder else "another run"
        super().__init__(f"destination '{destination}' is being exported by {by}; this run was skipped.")


class LockLost(ExportError):
    """The lock could not be renewed before its lease would expire: the run must stop sending."""


class HeldLock:
    """What ``hold`` gives the run: ``lost`` is set (after ``lost_reason``) once the lock is lost."""

    def __init__(self) -> None:
        self.lost = threading.Event()
        self.lost_reason: str | None = None

    def check(self) -> None:
        """Raise :class:`LockLost` if the lock is lost; call it before anything is sent."""
        if self.lost.is_set():
            raise LockLost(self.lost_reason or "the lock was lost")

    def _lose(self, reason: str) -> None:
        self.lost_reason = reason  # before the event, so whoever sees it set finds the reason
        self.lost.set()


class RunLock(Protocol):
    def hold(self, destination: str, run_id: str) -> AbstractContextManager[HeldLock]: ...


def lock_blob_name(destination: str) -> str:
    return f"locks/{destination}.lock"


class BlobLeaseLock:
    def __init__(
        self,
        container: ContainerClient,
        *,
        lease_seconds: int = LEASE_SECONDS,
        renew_every: float | None = None,
    ):
        if not MIN_LEASE_SECONDS <= lease_seconds <= LEASE_SECONDS:
            raise ValueError(f"a lease lasts {MIN_LEASE_SECONDS} to {LEASE_SECONDS} seconds, not {lease_seconds}")
        self._container = container
        self._lease_seconds = lease_seconds
        self._renew_every = renew_every if renew_every is not None else min(RENEW_EVERY_SECONDS, lease_seconds / 3)
        # Give up this long before the lease would expire: the run needs the time to stop sending.
        self._margin = min(5.0, lease_seconds / 5)

    @contextmanager
    def hold(self, destination: str, run_id: str) -> Iterator[HeldLock]:
        """Hold the destination's lock for the ``with`` block, or raise :class:`LockHeld`."""
        blob = self._container.get_blob_client(lock_blob_name(destination))
        with contextlib.suppress(ResourceExistsError):  # made by an earlier run: only its lease matters
            blob.upload_blob(b"", overwrite=False)
        asked_at = time.monotonic()  # the lease runs from when the service got the request: no later
        try:
            lease = blob.acquire_lease(lease_duration=self._lease_seconds)
        except HttpResponseError as exc:
            if exc.status_code != 409:
                raise
            raise LockHeld(destination, self._holder(blob)) from None
        held = HeldLock()
        stop = threading.Event()
        try:
            blob.set_blob_metadata({"run_id": run_id}, lease=lease)
        except BaseException:
            self._release(lease, destination)
            raise
        renewer = threading.Thread(
            target=propagate(self._renew),  # its warnings belong to the invocation that holds the lock
            args=(lease, asked_at, held, stop, destination),
            name=f"lease-{destination}",
            daemon=True,
        )
        renewer.start()
        try:
            yield held
        finally:
            stop.set()
            renewer.join()
            # Even when lost: a renewal that reached storage late may have extended the lease, and
            # the release frees it; if another run holds it now, storage refuses, and nothing breaks.
            self._release(lease, destination)

    def _renew(
        self, lease: BlobLeaseClient, renewed_at: float, held: HeldLock, stop: threading.Event, destination: str
    ) -> None:
        wait = self._renew_every
        failures: list[str] = []
        while not stop.wait(wait):
            give_up_at = renewed_at + self._lease_seconds - self._margin
            remaining = give_up_at - time.monotonic()
            if remaining <= 0:
                held._lose(
                    f"the lock of '{destination}' was lost: it could not be renewed for "
                    f"{time.monotonic() - renewed_at:.0f}s ({'; '.join(failures[-1:]) or 'no answer'}), so this "
                    "run stopped sending before its lease could expire and another run take it. Contacts SendGrid "
                    "confirmed are kept; run the export again once storage is reachable."
                )
                log.error("lost the lock of %s: renewals failed until the lease was about to expire", destination)
                return
            asked_at = time.monotonic()
            try:
                lease.renew(**_call_bounds(remaining))
            except HttpResponseError as exc:
                if exc.status_code in (409, 412):  # the service says the lease is no longer ours
                    held._lose(
                        f"the lock of '{destination}' was lost: storage refused to renew its lease "
                        f"({exc.status_code} {getattr(exc, 'error_code', None) or exc.reason}); this run stopped "
                        "sending. Contacts SendGrid confirmed are kept; run the export again."
                    )
                    log.error("lost the lock of %s: the lease is no longer ours (%s)", destination, exc.status_code)
                    return
                failures.append(f"{exc.status_code} {exc.reason}")
            except Exception as exc:  # unreachable, timed out: retried until the deadline above
                failures.append(type(exc).__name__)
            else:
                renewed_at, wait, failures = asked_at, self._renew_every, []
                continue
            log.warning("could not renew the lock of %s (%s); retrying", destination, failures[-1])
            wait = min(RETRY_EVERY_SECONDS, max(0.0, give_up_at - time.monotonic()))

    @staticmethod
    def _release(lease: BlobLeaseClient, destination: str) -> None:
        try:
            lease.release(**_call_bounds(CALL_CONNECT_SECONDS + CALL_READ_SECONDS, retries=1))
        except Exception as exc:  # unreachable or refused: the lease expires by itself
            log.warning("could not release the lock of %s (%s); it expires by itself", destination, type(exc).__name__)

    @staticmethod
    def _holder(blob: object) -> str | None:
        try:
            holder = blob.get_blob_properties().metadata.get("run_id")  # type: ignore[attr-defined]
        except HttpResponseError:
            return None
        return holder if isinstance(holder, str) else None


# Any: keyword arguments of the Azure SDK, each of its own type.
def _call_bounds(within: float, retries: int = 0) -> dict[str, Any]:
    """Per-call options of a lease call: no SDK retries, and timeouts that end ``within`` seconds."""
    half = max(0.1, within) / 2  # a call may spend its connect and its read timeout both
    return {
        "retry_total": retries,
        "connection_timeout": min(CALL_CONNECT_SECONDS, half),
        "read_timeout": min(CALL_READ_SECONDS, half),
    }
