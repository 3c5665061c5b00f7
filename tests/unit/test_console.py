"""What a person reads: the summary fits a screen, dry runs say so, runs' counts agree."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.entrypoints import console
from shared.run.counts import RunCounts
from shared.run.records import ExportOptions, RunRecord, RunStatus


def record(**overrides) -> RunRecord:
    base = RunRecord("20261207T030000Z-1a2b3c4d", "newsletter", "cli")
    base.started_at, base.finished_at = "2026-12-07T03:00:00+00:00", "2026-12-07T03:01:05+00:00"
    for key, value in overrides.items():
        setattr(base, key, value)
    return base


def as_row(cells: tuple[str, ...]) -> dict[str, str]:
    return dict(zip(console.RUNS_COLUMNS, cells, strict=True))


def test_the_summary_of_a_busy_run_fits_fifteen_lines_and_says_what_to_do_next():
    busy = record(
        status=RunStatus.COMPLETED_WITH_ERRORS,
        counts=RunCounts(read=300_000, invalid=12, duplicate=3, sent=299_985, accepted=299_980, errored=5),
        lists=[{"id": str(i), "name": f"L{i}", "action": "found"} for i in range(6)],
        batches=[{"index": i} for i in range(12)],
        errors=["x" * 500, "second", "third"],
        rejects_blob="runs/newsletter/20261207T030000Z-1a2b3c4d.rejects.csv",
        removals={"planned": 4, "done": 4, "refused": False, "reason": None},
    )
    lines = console.run_summary(busy)
    assert len(lines) <= console.SUMMARY_MAX_LINES
    text = "\n".join(lines)
    assert "completed_with_errors in 1m05s" in text and "300,000" in text and "and 3 more" in text
    assert "rejected rows (17)" in text and "sendgrid-export rejects newsletter 20261207T030000Z-1a2b3c4d" in text
    assert all(len(line) < 240 for line in lines)


def test_a_dry_run_is_marked_as_such():
    dry = record(
        status=RunStatus.SUCCEEDED, options=ExportOptions(dry_run=True), counts=RunCounts(read=10, would_send=10)
    )
    lines = console.run_summary(dry)
    assert lines[0].startswith("DRY RUN") and "(dry run)" in lines[1] and "10 to send" in lines[2]
    row = console.run_row(dry)
    assert row[1] == "succeeded (dry run)" and row[4] == "would 10"


def test_a_running_run_shows_stage_percent_and_eta_and_never_sent_ahead_of_read():
    running = record(
        status=RunStatus.RUNNING,
        finished_at=None,
        counts=RunCounts(read=0, sent=63_718, invalid=4),
        progress={"stage": "reading", "rows_read": 70_000, "rows_total": 280_000, "eta_seconds": 95.0},
    )
    row = as_row(console.run_row(running, now=datetime(2026, 12, 7, 3, 0, 30, tzinfo=UTC)))
    assert int(row["read"]) >= int(row["sent"]) and row["read"] == "70000"
    assert row["detail"] == "reading 25% ETA 1m35s" and row["duration"] == "30.0s"
    assert row["rejected"] == "-"  # no rejects file yet: nothing for `rejects` to print
    young = record(status=RunStatus.RUNNING, finished_at=None, progress=None)
    assert as_row(console.run_row(young))["detail"] == "started; no progress saved yet"


def test_a_failed_run_shows_its_reason_and_rejected_agrees_with_the_rejects_file():
    failed = record(status=RunStatus.FAILED, errors=["segment file 'people.csv' has no column 'Email'"])
    row = as_row(console.run_row(failed))
    assert "has no column 'Email'" in row["detail"] and row["rejected"] == "0"
    # Rows counted as rejected but no rejects file (a run that failed before writing it): '-', not a count
    # that `rejects` would then deny.
    partial = record(status=RunStatus.FAILED, counts=RunCounts(read=5, invalid=2), errors=["stopped"])
    assert as_row(console.run_row(partial))["rejected"] == "-"
    table = console.runs_table([failed, partial])
    assert table[0].startswith("run id") and len(table) == 3


def test_the_checklist_ends_with_a_verdict():
    lines = console.check_lines([{"name": "secret", "ok": True, "detail": "read"}, {"name": "list:A", "ok": False}])
    assert lines[1].startswith("FAIL list:A") and lines[-1].startswith("not ready")


def test_next_steps_use_the_command_as_it_was_typed(tmp_path, monkeypatch):
    from shared.entrypoints.cli.runs import invoked_as

    typed = tmp_path / "bin" / "sendgrid-export"
    typed.parent.mkdir()
    typed.write_text("")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert invoked_as(str(typed)) == str(typed)  # not on PATH: the path, which works when pasted
    monkeypatch.setenv("PATH", str(typed.parent))
    typed.chmod(0o755)
    assert invoked_as(str(typed)) == "sendgrid-export"
    assert invoked_as("/x/shared/__main__.py") == "python -m shared"
    failed = record(status=RunStatus.FAILED, errors=["boom"])
    assert any(
        ".venv/bin/sendgrid-export check newsletter" in line
        for line in console.run_summary(failed, ".venv/bin/sendgrid-export")
    )


def test_a_run_that_failed_before_sending_says_nothing_was_sent():
    # A guard (max_profiles, a wrong column) stops the run before any batch: the rows that passed
    # the rules are counted as would_send, and the summary must not call them sent.
    stopped = record(
        status=RunStatus.FAILED,
        counts=RunCounts(read=300_013, unchanged=13, would_send=300_000),
        errors=["the segments hold 300000 valid profiles to send, more than max_profiles (100000)"],
    )
    counts_line = console.run_summary(stopped)[1]
    assert "0 sent" in counts_line and "300,000 not sent" in counts_line, counts_line
    assert console.run_row(stopped)[4] == "0"


def test_a_running_record_silent_for_minutes_shows_as_probably_stopped_and_stays_running():
    killed = record(
        status=RunStatus.RUNNING,
        finished_at=None,
        progress={"stage": "sending", "rows_read": 10, "rows_total": 10, "elapsed_seconds": 60.0},
    )
    before = killed.to_dict()
    started = datetime.fromisoformat(str(killed.started_at))
    lively = as_row(console.run_row(killed, now=started + timedelta(seconds=60 + 30)))
    assert lively["detail"] == "sending 100%" and lively["status"] == "running"
    silent = as_row(console.run_row(killed, now=started + timedelta(seconds=60 + 301)))
    assert silent["status"] == "running"  # display only: the next run closes the record, under the lock
    assert silent["detail"] == "no progress for 5m01s: probably stopped; the next run closes it"
    assert killed.to_dict() == before
    never_saved = record(status=RunStatus.RUNNING, finished_at=None, progress=None)
    later = datetime.fromisoformat(str(never_saved.started_at)) + timedelta(minutes=10)
    assert as_row(console.run_row(never_saved, now=later))["detail"].startswith("no progress for 10m00s")
