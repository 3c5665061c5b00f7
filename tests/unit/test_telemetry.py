import json
import logging

from shared.telemetry import RUN_EVENT, emit_run_event
from tests.unit.test_export_core import run, setup


def events(caplog) -> list[dict]:
    found = []
    for record in caplog.records:
        message = record.getMessage()
        if message.startswith(RUN_EVENT + " "):
            found.append(json.loads(message[len(RUN_EVENT) + 1 :]))
    return found


def test_each_run_emits_one_event_with_counts_and_no_personal_data(caplog):
    caplog.set_level(logging.INFO)
    edges, _ = setup()
    record = run(edges)
    (event,) = events(caplog)
    assert event["event"] == RUN_EVENT and event["run_id"] == record.run_id
    assert (event["destination"], event["status"], event["trigger"]) == ("newsletter", "completed_with_errors", "cli")
    assert event["counts"] == record.counts and event["rejected"] == 1 and event["batches"] == 1
    assert event["duration_seconds"] >= 0
    text = json.dumps(event)
    assert "@" not in text and "k" * 20 not in text and "Ann" not in text


def test_a_failed_run_emits_at_error_level_and_leaves_out_who_asked(caplog):
    caplog.set_level(logging.INFO)
    edges, _ = setup({"data_privacy_consent": False})
    from shared.export import queue_run, run_export

    record = run_export(edges, queue_run(edges, "newsletter", trigger="on_demand", requested_by="ops@example.com"))
    (event,) = events(caplog)
    assert event["status"] == "failed" and event["error_count"] == 1
    assert "ops@example.com" not in json.dumps(event) and "requested_by" not in event
    assert next(r for r in caplog.records if r.getMessage().startswith(RUN_EVENT)).levelno == logging.ERROR
    assert record.requested_by == "ops@example.com"  # kept in the record, which is storage, not a log


def test_emit_is_one_line_of_compact_json(caplog):
    caplog.set_level(logging.INFO)
    edges, _ = setup()
    record = run(edges)
    caplog.clear()
    emit_run_event(record)
    (line,) = [r.getMessage() for r in caplog.records]
    assert "\n" not in line and line.startswith(f"{RUN_EVENT} {{")
