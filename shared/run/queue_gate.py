"""One queued run per destination and way of asking: a burst of deliveries (Event Grid events, HTTP
requests) costs one run record, not one a delivery.

A gate blob in the exports container names the last run queued one way (new data; or on demand,
per set of options). A delivery that finds the run it names still queued, not started, joins it
and writes nothing. Otherwise it names a run of its own in the gate, replacing the gate only if
unchanged since read: of deliveries handled at once, one wins and saves its run's record and job;
the others read the gate again, find the winner's run, and join it. The gate is written before
the record, so a delivery may find a gate whose record is not saved yet: a run named less than
:data:`GATE_GRACE_SECONDS` ago counts as queued (after that, its delivery died before saving it).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime

from shared.errors import ExportError
from shared.json_input import JsonDocumentError, load_json
from shared.names import RUN_ID_PATTERN
from shared.run.records import CorruptRunRecord, ExportOptions, RunRecord, RunStatus, iso, new_run_id, utc_now
from shared.run.runtime import Runtime

log = logging.getLogger(__name__)

# A record is saved milliseconds after the gate names its run.
GATE_GRACE_SECONDS = 60
# A gate names a run id and a time: a few dozen bytes. One past this is garbage, not read whole.
MAX_GATE_BYTES = 4096
# Each try that loses the gate finds the run that won it; more than one loss means a gate that
# keeps changing under the delivery.
MAX_TRIES = 4
# A queued run older than this (beyond its settle delay) is taken as lost, not as still coming.
STALE_QUEUED_SECONDS = 3600
# Clocks of two instances may differ by this much; a time further ahead is not trusted (a run
# "queued" years from now would be joined by every delivery until then, and none would run).
MAX_CLOCK_SKEW_SECONDS = 300


def gate_blob_name(destination: str) -> str:
    return f"events/{destination}.json"


def still_queued(queued_at: str | None, settle_seconds: int, *, stale_after: int = STALE_QUEUED_SECONDS) -> bool:
    """A queued run is still coming unless it was queued (or queued again) far longer ago than its
    settle delay: then it is taken as lost."""
    if not queued_at:
        return False
    try:
        moment = datetime.fromisoformat(queued_at.replace("Z", "+00:00"))
    except ValueError:
        return False
    if moment.tzinfo is None:  # not a time we write (ours end in Z): not trusted
        return False
    return -MAX_CLOCK_SKEW_SECONDS <= (utc_now() - moment).total_seconds() < settle_seconds + stale_after


def new_data_gate(destination: str) -> str:
    return gate_blob_name(destination)


def on_demand_gate(destination: str, options: ExportOptions) -> str:
    flags = "".join("1" if value else "0" for value in options.as_dict().values())
    return f"events/{destination}.on_demand.{flags}.json"


@dataclass(frozen=True)
class RunRequest:
    """What asks for a run, as its trigger knows it: the destination, the trigger, who asked (if
    anyone is named), the options, and the run's id when its job came with one."""

    destination: str
    trigger: str
    requested_by: str | None = None
    options: ExportOptions = field(default_factory=ExportOptions)
    run_id: str | None = None


def queued_record(request: RunRequest) -> RunRecord:
    """A ``queued`` record, not saved yet (every run's record starts here)."""
    return RunRecord(
        run_id=request.run_id or new_run_id(),
        destination=request.destination,
        trigger=request.trigger,
        requested_by=request.requested_by,
        options=request.options,
        status=RunStatus.QUEUED,
        queued_at=iso(utc_now()),
    )


def claim(runtime: Runtime, gate: str, record: RunRecord, delay: int) -> str | None:
    """Name ``record``'s run in the gate, or return the id of the still-queued run it names (the
    delivery joins that one: nothing is written). None: the caller saves and enqueues ``record``."""
    exports = runtime.edges.exports
    for _ in range(MAX_TRIES):
        current = exports.read_versioned(gate, max_bytes=MAX_GATE_BYTES)  # longer: cut, so untrusted
        if current is not None and (waiting := _queued_run(runtime, record.destination, current[0], delay)):
            return waiting
        body = json.dumps({"run_id": record.run_id, "queued_at": record.queued_at}).encode()
        etag = current[1] if current is not None else None
        if exports.write_if(gate, body, etag=etag, content_type="application/json"):
            return None
    raise ExportError(f"the export of '{record.destination}' could not be queued: {gate} kept changing.")


def _queued_run(runtime: Runtime, destination: str, gate_body: bytes, delay: int) -> str | None:
    """The run the gate names, if it is queued and has not started (nor been lost)."""
    run_id, named_at = _gate_contents(gate_body)
    if run_id is None:
        return None
    try:
        earlier = runtime.edges.records.load(destination, run_id)
    except CorruptRunRecord:
        return None
    if earlier is None:  # being saved by the delivery that named it, or that delivery died
        return run_id if named_at is not None and still_queued(named_at, GATE_GRACE_SECONDS, stale_after=0) else None
    if earlier.status != RunStatus.QUEUED:
        return None
    # A run of new data that waits behind the lock is queued again and again: it is still coming.
    return run_id if still_queued(earlier.requeued_at or earlier.queued_at, delay) else None


def _gate_contents(data: bytes) -> tuple[str | None, str | None]:
    """The run id a gate names and when it named it; (None, None) for a gate we cannot trust."""
    try:
        document = load_json(data, "the gate")
    except JsonDocumentError:
        return None, None
    if not isinstance(document, dict):
        return None, None
    run_id, named_at = document.get("run_id"), document.get("queued_at")
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id):
        return None, None
    return run_id, named_at if isinstance(named_at, str) else None
