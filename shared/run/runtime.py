"""What a process runs exports with: its settings, its edges and its tuning."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from shared.run.ports import Edges
from shared.settings import (
    DEFAULT_JOB_WAIT_SECONDS,
    DEFAULT_MAX_BATCH_BYTES,
    DEFAULT_RUN_DEADLINE_SECONDS,
    MAX_CONTACTS_PER_BATCH,
    Settings,
)


def _keep_memory() -> None:
    pass


@dataclass(frozen=True)
class JobWaits:
    """How long a run's SendGrid jobs are waited for, and how often they are asked after (seconds)."""

    seconds: float
    interval: float
    max_interval: float


@dataclass(frozen=True)
class Tuning:
    """How hard and how long a run pushes: numbers a test shrinks, never something it talks to."""

    # One deadline for all of a run's SendGrid jobs, counted from when waiting starts; and one
    # for everything the run asks of SendGrid, counted from its start (429 waits included).
    job_wait_seconds: float = DEFAULT_JOB_WAIT_SECONDS
    run_deadline_seconds: float = DEFAULT_RUN_DEADLINE_SECONDS
    # A job's first poll, then gaps growing by half up to the most. SendGrid's jobs take about
    # 30 s even for one contact: once the run has seen a job end, a job's first poll comes about
    # when jobs have been ending (see shared.run.send.following), so a job costs a few polls.
    job_poll_interval: float = 0.25
    job_poll_max_interval: float = 15.0
    max_batch_contacts: int = MAX_CONTACTS_PER_BATCH
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES
    # Batches in flight at once: the next body travels while SendGrid parses the last.
    send_concurrency: int = 3
    # Sending by CSV import: never, auto (from bulk_import_threshold contacts) or always.
    bulk_import: str = "auto"
    bulk_import_threshold: int = 60_000
    bulk_import_rows: int = 1_000_000  # contacts a file at most (SendGrid's limit)
    progress_every: float = 2.0  # seconds between two updates of the progress shown
    record_save_every: float = 5.0  # seconds between two saves of the running record
    # Hands the memory a file's rows left free back to the OS (see shared.adapters.memory).
    release_memory: Callable[[], None] = _keep_memory

    @property
    def job_waits(self) -> JobWaits:
        return JobWaits(self.job_wait_seconds, self.job_poll_interval, self.job_poll_max_interval)

    @classmethod
    def from_settings(cls, settings: Settings, *, release_memory: Callable[[], None] = _keep_memory) -> Tuning:
        return cls(
            job_wait_seconds=settings.job_wait_seconds,
            run_deadline_seconds=settings.run_deadline_seconds,
            max_batch_bytes=settings.max_batch_bytes,
            bulk_import=settings.bulk_import,
            bulk_import_threshold=settings.bulk_import_threshold,
            release_memory=release_memory,
        )


@dataclass
class Runtime:
    """The settings, the edges and the tuning every trigger and every run is handed.

    Three parts, not one bag: :class:`Edges` holds only what a run talks to, so a test swaps a
    port without touching a setting; the settings are values read from the environment once
    (container names, the destinations blob, SendGrid's base URL), which the triggers need as
    much as the run; the tuning is numbers, frozen, that a test shrinks with ``replace``.
    """

    settings: Settings
    edges: Edges
    tuning: Tuning = field(default_factory=Tuning)
