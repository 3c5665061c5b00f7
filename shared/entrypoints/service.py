"""What the triggers ask of the core: one function per trigger, no framework types.

The Functions app (``function_app.py``), the HTTP API (:mod:`shared.entrypoints.http_api`) and the CLI are
thin shells over these. An export never runs inside an HTTP request or a timer: both enqueue a
job, and the queue worker runs it, one run at a time per destination.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Mapping
from typing import Any

from shared.adapters.jobs import ExportJob, MalformedJob
from shared.adapters.storage import BlobStore
from shared.bootstrap import build_runtime
from shared.entrypoints.events import CDM_MANIFEST, MalformedEvent, landed_blob, watches
from shared.errors import ExportError
from shared.inputs.config import DestinationsConfig
from shared.run.destinations import load_destinations
from shared.run.queue_gate import RunRequest
from shared.run.records import RunRecord
from shared.run.runtime import Runtime
from shared.run.worker import (
    MAX_DEQUEUE_COUNT,
    enqueue_export,
    queue_once,
    record_malformed,
    run_job,
    run_now,
)
from shared.settings import Settings

# The entry points' names for what the worker does (the CLI, the HTTP API and the app call them here).
__all__ = [
    "MAX_DEQUEUE_COUNT",
    "app_runtime",
    "enqueue_export",
    "on_blob_created",
    "on_job",
    "on_schedule",
    "reset_app_runtime",
    "run_now",
    "scheduled_destinations",
]

log = logging.getLogger(__name__)

_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def app_runtime() -> Runtime:
    """The process's runtime, built on first use and reused by every invocation after it."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = build_runtime(Settings.from_env())
        return _runtime


def reset_app_runtime(runtime: Runtime | None = None) -> None:
    """For tests: drop (or replace) the cached runtime."""
    global _runtime
    with _runtime_lock:
        _runtime = runtime


def scheduled_destinations(runtime: Runtime, config: DestinationsConfig | None = None) -> list[str]:
    """Destinations the timer exports: enabled, consenting, ``schedule_enabled``."""
    config = config or load_destinations(runtime)
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


def on_schedule(runtime: Runtime, *, past_due: bool = False) -> list[RunRecord]:
    """Enqueue one job per scheduled destination; one that cannot be queued does not stop the rest."""
    if past_due:
        log.warning("the export schedule is running late (past due); enqueuing now")
    config = load_destinations(runtime)  # once a tick: every destination is checked against this reading
    queued = []
    for name in scheduled_destinations(runtime, config):
        try:
            queued.append(enqueue_export(runtime, RunRequest(name, "schedule", "schedule"), config=config))
        except ExportError as exc:
            log.error("scheduled export of %s not queued: %s", name, exc)
    return queued


def on_blob_created(runtime: Runtime, event: Mapping[str, Any]) -> list[RunRecord]:
    """An Event Grid event: queue, after the settle delay, the export of each destination that
    follows the data that landed (see :mod:`shared.entrypoints.events`). Never raises for a bad event or a
    configuration fault (Event Grid would deliver it again and again): it logs why and drops it."""
    try:
        landed = landed_blob(event)
    except MalformedEvent as exc:
        log.warning("dropped a malformed Event Grid event: %s", exc)
        return []
    if landed is None:
        log.debug("ignored an Event Grid event of type %s", str(event.get("eventType", event.get("type")))[:100])
        return []
    settings = runtime.settings
    if landed.container != settings.segments_container:
        log.debug("ignored a blob created in container %s, not %s", landed.container, settings.segments_container)
        return []
    try:
        config = load_destinations(runtime)
    except ExportError as exc:
        log.error("new data landed, but no export was queued: %s", exc)
        return []
    queued = []
    followers = [d for _, d in sorted(config.destinations.items()) if d.on_new_data]
    for destination in followers:
        if not watches(destination, landed.name, functools.partial(_is_cdm_folder, runtime.edges.segments)):
            continue
        if not destination.enabled:
            log.info("new data for %s, which is disabled: not queued", destination.name)
            continue
        if not destination.data_privacy_consent:
            log.warning("new data for %s, which has no data_privacy_consent: not queued", destination.name)
            continue
        record = queue_once(runtime, config, destination.name, settings.export_settle_seconds)
        if record is not None:
            queued.append(record)
    if not queued:
        log.debug("new data covered by no opted-in destination that needed a run (%d follow new data)", len(followers))
    return queued


def _is_cdm_folder(segments: BlobStore, prefix: str) -> bool:
    return any(b.name == prefix + CDM_MANIFEST for b in segments.list_blobs(prefix + CDM_MANIFEST))


def on_job(runtime: Runtime, body: str | bytes, *, dequeue_count: int = 1) -> RunRecord | None:
    """The queue worker: run one job. Raises only to have the host retry (then poison) it."""
    try:
        job = ExportJob.from_json(body)
    except MalformedJob as exc:
        record_malformed(runtime, body, str(exc))
        return None  # dropped: a malformed message would fail the same way every time
    return run_job(runtime, job, attempt=dequeue_count)
