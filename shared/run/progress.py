"""How far a run has got, while it runs: for the person watching (stderr) and for anyone polling
its record (``runs``, the HTTP ``status_url``).

The run calls :meth:`RunProgress.tick` often (once per chunk of rows, once per poll of SendGrid's
jobs); a tick costs one clock read unless ``interval`` has passed, so the hot loop does not pay
for it. Every ``interval`` the sink is told; every ``save_every`` the record is saved with its
running counts.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from shared.run.record_parts import ProgressEntry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProgressSnapshot:
    stage: str
    rows_read: int
    rows_total: int | None  # at least as many as the records (the scan's line count); None: unknown
    batches_sent: int
    batches_confirmed: int
    batches_expected: int | None
    elapsed: float
    eta: float | None  # seconds; None while it cannot be told

    def as_dict(self) -> ProgressEntry:
        """For the run record: what ``runs`` and the HTTP status_url show of a run that goes on."""
        return {
            "stage": self.stage,
            "rows_read": self.rows_read,
            "rows_total": self.rows_total,
            "batches_sent": self.batches_sent,
            "batches_confirmed": self.batches_confirmed,
            "batches_expected": self.batches_expected,
            "elapsed_seconds": round(self.elapsed, 1),
            "eta_seconds": None if self.eta is None else round(self.eta, 1),
        }

    def describe(self) -> str:
        """One line for a person: counts, never a row's contents."""
        parts = [self.stage]
        if self.rows_total:
            share = min(1.0, self.rows_read / self.rows_total)
            parts.append(f"{self.rows_read:,} of at most {self.rows_total:,} rows read ({share:.0%})")
        else:
            parts.append(f"{self.rows_read:,} rows read")
        expected = f" of ~{self.batches_expected:,}" if self.batches_expected else ""
        parts.append(f"batches {self.batches_sent:,} sent, {self.batches_confirmed:,} confirmed{expected}")
        if self.eta is not None:
            parts.append(f"ETA {_duration(self.eta)}")
        parts.append(f"{_duration(self.elapsed)} so far")
        return "; ".join(parts)


class ProgressSink(Protocol):
    def update(self, snapshot: ProgressSnapshot) -> None: ...

    def close(self) -> None: ...


class NoProgress:
    """The Functions host's sink: the record and the telemetry say it all."""

    def update(self, snapshot: ProgressSnapshot) -> None:
        pass

    def close(self) -> None:
        pass


class LogProgress:
    """Plain periodic lines (stderr that is not a terminal: a log file, CI)."""

    def __init__(self, logger: logging.Logger | None = None):
        self._log = logger or log

    def update(self, snapshot: ProgressSnapshot) -> None:
        self._log.info("progress: %s", snapshot.describe())

    def close(self) -> None:
        pass


class BarProgress:
    """A progress bar on a terminal (tqdm), rows read against the scan's total."""

    def __init__(self) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=None, unit=" rows", unit_scale=True, dynamic_ncols=True, leave=True)

    def update(self, snapshot: ProgressSnapshot) -> None:
        bar = self._bar
        if snapshot.rows_total and bar.total != snapshot.rows_total:
            bar.total = snapshot.rows_total
        bar.n = min(snapshot.rows_read, snapshot.rows_total or snapshot.rows_read)
        expected = f"/~{snapshot.batches_expected}" if snapshot.batches_expected else ""
        bar.set_description(snapshot.stage, refresh=False)
        bar.set_postfix_str(
            f"batches {snapshot.batches_sent}{expected} sent, {snapshot.batches_confirmed} confirmed", refresh=False
        )
        bar.refresh()

    def close(self) -> None:
        self._bar.close()


class RunProgress:
    def __init__(
        self,
        sink: ProgressSink,
        save: Callable[[ProgressSnapshot], None],
        *,
        interval: float = 2.0,
        save_every: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.sink, self._save, self._clock = sink, save, clock
        self.interval, self.save_every = interval, save_every
        self.started = self._last_told = self._last_saved = clock()
        self.stage = "starting"
        self.rows_total: int | None = None
        self.rows_read = 0
        self.batches_spooled = 0
        self.batches_sent = 0
        self.batches_confirmed = 0
        self.reading_done = False

    def tick(self, *, force: bool = False, save: bool = True) -> None:
        """``save`` False: called from a thread other than the run's, which never saves the
        record (only the run's thread knows its counts to be whole)."""
        now = self._clock()
        if not force and now - self._last_told < self.interval:
            return
        self._last_told = now
        snapshot = self.snapshot(now)
        self.sink.update(snapshot)
        if save and (force or now - self._last_saved >= self.save_every):
            self._last_saved = now
            self._save(snapshot)

    def snapshot(self, now: float | None = None) -> ProgressSnapshot:
        now = self._clock() if now is None else now
        elapsed = now - self.started
        expected: int | None = self.batches_spooled or None
        eta = None
        if not self.reading_done and self.rows_total and self.rows_read:
            share = min(1.0, self.rows_read / self.rows_total)
            eta = elapsed * (1 - share) / share if share else None
            if self.batches_spooled:  # the batches still to come, at the rate they filled so far
                expected = max(self.batches_spooled, math.ceil(self.batches_spooled / share))
        # Once reading is done, what was read is the total: the bar ends full, not at the scan's bound.
        total = self.rows_read if self.reading_done else self.rows_total
        return ProgressSnapshot(
            self.stage,
            self.rows_read,
            total,
            self.batches_sent,
            self.batches_confirmed,
            expected,
            elapsed,
            eta,
        )

    def close(self) -> None:
        self.sink.update(self.snapshot())  # the last word: where the run ended
        self.sink.close()


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
