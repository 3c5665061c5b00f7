"""One structured event per run, for Application Insights (the alert and the workbook read it).

The event is a log line ``SendGridExportRun {json}``: the Functions host forwards worker logs to
Application Insights as traces, and KQL parses the JSON (``parse_json(substring(message, 18))``).
It carries the destination, status, counts and timings: never an email, a name, a principal, or
the key. ``requested_by`` is left out on purpose: it can be a person's sign-in address.
"""

from __future__ import annotations

import json
import logging

from .records import RunRecord

RUN_EVENT = "SendGridExportRun"
log = logging.getLogger("shared.runs")


def run_event(record: RunRecord) -> dict[str, object]:
    return {
        "event": RUN_EVENT,
        "run_id": record.run_id,
        "destination": record.destination,
        "trigger": record.trigger,
        "status": record.status,
        "dry_run": bool(record.options.get("dry_run")),
        "duration_seconds": round(record.timings.get("total", 0.0), 3),
        "counts": dict(record.counts),
        "rejected": record.counts["invalid"] + record.counts["errored"],
        "batches": len(record.batches),
        "removals_refused": bool(record.removals.get("refused")),
        "error_count": len(record.errors),
    }


def emit_run_event(record: RunRecord) -> None:
    event = run_event(record)
    level = logging.ERROR if record.status == "failed" else logging.INFO
    log.log(level, "%s %s", RUN_EVENT, json.dumps(event, sort_keys=True, separators=(",", ":")))
