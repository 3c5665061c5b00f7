"""Following SendGrid's import jobs from the moment they exist, on a thread of its own, beside
reading and sending.

Each job is polled with its own backoff: the first poll after ``first`` seconds (or, once a job
has been seen to end, after about the time jobs take), then gaps growing by half up to ``most``.
Jobs take about 30 s in production, even for one contact, so a job costs a handful of polls, and
the polls go through the run's pace budget like every request. A job's end is handed to
``on_end`` on this thread at once (the run confirms and journals it there).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from shared.adapters.sendgrid_jobs import JOB_END_STATES, JobResult
from shared.context import propagate
from shared.errors import SendGridError
from shared.run.ports import SendGridApi
from shared.run.send.ending import wait_for_end

GROWTH = 1.5
# The first poll of a job comes at this share of the time the last ended job took (at most;
# the time from its acceptance to the poll that saw it ended):
# most jobs of a run take about as long as each other.
TYPICAL_SHARE = 0.9


@dataclass
class _Followed:
    job_id: str
    since: float  # when it was accepted
    due: float
    gap: float


class JobFollower:
    """Polls jobs handed to :meth:`add` until each ends; :meth:`close` says no more will come and
    sets the deadline; :meth:`join` waits for the end and returns the jobs left unfinished."""

    def __init__(
        self,
        client: SendGridApi,
        on_end: Callable[[JobResult], None],
        *,
        first: float,
        most: float,
        clock: Callable[[], float] = time.time,
        at_once: bool = False,
    ):
        self._client, self._on_end, self._clock = client, on_end, clock
        # Jobs accepted long ago (a stopped run's): the first poll at once.
        self._at_once = at_once
        self._first, self._most = first, max(first, most)
        self._typical: float | None = None
        self._new: queue.Queue[str] = queue.Queue()
        self._jobs: dict[str, _Followed] = {}
        self._closed = threading.Event()
        self._stopped = threading.Event()
        self._deadline: float | None = None
        self._crash: BaseException | None = None
        self.unfinished: list[str] = []
        self.polls = 0
        self._ended = threading.Event()  # set last by the thread: see shared.run.send.ending
        self._thread = threading.Thread(target=propagate(self._run), name="sendgrid-jobs", daemon=True)
        self._thread.start()

    def add(self, job_id: str) -> None:
        self._new.put(job_id)

    def close(self, deadline: float) -> None:
        """No job will be added any more: follow those there are until ``deadline``."""
        self._deadline = deadline
        self._closed.set()
        self._new.put("")  # wakes the thread

    def stop(self) -> list[str]:
        """The run is stopping: no more polls; returns the jobs left unfinished."""
        self._stopped.set()
        self._new.put("")
        wait_for_end(self._ended, through_interrupts=True)
        return self._left()

    def _left(self) -> list[str]:
        """The jobs not followed to their end, those added after the thread ended included."""
        while True:
            try:
                job_id = self._new.get_nowait()
            except queue.Empty:
                return self.unfinished
            if job_id and job_id not in self.unfinished:
                self.unfinished.append(job_id)

    def join(self, tick: Callable[[], None] | None = None) -> list[str]:
        """Wait for every job (or the deadline); re-raise a fault of the thread."""
        wait_for_end(self._ended, tick)
        if self._crash is not None:
            raise self._crash
        return self._left()

    # -- the thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopped.is_set():
                self._take_new(self._wait_time())
                if self._stopped.is_set() or (self._closed.is_set() and not self._jobs and self._new.empty()):
                    break
                if self._past_deadline():
                    break
                self._poll_due()
        except BaseException as exc:  # handed to the run's thread by join()
            self._crash = exc
        self.unfinished = list(self._jobs)
        self._ended.set()

    def _wait_time(self) -> float:
        if not self._jobs:
            return 0.0 if self._closed.is_set() else 0.5
        return max(0.0, min(min(job.due for job in self._jobs.values()) - self._clock(), 0.5))

    def _take_new(self, wait: float) -> None:
        try:
            job_id = self._new.get(timeout=wait) if wait > 0 else self._new.get_nowait()
        except queue.Empty:
            return
        while True:
            if job_id:
                now = self._clock()
                first = self._first if self._typical is None else max(self._first, self._typical * TYPICAL_SHARE)
                due = now if self._at_once else now + min(first, self._most)
                self._jobs[job_id] = _Followed(job_id, now, due, self._first)
            try:
                job_id = self._new.get_nowait()
            except queue.Empty:
                return

    def _past_deadline(self) -> bool:
        deadline = self._deadline if self._closed.is_set() else None
        if self._client.deadline is not None:
            deadline = self._client.deadline if deadline is None else min(deadline, self._client.deadline)
        return deadline is not None and self._clock() >= deadline

    def _poll_due(self) -> None:
        now = self._clock()
        for job in [j for j in self._jobs.values() if j.due <= now]:
            if self._stopped.is_set() or self._past_deadline():
                return
            self.polls += 1
            try:
                result = self._client.import_status(job.job_id)
            except SendGridError as exc:
                if self._past_deadline():  # the wait for budget or the request met the deadline
                    return
                result = JobResult(job_id=job.job_id, status="unknown", error=str(exc), error_status=exc.status)
            if result.status in JOB_END_STATES or result.status == "unknown":
                del self._jobs[job.job_id]
                if result.status != "unknown":
                    self._typical = self._clock() - job.since
                self._on_end(result)
                continue
            job.gap = min(self._most, job.gap * GROWTH)
            job.due = self._clock() + job.gap
