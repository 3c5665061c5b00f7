"""What the triggers ask of the core: one function per trigger, no framework types.

The Functions app (``function_app.py``) and the CLI are thin shells over these.
"""

from __future__ import annotations

import logging
import threading

from .bootstrap import build_edges
from .export import Edges, load_destinations, queue_run, run_export
from .records import RunRecord
from .settings import Settings

log = logging.getLogger(__name__)

_edges: Edges | None = None
_edges_lock = threading.Lock()


def app_edges() -> Edges:
    """The process's edges, built on first use and reused by every invocation after it."""
    global _edges
    with _edges_lock:
        if _edges is None:
            _edges = build_edges(Settings.from_env())
        return _edges


def reset_app_edges(edges: Edges | None = None) -> None:
    """For tests: drop (or replace) the cached edges."""
    global _edges
    with _edges_lock:
        _edges = edges


def scheduled_destinations(edges: Edges) -> list[str]:
    """Destinations the timer exports: enabled, consenting, ``schedule_enabled``."""
    config = load_destinations(edges)
    for error in config.invalid.values():
        log.error("destinations.json: %s (skipped by the schedule)", error)
    due = []
    for name, destination in sorted(config.destinations.items()):
        if not (destination.enabled and destination.schedule_enabled):
            continue
        if not destination.data_privacy_consent:
            log.warning("destination %s has no data_privacy_consent; the schedule skips it", name)
            continue
        due.append(name)
    return due


def on_schedule(edges: Edges, *, past_due: bool = False) -> list[RunRecord]:
    """Run every scheduled destination once; each run's outcome is in its own record."""
    if past_due:
        log.warning("the export schedule is running late (past due); running now")
    records = []
    for name in scheduled_destinations(edges):
        record = queue_run(edges, name, trigger="schedule", requested_by="schedule")
        records.append(run_export(edges, record))
    return records
